"""Wan2.2-T2V-A14B: text to video; a high-noise and a low-noise expert (timestep-routed
MoE) over the Wan2.1 VAE. The plainest Wan2.2 folder, so it is detected last."""

from __future__ import annotations

from farm.model.families.base import Family, FolderConfigs
from farm.model.parts import TRANSFORMER
from farm.spec.profiles import T2V_A14B


class T2VA14B(Family):
    profile = T2V_A14B
    detect_rank = 50

    def detect(self, configs: FolderConfigs) -> bool:
        return configs.has_experts

    def transformer_class(self):
        from diffusers import WanTransformer3DModel

        return WanTransformer3DModel

    def tiny_transformer(self):
        # 16 latent channels in and out
        return self.transformer_class()(in_channels=16, out_channels=16, num_layers=2,
                                        **TRANSFORMER).eval()

    def tiny_pipeline(self, components, seed):
        from diffusers import WanPipeline

        return WanPipeline(expand_timesteps=self.profile.expand_timesteps, **components)


FAMILY = T2VA14B()
