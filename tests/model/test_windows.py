"""Windows mode: overlapping windows denoised by separate solver instances that swap only
their overlap predictions each step must equal one centralised computation of the same
blended windows; a scene that fits one window renders the same in windows and single mode;
noise does not depend on how a scene is cut."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from farm.cli import main
from farm.engine.executor import run_gang
from farm.engine.orders import DenoiseOrder, ModelRef
from farm.model.loader import ModelLoader, resolve_model
from farm.model.noise import initial_noise
from farm.model.text import encode_prompts
from farm.model.worker import TorchWorker
from farm.plan.segments import blend_weights, plan_windows
from farm.plan.timesteps import phases, timesteps

pytestmark = pytest.mark.model
W, H, STEPS, SEED = 32, 32, 6, 11
REF = ModelRef("tiny", "t2v-a14b", ("high", "low"), W, H, STEPS, 12.0, "unipc", 512)
GUIDANCE = {"high": 4.0, "low": 3.0}


def sharded(num_latent: int, window: int, overlap: int, embeds) -> list[torch.Tensor]:
    """Each window on its own worker and solver, in threads, halos through the exchange."""
    windows = plan_windows(num_latent, window, overlap)
    workers = [(TorchWorker(resolve_model("tiny")), f"w{k}") for k in range(len(windows))]
    states = [None] * len(windows)
    for ph in phases(timesteps("unipc", STEPS, 12.0), (0.875,)):
        expert = REF.experts[ph.expert]
        orders = tuple(DenoiseOrder("f", "t", f"s/{k}", "s", REF, SEED, expert, GUIDANCE[expert],
                                    ph.start, ph.stop, w, windows, k, False)
                       for k, w in enumerate(windows))
        states = run_gang(workers, orders, embeds, states, None)
    return [s.latents for s in states]


@torch.no_grad()
def centralised(num_latent: int, window: int, overlap: int, embeds) -> torch.Tensor:
    """One latent tensor for the scene; per step every window predicts its frames, the
    predictions are blended with the same weights, and ONE solver steps the whole scene."""
    windows = plan_windows(num_latent, window, overlap)
    loader = ModelLoader(resolve_model("tiny"))
    sched = loader.scheduler("unipc", 12.0)
    sched.set_timesteps(STEPS)
    sched.set_begin_index(0)
    x = initial_noise(SEED, "s", num_latent, 16, H // 8, W // 8)
    bounds = phases(timesteps("unipc", STEPS, 12.0), (0.875,))
    for i, t in enumerate(sched.timesteps):
        expert = REF.experts[next(p.expert for p in bounds if p.start <= i < p.stop)]
        model, g = loader.expert(expert), GUIDANCE[expert]
        num = torch.zeros_like(x)
        den = torch.zeros(1, 1, num_latent, 1, 1)
        for w in windows:
            xi = x[:, :, w.start:w.stop]
            c = model(hidden_states=xi, timestep=t.expand(1), encoder_hidden_states=embeds.prompt,
                      return_dict=False)[0]
            u = model(hidden_states=xi, timestep=t.expand(1), encoder_hidden_states=embeds.negative,
                      return_dict=False)[0]
            wt = torch.tensor(blend_weights(w)).view(1, 1, -1, 1, 1)
            num[:, :, w.start:w.stop] += wt * (u + g * (c - u))
            den[:, :, w.start:w.stop] += wt
        x = sched.step(num / den, t, x, return_dict=False)[0]
    return x


@pytest.fixture(scope="module")
def embeds():
    tok, enc = ModelLoader(resolve_model("tiny")).text()
    return encode_prompts(tok, enc, "waves on a beach", "blurry", 512, with_negative=True)


@pytest.mark.parametrize("num_latent,window,overlap", [(10, 5, 2), (13, 6, 3), (9, 4, 3)])
def test_sharded_windows_equal_centralised(num_latent, window, overlap, embeds):
    windows = plan_windows(num_latent, window, overlap)
    assert len(windows) >= 2
    parts = sharded(num_latent, window, overlap, embeds)
    full = centralised(num_latent, window, overlap, embeds)
    for w, part in zip(windows, parts, strict=True):
        assert (part - full[:, :, w.start:w.stop]).abs().max().item() <= 1e-5
    # Neighbours hold bit-identical values on the frames they share.
    for (a, pa), (b, pb) in zip(zip(windows, parts, strict=True),
                                list(zip(windows, parts, strict=True))[1:], strict=False):
        assert torch.equal(pa[:, :, b.start - a.start:], pb[:, :, :a.stop - b.start])


def render(tmp_path, name: str, scene: dict) -> np.ndarray:
    story = {"title": name, "fps": 16, "width": W, "height": H, "steps": STEPS, "scenes": [scene]}
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(story))
    assert main(["render", str(tmp_path / f"{name}.yaml"), "-o", str(tmp_path / f"{name}.mp4"),
                 "--frames-dir", str(tmp_path / name)]) == 0
    return np.stack([np.asarray(Image.open(p))
                     for p in sorted((tmp_path / name / scene["id"]).glob("*.png"))])


def test_scene_fitting_one_window_renders_identically_in_windows_mode(tmp_path):
    base = {"id": "s", "prompt": "waves", "frames": 33, "seed": SEED}
    single = render(tmp_path, "single", {**base, "continuity": "single"})
    windows = render(tmp_path, "windows", {**base, "continuity": "windows"})
    assert single.shape == (33, H, W, 3) and np.array_equal(single, windows)


def test_long_scene_in_windows_mode_has_every_frame(tmp_path):
    frames = render(tmp_path, "long", {"id": "s", "prompt": "waves", "frames": 49, "seed": SEED,
                                        "window": 5, "overlap": 2})
    assert frames.shape == (49, H, W, 3)


def test_noise_does_not_depend_on_the_cut():
    n = 20
    scene = initial_noise(SEED, "s", n, 16, 4, 4)
    for window, overlap in [(8, 3), (6, 2), (20, 4), (5, 4)]:
        for w in plan_windows(n, window, overlap):
            part = initial_noise(SEED, "s", w.size, 16, 4, 4, first_frame=w.start)
            assert torch.equal(part, scene[:, :, w.start:w.stop])
