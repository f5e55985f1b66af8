"""Band-parallel decode (farm.model.bands): the frame decoded as vertical bands of latent
columns, each widened by the decoder's halo, equals the one-pass decode; a halo too small
does not; in the runtime the bands spread over idle workers give the same bits on any
number of ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farm.model import tiny
from farm.model.bands import BandDecoder, band_frames, halo_columns
from farm.model.decode import StreamingDecoder, to_uint8
from farm.plan.segments import DECODE_HALO, band_columns, decode_bands
from farm.sched.gangs import GangPolicy
from tests.helpers import scene
from tests.model.test_gang_runtime import fleet, render

pytestmark = pytest.mark.model


def _latents(width: int = 40) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 16, 3, 4, width, generator=g)  # 9 frames of 32 x 8*width


def _decode(decoder_chunks) -> torch.Tensor:
    return torch.cat(list(decoder_chunks), dim=2)


def test_the_halo_is_the_reach_of_the_convolutions_after_the_attention():
    from diffusers import AutoencoderKLWan

    with torch.device("meta"):
        real = AutoencoderKLWan()  # the Wan2.1 VAE's configuration (num_res_blocks 2)
    assert halo_columns(real.decoder) == DECODE_HALO == 15  # 14.25 rounded up
    assert halo_columns(tiny.build_vae("t2v-a14b").decoder) == 11  # one res block: 10.5
    with pytest.raises(ValueError, match="Wan2.1 VAE"):
        halo_columns(tiny.build_vae("ti2v-5b").decoder)


@pytest.mark.parametrize("bands", [2, 3, 4])
def test_bands_equal_the_one_pass_decode(bands):
    vae, z = tiny.build_vae("t2v-a14b"), _latents()
    full = _decode(StreamingDecoder(vae).decode(z))
    banded = _decode(band_frames(vae, z, bands))
    diff = (banded - full).abs().max().item()
    print(f"{bands} bands: max abs diff {diff:.3g} (frames in [-1, 1])")
    assert banded.shape == full.shape and diff <= 1e-6  # convs of other widths: ~1.5e-7
    assert np.array_equal(to_uint8(banded), to_uint8(full))


def test_a_halo_smaller_than_the_reach_changes_the_frames():
    vae, z = tiny.build_vae("t2v-a14b"), _latents()
    full = _decode(StreamingDecoder(vae).decode(z))
    short = torch.cat([_decode(BandDecoder(vae, k, 3, halo=4).decode(z)) for k in range(3)], dim=-1)
    assert (short - full).abs().max().item() > 1e-3


def test_band_counts_follow_the_width():
    assert decode_bands(8, 1280) == 10 and decode_bands(8, 832) == 6
    assert decode_bands(8, 64) == 1 and decode_bands(16, 1280) == 1  # Wan2.2 VAE: one pass
    assert [band_columns(10, 3, k) for k in range(3)] == [(0, 4), (4, 7), (7, 10)]


class Calls:
    """Which workers decoded, and as which rank."""

    def __init__(self, workers):
        self.ranks: list[tuple[str, int | None]] = []
        for wid, w in workers.items():
            w.decode = self._wrap(wid, w.decode)

    def _wrap(self, wid, decode):
        def run(order, *args):
            rank = order.band_rank
            self.ranks.append((wid, order.bands, None if rank is None else rank.size))
            return decode(order, *args)
        return run


def test_a_band_decode_over_idle_workers_equals_one_worker_and_the_one_pass_decode():
    scenes = [scene("s1", 9, seed=3)]
    size = {"width": 512, "height": 32}  # 64 latent columns: 4 bands
    one = fleet(1)
    alone = Calls(one)
    saved, ref, _ = render(scenes, one, None, **size)
    workers = fleet(3)
    spread = Calls(workers)
    _, frames, _ = render(scenes, workers, GangPolicy(tables=()), **size)  # no phase gangs
    assert alone.ranks == [("w0", 4, None)]  # every band on the one worker
    assert sorted(spread.ranks) == [("w0", 4, 3), ("w1", 4, 3), ("w2", 4, 3)]
    assert frames.keys() == ref.keys()
    assert all(np.array_equal(frames[k], ref[k]) for k in ref)  # same bits on 1 or 3 ranks
    # ... and the one-pass decode of the same final latents
    last = saved[("s1/0", 1)].latents
    full = to_uint8(_decode(StreamingDecoder(one["w0"].loader.vae()).decode(last)))
    assert all(np.array_equal(full[i], ref[("s1", i)]) for i in range(9))


def test_a_band_rank_failing_fails_the_decode_and_the_retry_is_exact():
    from farm.sched.output import TaskRetried

    scenes, size = [scene("s1", 9, seed=3)], {"width": 512, "height": 32}
    _, ref, _ = render(scenes, fleet(1), None, **size)
    workers = fleet(3)
    calls = {"n": 0}

    def boom(module, args):
        calls["n"] += 1
        if calls["n"] == 2:  # the second latent frame of its first band
            raise RuntimeError("injected fault")
    workers["w2"].loader.vae().decoder.conv_in.register_forward_pre_hook(boom)
    _, frames, events = render(scenes, workers, GangPolicy(tables=()), **size)
    retried = [e for e in events if isinstance(e, TaskRetried)]
    assert len(retried) == 1 and "injected fault" in retried[0].reason
    assert all(np.array_equal(frames[k], ref[k]) for k in ref)
