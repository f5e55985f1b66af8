"""The toy training's parts: the VAE rollout is AutoencoderKLWan's own encode and decode,
crops keep the shape, and data-parallel ranks together compute the single-process step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farm.toy import data
from farm.toy import model as toy
from farm.toy.ranks import Ranks
from farm.toy.train import Experts, TrainConfig, expert_lr
from farm.toy.vae_train import _batch, crops, pixel_loss, rollout, temporal_loss, to_pixels

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def vae():
    return toy.build_vae(0).eval()


def test_rollout_is_the_vae_encode_then_decode(vae):
    x = to_pixels(crops(0, range(2), 9, 32), torch.device("cpu"))            # (2, 3, 9, 32, 32)
    with torch.no_grad():
        frames, means = rollout(vae, x, 0)
        posterior = vae.encode(x).latent_dist
        decoded = vae.decode(posterior.mean).sample
    assert means.shape == (2, 16, 3, 4, 4)
    torch.testing.assert_close(means, posterior.mean, rtol=0, atol=1e-6)
    torch.testing.assert_close(frames.clamp(-1, 1), decoded, rtol=0, atol=1e-6)


def test_rollout_from_a_later_latent_returns_that_tail_and_trains_only_it(vae):
    x = to_pixels(crops(0, range(1), 13, 32), torch.device("cpu"))           # 4 latent frames
    with torch.no_grad():
        whole, _ = rollout(vae, x, 0)
    tail, means = rollout(vae, x, 2)
    # latents 2-3: frames 5-12
    assert tail.shape[2] == 8 and means.shape[2] == 2
    torch.testing.assert_close(tail.detach(), whole[:, :, 5:], rtol=0, atol=1e-6)
    assert tail.requires_grad


def test_crops_follow_the_shape():
    idx = range(8)
    cut = crops(0, idx, 17, 32)
    assert cut.shape == (8, 17, 32, 32, 3)
    for i, c in zip(idx, cut, strict=True):
        s = data.training_scene(0, i, 17)
        colour = np.array(data.SHAPE_COLOURS[s.colour])
        mid = c[8].reshape(-1, 3).astype(int)  # frame 8: the mid-clip position the crop is cut at
        assert (np.abs(mid - colour).sum(axis=1) < 30).sum() > 20, s.prompt


def test_two_ranks_split_the_vae_batch_of_one():
    cfg = TrainConfig(workers=2)
    for step in (0, 2):  # an image step and a clip step
        one, start, _ = _batch(cfg, Ranks(0, 1), step, np.random.default_rng(5))
        parts = [_batch(cfg, Ranks(r, 2), step, np.random.default_rng(5)) for r in (0, 1)]
        assert all(p[1] == start for p in parts)
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), one)


def _grads(experts: Experts, latents, prompts, cfg: TrainConfig,
           ranks: Ranks) -> list[torch.Tensor]:
    experts.live.zero_grad(set_to_none=True)
    gen = torch.Generator().manual_seed(3)
    sum(experts.step_loss(latents, prompts, cfg, gen, ranks,
                          torch.device("cpu")).values()).backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p)
            for p in experts.live.parameters()]


def test_two_ranks_average_to_the_single_process_gradient():
    """What `average_grads` averages over two ranks is the gradient one process computes
    on the whole batch: the ranks draw the same global batch and take halves."""
    tokenizer = toy.build_tokenizer()
    experts = Experts(tokenizer, toy.build_text_encoder(len(tokenizer)),
                      toy.build_expert("transformer"), toy.build_expert("transformer_2"))
    latents = torch.randn(6, 16, 5, 8, 8, generator=torch.Generator().manual_seed(0))
    prompts = [data.training_scene(0, i).prompt for i in range(6)]
    cfg = TrainConfig(dit_batch=4, workers=2)
    whole = _grads(experts, latents, prompts, cfg, Ranks(0, 1))
    halves = [_grads(experts, latents, prompts, cfg, Ranks(r, 2)) for r in (0, 1)]
    for g, a, b in zip(whole, *halves, strict=True):
        torch.testing.assert_close((a + b) / 2, g, rtol=1e-4, atol=1e-7)


def test_bad_configurations_name_the_field():
    problems = TrainConfig(workers=3, vae_crop=20, vae_frames=10).problems()
    assert any(p == "vae_images (8) must be divisible by workers (3)" for p in problems)
    assert any(p.startswith("vae_crop must be a multiple of 8") for p in problems)
    assert any(p.startswith("vae_frames must be 4k+1") for p in problems)
    problems = TrainConfig(vae_frames_every=0, vae_chroma=-1.0, vae_lr_steps=0.0,
                           vae_ema=1.0).problems()
    assert "vae_frames_every must be >= 1 (1: image steps only), got 0" in problems
    assert "vae_chroma must be >= 0 (0: RGB L1 only), got -1.0" in problems
    assert "vae_lr_steps must be > 0, got 0.0" in problems
    assert "vae_ema must be in [0, 1), got 1.0" in problems
    problems = TrainConfig(dit_anneal=10, dit_warmup=0).problems()
    assert "dit_anneal must be >= 0 and needs dit_steps (the step it ends at), got 10" in problems
    assert "dit_warmup must be >= 1, got 0" in problems


def test_the_expert_lr_warms_up_from_its_origin_and_anneals_to_zero_at_dit_steps():
    plain = TrainConfig(dit_lr=1.0, dit_warmup=10)
    assert [expert_lr(plain, s) for s in (0, 4, 9, 5000)] == [0.1, 0.5, 1.0, 1.0]
    cfg = TrainConfig(dit_lr=1.0, dit_warmup=10, dit_steps=1100, dit_anneal=50)
    assert expert_lr(cfg, 1000, origin=1000) == pytest.approx(0.1)   # a restart warms up again
    assert expert_lr(cfg, 1049, origin=1000) == 1.0
    assert expert_lr(cfg, 1050, origin=1000) == 1.0                  # the decay's first step
    assert expert_lr(cfg, 1075, origin=1000) == pytest.approx(0.5)
    assert expert_lr(cfg, 1099, origin=1000) == pytest.approx(1 / 50)  # the last step is not 0


def test_the_chroma_term_charges_an_error_toward_grey_more_than_a_brightness_shift():
    """Two errors of the same RGB L1 on a yellow frame: a uniform brightness shift costs no
    chroma, the same error moved into hue (toward grey) does."""
    x = torch.zeros(1, 3, 1, 8, 8)
    x[:, 0], x[:, 1], x[:, 2] = 0.9, 0.7, -0.7                          # yellow
    brighter = x + 0.2
    greyer = x.clone()
    greyer[:, 1] -= 0.3
    greyer[:, 2] += 0.3
    for recon in (brighter, greyer):
        assert torch.allclose((recon - x).abs().mean(), torch.tensor(0.2))
        assert torch.allclose(pixel_loss(recon, x, 0.0), torch.tensor(0.2))  # no shape: weight 1
    assert torch.allclose(pixel_loss(brighter, x, 2.0), torch.tensor(0.2))
    assert pixel_loss(greyer, x, 2.0) > 0.2 + 2.0 * 0.2
    assert pixel_loss(x, x, 2.0) == 0


def test_the_temporal_term_charges_flicker_not_motion_and_most_across_latent_frames():
    """A clip that moves as the data does costs nothing; the same brightness flicker costs
    4x at a pair decoded from two latent frames (4 -> 5) what it costs inside one (2 -> 3);
    a single frame has no pairs."""
    x = torch.linspace(-1, 1, 9).view(1, 1, 9, 1, 1).expand(1, 3, 9, 4, 4).contiguous()
    assert temporal_loss(x + 0.25, x, 0) < 1e-7                     # a constant offset: no flicker
    inside, across = x.clone(), x.clone()
    inside[:, :, 3:] += 0.2                                         # a step between frames 2 and 3
    across[:, :, 5:] += 0.2                                         # between frames 4 and 5
    assert torch.allclose(temporal_loss(across, x, 0), 4 * temporal_loss(inside, x, 0))
    # pair 0 is frame 2
    assert torch.allclose(temporal_loss(inside, x, 2), temporal_loss(across, x, 0))
    assert temporal_loss(x[:, :, :1] + 0.5, x[:, :, :1], 0) == 0
