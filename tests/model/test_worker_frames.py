"""The worker's frames are packed by reelfarm_kernels.frame_pack (its torch reference on
CPU) and are exactly what diffusers' WanPipeline gives as 8-bit: VideoProcessor's
postprocess of the decoded video, * 255, rounded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.video_processor import VideoProcessor

from farm.engine.orders import DecodeOrder, ModelRef
from farm.model.decode import StreamingDecoder
from farm.model.loader import resolve_model
from farm.model.solver import Handoff, SolverState
from farm.model.worker import TorchWorker
from reelfarm_kernels.frame_pack import frame_pack_reference

pytestmark = pytest.mark.model
W, H, L = 48, 32, 3  # 3 latent frames -> 1 + 4 * 2 = 9 frames


def test_worker_frames_are_diffusers_postprocess_in_8_bit():
    worker = TorchWorker(resolve_model("tiny"))
    ref = ModelRef("tiny", "t2v-a14b", ("high", "low"), W, H, 4, 12.0, "unipc", 512)
    # scaled up: the random-weight VAE's output spans about half the 8-bit range then
    z = torch.randn((1, 16, L, H // 8, W // 8), generator=torch.Generator().manual_seed(0)) * 100
    order = DecodeOrder("f", "t", "s", ref, (("s/0", 0, L),), frame_start=0, drop_frames=0,
                        condition_frames=0)
    got: list[tuple[int, np.ndarray]] = []
    worker.decode(order, [Handoff(z, SolverState("unipc", 4, 0))],
                  lambda s, i, f: got.append((i, f)))
    # (1, 3, 9, H, W)
    video = torch.cat(list(StreamingDecoder(worker.loader.vae()).decode(z)), dim=2)
    want = np.round(VideoProcessor().postprocess_video(video, output_type="np")[0] * 255).astype(
        np.uint8)
    frames = np.stack([f for _, f in got])
    assert [i for i, _ in got] == list(range(9)) and frames.dtype == np.uint8
    assert int(frames.max()) - int(frames.min()) > 100
    assert np.array_equal(frames, want)
    assert np.array_equal(frames, frame_pack_reference(video).rgb.numpy())
