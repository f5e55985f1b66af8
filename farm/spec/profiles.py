"""Model profiles: the official defaults and shape rules of each Wan model family.

A profile is pure data. The farm plans films from it (frame and size rules, step split
between experts, window limits) without touching weights. Values are the official ones
from Wan-Video/Wan2.2 `wan/configs/*.py` (see research/anchors_inference.md section 1.1).

Experts are ordered from the highest noise to the lowest. Expert k runs the steps whose
timestep t satisfies `boundaries[k] * 1000 <= t < boundaries[k-1] * 1000`; a dense model
is the case of one expert and no boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """Everything the planner needs to know about a model family."""

    # Family name as used on the command line: "t2v-a14b", "i2v-a14b", "ti2v-5b".
    family: str
    # Expert names, highest noise first: ("high", "low") for MoE, ("dense",) otherwise.
    experts: tuple[str, ...]
    # Boundary ratios between consecutive experts (len == len(experts) - 1), descending.
    boundaries: tuple[float, ...]
    # Official solver steps, flow shift and classifier-free guidance per expert.
    steps: int
    shift: float
    guidance: tuple[float, ...]
    # Official frame rate and frames per clip (the length the model was trained on).
    fps: int
    frames: int
    # VAE: spatial and temporal compression and latent channels.
    vae_spatial: int
    vae_temporal: int
    latent_channels: int
    # Transformer spatial patch size; width and height must be multiples of
    # vae_spatial * patch.
    patch: int = 2
    # Whether the transformer takes per-token timesteps (Wan2.2 TI2V-5B).
    expand_timesteps: bool = False
    # Media inputs a scene may give this family (farm.spec.film.MEDIA_FIELDS), e.g.
    # {"image", "last_image"}; `audio` is accepted by every family (muxed, not modelled).
    conditioning: frozenset[str] = field(default_factory=frozenset)
    # Inputs every scene must give (I2V: its first frame; Animate: character and pose).
    requires: frozenset[str] = field(default_factory=frozenset)
    # Chain mode: pixel frames a clip may take from the end of the previous clip (the
    # first value is the default); () for families that cannot continue a clip.
    carry: tuple[int, ...] = ()
    # Reference images a scene may give (Animate: exactly its one character image).
    max_references: int = 0
    min_references: int = 0
    # Latent frames in front of a clip's own (the encoded references / character image):
    # "refs" = one per reference image (VACE), "one" = always one (Animate), "" = none.
    prefix: str = ""
    # The transformer always takes a conditioning stream, even for a text-only scene
    # (VACE: an empty control video and an all-white mask).
    always_conditioned: bool = False
    # Text encoder sequence length (UMT5-XXL: 512 tokens).
    text_len: int = 512
    # Default solver: "unipc" (Wan's default) or "euler".
    solver: str = "unipc"
    # Default overlap between parallel windows, in latent frames.
    overlap: int = 4
    # Chain as motion history (S2V): each clip is conditioned on the last `motion_frames`
    # pixel frames before it (not output again); clips do not overlap. 0: clips overlap
    # by `carry` frames (the other families).
    motion_frames: int = 0
    # Width / height multiple when stricter than VAE x patch (S2V: 64, its motion tokens
    # pool 8x8 latents); 0 = vae_spatial * patch.
    size_align: int = 0
    # Appended to "cannot use `field`" errors (what the family's official code supports).
    input_note: str = ""
    # Negative prompt of a scene whose own is empty (the official code's default; S2V).
    negative_prompt: str = ""
    # Largest width or height the farm's edge accepts by default (farm.spec.limits; a
    # served farm may set its own); 0: no default limit.
    max_side: int = 0

    @property
    def parts(self) -> tuple[str, ...]:
        """What a worker may hold of a model of this family: its experts, the text
        encoder ("text") and the VAE ("vae")."""
        return (*self.experts, "text", "vae")

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this (16 for the 2.1 VAE, 32 for 2.2)."""
        return self.size_align or self.vae_spatial * self.patch

    @property
    def max_window(self) -> int:
        """Latent frames of one window: the clip length the model was trained on."""
        return (self.frames - 1) // self.vae_temporal + 1

    @property
    def supports_chain(self) -> bool:
        """Chained continuation needs a model that takes frames of the previous clip."""
        return bool(self.carry)

    @property
    def requires_image(self) -> bool:
        """Every scene needs media (a first frame, a character): no text-only films."""
        return bool(self.requires)

    def prefix_frames(self, num_references: int) -> int:
        """Latent frames in front of a clip's own for a scene with these references."""
        return {"refs": num_references, "one": 1}.get(self.prefix, 0)

    def guidance_for(self, expert: str) -> float:
        return self.guidance[self.experts.index(expert)]


# Largest sizes the A14B and 5B families are run at by their authors (official: 1280x720
# for A14B, 1280x704 for TI2V-5B), with headroom for portrait and square framings.
MAX_SIDE = 1920

