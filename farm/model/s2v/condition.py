"""S2V conditioning: the scene's features (once) and each clip's Condition.

    scene   reference photo ──cover-resize, centre crop, VAE──> ref (1, 16, 1, h, w)
            audio ──3 frames of silence in front, wav2vec2, 30 Hz──> (layers, T30, C)
    clip k  latent frames [s, e) of the scene, 4 audio frames per latent:
                audio    buckets [4s, 4e)           (1, layers, C, 4(e - s))
                motion   k = 0: none (the official drop_first_motion)
                         k > 0: VAE(the 73 frames before the clip)   (1, 16, 19, h, w)
                         start_from: k = 0 as k > 0, the source's last 73 frames (fewer:
                         zeros in front, as the official history before a clip)
                pose     optional: VAE(first frame, the clip's 4(e - s) pose frames), the
                         first latent dropped (official load_pose_cond)  (1, 16, e - s, h, w)
                lead     what the decoder runs in front: ref (k = 0) or motion (k > 0,
                         start_from: the plan drops the 73 history frames and the 3 of
                         the lead-in, so the scene keeps its frame count and audio sync)

Sync: the official first clip drops the first 3 of its 80 frames, so the official video
frame v shows audio frame v + 3. We put 3 frames (3 / fps s) of silence in front of the
audio instead, so scene frame v is generated from the audio at v / fps: the muxed scene
audio plays in sync, from its first frame to its last.
"""

from __future__ import annotations

import numpy as np
import torch

from farm.model.condition import Condition, encode_latents
from farm.model.s2v.audio import SAMPLE_RATE, frame_buckets, wav2vec_features
from farm.model.s2v.motion import BUCKETS

LEAD_IN = 3  # frames the official first clip drops
HISTORY = 4 * sum(BUCKETS) - 3  # frames of motion history: 73, the frame pack's 19 latents


def reference_frame(rgb: np.ndarray, height: int, width: int) -> torch.Tensor:
    """uint8 (h0, w0, 3) -> (1, 3, 1, H, W) in [-1, 1]: scaled to cover the frame
    (bilinear), centre-cropped; the official resize + CenterCrop when the aspect matches."""
    from PIL import Image

    h0, w0 = rgb.shape[:2]
    scale = max(height / h0, width / w0)
    nh, nw = max(height, round(h0 * scale)), max(width, round(w0 * scale))
    image = Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR)
    top, left = (nh - height) // 2, (nw - width) // 2
    crop = np.asarray(image)[top:top + height, left:left + width]
    x = torch.from_numpy(crop.astype(np.float32) / 255.0).permute(2, 0, 1)
    return (2.0 * x - 1.0)[None, :, None]


@torch.no_grad()
def scene_features(vae, extractor, wav2vec, rgb: np.ndarray, samples: np.ndarray, fps: int,
                   height: int, width: int) -> dict[str, torch.Tensor]:
    """The reference latent and the audio features at 30 Hz, reused by every clip.
    `samples`: the scene's audio, 16 kHz mono float32."""
    ref = encode_latents(vae, reference_frame(rgb, height, width))  # (1, 16, 1, h, w)
    silence = np.zeros(LEAD_IN * SAMPLE_RATE // fps, np.float32)
    feats = wav2vec_features(extractor, wav2vec, np.concatenate([silence, samples]))
    return {"ref": ref, "audio": feats.cpu()}


@torch.no_grad()
def clip_condition(vae, features: dict[str, torch.Tensor], fps: int, first_latent: int,
                   num_latents: int, history: torch.Tensor | None,
                   pose: torch.Tensor | None = None) -> Condition:
    """Clip of latents [first_latent, first_latent + num_latents); `history` the (up to)
    73 decoded frames before it (1, 3, p, H, W) in [-1, 1], None for the scene's first;
    `pose` its 4 * num_latents pose frames (1, 3, 4L, H, W) in [-1, 1] (`pose_frames`)."""
    ref = features["ref"]
    # 1. the clip's audio frames (frame v of the scene is bucket v + LEAD_IN)
    audio = frame_buckets(features["audio"], fps, 4 * first_latent, 4 * num_latents)
    # 2. motion latents of the history (none for the first clip)
    if history is None:
        motion = ref.new_zeros(1, ref.shape[1], 0, *ref.shape[-2:])
        lead = ref
    else:
        # a shorter history (a cut from a short scene) has zeros in front: the official
        # loop's history starts as 73 zero frames and rolls the decoded frames in
        pad = HISTORY - history.shape[2]
        if pad > 0:
            history = torch.cat([history.new_zeros(*history.shape[:2], pad,
                                                   *history.shape[3:]), history], dim=2)
        motion = encode_latents(vae, history)  # (1, 16, 19, h, w)
        lead = motion
    kwargs = {"ref_latents": ref, "motion_latents": motion, "audio": audio}
    if pose is not None:
        # 3. pose latents: the first frame once more in front, its latent dropped
        video = torch.cat([pose[:, :, :1], pose], dim=2)
        kwargs["pose_latents"] = encode_latents(vae, video)[:, :, 1:]  # (1, 16, L, h, w)
    return Condition("s2v", None, kwargs=kwargs, uncond_fill={"audio": 0.0}, lead=lead)


def pose_span(first_latent: int, num_latents: int) -> tuple[int, int]:
    """Scene frames [start, stop) of a clip's pose frames; the first clip's start at -3
    (its dropped frames: the pose video's first frame stands in)."""
    start = 4 * first_latent - LEAD_IN
    return start, start + 4 * num_latents
