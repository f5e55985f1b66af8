"""Status codes of the controls, each triggered by a real request: FAILED_PRECONDITION for
a transition the film's state does not allow, INVALID_ARGUMENT naming the field (update
mask, priority, frame range), RESOURCE_EXHAUSTED for the queued-frames quota, tenants."""

from __future__ import annotations

import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from farm.api import convert
from farm.api.protos import pb
from farm.client import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
)
from tests.serving.api.helpers import MAX_QUEUED_FRAMES, tiny_board, wait_final

pytestmark = [pytest.mark.grpc, pytest.mark.model]


@pytest.fixture(scope="module")
def finished(api_server):
    """A SUCCEEDED film of alice's (2 scenes of 9 frames)."""
    from farm.client import Client
    from tests.serving.api.helpers import TOKEN

    with Client(api_server.address, token=TOKEN["alice"]) as client:
        handle = client.submit(tiny_board())
        assert convert.state_word(wait_final(handle).state) == "SUCCEEDED"
        yield handle.name


def update(client, name: str, paths: list[str] | None, **film: object) -> pb.Film:
    mask = FieldMask(paths=paths) if paths is not None else None
    return client.call("UpdateFilm", pb.UpdateFilmRequest(film=pb.Film(name=name, **film),
                                                          update_mask=mask))


def test_transitions_a_finished_film_does_not_allow(connect, finished):
    film = connect("alice").film(finished)
    for control, match in ((film.pause, "only QUEUED or RUNNING"), (film.resume, "not PAUSED"),
                           (film.retry, "only FAILED"), (film.cancel, "already SUCCEEDED"),
                           (lambda: film.set_priority(60), "SUCCEEDED")):
        with pytest.raises(FailedPreconditionError, match=match):
            control()


def test_rerender_needs_a_finished_film_and_resume_a_paused_one(connect):
    handle = connect("alice").submit(tiny_board(scenes=1))
    handle.pause()
    with pytest.raises(FailedPreconditionError, match="SUCCEEDED or FAILED"):
        handle.rerender("s0", 0, 1)
    handle.resume()
    with pytest.raises(FailedPreconditionError, match="not PAUSED"):
        handle.resume()  # RUNNING (or even SUCCEEDED) by now
    assert convert.state_word(wait_final(handle).state) == "SUCCEEDED"


def test_update_mask_paths_other_than_priority_are_invalid(connect, finished):
    client = connect("alice")
    with pytest.raises(InvalidArgumentError) as exc:
        update(client, finished, ["priority", "title", "state", "nope"], title="x", priority=5)
    assert [f for f, _ in exc.value.violations] == ["update_mask"] * 3
    messages = " | ".join(d for _, d in exc.value.violations)
    assert "'title' is immutable" in messages and "'state' is output only" in messages
    assert "'nope' is not a field of Film" in messages and "updatable: priority" in messages
    with pytest.raises(InvalidArgumentError, match="full replacement"):
        update(client, finished, ["*"])
    # No mask: the fields set in `film` are the mask (AIP-134); output-only ones are ignored.
    full = client.get(finished)
    with pytest.raises(InvalidArgumentError) as exc:
        update(client, finished, None, **{k: getattr(full, k) for k in ("title", "fps", "state")})
    assert sorted(f for f, _ in exc.value.violations) == ["film.fps", "film.title"]
    assert update(client, finished, None).priority == full.priority  # nothing to change
    with pytest.raises(InvalidArgumentError) as exc:
        update(client, "not-a-name", ["priority"], priority=1)
    assert [f for f, _ in exc.value.violations] == ["film.name"]


def test_priority_out_of_range_is_invalid_and_unset_means_50(connect):
    client = connect("alice")
    handle = client.submit(tiny_board(scenes=1), priority=10)
    try:
        handle.pause()
        for bad in (101, -1):
            with pytest.raises(InvalidArgumentError) as exc:
                handle.set_priority(bad)
            assert [f for f, _ in exc.value.violations] == ["film.priority"]
            assert "[0, 100]" in exc.value.violations[0][1]
        assert handle.get().priority == 10
        assert update(client, handle.name, ["priority"]).priority == 50  # unset: the default
    finally:
        handle.cancel()


def test_bad_frame_ranges_name_the_field(connect, finished):
    film = connect("alice").film(finished)
    cases = {("s9", 0, 1): ["scene_id"], ("s0", 5, 4): ["last_frame"],
             ("s0", 0, 9): ["last_frame"], ("s0", -1, 3): ["first_frame"],
             ("s0", 9, 9): ["first_frame", "last_frame"]}
    for (scene, first, last), fields in cases.items():
        with pytest.raises(InvalidArgumentError) as exc:
            film.rerender(scene, first, last)
        assert [f for f, _ in exc.value.violations] == fields, (scene, first, last)
    assert "frames 0..8 (0-based)" in dict(exc.value.violations)["first_frame"]
    assert convert.state_word(film.get().state) == "SUCCEEDED"  # nothing was started


def test_queued_frames_quota_counts_the_tenants_unfinished_films(connect):
    client = connect("bob")
    big = client.submit(tiny_board(scenes=8, frames=81))  # 648 frames, held by a pause
    big.pause()
    try:
        rest = 6 * 81
        assert rest <= MAX_QUEUED_FRAMES < big.film.frames_total + rest - 81
        with pytest.raises(ResourceExhaustedError, match="frames queued"):
            client.submit(tiny_board(scenes=6, frames=81))  # alone, it would fit
    finally:
        big.cancel()
    fits = client.submit(tiny_board(scenes=6, frames=81))  # the quota freed with the cancel
    fits.cancel()
    with pytest.raises(ResourceExhaustedError, match="quota"):
        client.submit(tiny_board(scenes=13, frames=81))  # 1053 frames: never fits


def test_controls_of_another_tenants_or_a_missing_film(connect, finished):
    theirs = connect("bob").film(finished)
    for control in (theirs.pause, theirs.resume, theirs.retry, lambda: theirs.set_priority(1),
                    lambda: theirs.rerender("s0", 0, 0), lambda: list(theirs.executions())):
        with pytest.raises(PermissionDeniedError):
            control()
    missing = connect("alice").film("films/doesnotexist")
    for control in (missing.pause, lambda: missing.rerender("s0", 0, 0),
                    lambda: list(missing.executions())):
        with pytest.raises(NotFoundError):
            control()