T2V_A14B = ModelProfile(
    family="t2v-a14b", experts=("high", "low"), boundaries=(0.875,), steps=40, shift=12.0,
    guidance=(4.0, 3.0), fps=16, frames=81, vae_spatial=8, vae_temporal=4, latent_channels=16,
    max_side=MAX_SIDE,
)
I2V_A14B = ModelProfile(
    family="i2v-a14b", experts=("high", "low"), boundaries=(0.9,), steps=40, shift=5.0,
    guidance=(3.5, 3.5), fps=16, frames=81, vae_spatial=8, vae_temporal=4, latent_channels=16,
    conditioning=frozenset({"image", "last_image"}), requires=frozenset({"image"}), carry=(1,),
    max_side=MAX_SIDE,
)
TI2V_5B = ModelProfile(
    family="ti2v-5b", experts=("dense",), boundaries=(), steps=50, shift=5.0, guidance=(5.0,),
    fps=24, frames=121, vae_spatial=16, vae_temporal=4, latent_channels=48,
    expand_timesteps=True, conditioning=frozenset({"image"}), carry=(1,), max_side=MAX_SIDE,
)
# Wan2.2-Animate-14B (WanAnimatePipeline): one dense expert; a character image, a pose
# video (+ face video); long scenes are clips of 77 frames, each taking the last 1 or 5
# frames of the previous one (`refert_num`). Official: wan/configs/wan_animate_14B.py.
ANIMATE_14B = ModelProfile(
    family="animate-14b", experts=("dense",), boundaries=(), steps=20, shift=5.0,
    guidance=(1.0,), fps=30, frames=77, vae_spatial=8, vae_temporal=4, latent_channels=16,
    conditioning=frozenset({"references", "pose_video", "face_video"}),
    requires=frozenset({"references", "pose_video"}), carry=(1, 5), max_references=1,
    min_references=1, prefix="one",
)
# Wan2.2-VACE-Fun-A14B (WanVACEPipeline): the T2V-A14B experts with VACE control blocks;
# reference images, a control video, masks, first / last frames and clip extension.
# Official (alibaba-pai VideoX-Fun examples/wan2.2_vace_fun): 50 steps, guidance 5.0,
# shift 12, boundary 0.875, 81 frames at 16 fps.
VACE_A14B = ModelProfile(
    family="vace-a14b", experts=("high", "low"), boundaries=(0.875,), steps=50, shift=12.0,
    guidance=(5.0, 5.0), fps=16, frames=81, vae_spatial=8, vae_temporal=4, latent_channels=16,
    conditioning=frozenset({"image", "last_image", "references", "control_video", "mask"}),
    carry=(1, 5), max_references=4, prefix="refs", always_conditioned=True,
)

# Wan2.2-S2V-14B (farm.model.s2v, our adapter: diffusers has no S2V pipeline): one dense
# expert; a reference photo (`image`) and the speech / song (`audio`) drive every scene,
# a pose video (`pose_video`, optional) the body.
# Official wan/configs/wan_s2v_14B.py + shared_config.py: sample_steps 40, sample_shift 3,
# sample_guide_scale 4.5, sample_fps 16, frame_num 80 per clip, motion_frames 73,
# drop_first_motion (the first clip outputs 77 frames: 20 latents decoded behind the
# reference latent, 3 frames dropped); sizes padded to multiples of 64.
# The official sample_neg_prompt, used when a scene's negative prompt is empty (as the
# official generate() does for n_prompt == "").
S2V_NEGATIVE = ("画面模糊，最差质量，画面模糊，细节模糊不清，情绪激动剧烈，"
                "手快速抖动，字幕，丑陋的，残缺的，"
                "多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
                "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")
S2V_14B = ModelProfile(
    family="s2v-14b", experts=("dense",), boundaries=(), steps=40, shift=3.0, guidance=(4.5,),
    fps=16, frames=77, vae_spatial=8, vae_temporal=4, latent_channels=16,
    conditioning=frozenset({"image", "audio", "pose_video"}),
    requires=frozenset({"image", "audio"}),
    carry=(73,), motion_frames=73, size_align=64, negative_prompt=S2V_NEGATIVE,
    input_note=("Wan2.2-S2V animates one character: `image` (its reference photo), one "
                "`audio` track and optionally a `pose_video`; several characters (per-character "
                "audio, reference crops or masks) are not supported; allowed inputs: image, "
                "audio, pose_video"),
)

# The pure half of the family registry, keyed by family name: what plans and validates a
# film. The torch half (detection, classes, tiny models, input encoders) is
# farm.model.families: one module per family, under the same names.
PROFILES: dict[str, ModelProfile] = {
    p.family: p for p in (T2V_A14B, I2V_A14B, TI2V_5B, ANIMATE_14B, VACE_A14B, S2V_14B)}
# The family of the built-in model "tiny" (a film that names no model): Wan2.2's T2V-A14B.
DEFAULT_FAMILY = T2V_A14B.family


def profile_for(family: str) -> ModelProfile:
    """The profile of a family; raises ValueError naming the known families."""
    try:
        return PROFILES[family]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown model family {family!r}; known families: {known}") from None
