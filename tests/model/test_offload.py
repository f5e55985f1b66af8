"""Offloaded experts compute what resident ones do, bit for bit: the tiny T2V model's
two phases under each PoolConfig.offload mode, the hooks (accelerate's, diffusers')
running on the CPU with the CPU as their onload device; and a layout that cannot fit its
GPUs is refused before anything starts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from farm.engine.exchange import NoExchange
from farm.model.loader import ModelLoader, resolve_model
from farm.model.noise import initial_noise
from farm.model.offload import run_device
from farm.model.phase import run_phase
from farm.model.text import encode_prompts
from farm.plan.timesteps import phases, timesteps
from farm.spec.weights import OFFICIAL
from serving.config import PoolConfig, ServingConfig
from tests.model.test_split_expert import F, H, W, order, span

pytestmark = pytest.mark.model
SOLVER = "unipc"


def render(folder: str, offload: str) -> tuple[torch.Tensor, float, ModelLoader]:
    """Both phases of one clip; (latents, seconds in the phases, the loader)."""
    loader = ModelLoader(resolve_model(folder), offload=offload)
    tok, enc = loader.text()
    embeds = encode_prompts(tok, enc, "a fox", "blurry", 512, with_negative=True)
    noise = initial_noise(3, "s", F, 16, H // 8, W // 8)
    high, low = phases(timesteps(SOLVER, 10, 12.0), (0.875,))
    experts = loader.expert("high"), loader.expert("low")  # loaded before the clock starts
    started = time.perf_counter()
    out = run_phase(loader.expert("high"), loader.scheduler(SOLVER, 12.0),
                    order("high", *span(high), SOLVER), embeds, noise, None, NoExchange())
    out = run_phase(loader.expert("low"), loader.scheduler(SOLVER, 12.0),
                    order("low", *span(low), SOLVER), embeds, None, out, NoExchange())
    del experts
    return out.latents, time.perf_counter() - started, loader


def test_offloaded_experts_equal_resident_ones_bit_for_bit(tiny_dirs):
    folder = tiny_dirs("t2v-a14b")
    ref, resident_s, _ = render(folder, "none")
    for mode in ("model", "group"):
        got, seconds, loader = render(folder, mode)
        assert torch.equal(got, ref), mode
        expert = loader.expert("low")
        hooked = getattr(expert, "_hf_hook", None) or getattr(expert, "_diffusers_hook", None)
        assert hooked is not None, f"{mode}: no offload hook on the expert"
        assert run_device(expert) == torch.device("cpu")
        # the time cost on this CPU (onload device = host: the hooks' own overhead), for
        # docs/weights.md section 5 quotes `bench/footprint.py --offload-timing`
        print(f"offload {mode}: {seconds:.3f} s vs {resident_s:.3f} s resident "
              f"({seconds / resident_s:.2f}x)")


def test_model_offload_moves_the_other_experts_out_when_one_is_asked_for(tiny_dirs):
    loader = ModelLoader(resolve_model(tiny_dirs("t2v-a14b")), offload="model")
    loader.expert("high")
    loader.expert("low")
    assert set(loader._hooks) == {"high", "low"}
    moved_out: list[str] = []
    for name, hook in loader._hooks.items():
        hook.offload = lambda name=name: moved_out.append(name)
    loader.expert("high")  # the next phase runs the high expert: low goes to host memory
    assert moved_out == ["low"]


def test_an_unknown_offload_mode_is_named():
    with pytest.raises(ValueError, match="offload 'disk'; allowed: none, model, group, shard$"):
        ModelLoader(resolve_model("tiny"), offload="disk")
    with pytest.raises(ValidationError, match="offload") as err:
        PoolConfig(name="High", holds=["high"], offload="disk")
    assert "'none', 'model', 'group' or 'shard'" in str(err.value)
    for mode in ("model", "shard"):
        with pytest.raises(ValidationError, match=f"pool Both: offload '{mode}' keeps one of "
                                                  "its experts .* give it slots: 1"):
            PoolConfig(name="Both", holds=["high", "low"], offload=mode, slots=2)


def config_only_folder(path: Path) -> str:
    """The official T2V-A14B's configs without weights: sizes come from configs."""
    comps = OFFICIAL["t2v-a14b"].components
    (path / "model_index.json").write_text(json.dumps(
        {"_class_name": "WanPipeline", "boundary_ratio": 0.875}))
    for name, cfg in comps.items():
        (path / name).mkdir()
        (path / name / "config.json").write_text(json.dumps(cfg))
    return str(path)


def test_a_layout_that_cannot_fit_its_gpus_is_refused_naming_pool_bytes_and_budget(tmp_path):
    model = config_only_folder(tmp_path)

    def layout(offload: str, gb: float) -> ServingConfig:
        pools = [PoolConfig(name="Both", holds=["high", "low", "text", "vae"], offload=offload,
                            gpu_memory_gb=gb)]
        return ServingConfig(models=[model], pools=pools, dtype="bfloat16")

    with pytest.raises(ValidationError, match=r"pool Both: .* keep 69\.\d GB of weights on the "
                                              r"GPU; its gpu_memory_gb is 48 GB"):
        layout("none", 48)
    layout("model", 48)            # one expert (28.6 GB) + UMT5 (11.4 GB) + VAE (0.5 GB, float32)
    layout("shard", 48)            # as "model": a phase on one GPU moves a whole expert in
    with pytest.raises(ValidationError, match="offload 'model' keep 40.5 GB .* is 24 GB"):
        layout("model", 24)
    layout("group", 24)            # the experts' blocks stream in; UMT5 stays
