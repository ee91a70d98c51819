"""The state table: what has been seen, what is done, what failed, what is a known gap.

SQLAlchemy 2 Core on SQLite (default: a file in the output root) or PostgreSQL (``postgresql+psycopg://...``).
The schema carries an explicit version (table ``schema_version``); :func:`open_state` applies the missing
migrations in one transaction, so an old database upgrades itself on first open.

A (mission, day) row has status ``waiting | done | failed | gap``. A day is *ready* when every configured mission
has a granule or is expected absent (:func:`oco_l3.gaps.expected_absent`). Rows become ``done`` only after the
caller has committed the outputs and read them back; every status change is its own transaction. No secret is
ever stored: run parameters are saved only after :func:`_scrub`.

Table ``claims`` keeps two runs on the same outputs from doing the same work at once: a run takes a lease on each
unit of work (a (mission, day) granule, or a global day) before it starts it, renews its leases while it runs
(:func:`held_claims`) and releases each when it is recorded. A killed run's leases lapse after ``lease_s``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from oco_l3.gaps import Gap, expected_absent
from oco_l3.soundings import Mission
from oco_l3.sources import GranuleRef

log = logging.getLogger(__name__)

Status = Literal["waiting", "done", "failed", "gap", "empty"]
#: ``empty``: an ICESat-2 (product, day) processed whose segments were all filtered out (no data, not "not done").
STATUSES: tuple[Status, ...] = ("waiting", "done", "failed", "gap", "empty")
STATE_FILE = "oco-l3-state.db"
SCHEMA_VERSION = 2
#: Default lease of a claim (seconds); a holder renews it every third of that.
CLAIM_LEASE_S = float(os.environ.get("OCO_L3_CLAIM_LEASE_SECONDS", "300"))

metadata = sa.MetaData()

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))

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
def _migrate_v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[granules, day_status, gaps_table, runs])


def _migrate_v2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[claims])


#: version -> the step that brings a database from version-1 to version. Append, never edit.
MIGRATIONS: Mapping[int, Callable[[Connection], None]] = {1: _migrate_v1, 2: _migrate_v2}


def _current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        schema_version.create(conn)
        return 0
    return int(conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0)


#: PostgreSQL advisory lock key that serialises schema creation and migration between processes.
_MIGRATION_LOCK = 0x0C0_13


def _lock_schema(conn: Connection) -> None:
    """Take the database's write lock for this transaction, so that processes opening a new database at once
    create its tables one after another (otherwise the second fails: ``table runs already exists``)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})


def _migrate(engine: Engine) -> None:
    with engine.begin() as conn:
        _lock_schema(conn)
        current = _current_version(conn)
        for version in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](conn)
            conn.execute(sa.delete(schema_version))
            conn.execute(sa.insert(schema_version).values(version=version))
            log.info("State schema migrated to version %d", version)


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
    """Open (and create or upgrade) the state database at a SQLAlchemy URL."""
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        folder.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    _migrate(engine)
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


# --- upserts ---------------------------------------------------------------------------------------------
def _insert(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _upsert(conn: Connection, table: sa.Table, row: Mapping[str, Any], keys: Sequence[str]) -> None:
    stmt = _insert(conn, table).values(**row)
    update = {k: stmt.excluded[k] for k in row if k not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update))


def record_granules(state: State, refs: Iterable[GranuleRef]) -> int:
    """Remember discovered granules (the first sighting wins); the number of new ones."""
    refs = list(refs)
    if not refs:
        return 0
    with state.engine.begin() as conn:
        known = set(conn.execute(sa.select(granules.c.url).where(granules.c.url.in_([r.url for r in refs]))).scalars())
        new = [{"url": r.url, "mission": r.mission, "day": r.day, "name": r.name, "size": r.size,
                "checksum": r.checksum, "first_seen": _now()} for r in {r.url: r for r in refs}.values()
               if r.url not in known]
        if new:
            conn.execute(sa.insert(granules), new)
    return len(new)


def record_gaps(state: State, gaps: Iterable[Gap]) -> None:
    """Replace the known gaps with the given ones."""
    with state.engine.begin() as conn:
        conn.execute(sa.delete(gaps_table))
        rows = [{"mission": g.mission, "start": g.start, "stop": g.stop} for g in set(gaps)]
        if rows:
            conn.execute(sa.insert(gaps_table), rows)


