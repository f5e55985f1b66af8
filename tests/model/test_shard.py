"""Offload "shard" (farm.model.shard): a gang's ranks hold 1/n of every block of an expert
and all-gather each block for its forward. The tiny T2V-A14B model on the CPU, every rank
a thread of this process (Gloo on loopback):

- a unit's high- then low-noise phase on one open gang (1x2, 2x1, 2x2) returns the
  handoffs of the same gang without offload bit for bit, builds each expert's shards once
  per gang (the second phase finds the first's), and a rank keeps ceil(F / n) elements of
  a block's F parameters on its device, at most two blocks whole at a time (the next one
  prefetched);
- a phase on one GPU runs as "model" offload; step caches and LoRA adapters stay exact;
- two ranks of one gang on one worker, and a gang mixing offload modes, are refused;
- on the pool side "shard" is sized and priced as "model" (its phases on one GPU).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import pytest

from farm.engine.exchange import NoExchange
from farm.engine.gangrun import GangFailed, run_threads
from farm.engine.orders import DenoiseOrder, GangRank
from farm.model.gang import StoreServer
from farm.model.loader import resolve_model
from farm.model.worker import TorchWorker
from farm.spec.speed import resolve_speed
from tests.model.gang_helpers import embeds, orders

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("one_thread")]
FAMILY, PREFIX = "t2v-a14b", "seg/m0"
LAYOUTS = [(1, 2), (2, 1), (2, 2)]


@pytest.fixture(scope="module")
def prompt():
    return embeds(FAMILY)


def unit(cfg: int, sp: int, store: str, **extra) -> list[list[DenoiseOrder]]:
    """Per rank, the unit's phases (high, then low) under one gang name: the gang the
    first phase forms is the one the second reuses (the scheduler's gang_key)."""
    return [[replace(o, gang_rank=GangRank(cfg, sp, r, store, PREFIX, timeout_s=60.0), **extra)
             for o in orders(FAMILY)] for r in range(cfg * sp)]


def fleet(n: int, offload: str, model: str = f"tiny-{FAMILY}") -> list[TorchWorker]:
    return [TorchWorker(resolve_model(model), offload=offload) for _ in range(n)]


def run_unit(workers: list[TorchWorker], cfg: int, sp: int, prompt, seen=None,
             **extra) -> list[list]:
    """Every rank in a thread, its phases in turn; each rank's handoffs. `seen(worker,
    phase)` runs on the rank's thread after each of its phases."""
    store = StoreServer(timeout_s=60.0)
    ranked = unit(cfg, sp, store.address(), **extra)

    def rank(r: int) -> list:
        state, out = None, []
        for phase, order in enumerate(ranked[r]):
            state = workers[r].denoise(order, prompt, state, None, NoExchange())
            out.append(state)
            if seen is not None:
                seen(workers[r], phase)
        return out
    return run_threads([(f"w{r}", lambda r=r: rank(r)) for r in range(cfg * sp)],
                       lambda why: None)


def alone(worker: TorchWorker, prompt, **extra) -> list:
    state, out = None, []
    for order in orders(FAMILY):
        state = worker.denoise(replace(order, **extra), prompt, state, None, NoExchange())
        out.append(state)
    return out


def same(a, b) -> bool:
    """Handoffs equal bit for bit: latents and solver state."""
    return a.to_bytes() == b.to_bytes()


@pytest.mark.parametrize("cfg,sp", LAYOUTS, ids=[f"{c}x{s}" for c, s in LAYOUTS])
def test_a_sharded_gang_equals_the_whole_one_and_builds_each_expert_once(cfg, sp, prompt):
    builds: list[tuple[int, int, int]] = []

    def seen(worker: TorchWorker, phase: int) -> None:
        gang = worker.gangs.get(PREFIX, workers.index(worker))  # kept open
        assert set(gang.shards) == {"high", "low"} if phase else {"high"}
        builds.append((phase, worker.loader.host("high").builds,
                       worker.loader.host("low").builds if phase else 0))
    whole = run_unit(fleet(cfg * sp, "none"), cfg, sp, prompt)
    workers = fleet(cfg * sp, "shard")
    started = time.perf_counter()
    got = run_unit(workers, cfg, sp, prompt, seen)
    print(f"{cfg}x{sp}: both phases sharded in {time.perf_counter() - started:.2f} s")
    for r in range(cfg * sp):
        assert all(same(g, w) for g, w in zip(got[r], whole[r], strict=True)), f"rank {r}"
        assert same(got[r][-1], got[0][-1])
    # high built at the first phase, low at the second; high never again
    assert sorted(builds) == [(0, 1, 0)] * (cfg * sp) + [(1, 1, 1)] * (cfg * sp)
    for r, worker in enumerate(workers):
        assert set(worker.gangs.get(PREFIX, r).shards) == {"high", "low"}
    one = alone(TorchWorker(resolve_model(f"tiny-{FAMILY}")), prompt)
    diff = (got[0][-1].latents - one[-1].latents).abs().max().item()
    assert diff == 0.0 if sp == 1 else diff <= 1e-5  # Ulysses reorders sums (as "none")


def test_a_rank_keeps_its_shard_of_every_block_and_gathers_one_block_at_a_time(prompt):
    cfg, sp = 2, 2
    n = cfg * sp
    workers = fleet(n, "shard")
    host = workers[0].loader.host("high")
    params = [list(b.parameters()) for b in host.model.blocks]
    before = [[p.data_ptr() for p in ps] for ps in params]
    run_unit(workers, cfg, sp, prompt)
    for r, worker in enumerate(workers):
        sharded = worker.gangs.get(PREFIX, r).shards["high"]
        for i, block in enumerate(worker.loader.host("high").model.blocks):
            numel = sum(p.numel() for p in block.parameters())
            assert sharded.block_bytes(i) == math.ceil(numel / n) * 4  # float32
        whole = sum(p.numel() * 4 for p in worker.loader.host("high").model.blocks.parameters())
        assert sharded.device_bytes() < whole / n + 4 * len(params)
        assert sharded.peak_whole == 2  # the block computing and the next one arriving
    # between forwards the blocks are the host copy again (the gathered buffers freed)
    assert [[p.data_ptr() for p in ps] for ps in params] == before
    share = 1 - sharded.rest_bytes() / (sharded.rest_bytes() + whole)
    print(f"tiny expert: blocks {whole} B ({share:.0%} of it), a rank's shards "
          f"{sharded.device_bytes()} B")


def test_closing_the_gang_frees_its_shards(prompt):
    workers = fleet(2, "shard")
    run_unit(workers, 1, 2, prompt)
    gang = workers[1].gangs.get(PREFIX, 1)
    assert set(gang.shards) == {"high", "low"}
    gang.close()
    assert gang.shards == {} and gang.world is None


def test_a_phase_on_one_gpu_closes_the_open_gangs_and_their_shards(prompt):
    """The whole expert of a one-GPU phase needs the room the shards take (the scheduler
    forgets the gang too)."""
    workers = fleet(2, "shard")
    run_unit(workers, 1, 2, prompt)
    gang = workers[0].gangs.get(PREFIX, 0)
    assert set(gang.shards) == {"high", "low"}
    alone(workers[0], prompt)
    assert workers[0].gangs.get(PREFIX, 0) is None and gang.shards == {}


def test_a_phase_on_one_gpu_runs_as_model_offload(prompt):
    worker = TorchWorker(resolve_model(f"tiny-{FAMILY}"), offload="shard")
    got = alone(worker, prompt)
    want = alone(TorchWorker(resolve_model(f"tiny-{FAMILY}")), prompt)
    assert all(same(g, w) for g, w in zip(got, want, strict=True))
    assert worker.loader.host("high").builds == 0  # no shard: the whole expert ran
    moved: list[str] = []
    for name, host in [(name, worker.loader.host(name)) for name in ("high", "low")]:
        host.offload = lambda name=name: moved.append(name)
    worker.loader.expert("high")  # asking for one expert moves the others out
    assert moved == ["low"]


@pytest.mark.parametrize("cfg,sp,cache", [(2, 1, "first-block"), (1, 2, "taylorseer")])
def test_step_caches_stay_exact_when_sharded(cfg, sp, cache, prompt):
    params = {"first-block": {"cache": "first-block", "threshold": 0.5},
              "taylorseer": {"cache": "taylorseer", "cache_interval": 2,
                             "disable_cache_before_step": 1}}[cache]
    (setting,), errors = resolve_speed("speed", params, ("high",))
    assert not errors
    whole = run_unit(fleet(cfg * sp, "none"), cfg, sp, prompt, speed=setting)
    got = run_unit(fleet(cfg * sp, "shard"), cfg, sp, prompt, speed=setting)
    assert all(same(g, w) for g, w in zip(got[0], whole[0], strict=True))
    skipped = [h.cache.skipped for h in got[0]]
    print(f"{cache} on a {cfg}x{sp} sharded gang: skipped {skipped} calls")
    assert sum(skipped) > 0  # blocks skipped, and still gathered in step


def test_lora_adapters_stay_whole_on_the_device_and_exact(prompt, tmp_path):
    from tests.model.lora_helpers import random_lora, save_diffusers

    base = TorchWorker(resolve_model(f"tiny-{FAMILY}")).loader.expert("high")
    save_diffusers(tmp_path, random_lora(base, 4, seed=1, scale=0.6), 8.0)
    lora = ((str(tmp_path / "pytorch_lora_weights.safetensors"), 0.8),)

    def loaded(workers: list[TorchWorker]) -> list[TorchWorker]:
        # Experts built and the adapter loaded one worker at a time: PEFT draws its
        # initial LoRA weights from torch's global RNG, which a tiny expert being built
        # in another thread seeds (farm.model.parts.seeded), under any offload mode.
        for worker in workers:
            for expert in ("high", "low"):
                worker.adapters.activate(worker.loader.expert(expert), lora).release()
        return workers
    whole = run_unit(loaded(fleet(2, "none")), 1, 2, prompt, adapters=lora)
    workers = loaded(fleet(2, "shard"))
    got = run_unit(workers, 1, 2, prompt, adapters=lora)
    bare = run_unit(fleet(2, "none"), 1, 2, prompt)
    assert all(same(g, w) for g, w in zip(got[0], whole[0], strict=True))
    assert not same(got[0][-1], bare[0][-1])  # the adapter did something
    host = workers[0].loader.host("high")
    planned = {id(s.param) for groups in host.plan for g in groups for s in g.slots}
    added = [p for n, p in host.model.named_parameters() if ".lora_" in n]
    assert added and not any(id(p) in planned for p in added)  # only the base is sharded


def test_two_ranks_of_one_gang_on_one_worker_are_refused(prompt):
    worker = fleet(1, "shard")[0]
    started = time.perf_counter()
    with pytest.raises(GangFailed) as failed:
        run_unit([worker, worker], 1, 2, prompt)
    assert isinstance(failed.value.__cause__, ValueError)
    message = str(failed.value)
    assert "offload 'shard'" in message and f"gang {PREFIX}" in message
    assert time.perf_counter() - started < 30  # the peer fails at once, not at the timeout


def test_a_gang_mixing_offload_modes_is_refused(prompt):
    with pytest.raises(GangFailed, match="shard their experts .* must share their offload"):
        run_unit([*fleet(1, "shard"), *fleet(1, "none")], 1, 2, prompt)


def test_shard_is_sized_as_model_offload_and_a_rank_holds_both_experts_in_less():
    from farm.spec.weights import OFFICIAL, offload_seconds, pool_bytes, weights

    parts = OFFICIAL["t2v-a14b"].components
    w = weights(parts["transformer"])
    block = w.block_params * 2
    assert w.resident_bytes("bfloat16", "shard") == w.bytes("bfloat16")  # one-GPU phases
    assert offload_seconds("shard", 28 * 10**9, 20) == offload_seconds("model", 28 * 10**9, 20)
    holds = ["high", "low", "text", "vae"]
    assert pool_bytes(parts, holds, offload="shard") == pool_bytes(parts, holds, offload="model")
    assert w.sharded_bytes("bfloat16", 1) == w.bytes("bfloat16") + 2 * block
    both = 2 * (w.sharded_bytes("bfloat16", 4) - 2 * block)  # between forwards, gang of 4
    print(f"T2V-A14B, both experts on a rank of 4: {both / 1e9:.1f} GB")
    assert both < 0.53 * w.bytes("bfloat16")
