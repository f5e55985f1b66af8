"""Wan2.2-I2V-A14B: image to video (and first + last frame); the T2V experts take the
conditioning concatenated to the latents: 16 noisy + 4 mask + 16 image channels = 36
(farm.model.condition, "concat")."""

from __future__ import annotations

from farm.model.families.base import Family, FolderConfigs
from farm.model.parts import TRANSFORMER
from farm.spec.profiles import I2V_A14B


class I2VA14B(Family):
    profile = I2V_A14B
    detect_rank = 40

    def detect(self, configs: FolderConfigs) -> bool:
        return (configs.pipeline == "WanImageToVideoPipeline"
                or configs.transformer.get("in_channels") == 36)

    def transformer_class(self):
        from diffusers import WanTransformer3DModel

        return WanTransformer3DModel

    def tiny_transformer(self):
        return self.transformer_class()(in_channels=36, out_channels=16, num_layers=2,
                                        **TRANSFORMER).eval()

    def tiny_pipeline(self, components, seed):
        from diffusers import WanImageToVideoPipeline

        # Wan2.2 I2V has no CLIP image encoder (Wan2.1's had one)
        return WanImageToVideoPipeline(image_processor=None, image_encoder=None, **components)


FAMILY = I2VA14B()
