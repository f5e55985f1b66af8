"""The first schema: films, checkpoints, executions, events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "films",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False, index=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("create_time", sa.Float, nullable=False),
        sa.Column("update_time", sa.Float, nullable=False),
        sa.Column("first_frame_time", sa.Float, nullable=True),
        sa.Column("film", sa.JSON, nullable=False),
        sa.Column("frames_written", sa.Integer, nullable=False),
        sa.UniqueConstraint("tenant", "request_id", name="uq_films_tenant_request"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("film_id", sa.String(64), sa.ForeignKey("films.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("segment_id", sa.String(128), primary_key=True),
        sa.Column("phase_index", sa.Integer, primary_key=True),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("nbytes", sa.Integer, nullable=False),
        sa.Column("create_time", sa.Float, nullable=False),
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("film_id", sa.String(64), sa.ForeignKey("films.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("unit_id", sa.String(128), nullable=False),
        sa.Column("phase_index", sa.Integer, nullable=False),
        sa.Column("expert", sa.String(32), nullable=False),
        sa.Column("worker_ids", sa.Text, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("time", sa.Float, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("film_id", sa.String(64), sa.ForeignKey("films.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("event", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for table in ("events", "executions", "checkpoints", "films"):
        op.drop_table(table)
