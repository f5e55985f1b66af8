"""Tables of the job store (SQLAlchemy 2 declarative). Schema changes go through Alembic
migrations in farm/store/migrations; never edit a released migration."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class FilmRow(Base):
    __tablename__ = "films"
    __table_args__ = (UniqueConstraint("tenant", "request_id", name="uq_films_tenant_request"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    # NULL when the client sent none (NULLs never collide in the unique constraint).
    request_id: Mapped[str | None] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[int] = mapped_column(Integer)
    create_time: Mapped[float] = mapped_column(Float)
    update_time: Mapped[float] = mapped_column(Float)
    first_frame_time: Mapped[float | None] = mapped_column(Float)
    # The resolved film (farm.spec.serde.film_to_dict).
    film: Mapped[dict] = mapped_column(JSON)
    # Frames archived, contiguous from the film's first.
    frames_written: Mapped[int] = mapped_column(Integer, default=0)


class CheckpointRow(Base):
    """The latest checkpoint of each (segment, phase): a key carrying path and sha256."""

    __tablename__ = "checkpoints"

    film_id: Mapped[str] = mapped_column(ForeignKey("films.id", ondelete="CASCADE"),
                                         primary_key=True)
    segment_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    phase_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(Text)
    nbytes: Mapped[int] = mapped_column(Integer)
    create_time: Mapped[float] = mapped_column(Float)


class ExecutionRow(Base):
    """One finished task (ok or not): the render log, and proof of what ran twice."""

    __tablename__ = "executions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    film_id: Mapped[str] = mapped_column(ForeignKey("films.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[str] = mapped_column(String(128))
    phase_index: Mapped[int] = mapped_column(Integer)
    expert: Mapped[str] = mapped_column(String(32), default="")
    worker_ids: Mapped[str] = mapped_column(Text, default="")
    ok: Mapped[bool] = mapped_column(Boolean)
    message: Mapped[str] = mapped_column(Text, default="")
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    time: Mapped[float] = mapped_column(Float)


class EventRow(Base):
    __tablename__ = "events"

    film_id: Mapped[str] = mapped_column(ForeignKey("films.id", ondelete="CASCADE"),
                                         primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    # farm.director.records.FilmEvent as JSON
    event: Mapped[dict] = mapped_column(JSON)
