"""LoRA adapters in the scheduler (issue 33): the ledger's mirror of each worker's adapter
cache (same LRU rule and byte budget as farm.model.adapter_cache), loads counted per
phase, placement that prefers a worker holding the phase's adapters, and grouping."""

from __future__ import annotations

from dataclasses import replace

import pytest

from farm.plan.adapters import DEFAULT_LORA_BYTES, lora_bytes
from farm.plan.film import FilmPlan, plan_film
from farm.sched.adapters import AdapterMirror, Loads
from farm.sched.config import SchedulerConfig
from farm.sched.output import TaskReport, WorkerSpec
from farm.sched.scheduler import Scheduler
from farm.spec.adapters import Adapter
from farm.spec.weights import official
from tests.helpers import make_film, scene

MB = 1_000_000


def test_lora_bytes_from_the_a14b_layer_shapes():
    # 40 blocks x (8 attention Linears 5120 -> 5120, FFN 5120 -> 13824 -> 5120) x rank, bf16
    per_rank = 40 * (8 * (5120 + 5120) + 2 * (5120 + 13824))
    assert lora_bytes(official("t2v-a14b")["transformer"], 32) == per_rank * 32 * 2
    assert DEFAULT_LORA_BYTES == per_rank * 64 * 2  # 613 MB
    with pytest.raises(ValueError, match="rank must be >= 1"):
        lora_bytes(official("t2v-a14b")["transformer"], 0)


def test_mirror_evicts_least_recently_used_within_the_budget():
    cache = AdapterMirror(budget=250 * MB)
    a, b, c = ("a", 100 * MB), ("b", 100 * MB), ("c", 100 * MB)
    assert cache.use((a,)) == Loads(1, 100 * MB)
    assert cache.use((b,)) == Loads(1, 100 * MB)
    assert cache.use((a,)) == Loads()          # a hit: a is now the most recent
    assert cache.use((c,)) == Loads(1, 100 * MB)
    assert list(cache.held) == ["a", "c"]      # b, least recently used, left for c
    assert sum(cache.held.values()) <= cache.budget
    assert cache.missing((b, c)) == 100 * MB
    # a set larger than the budget is kept whole (the runtime refuses that phase)
    cache.use((a, b, c))
    assert list(cache.held) == ["a", "b", "c"]
    cache.use((("d", 10 * MB),))
    assert list(cache.held) == ["b", "c", "d"]  # a dropped: the rest fits again


def _plan(sids: str, char: str, size: int = 600 * MB) -> FilmPlan:
    """A film of one-window scenes with a character LoRA pair (one file per expert)."""
    film = make_film([scene(s) for s in sids])
    pair = (Adapter(f"{char}_high", f"/l/{char}_high", (1.0, 0.0)),
            Adapter(f"{char}_low", f"/l/{char}_low", (0.0, 1.0)))
    film = replace(film, scenes=tuple(replace(s, adapters=pair) for s in film.scenes))
    return plan_film(film, adapter_bytes={a.location: size for a in pair})


def test_plan_records_each_phases_adapter_set_and_bytes():
    plan = _plan("a", "mira", 123)
    assert plan.adapters("a", 0) == (("/l/mira_high", 123),)
    assert plan.adapters("a", 1) == (("/l/mira_low", 123),)
    film = plan.film
    assert plan_film(film).adapters("a", 0) == (("/l/mira_high", DEFAULT_LORA_BYTES),)


def _scheduler(mode: str, *workers: str, budget: int = 1300 * MB) -> Scheduler:
    s = Scheduler(SchedulerConfig(adapter_affinity=mode))
    s.add_worker(WorkerSpec("t", frozenset({"text", "vae"}), 9))
    for wid in workers:
        s.add_worker(WorkerSpec(wid, frozenset({"high"}), adapter_cache_bytes=budget))
    return s


def _prepare(s: Scheduler, t: float = 0.0) -> None:
    s.update_from_output([TaskReport(x.task_id, True) for x in s.schedule(t).prepares])


def _warm(s: Scheduler, placements: dict[str, str]) -> None:
    """Run one high phase of film `f<char>` on each worker, as given (char -> worker)."""
    for char, wid in placements.items():
        s.add_film(f"f{char}", _plan("a", char))
        _prepare(s)
        (p,) = s.schedule(1.0).phases
        assert p.worker_ids == (wid,) and p.adapter_loads == 1
        s.update_from_output([TaskReport(p.task_id, True)])


@pytest.mark.parametrize("mode", ["prefer", "group"])
def test_a_phase_goes_to_the_worker_holding_its_adapters(mode):
    s = _scheduler(mode, "w0", "w1")
    s.add_worker(WorkerSpec("w1", frozenset({"high"}), adapter_cache_bytes=1300 * MB))
    s.add_film("fx", _plan("a", "x"))
    s.add_film("fy", _plan("a", "y"))
    _prepare(s)
    first = s.schedule(1.0).phases  # both free, empty caches: one load each
    assert sorted(p.adapter_loads for p in first) == [1, 1]
    holder = {p.film_id: p.worker_ids[0] for p in first}
    s.update_from_output([TaskReport(p.task_id, True) for p in first])
    s.add_film("fx2", _plan("a", "x"))  # another film with x's LoRA
    _prepare(s, 2.0)
    (again,) = [p for p in s.schedule(3.0).phases if p.film_id == "fx2"]
    assert again.worker_ids == (holder["fx"],) and again.adapter_loads == 0


