"""Wan2.2-TI2V-5B: text and image to video with one dense expert over the Wan2.2 VAE (x16
spatial, 48 channels, patchified); a first frame is latent 0 itself, at timestep 0
(per-token timesteps: `expand_timesteps`)."""

from __future__ import annotations

from farm.model.families.base import Family, FolderConfigs
from farm.model.parts import TRANSFORMER
from farm.spec.profiles import TI2V_5B


class TI2V5B(Family):
    profile = TI2V_5B
    detect_rank = 30

    def detect(self, configs: FolderConfigs) -> bool:
        return bool(configs.index.get("expand_timesteps") or configs.vae.get("z_dim") == 48)

    def transformer_class(self):
        from diffusers import WanTransformer3DModel

        return WanTransformer3DModel

    def tiny_transformer(self):
        return self.transformer_class()(in_channels=48, out_channels=48, num_layers=2,
                                        **TRANSFORMER).eval()

    def tiny_vae(self):
        from diffusers import AutoencoderKLWan

        return AutoencoderKLWan(
            base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True,
            patch_size=2, latents_mean=[0.0] * 48, latents_std=[1.0] * 48,
            dim_mult=[1, 1, 1, 1], num_res_blocks=1, scale_factor_spatial=16,
            scale_factor_temporal=4, temperal_downsample=[False, True, True]).eval()

    def tiny_pipeline(self, components, seed):
        from diffusers import WanPipeline

        return WanPipeline(expand_timesteps=self.profile.expand_timesteps, **components)


FAMILY = TI2V5B()
