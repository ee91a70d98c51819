"""The first schema: granules seen, (mission, day) status, known gaps, runs (the hand-written version 1).

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "granules",
        sa.Column("url", sa.String(1024), primary_key=True),
        sa.Column("mission", sa.String(16), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger),
        sa.Column("checksum", sa.String(160)),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_granules_mission_day", "granules", ["mission", "day"])
    op.create_table(
        "day_status",
        sa.Column("mission", sa.String(16), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("granule", sa.String(255)),
        sa.Column("granule_key", sa.String(64)),
        sa.Column("captures", sa.Integer, nullable=False),
        sa.Column("targets", sa.Integer, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("duration_s", sa.Float),
        sa.Column("last_error", sa.String(500)),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Integer),
    )
    op.create_table(
        "gaps",
        sa.Column("mission", sa.String(16), primary_key=True),
        sa.Column("start", sa.Date, primary_key=True),
        sa.Column("stop", sa.Date, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("parameters", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("summary", sa.Text),
    )


def downgrade() -> None:
    for table in ("runs", "gaps", "day_status", "granules"):
        op.drop_table(table)