def test_blind_placement_loads_what_affinity_avoids():
    loads = {}
    for mode in ("prefer", "blind"):
        s = _scheduler(mode, "w0", "w1", budget=700 * MB)  # one LoRA per worker
        s.add_film("fb", _plan("a", "b"))
        _prepare(s)
        (p,) = s.schedule(1.0).phases
        assert p.worker_ids == ("w0",)  # blind and prefer agree on empty caches
        s.update_from_output([TaskReport(p.task_id, True)])
        # w0 holds b; a film with b's LoRA ranks after one with c's: c's loads where it
        # evicts nothing (affinity), b's then finds its LoRA
        s.add_film("fc", _plan("a", "c"))
        s.add_film("fb2", _plan("a", "b"))
        _prepare(s, 2.0)
        phases = s.schedule(3.0).phases
        loads[mode] = {p.film_id: (p.worker_ids[0], p.adapter_loads) for p in phases}
    assert loads["prefer"] == {"fc": ("w1", 1), "fb2": ("w0", 0)}
    assert loads["blind"] == {"fc": ("w0", 1), "fb2": ("w1", 1)}


def test_grouping_gives_a_freed_worker_a_phase_of_the_set_it_holds():
    # w0 holds b's LoRA; c's film ranks first (admitted first), but in "group" mode the
    # freed w0 runs b's phase (no load) and c's waits for a worker; "prefer" keeps the
    # rank order and loads c's LoRA on w0
    got = {}
    for mode in ("prefer", "group"):
        s = _scheduler(mode, "w0", budget=700 * MB)
        _warm(s, {"b": "w0"})
        s.add_film("fc", _plan("a", "c"))
        s.add_film("fb2", _plan("a", "b"))
        _prepare(s, 2.0)
        (p,) = [p for p in s.schedule(3.0).phases if p.expert == 0]
        got[mode] = (p.film_id, p.adapter_loads)
    assert got == {"prefer": ("fc", 1), "group": ("fb2", 0)}


def test_a_restarted_worker_comes_back_with_an_empty_cache():
    s = _scheduler("prefer", "w0")
    _warm(s, {"b": "w0"})
    s.remove_worker("w0")
    s.add_worker(WorkerSpec("w0", frozenset({"high"}), adapter_cache_bytes=1300 * MB))
    s.add_film("fb2", _plan("a", "b"))
    _prepare(s, 2.0)
    (p,) = s.schedule(3.0).phases
    assert p.adapter_loads == 1


def test_adapter_affinity_is_validated():
    with pytest.raises(ValueError, match="adapter_affinity must be one of prefer, group, blind"):
        SchedulerConfig(adapter_affinity="sticky")


def test_phases_of_different_speed_settings_stay_separate_tasks():
    # no batching key merges phases (issue 35): a worker with two slots gets two tasks,
    # each of one unit of one film, and each runs with its own scene's `speed:`
    from farm.sim.caching import MAGCACHE
    s = Scheduler()
    s.add_worker(WorkerSpec("t", frozenset({"text", "vae"}), 9))
    s.add_worker(WorkerSpec("w", frozenset({"high"}), slots=2))
    cached = make_film([scene("a")])
    cached = replace(cached, scenes=tuple(replace(x, speed=(MAGCACHE, MAGCACHE))
                                          for x in cached.scenes))
    s.add_film("exact", plan_film(make_film([scene("a")])))
    s.add_film("cached", plan_film(cached))
    _prepare(s)
    phases = s.schedule(1.0).phases
    assert sorted((p.film_id, len(p.members)) for p in phases) == [("cached", 1), ("exact", 1)]


@pytest.mark.parametrize("second, together", [("x", True), ("y", False)])
def test_an_expert_runs_one_adapter_configuration_at_a_time(second, together):
    # the active set belongs to the expert (farm.model.adapters): a worker with two slots
    # runs two phases of one configuration together, and one of another only after
    s = _scheduler("prefer", "w")
    s.add_worker(WorkerSpec("w", frozenset({"high"}), slots=2, adapter_cache_bytes=1300 * MB))
    s.add_film("f1", _plan("a", "x"))
    s.add_film("f2", _plan("a", second))
    _prepare(s)
    phases = s.schedule(1.0).phases
    assert sorted(p.film_id for p in phases) == (["f1", "f2"] if together else ["f1"])
    if together:
        return
    assert not s.schedule(2.0).phases  # the free slot stays free while f1's phase runs
    s.update_from_output([TaskReport(phases[0].task_id, True)])
    assert [p.film_id for p in s.schedule(3.0).phases if p.expert == 0] == ["f2"]


def test_gangs_of_different_adapters_never_share_a_worker():
    """Two workers with two slots each and gangs on: with the same LoRA the second film's
    phase runs as a gang over both workers, one of them shared with the first film's
    phase; with another LoRA it takes only the worker that runs nothing (a gang sharing
    a worker with phases of other adapters could wait mid-step on them: the deadlock the
    rule exists for)."""
    from tests.unit.test_gangs import TEST_POLICY

    for char, together in (("x", True), ("y", False)):
        s = Scheduler(SchedulerConfig(gangs=TEST_POLICY))
        s.add_worker(WorkerSpec("t", frozenset({"text", "vae"}), 9))
        for wid in ("w0", "w1"):
            s.add_worker(WorkerSpec(wid, frozenset({"high"}), slots=2,
                                    adapter_cache_bytes=1300 * MB))
        for fid, c in (("f1", "x"), ("f2", char)):
            s.add_film(fid, _plan("a", c))
        _prepare(s)
        phases = {p.film_id: p for p in s.schedule(1.0).phases}
        assert set(phases) == {"f1", "f2"}
        shared = set(phases["f1"].worker_ids) & set(phases["f2"].worker_ids)
        assert bool(shared) == together
        assert (phases["f2"].layout.size == 2) == together