# --- planning --------------------------------------------------------------------------------------------
def granule_key(ref: GranuleRef) -> str:
    """Identity of a granule's content: a new production of the same day gets a new key."""
    text = f"{ref.name}|{ref.size}|{ref.checksum}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class DayPlan:
    """One day: the granules to process, missions expected absent (with the reason) and missions missing."""

    day: dt.date
    granules: tuple[GranuleRef, ...] = ()
    absent: tuple[tuple[Mission, str], ...] = ()
    missing: tuple[Mission, ...] = ()
    skipped: tuple[GranuleRef, ...] = field(default=(), compare=False)

    @property
    def ready(self) -> bool:
        return not self.missing


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def plan_days(refs: Sequence[GranuleRef], missions: Sequence[Mission], gaps: Sequence[Gap],
              start: dt.date, end: dt.date) -> list[DayPlan]:
    """Every day in ``start..end`` as a plan (pure): present granules, expected absences, missing missions."""
    by_day: dict[tuple[dt.date, str], GranuleRef] = {}
    for ref in sorted(refs, key=lambda r: r.name):  # the newest production of a day sorts last and wins
        by_day[(ref.day, ref.mission)] = ref
    plans = []
    for day in _days(start, end):
        present = tuple(by_day[(day, m)] for m in missions if (day, m) in by_day)
        absent = tuple((m, r) for m in missions if (day, m) not in by_day and (r := expected_absent(m, day, gaps)))
        missing = tuple(m for m in missions if (day, m) not in by_day and not expected_absent(m, day, gaps))
        if present or missing:
            plans.append(DayPlan(day, present, absent, missing))
    return plans


def _settled(rows: Mapping[tuple[str, dt.date], Any], ref: GranuleRef) -> bool:
    row = rows.get((ref.mission, ref.day))
    return row is not None and row.status in ("done", "failed") and row.granule_key == granule_key(ref)


def _status_rows_between(conn: Connection, start: dt.date, end: dt.date) -> dict[tuple[str, dt.date], Any]:
    query = sa.select(day_status).where(day_status.c.day.between(start, end))
    return {(r.mission, r.day): r for r in conn.execute(query)}


def _record_plan(conn: Connection, plan: DayPlan, rows: Mapping[tuple[str, dt.date], Any]) -> None:
    for mission, reason in plan.absent:
        _set_status(conn, mission, plan.day, status="gap", last_error=reason)
    if plan.ready:
        return
    reason = "waiting for " + ", ".join(plan.missing)
    for mission in plan.missing:
        _set_status(conn, mission, plan.day, status="waiting", last_error="no granule yet")
    for ref in plan.granules:
        if (ref.mission, ref.day) not in rows or rows[(ref.mission, ref.day)].status == "waiting":
            _set_status(conn, ref.mission, plan.day, status="waiting", granule=ref.name, last_error=reason)


def plan_ready_days(state: State, refs: Sequence[GranuleRef], missions: Sequence[Mission], gaps: Sequence[Gap],
                    start: dt.date, end: dt.date, reprocess: bool = False) -> list[DayPlan]:
    """Ready days in order, each with the granules that still need work, and record waiting/gap rows.

    A (mission, day) already ``done`` or ``failed`` with the same granule is skipped unless ``reprocess``; a new
    production of the granule (other name, size or checksum) is processed again.
    """
    ready = []
    with state.engine.begin() as conn:
        rows = _status_rows_between(conn, start, end)
        for plan in plan_days(refs, missions, gaps, start, end):
            _record_plan(conn, plan, rows)
            if not plan.ready:
                continue
            todo = tuple(r for r in plan.granules if reprocess or not _settled(rows, r))
            if todo:
                skipped = tuple(r for r in plan.granules if r not in todo)
                ready.append(DayPlan(plan.day, todo, plan.absent, (), skipped))
    log.info("Days ready to process %s..%s: %d", start, end, len(ready))
    return ready


# --- status changes --------------------------------------------------------------------------------------
def _set_status(conn: Connection, mission: str, day: dt.date, **values: Any) -> None:
    if "status" in values and values["status"] not in STATUSES:
        raise ValueError(f"unknown status {values['status']!r}")
    row = {"mission": mission, "day": day, "updated_at": _now(), **values}
    exists = conn.execute(sa.select(day_status.c.status).where(
        day_status.c.mission == mission, day_status.c.day == day)).first()
    if exists is None:
        row.setdefault("status", "waiting")
        conn.execute(sa.insert(day_status).values(**row))
    else:
        conn.execute(sa.update(day_status).where(
            day_status.c.mission == mission, day_status.c.day == day).values(**row))


