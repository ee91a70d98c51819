"""The state database's tables, opening it, and bringing its schema up to date with Alembic."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("oco_l3.state")

Status = Literal["waiting", "done", "failed", "gap", "empty"]
#: ``empty``: an ICESat-2 (product, day) processed whose segments were all filtered out (no data, not "not done").
STATUSES: tuple[Status, ...] = ("waiting", "done", "failed", "gap", "empty")
STATE_FILE = "oco-l3-state.db"
#: The Alembic revision of the schema this code writes (the last file in ``migrations/versions``).
SCHEMA_REVISION = "0003"
#: Databases made before Alembic carried ``schema_version`` N: the revision that schema is.
LEGACY_REVISIONS = {1: "0001", 2: "0002"}
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

metadata = sa.MetaData()

granules = sa.Table(
    "granules", metadata,
    sa.Column("url", sa.String(1024), primary_key=True),
    sa.Column("mission", sa.String(16), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger),
    sa.Column("checksum", sa.String(160)),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_granules_mission_day", "mission", "day"),
)

day_status = sa.Table(
    "day_status", metadata,
    sa.Column("mission", sa.String(16), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("granule", sa.String(255)),
    sa.Column("granule_key", sa.String(64)),
    sa.Column("captures", sa.Integer, nullable=False, default=0),
    sa.Column("targets", sa.Integer, nullable=False, default=0),
    sa.Column("outputs", sa.Text, nullable=False, default="[]"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("duration_s", sa.Float),
    sa.Column("last_error", sa.String(500)),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.Integer),
)

gaps_table = sa.Table(
    "gaps", metadata,
    sa.Column("mission", sa.String(16), primary_key=True),
    sa.Column("start", sa.Date, primary_key=True),
    sa.Column("stop", sa.Date, nullable=False),
)

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("parameters", sa.Text, nullable=False, default="{}"),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("summary", sa.Text),
)


claims = sa.Table(
    "claims", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("run_id", sa.Integer),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- opening and migrations ------------------------------------------------------------------------------
def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def _legacy_version(conn: Connection) -> int:
    """The ``schema_version`` of a database made before Alembic (0: none)."""
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.text("SELECT max(version) FROM schema_version")).scalar() or 0)


#: PostgreSQL advisory lock key that serialises schema creation and migration between processes.
_MIGRATION_LOCK = 0x0C0_13


def _lock_schema(conn: Connection) -> None:
    """Take the database's write lock for this transaction, so that processes opening a new database at once
    create its tables one after another (otherwise the second fails: ``table runs already exists``)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})


def upgrade_schema(engine: Engine) -> None:
    """Bring the database to :data:`SCHEMA_REVISION` with the migrations shipped in ``migrations/versions``, in
    one transaction that holds the schema lock (:func:`_lock_schema`) from before Alembic looks at the database,
    so processes opening a new database at once migrate it one after another (Alembic's own ``alembic_version``
    table is created inside the lock too). A database made before Alembic (hand-written ``schema_version`` 1 or
    2) is first stamped with the revision its schema is, then upgraded like any other."""
    from alembic import command

    with engine.begin() as conn:
        _lock_schema(conn)
        cfg = _alembic_config(conn)
        if not sa.inspect(conn).has_table("alembic_version"):
            legacy = _legacy_version(conn)
            if legacy:
                command.stamp(cfg, LEGACY_REVISIONS[legacy])
                log.info("State schema: version %d database stamped as revision %s", legacy, LEGACY_REVISIONS[legacy])
        command.upgrade(cfg, "head")


def schema_revision(state: State) -> str | None:
    """The Alembic revision the database is at."""
    from alembic.runtime.migration import MigrationContext

    with state.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@dataclass
class State:
    """An open state database."""

    engine: Engine
    url: str

    def close(self) -> None:
        self.engine.dispose()


def _redact_url(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def open_state(url: str) -> State:
    """Open (and create or upgrade: :func:`upgrade_schema`) the state database at a SQLAlchemy URL."""
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        folder.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    upgrade_schema(engine)
    log.info("State database: %s", _redact_url(url))
    return State(engine, url)


def default_state_url(config: Any) -> str:
    """``state.url`` of a run config, else a SQLite file in the local output root (a user cache file for S3)."""
    state = getattr(config, "state", None)
    if state is not None and state.url:
        return str(state.url)
    local = config.output.local
    if local:
        return f"sqlite:///{Path(local).resolve() / STATE_FILE}"
    slug = hashlib.sha256(config.output.s3.url.encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "oco-l3"
    return f"sqlite:///{cache / f'state-{slug}.db'}"
