"""The monitor's JSON: errors with the API's status and HTTP code, the fleet's step split
against pool sizes, and the plan's steps per expert (pure, no server)."""

from __future__ import annotations

import pytest

from farm.api.errors import InvalidArgument, ModelNotServed, Unauthenticated
from farm.director.errors import (
    FailedPrecondition,
    FilmNotFound,
    PermissionDenied,
    ResourceExhausted,
)
from farm.director.fleet import Fleet, WorkerView, planned_steps
from farm.sched.output import PoolStats
from farm.spec.errors import FieldError
from farm.web.views import error_json, fleet_json
from tests.helpers import make_plan, scene


@pytest.mark.parametrize("exc,http,status", [
    (InvalidArgument([FieldError("film.priority", "must be in [0, 100], got 101")]), 400,
     "INVALID_ARGUMENT"),
    (FailedPrecondition("films/x is SUCCEEDED"), 400, "FAILED_PRECONDITION"),
    (ModelNotServed("big", ["tiny"]), 400, "FAILED_PRECONDITION"),
    (Unauthenticated("unknown token"), 401, "UNAUTHENTICATED"),
    (PermissionDenied("films/x belongs to another tenant"), 403, "PERMISSION_DENIED"),
    (FilmNotFound("no film films/x"), 404, "NOT_FOUND"),
    (ResourceExhausted("quota"), 429, "RESOURCE_EXHAUSTED"),
])
def test_errors_keep_the_api_status_and_message(exc, http, status):
    code, body = error_json(exc)
    assert code == http == body["error"]["code"]
    assert body["error"]["status"] == status and body["error"]["message"] == str(exc)


def test_field_violations_travel_as_bad_request_details():
    _, body = error_json(InvalidArgument([FieldError("last_frame", "must be in [first_frame, 8]")]))
    detail = body["error"]["details"][0]
    assert detail["@type"].endswith("google.rpc.BadRequest")
    assert detail["fieldViolations"] == [{"field": "last_frame",
                                          "description": "must be in [first_frame, 8]"}]


def test_other_errors_are_internal_without_their_text():
    code, body = error_json(RuntimeError("/secret/path exploded"))
    assert code == 500 and "secret" not in body["error"]["message"]


def test_planned_steps_count_every_segment_of_every_unit():
    # 40 official steps split 26:14; a 129-frame scene in windows of 21 latents with
    # overlap 4 is a gang of 2 windows; a 17-frame scene is one segment.
    plan = make_plan([scene("a", 129, continuity="windows"), scene("b", 17)], steps=40)
    segments = sum(len(u.segments) for u in plan.units)
    assert segments == 3
    assert planned_steps(plan) == {"high": 26 * 3, "low": 14 * 3}


def test_fleet_json_compares_the_step_split_with_slots_per_expert():
    workers = tuple(WorkerView(f"h{i}", "High", ("high",), 1, i % 2, True, "high")
                    for i in range(5)) + \
        tuple(WorkerView(f"l{i}", "Low", ("t2v-a14b/low",), 1, 0, True) for i in range(3)) + \
        (WorkerView("l9", "Low", ("low",), 1, 0, False),  # lost: not counted
         WorkerView("d0", "Decode", ("text", "vae"), 2, 1, True))
    pools = (PoolStats("High", 7, 2, 5, 5, 2), PoolStats("Low", 1, 0, 3, 3, 0))
    fleet = Fleet(12.0, pools, workers, {"f1": ("h3",)}, {"high": 260, "low": 140})
    out = fleet_json(fleet, [{"film": "films/f1", "worker_ids": ["h3"]}], [])
    assert out["split"] == {"experts": ["high", "low"], "planned_steps": {"high": 260, "low": 140},
                            "pool_slots": {"high": 5, "low": 3}}
    assert [(p["pool"], p["holds"], p["queued_phases"], p["busy_fraction"])
            for p in out["pools"]] == [
        ("High", ["high"], 7, 0.4), ("Low", ["t2v-a14b/low"], 1, 0.0)]
    assert [w["worker_id"] for w in out["workers"] if not w["alive"]] == ["l9"]
    assert out["excluded"] == [{"film": "films/f1", "worker_ids": ["h3"]}]


def test_fleet_json_split_names_experts_not_model_parts_when_no_film_is_planned():
    workers = (WorkerView("t", "Toy", ("toy/high", "toy/low", "toy/text", "toy/vae"), 1, 0, True),
               WorkerView("d", "TinyTi2v5b", ("tiny-ti2v-5b/dense", "tiny-ti2v-5b/vae"), 1, 0,
                          True))
    out = fleet_json(Fleet(1.0, (), workers, {}, {}), [], [])
    assert out["split"]["experts"] == ["dense", "high", "low"]
    assert out["split"]["pool_slots"] == {"dense": 1, "high": 1, "low": 1}
