"""Planning from the state table: which days are ready (every configured mission has a granule or is expected
absent), which granules still need work, and what a daily run covers."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from oco_l3.gaps import Gap, expected_absent
from oco_l3.soundings import Mission
from oco_l3.sources import GranuleRef
from oco_l3.state._rows import _set_status, granule_key
from oco_l3.state._schema import State, day_status

log = logging.getLogger("oco_l3.state")


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


@dataclass(frozen=True)
class DailyDays:
    """The days a daily run looks at: ``retry`` (waiting days before ``new``, oldest first, whatever their age) and
    ``new`` (the day after the last done day, or ``today - lookback_days`` for an empty state, to today minus the
    latency; ``None`` when there is no new day yet)."""

    retry: tuple[dt.date, ...]
    new: tuple[dt.date, dt.date] | None

    def windows(self) -> list[tuple[dt.date, dt.date]]:
        """Contiguous (start, end) ranges covering every day, in order."""
        days = sorted(set(self.retry))
        out: list[tuple[dt.date, dt.date]] = []
        for day in days:
            if out and day == out[-1][1] + dt.timedelta(days=1):
                out[-1] = (out[-1][0], day)
            else:
                out.append((day, day))
        return out + ([self.new] if self.new is not None else [])


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
               max_retry_days: int = 60, latency_days: int = 0) -> DailyDays:
    """What a daily run covers (the OCO daily and the ICESat-2 daily): every waiting day older than the new days
    (at most ``max_retry_days``, oldest first, whatever their age) and the new days since the last done day, up to
    ``today - latency_days``. Without a latency today is always searched again (its granules may still arrive);
    with one, a product whose last done day is the latest day it may run has no new days."""
    end = today - dt.timedelta(days=latency_days)
    done = last_done_day(state, missions)
    start = done + dt.timedelta(days=1) if done else today - dt.timedelta(days=lookback_days)
    if not latency_days:
        start = min(start, today)
    new = (start, end) if start <= end else None
    before = start if new is not None else end + dt.timedelta(days=1)
    return DailyDays(tuple(waiting_days(state, missions, before=before, limit=max_retry_days)), new)
