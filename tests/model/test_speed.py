"""Step caches (farm.model.speed): the farm with a cache == diffusers' WanPipeline with the
same hooks enabled on both experts; cache state never leaks between phases, scenes or
films on a resident expert; a retried phase restarts its cache.

Setup as tests/model/test_farm_equals_diffusers.py (same tolerance): the farm renders
through its CLI, the reference is one WanPipeline call with the farm's initial noise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from farm.cli import main
from farm.model.noise import initial_noise
from farm.model.speed import diffusers_config, phase_cache
from farm.plan.timesteps import phases, timesteps
from farm.spec.profiles import profile_for
from farm.spec.speed import resolve_speed

pytestmark = pytest.mark.model

W, H, FRAMES, STEPS = 64, 48, 17, 8
SPEEDS = {
    "first-block": {"cache": "first-block", "threshold": 0.2},
    "taylorseer": {"cache": "taylorseer", "cache_interval": 2, "disable_cache_before_step": 1},
    "magcache": {"cache": "magcache", "threshold": 0.5, "retention_ratio": 0.25,
                 "mag_ratios": [1.0, 0.98, 0.97, 0.96, 0.95, 0.94]},
}


def _render(folder: str, tmp_path, speed, name: str = "out") -> np.ndarray:
    story = {"title": "speed", "fps": 16, "width": W, "height": H, "model": folder,
             "steps": STEPS, "speed": speed,
             "scenes": [{"id": "s010", "prompt": "a red fox runs through snow",
                         "negative_prompt": "blurry", "frames": FRAMES, "seed": 7,
                         "guidance": {"high": 4.0, "low": 3.0}}]}
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(story))
    frames = tmp_path / f"{name}-frames"
    assert main(["render", str(tmp_path / f"{name}.yaml"), "-o", str(tmp_path / f"{name}.mp4"),
                 "--frames-dir", str(frames)]) == 0
    return np.stack([np.asarray(Image.open(frames / "s010" / f"s010.{i + 1:04d}.png"))
                     for i in range(FRAMES)]).astype(np.int16)


def _pipeline(folder: str, speed) -> np.ndarray:
    from diffusers import WanPipeline

    profile = profile_for("t2v-a14b")
    split = phases(timesteps(profile.solver, STEPS, profile.shift), profile.boundaries)
    (high, low), _ = resolve_speed("speed", speed, profile.experts)
    pipe = WanPipeline.from_pretrained(folder)
    # diffusers' own way: one config per transformer, its state kept for the whole call
    pipe.transformer.enable_cache(diffusers_config(high, split[0].stop - split[0].start))
    pipe.transformer_2.enable_cache(diffusers_config(low, split[1].stop - split[1].start))
    noise = initial_noise(7, "s010", (FRAMES - 1) // 4 + 1, 16, H // 8, W // 8)
    ref = pipe(prompt="a red fox runs through snow", negative_prompt="blurry", height=H,
               width=W, num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=4.0,
               guidance_scale_2=3.0, latents=noise, output_type="np").frames[0]
    return (ref * 255).round().astype(np.int16)


@pytest.mark.parametrize("cache", sorted(SPEEDS))
def test_cached_farm_matches_cached_wan_pipeline(cache, tiny_dirs, tmp_path):
    folder = tiny_dirs("t2v-a14b")
    farm = _render(folder, tmp_path, SPEEDS[cache])
    ref = _pipeline(folder, SPEEDS[cache])
    assert farm.shape == ref.shape == (FRAMES, H, W, 3)
    # Only uint8 rounding may differ, as for exact renders.
    assert np.abs(farm - ref).max() <= 1
    exact = _render(folder, tmp_path, "exact", "exact")
    assert np.abs(farm - exact).max() > 1  # the cache did change something


def test_no_state_leaks_between_phases_on_a_resident_expert(tiny_dirs):
    """A, B, A on one expert == A, A: what B left (hooks, residuals) never reaches A."""
    from diffusers import WanTransformer3DModel

    model = WanTransformer3DModel.from_pretrained(tiny_dirs("t2v-a14b"), subfolder="transformer")
    (a,), _ = resolve_speed("speed", SPEEDS["first-block"], ("high",))
    (b,), _ = resolve_speed("speed", SPEEDS["taylorseer"], ("high",))
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 16, 3, 6, 8, generator=g)
    # nearby inputs (as successive steps are), so the first-block cache can skip
    xs = [base + 0.01 * i * torch.randn(1, 16, 3, 6, 8, generator=g) for i in range(4)]
    text = torch.randn(1, 8, 32, generator=g)

    def run(setting, fail_at: int | None = None):
        out = []
        with phase_cache(model, setting, "task/seg", len(xs), len(xs)) as cache:
            for i, x in enumerate(xs):
                if i == fail_at:
                    raise RuntimeError("worker lost")
                with cache.call("cond", i, 1.0 - i / 4), torch.no_grad():
                    out.append(model(hidden_states=x, timestep=torch.tensor([999 - 2 * i]),
                                     encoder_hidden_states=text, return_dict=False)[0])
        return torch.stack(out), cache.stats()

    first, stats = run(a)
    assert stats.calls == 4 and stats.skipped >= 1  # the threshold lets it skip
    run(b)
    with pytest.raises(RuntimeError):
        run(a, fail_at=2)  # a failed attempt of the same phase (same context names)
    again, _ = run(a)  # the retry, and A after B
    assert torch.equal(first, again)
    exact, none = run(None)
    assert none is None and not model.is_cache_enabled
    assert not torch.equal(first, exact)


def test_render_log_and_manifest_record_the_setting_and_skips(tmp_path):
    from farm.local import local_director
    from farm.media.provenance import film_record
    from tests.helpers import make_film, scene

    film = make_film([scene("s1", 17, seed=1, speed=SPEEDS["taylorseer"]),
                      scene("s2", 17, seed=2)], steps=6, width=32, height=32)
    d = local_director("tiny", tmp_path / "artifacts", db=f"sqlite:///{tmp_path}/jobs.db").start()
    try:
        info = d.create_film(film, tenant="a", request_id="r1")
        list(d.watch(info.film_id, "a", timeout=120))
        log = [x for x in d.executions(info.film_id, "a") if x.kind == "phase"]
    finally:
        d.stop()
    cached = sorted(x.message for x in log if x.unit_id.startswith("s1/"))
    # 6 steps split between the experts; guidance > 1: two calls a step; after one full
    # step, every other step is predicted
    assert len(cached) == 2 and all(m.startswith("taylorseer(cache_interval=2") for m in cached)
    assert all(" skipped " in m and "of" in m for m in cached)
    assert sum(int(m.split(" skipped ")[1].split()[0]) for m in cached) > 0
    assert all(x.message == "" for x in log if x.unit_id.startswith("s2/"))
    record = film_record(film, {}, [])
    assert record["scenes"][0]["speed"]["high"]["cache"] == "taylorseer"
    assert record["scenes"][1]["speed"] == "exact"
