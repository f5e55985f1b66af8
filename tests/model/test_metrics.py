"""Metrics scraped from /metrics during and after a real tiny render: values consistent
with the film, and an exposition that passes `promtool check metrics`."""

from __future__ import annotations

import shutil
import subprocess
import threading
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from farm.local import local_director
from farm.observe.http import serve_metrics
from farm.observe.instruments import FarmMetrics
from farm.observe.metrics import PrometheusSink, failure_label
from farm.plan.film import plan_film
from farm.sched.output import FailureKind
from tests.helpers import make_film, scene

pytestmark = pytest.mark.model
FILM = make_film([scene("s1", 17, seed=1), scene("s2", 33, seed=2, continuity="windows",
                                                  window=5, overlap=2)],
                 steps=6, width=32, height=32)


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def farm(tmp_path):
    sink = PrometheusSink()
    director = local_director("tiny", tmp_path / "art", metrics=FarmMetrics(sink)).start()
    server = serve_metrics(sink, 0)
    yield director, server.server_port
    server.shutdown()
    director.stop()


def test_metrics_follow_a_real_render(farm):
    director, port = farm
    info = director.create_film(FILM, tenant="a")
    during: list[dict] = []

    def poll() -> None:  # scrape while the film renders
        for _ in range(50):
            during.append(scrape(port))
            if director.get_film(info.film_id, "a").state.is_final:
                return
            threading.Event().wait(0.05)

    t = threading.Thread(target=poll)
    t.start()
    list(director.watch(info.film_id, "a", timeout=60))
    t.join()
    director.sample_metrics(force=True)  # the gauges now, not at the next half second
    after = scrape(port)
    plan = plan_film(FILM)
    assert value(after, "reelfarm_frames_delivered_total") == FILM.num_frames
    planned = len(plan.units) * len(plan.phases)
    finished = sum(value(after, "reelfarm_phases_finished_total", expert=e)
                   for e in ("high", "low"))
    assert finished == planned
    assert value(after, "reelfarm_films_finished_total", state="SUCCEEDED") == 1
    assert value(after, "reelfarm_films", state="SUCCEEDED") == 1
    assert value(after, "reelfarm_time_to_first_frame_seconds_count") == 1
    assert value(after, "reelfarm_handoff_bytes_total") > 0
    assert value(after, "reelfarm_pool_replicas", pool="local") == 1
    assert value(after, "reelfarm_scheduler_decision_seconds_count") >= 1
    counts = [value(s, "reelfarm_frames_delivered_total") for s in during]
    assert counts == sorted(counts)  # counters never go back


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed "
                    "(Debian package `prometheus`; .ci/run installs it)")
def test_exposition_passes_promtool(farm):
    director, port = farm
    info = director.create_film(FILM, tenant="a")
    list(director.watch(info.film_id, "a", timeout=60))
    director.sample_metrics(force=True)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_failure_reasons_are_a_small_fixed_set():
    # the labels are FailureKind's values, named where each failure was known
    assert {failure_label(k) for k in FailureKind} == {
        "error", "worker_lost", "input_lost", "storage", "excluded", "cancelled"}
    assert failure_label(None) == "error"


def test_json_logs_carry_the_ids_of_what_they_are_about(tmp_path):
    import io
    import json
    import logging

    from farm.observe.logs import JsonFormatter

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("reelfarm.films")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    director = local_director("tiny", tmp_path / "art").start()
    try:
        info = director.create_film(FILM, tenant="studio-a")
        list(director.watch(info.film_id, "studio-a", timeout=60))
    finally:
        director.stop()
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert lines and all(line["film_id"] == info.film_id for line in lines)
    phases = [line for line in lines if line.get("event") == "phase"]
    assert len(phases) == len(plan_film(FILM).units) * 2
    assert all({"scene_id", "unit_id", "phase", "expert"} <= set(p) for p in phases)
    assert lines[-1]["state"] == "SUCCEEDED"
