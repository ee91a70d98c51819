"""Writing the state table: granules seen, gaps, status changes of a (mission, day), runs. Each change is its own
transaction; nothing secret is stored (run parameters are scrubbed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from oco_l3.gaps import Gap
from oco_l3.sources import GranuleRef
from oco_l3.state._schema import STATUSES, State, Status, _now, day_status, gaps_table, granules, runs


def granule_key(ref: GranuleRef) -> str:
    """Identity of a granule's content: a new production of the same day gets a new key."""
    text = f"{ref.name}|{ref.size}|{ref.checksum}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


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


def mark_gap(state: State, mission: str, day: dt.date, reason: str) -> None:
    with state.engine.begin() as conn:
        _set_status(conn, mission, day, status="gap", last_error=reason[:500])


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