def mark_running(state: State, ref: GranuleRef, run_id: int | None = None) -> None:
    """A granule's (mission, day) starts an attempt: attempts + 1; the status keeps its value until the end."""
    with state.engine.begin() as conn:
        _set_status(conn, ref.mission, ref.day, granule=ref.name, started_at=_now(), run_id=run_id)
        conn.execute(sa.update(day_status).where(day_status.c.mission == ref.mission, day_status.c.day == ref.day)
                     .values(attempts=day_status.c.attempts + 1))


def mark_done(state: State, ref: GranuleRef, *, captures: int, targets: int, outputs: Sequence[str],
              duration_s: float | None = None) -> None:
    """The (mission, day) of ``ref`` is done: call only after its outputs were committed and read back."""
    with state.engine.begin() as conn:
        _set_status(conn, ref.mission, ref.day, status="done", granule=ref.name, granule_key=granule_key(ref),
                    captures=captures, targets=targets, outputs=json.dumps(sorted(set(outputs))),
                    duration_s=duration_s, last_error=None)


def mark_failed(state: State, ref: GranuleRef, error: str, duration_s: float | None = None) -> None:
    """The (mission, day) of ``ref`` failed with a one-line reason (kept to 500 characters)."""
    with state.engine.begin() as conn:
        _set_status(conn, ref.mission, ref.day, status="failed", granule=ref.name, granule_key=granule_key(ref),
                    duration_s=duration_s, last_error=error.splitlines()[0][:500] if error else "failed")


def mark_waiting(state: State, ref: GranuleRef, error: str) -> None:
    """A transient failure: the (mission, day) stays ``waiting`` (planned again next run) with the reason."""
    with state.engine.begin() as conn:
        _set_status(conn, ref.mission, ref.day, status="waiting", granule=ref.name,
                    last_error=error.splitlines()[0][:500] if error else "retry later")


@dataclass(frozen=True)
class GranuleOutcome:
    """How one granule of a run ended: ``done`` (outputs committed and read back), ``failed`` or ``waiting``."""

    ref: GranuleRef
    status: Status
    error: str | None = None
    captures: int = 0
    targets: int = 0
    outputs: tuple[str, ...] = ()
    duration_s: float | None = None


def record_outcomes(state: State, outcomes: Iterable[GranuleOutcome]) -> None:
    """Record each outcome with :func:`mark_done` / :func:`mark_failed` / :func:`mark_waiting`."""
    for o in outcomes:
        if o.status == "done":
            mark_done(state, o.ref, captures=o.captures, targets=o.targets, outputs=o.outputs,
                      duration_s=o.duration_s)
        elif o.status == "failed":
            mark_failed(state, o.ref, o.error or "failed", o.duration_s)
        else:
            mark_waiting(state, o.ref, o.error or "retry later")


def mark_gap(state: State, mission: Mission, day: dt.date, reason: str) -> None:
    with state.engine.begin() as conn:
        _set_status(conn, mission, day, status="gap", last_error=reason[:500])


# --- runs ------------------------------------------------------------------------------------------------
_SECRET_WORDS = ("password", "secret", "token", "key", "auth", "credential")


