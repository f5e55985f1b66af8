"""Several models on one farm: work is keyed by the film's model name (Need.model), never
by its family. "toy" and "tiny" are the same family (T2V-A14B: same experts, same rules)
with different weights, so each must run only on workers that hold its own parts."""

from __future__ import annotations

from farm.sched.output import FilmState, PhaseFinished, WorkerSpec
from farm.sched.placement import Need
from farm.sched.scheduler import Scheduler
from farm.sched.state import WorkerState
from tests.helpers import make_plan, scene
from tests.unit.test_scheduler import make_scheduler, ok, run, tasks


def model_fleet(*models: str) -> Scheduler:
    """Per model, a pool per expert and one for its text encoder and VAE, each one worker
    named like its pool, advertising "<model>/<part>" as serving's per-model pools do."""
    s = Scheduler()
    for m in models:
        for name, holds, slots in (("high", {"high"}, 1), ("low", {"low"}, 1),
                                   ("decode", {"text", "vae"}, 4)):
            wid = f"{m}-{name}"
            s.add_worker(WorkerSpec(wid, frozenset(f"{m}/{h}" for h in holds), slots, pool=wid))
    return s


def film(model: str, frames: int = 17, **kw: object):
    return make_plan([scene("a", frames), scene("b", frames)], model=model, **kw)


def ran_on(s: Scheduler, films: list[str]) -> dict[str, set[str]]:
    """Step every task to success; film id -> every worker any of its tasks ran on."""
    used: dict[str, set[str]] = {f: set() for f in films}
    for i in range(200):
        if not s.has_unfinished_films():
            break
        out = s.schedule(float(i))
        for t in tasks(out):
            ids = getattr(t, "worker_ids", None) or (t.worker_id,)
            used[t.film_id].update(ids)
        s.update_from_output(ok(out))
    return used


def test_models_of_one_family_never_share_workers():
    s = model_fleet("toy", "tiny")
    for fid, model in (("t1", "toy"), ("n1", "tiny"), ("t2", "toy"), ("n2", "tiny")):
        s.add_film(fid, film(model))
    used = ran_on(s, ["t1", "n1", "t2", "n2"])
    assert all(s.progress(f).state == FilmState.SUCCEEDED for f in used)
    for fid, workers in used.items():
        model = "toy" if fid.startswith("t") else "tiny"
        assert workers == {f"{model}-high", f"{model}-low", f"{model}-decode"}, (fid, workers)


def test_idle_workers_of_another_model_of_the_family_are_never_used():
    s = model_fleet("toy")
    s.add_film("tiny-film", film("tiny"))
    s.add_film("toy-film", film("toy"))
    run(s, 60)
    assert s.progress("toy-film").state == FilmState.SUCCEEDED
    tiny = s.progress("tiny-film")
    assert (tiny.state, tiny.phases_done) == (FilmState.QUEUED, 0)  # waits for its own workers
    assert s.schedule(100.0).phases == ()
    s.add_worker(WorkerSpec("tiny-all",
                            frozenset(f"tiny/{p}" for p in ("high", "low", "text", "vae"))))
    events = run(s, 60)
    assert s.progress("tiny-film").state == FilmState.SUCCEEDED
    assert {e.worker_ids for e in events if isinstance(e, PhaseFinished)} == {("tiny-all",)}


def test_model_qualified_holds_serve_only_that_model():
    s = make_scheduler(("h5", {"tiny-ti2v-5b/dense", "tiny-ti2v-5b/text", "tiny-ti2v-5b/vae"}),
                       ("a", {"tiny/high", "tiny/text", "tiny/vae"}), ("b", {"tiny/low"}))
    s.add_film("t2v", make_plan([scene("s1")], model="tiny"))
    s.add_film("ti2v", make_plan([scene("s1")], family="ti2v-5b", model="tiny-ti2v-5b"))
    events = run(s)
    finished = [e for e in events if isinstance(e, PhaseFinished)]
    assert {(e.film_id, e.worker_ids) for e in finished} == {
        ("t2v", ("a",)), ("t2v", ("b",)), ("ti2v", ("h5",))}
    assert all(s.progress(f).state == FilmState.SUCCEEDED for f in ("t2v", "ti2v"))


def test_a_worker_warm_for_one_model_is_cold_for_another():
    both = WorkerState(WorkerSpec("g", frozenset({"toy/high", "tiny/high"})),
                       warm=Need("high", "toy"))
    assert both.serves("high", "tiny") and both.serves("high", "toy")
    assert not both.serves("low", "toy") and not both.serves("high", "tiny-i2v-a14b")
    assert both.warm != Need("high", "tiny")  # switching models swaps weights too


def test_pool_stats_count_queued_phases_in_the_films_own_model_pool():
    s = model_fleet("toy", "tiny")
    s.add_film("f", film("toy"))
    out = s.schedule(0.0)  # prompts first: the phases are queued behind them
    s.update_from_output(ok(out))
    stats = {p.pool: p.queued_phases for p in s.pool_stats()}
    assert stats["toy-high"] == 2 and stats["tiny-high"] == 0 and stats["tiny-low"] == 0
