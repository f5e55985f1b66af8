"""The job store: films, their checkpoints, executions and events, in SQL.

    JobStore("sqlite:///.reelfarm/reelfarm.db")      the embedded default
    JobStore("postgresql+psycopg://user@host/db")    a cluster

`migrate()` brings the schema to the newest Alembic revision (run at every start; a
no-op when current). Each method is one short transaction; the director calls them from
its engine thread and API threads (SQLAlchemy's pool gives each its connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, delete, event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from farm.store.models import CheckpointRow, EventRow, ExecutionRow, FilmRow

UNFINISHED = ("QUEUED", "RUNNING", "PAUSED")


@dataclass(frozen=True, slots=True)
class Execution:
    kind: str
    unit_id: str
    phase_index: int
    expert: str
    worker_ids: tuple[str, ...]
    ok: bool
    message: str
    duration: float
    time: float


class JobStore:
    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def migrate(self) -> JobStore:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return self

    def close(self) -> None:
        self.engine.dispose()

    # ---- films ----------------------------------------------------------------------------

    def add_film(self, row: FilmRow) -> None:
        with Session(self.engine) as s, s.begin():
            s.add(row)

    def film(self, film_id: str) -> FilmRow | None:
        with Session(self.engine, expire_on_commit=False) as s:
            return s.get(FilmRow, film_id)

    def films(self, unfinished_only: bool = False) -> list[FilmRow]:
        q = select(FilmRow).order_by(FilmRow.create_time)
        if unfinished_only:
            q = q.where(FilmRow.state.in_(UNFINISHED))
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(q))

    def film_for_request(self, tenant: str, request_id: str) -> str | None:
        q = select(FilmRow.id).where(FilmRow.tenant == tenant, FilmRow.request_id == request_id)
        with Session(self.engine) as s:
            return s.scalars(q).first()

    def update_film(self, film_id: str, **values: object) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(update(FilmRow).where(FilmRow.id == film_id).values(**values))

    # ---- checkpoints --------------------------------------------------------------------

    def put_checkpoint(self, film_id: str, segment_id: str, phase_index: int, key: str,
                       nbytes: int, time: float) -> None:
        with Session(self.engine) as s, s.begin():
            s.merge(CheckpointRow(film_id=film_id, segment_id=segment_id,
                                  phase_index=phase_index, key=key, nbytes=nbytes,
                                  create_time=time))

    def checkpoints(self, film_id: str) -> dict[tuple[str, int], str]:
        """(segment id, phase index) -> checkpoint key."""
        q = select(CheckpointRow).where(CheckpointRow.film_id == film_id)
        with Session(self.engine) as s:
            return {(r.segment_id, r.phase_index): r.key for r in s.scalars(q)}

    def drop_checkpoints(self, film_id: str, segment_ids: list[str] | None = None) -> None:
        q = delete(CheckpointRow).where(CheckpointRow.film_id == film_id)
        if segment_ids is not None:
            q = q.where(CheckpointRow.segment_id.in_(segment_ids))
        with Session(self.engine) as s, s.begin():
            s.execute(q)

    def record_step(self, executions: list[tuple[str, Execution]],
                    checkpoints: list[tuple[str, str, int, str, int, float]]) -> None:
        """A step's finished tasks and the checkpoints they wrote, in ONE transaction: a
        phase is in the render log exactly when its output is resumable."""
        if not executions and not checkpoints:
            return
        with Session(self.engine) as s, s.begin():
            for film_id, segment_id, phase, key, nbytes, time in checkpoints:
                s.merge(CheckpointRow(film_id=film_id, segment_id=segment_id, phase_index=phase,
                                      key=key, nbytes=nbytes, create_time=time))
            for film_id, e in executions:
                s.add(_execution_row(film_id, e))

    # ---- executions and events ------------------------------------------------------------

    def add_execution(self, film_id: str, e: Execution) -> None:
        with Session(self.engine) as s, s.begin():
            s.add(_execution_row(film_id, e))

    def executions(self, film_id: str) -> list[Execution]:
        q = select(ExecutionRow).where(ExecutionRow.film_id == film_id).order_by(ExecutionRow.id)
        with Session(self.engine) as s:
            return [Execution(r.kind, r.unit_id, r.phase_index, r.expert,
                              tuple(w for w in r.worker_ids.split(",") if w), r.ok, r.message,
                              r.duration, r.time) for r in s.scalars(q)]

    def add_event(self, film_id: str, seq: int, event_json: dict) -> None:
        with Session(self.engine) as s, s.begin():
            s.add(EventRow(film_id=film_id, seq=seq, event=event_json))

    def events(self, film_id: str) -> list[dict]:
        q = select(EventRow).where(EventRow.film_id == film_id).order_by(EventRow.seq)
        with Session(self.engine) as s:
            return [r.event for r in s.scalars(q)]


def _execution_row(film_id: str, e: Execution) -> ExecutionRow:
    return ExecutionRow(film_id=film_id, kind=e.kind, unit_id=e.unit_id, phase_index=e.phase_index,
                        expert=e.expert, worker_ids=",".join(e.worker_ids), ok=e.ok,
                        message=e.message, duration=e.duration, time=e.time)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL: API readers do not block the engine thread's writes; foreign keys: cascades.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
