"""The job store on SQLite and on a real PostgreSQL: migrations, films, idempotency keys,
checkpoints, executions, events; and the checksummed checkpoint store."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from farm.spec.serde import film_from_dict, film_to_dict
from farm.store.artifacts import ArtifactStore, CheckpointError
from farm.store.jobs import Execution, JobStore
from farm.store.models import FilmRow
from tests.helpers import make_film, scene


def row(film_id: str, tenant: str = "a", request_id: str | None = None, state: str = "QUEUED"):
    film = make_film([scene("s1", 9), scene("s2", 17, continuity="windows", window=3, overlap=1)])
    return FilmRow(id=film_id, tenant=tenant, request_id=request_id, title=film.title,
                   model="tiny", state=state, reason="", priority=50, create_time=1.0,
                   update_time=1.0, first_frame_time=None, film=film_to_dict(film),
                   frames_written=0)


def test_migrations_are_idempotent_and_films_round_trip(store_url):
    store = JobStore(store_url).migrate()
    store.migrate()  # a second start finds the schema current
    store.add_film(row("f1", request_id="r1"))
    store.add_film(row("f2", state="SUCCEEDED"))
    back = store.film("f1")
    assert film_from_dict(back.film) == film_from_dict(row("f1").film)
    assert [r.id for r in store.films(unfinished_only=True)] == ["f1"]
    store.update_film("f1", state="RUNNING", frames_written=5)
    assert (store.film("f1").state, store.film("f1").frames_written) == ("RUNNING", 5)
    store.close()


def test_request_ids_are_unique_per_tenant(store_url):
    store = JobStore(store_url).migrate()
    store.add_film(row("f1", "a", "same"))
    store.add_film(row("f2", "b", "same"))  # another tenant may reuse it
    store.add_film(row("f3", "a", None))
    store.add_film(row("f4", "a", None))  # no request id: never collides
    with pytest.raises(IntegrityError):
        store.add_film(row("f5", "a", "same"))
    assert store.film_for_request("a", "same") == "f1"
    assert store.film_for_request("a", "other") is None
    store.close()


def test_checkpoints_executions_events(store_url):
    store = JobStore(store_url).migrate()
    store.add_film(row("f1"))
    store.put_checkpoint("f1", "s1/0", 0, "ckpt:a#1", 10, 2.0)
    store.put_checkpoint("f1", "s1/0", 0, "ckpt:a#2", 11, 3.0)  # the newest wins
    store.put_checkpoint("f1", "s2/1", 1, "ckpt:b#3", 12, 3.0)
    assert store.checkpoints("f1") == {("s1/0", 0): "ckpt:a#2", ("s2/1", 1): "ckpt:b#3"}
    store.drop_checkpoints("f1", ["s1/0"])
    assert list(store.checkpoints("f1")) == [("s2/1", 1)]
    e = Execution("phase", "s1/u0", 0, "high", ("w1", "w2"), True, "", 0.5, 4.0)
    store.add_execution("f1", e)
    assert store.executions("f1") == [e]
    store.add_event("f1", 1, {"seq": 1, "kind": "state"})
    store.add_event("f1", 2, {"seq": 2, "kind": "phase"})
    assert [x["seq"] for x in store.events("f1")] == [1, 2]
    store.close()


def test_checkpoint_keys_carry_their_checksum(tmp_path):
    art = ArtifactStore(str(tmp_path / "artifacts"))
    ck = art.save_checkpoint("f1", "s1/0", 1, b"handoff bytes")
    assert ck.key.startswith("ckpt:films/f1/handoffs/s1/0/p1.safetensors#")
    assert art.load_checkpoint(ck.key) == b"handoff bytes"
    path = tmp_path / "artifacts" / "films/f1/handoffs/s1/0/p1.safetensors"
    path.write_bytes(b"handoff bytez")  # corrupted on disk
    with pytest.raises(CheckpointError, match="checksum"):
        art.load_checkpoint(ck.key)
    path.unlink()
    with pytest.raises(CheckpointError, match="unreadable"):
        art.load_checkpoint(ck.key)
    art.remove_film_handoffs("f1")
    assert not (tmp_path / "artifacts" / "films/f1/handoffs").exists()