def _scrub(value: Any) -> Any:
    """Parameters without anything that looks like a secret."""
    if isinstance(value, Mapping):
        return {k: ("***" if any(w in str(k).lower() for w in _SECRET_WORDS) else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def start_run(state: State, kind: str, parameters: Mapping[str, Any] | None = None) -> int:
    with state.engine.begin() as conn:
        result = conn.execute(sa.insert(runs).values(
            kind=kind, parameters=json.dumps(_scrub(dict(parameters or {}))), started_at=_now()))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def finish_run(state: State, run_id: int, summary: Mapping[str, Any]) -> None:
    with state.engine.begin() as conn:
        conn.execute(sa.update(runs).where(runs.c.id == run_id).values(
            finished_at=_now(), summary=json.dumps(_scrub(dict(summary)))))


# --- reading ---------------------------------------------------------------------------------------------
def last_done_day(state: State, missions: Sequence[Mission] | None = None) -> dt.date | None:
    """The last day processed to the end (``done``, or ``empty`` for a product day whose segments were all
    filtered out)."""
    query = sa.select(sa.func.max(day_status.c.day)).where(day_status.c.status.in_(("done", "empty")))
    if missions:
        query = query.where(day_status.c.mission.in_(list(missions)))
    with state.engine.connect() as conn:
        return conn.execute(query).scalar()


def first_waiting_day(state: State, missions: Sequence[Mission] | None = None) -> dt.date | None:
    query = sa.select(sa.func.min(day_status.c.day)).where(day_status.c.status == "waiting")
    if missions:
        query = query.where(day_status.c.mission.in_(list(missions)))
    with state.engine.connect() as conn:
        return conn.execute(query).scalar()


def _row_dict(row: Any) -> dict[str, Any]:
    return {
        "mission": row.mission, "day": row.day.isoformat(), "status": row.status, "granule": row.granule,
        "captures": row.captures, "targets": row.targets, "outputs": json.loads(row.outputs or "[]"),
        "attempts": row.attempts, "duration_s": row.duration_s, "last_error": row.last_error,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


def status_rows(state: State, start: dt.date | None = None, end: dt.date | None = None) -> list[dict[str, Any]]:
    """The (mission, day) rows as plain dicts, ordered by day then mission."""
    query = sa.select(day_status).order_by(day_status.c.day, day_status.c.mission)
    if start is not None:
        query = query.where(day_status.c.day >= start)
    if end is not None:
        query = query.where(day_status.c.day <= end)
    with state.engine.connect() as conn:
        return [_row_dict(r) for r in conn.execute(query)]


def format_status(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table of status rows (for ``oco-l3 status``)."""
    head = ("day", "mission", "status", "captures", "targets", "attempts", "note")
    lines = [(r["day"], r["mission"], r["status"], str(r["captures"]), str(r["targets"]), str(r["attempts"]),
              r["last_error"] or "") for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=False)][:-1]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"  # the note, whole, last
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    footer = ", ".join(f"{n} {s}" for s, n in counts.items())
    return "\n".join([fmt.format(*head), *(fmt.format(*line) for line in lines), footer])


def status_command(config: Any, as_json: bool = False) -> str:
    """The output of ``oco-l3 status``: the state table as text or JSON (no Prefect needed)."""
    state = open_state(default_state_url(config))
    try:
        rows = status_rows(state)
    finally:
        state.close()
    return json.dumps(rows, indent=2) if as_json else format_status(rows)


def daily_window(state: State, missions: Sequence[Mission], today: dt.date,
                 lookback_days: int = 30) -> tuple[dt.date, dt.date]:
    """The ICESat-2 daily window: from the first waiting day (or the day after the last done day) to today.

    An empty state looks back ``lookback_days``; the window never starts more than a year before ``today``.
    """
    waiting, done = first_waiting_day(state, missions), last_done_day(state, missions)
    candidates = [d for d in (waiting, done + dt.timedelta(days=1) if done else None) if d is not None]
    start = min(candidates) if candidates else today - dt.timedelta(days=lookback_days)
    return max(start, today - dt.timedelta(days=366)), today


@dataclass(frozen=True)
class DailyDays:
    """The days an OCO daily run looks at: ``retry`` (waiting days before ``new``, oldest first, whatever their
    age) and ``new`` (the day after the last done day, or ``today - lookback_days`` for an empty state, to today)."""

    retry: tuple[dt.date, ...]
    new: tuple[dt.date, dt.date]

    def windows(self) -> list[tuple[dt.date, dt.date]]:
        """Contiguous (start, end) ranges covering every day, in order."""
        days = sorted(set(self.retry))
        out: list[tuple[dt.date, dt.date]] = []
        for day in days:
            if out and day == out[-1][1] + dt.timedelta(days=1):
                out[-1] = (out[-1][0], day)
            else:
                out.append((day, day))
        return out + [self.new]


def waiting_days(state: State, missions: Sequence[Mission], before: dt.date | None = None,
                 limit: int | None = None) -> list[dt.date]:
    """Days with a ``waiting`` (mission, day) row, oldest first (``before``: only earlier days)."""
    query = (sa.select(day_status.c.day).where(day_status.c.status == "waiting",
                                               day_status.c.mission.in_(list(missions)))
             .group_by(day_status.c.day).order_by(day_status.c.day))
    if before is not None:
        query = query.where(day_status.c.day < before)
    if limit is not None:
        query = query.limit(limit)
    with state.engine.connect() as conn:
        return list(conn.execute(query).scalars())


def daily_days(state: State, missions: Sequence[Mission], today: dt.date, lookback_days: int = 30,
               max_retry_days: int = 60) -> DailyDays:
    """What an OCO daily run covers: every waiting day older than the new days (at most ``max_retry_days``,
    oldest first) and the new days since the last done day."""
    done = last_done_day(state, missions)
    start = done + dt.timedelta(days=1) if done else today - dt.timedelta(days=lookback_days)
    start = min(start, today)
    return DailyDays(tuple(waiting_days(state, missions, before=start, limit=max_retry_days)), (start, today))


def failed_rows(state: State, missions: Sequence[str], start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    """The ``failed`` (mission, day) rows in ``start..end`` (what a run skips unless reprocessing)."""
    query = (sa.select(day_status).where(day_status.c.status == "failed", day_status.c.day.between(start, end),
                                         day_status.c.mission.in_(list(missions)))
             .order_by(day_status.c.day, day_status.c.mission))
    with state.engine.connect() as conn:
        return [_row_dict(r) for r in conn.execute(query)]


# --- claims ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimHolder:
    key: str
    run_id: int | None
    expires_at: dt.datetime


def claim(state: State, keys: Sequence[str], owner: str, run_id: int | None = None,
          lease_s: float = CLAIM_LEASE_S) -> dict[str, ClaimHolder]:
    """Take a lease on each key that no other owner holds (or whose lease ended); one transaction.

    Returns the keys held by someone else, with their holder; every other key is now ``owner``'s.
    """
    if not keys:
        return {}
    now = _now()
    until = now + dt.timedelta(seconds=lease_s)
    busy: dict[str, ClaimHolder] = {}
    with state.engine.begin() as conn:
        for key in keys:
            stmt = _insert(conn, claims).values(key=key, owner=owner, run_id=run_id, expires_at=until)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["key"],
                set_={"owner": stmt.excluded.owner, "run_id": stmt.excluded.run_id,
                      "expires_at": stmt.excluded.expires_at},
                where=sa.or_(claims.c.expires_at < now, claims.c.owner == owner)))
        for i in range(0, len(keys), 500):
            rows = conn.execute(sa.select(claims).where(claims.c.key.in_(list(keys[i:i + 500]))))
            busy.update({r.key: ClaimHolder(r.key, r.run_id, r.expires_at) for r in rows if r.owner != owner})
    return busy


def renew_claims(state: State, owner: str, lease_s: float = CLAIM_LEASE_S) -> int:
    """Extend every lease ``owner`` holds; the number renewed."""
    with state.engine.begin() as conn:
        result = conn.execute(sa.update(claims).where(claims.c.owner == owner)
                              .values(expires_at=_now() + dt.timedelta(seconds=lease_s)))
        return int(result.rowcount or 0)


def release_claims(state: State, owner: str, keys: Sequence[str] | None = None) -> None:
    """Drop ``owner``'s leases (only ``keys`` when given)."""
    query = sa.delete(claims).where(claims.c.owner == owner)
    if keys is not None:
        query = query.where(claims.c.key.in_(list(keys)))
    with state.engine.begin() as conn:
        conn.execute(query)


@contextmanager
def held_claims(state: State, owner: str, lease_s: float = CLAIM_LEASE_S) -> Iterator[None]:
    """Renew ``owner``'s leases every third of ``lease_s`` while the block runs; release them all at the end."""
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(lease_s / 3):
            try:
                renew_claims(state, owner, lease_s)
            except sa.exc.SQLAlchemyError as exc:  # the next beat tries again; a lapsed lease is only lost work
                log.warning("claim renewal failed: %s", type(exc).__name__)

    beat = threading.Thread(target=heartbeat, name="oco-l3-claims", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join(timeout=10)
        release_claims(state, owner)


# --- product results (ICESat-2) --------------------------------------------------------------------------


def _result_days(result: Any) -> tuple[dt.date, ...]:
    """The UTC days of a product result; for a failure without days, the start day in the granule's name."""
    if result.days:
        return tuple(sorted({dt.date.fromisoformat(d) for d in result.days}))
    if result.ok:
        return ()
    from oco_l3.icesat2.discovery import granule_day

    day = granule_day(str(result.input))
    return (day,) if day is not None else ()


def _one_line(text: str | None, default: str) -> str:
    return text.splitlines()[0][:500] if text and text.strip() else default


def _segments_on(result: Any, day: dt.date) -> int:
    """The segments a result kept on ``day`` (its ``segments_on`` split when it has one, else all of them)."""
    on = getattr(result, "segments_on", None)
    return int(on(day.isoformat())) if callable(on) else int(result.n_segments)


def _day_values(results: Sequence[Any], day: dt.date) -> dict[str, Any]:
    """The day_status values of one (product, day) from the results that touched it."""
    ok = [r for r in results if r.ok]
    bad = [r for r in results if not r.ok]
    names = sorted(Path(str(r.input)).name for r in results)
    label = names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1})"
    captures = sum(_segments_on(r, day) for r in ok)
    warnings = [w for r in ok for w in getattr(r, "warnings", ())]
    note = f"warning: {warnings[0]}" + (f" (+{len(warnings) - 1} more)" if len(warnings) > 1 else "") \
        if warnings else None
    values: dict[str, Any] = {
        "status": "failed" if bad else ("done" if captures else "empty"), "granule": label[:255],
        "granule_key": hashlib.sha256("|".join(names).encode()).hexdigest()[:32],
        "captures": captures, "targets": 0,
        "outputs": json.dumps(sorted({str(o) for r in ok for o in r.outputs})),
        "last_error": _one_line(f"{Path(str(bad[0].input)).name}: {bad[0].message}", "failed") if bad else
        (_one_line(note, "") if note else None),
    }
    return values


def record_product_results(state: State, product: str, results: Iterable[Any],
                           parameters: Mapping[str, Any] | None = None) -> None:
    """Record the per-input results of a product run (ICESat-2 ``Icesat2Result``) per (product, day).

    ``product`` (``icesat2-seaice``, ...) goes in the ``mission`` column. A day is ``done`` when every granule
    that touched it is ok (``captures`` = segments binned on that day, ``outputs`` = their outputs), ``empty`` when
    they are ok but binned no segment that day (all filtered out: an empty slice was written), and ``failed``
    otherwise (``last_error`` = the first failure, one line); a done or empty day keeps the first warning of its
    inputs in ``last_error`` (``warning: ...``); ``attempts`` goes up by one. A failed input whose day is
    unknown (no days, no date in its name) is kept in the run's summary only. One transaction.
    """
    results = list(results)
    by_day: dict[dt.date, list[Any]] = {}
    unplaced: list[Any] = []
    for r in results:
        days = _result_days(r)
        for day in days:
            by_day.setdefault(day, []).append(r)
        if not days:
            unplaced.append(r)
    summary = {"product": product, "inputs": len(results), "ok": sum(bool(r.ok) for r in results),
               "failed": sum(not r.ok for r in results), "days": len(by_day),
               "unplaced": [{"input": Path(str(r.input)).name, "ok": bool(r.ok), "error": None if r.ok else
                             _one_line(r.message, "failed")} for r in unplaced]}
    with state.engine.begin() as conn:
        run = conn.execute(sa.insert(runs).values(
            kind=product[:32], parameters=json.dumps(_scrub(dict(parameters or {}))), started_at=_now(),
            finished_at=_now(), summary=json.dumps(_scrub(summary))))
        run_id = run.inserted_primary_key[0] if run.inserted_primary_key else None
        for day, touching in sorted(by_day.items()):
            _set_status(conn, product, day, run_id=run_id, **_day_values(touching, day))
            conn.execute(sa.update(day_status).where(day_status.c.mission == product, day_status.c.day == day)
                         .values(attempts=day_status.c.attempts + 1))
    log.info("State: %s recorded %d days (%d inputs, %d failed, %d without a day)", product, len(by_day),
             len(results), summary["failed"], len(unplaced))


def record_product_run(config: Any, results: Iterable[Any]) -> None:
    """Open the config's state database (:func:`default_state_url`), record the results, close it."""
    state = open_state(default_state_url(config))
    try:
        record_product_results(state, str(config.product), results)
    finally:
        state.close()
