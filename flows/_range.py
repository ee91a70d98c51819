"""The steps of the OCO range flows (backfill, daily, process-files): plan the days, claim the work, fan it out
as ONE task per granule (one per day for the global product) over the whole range, record each (mission, day) as
its task finishes, and report.

Gridded slices never come back here: each task commits its captures to the stores on the output filesystem or
object store (which every worker sees; a store's lock makes it single-writer) and returns a small result.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prefect.futures import PrefectFuture, as_completed

from flows._report import Progress
from flows._settle import outcome_of
from oco_l3 import state as st
from oco_l3.allocator import release_memory
from oco_l3.config import OCO_GLOBAL, product_of
from oco_l3.errors import ConfigInvalid, classify
from oco_l3.gaps import Gap, load_gaps
from oco_l3.pipeline import DayBatch, GranuleInput, GranuleResult, granule_failure, granule_from_ref
from oco_l3.sources import GranuleRef, missions_of
from tasks.config import load_run_config
from tasks.discover import search_granules
from tasks.global_day import process_global_day
from tasks.granule import process_granule
from tasks.state import open_state, plan_ready_days, record_gaps, record_granules, start_run

log = logging.getLogger(__name__)


def parse_day(name: str, value: dt.date | str | None) -> dt.date:
    """A flow's date parameter, or :class:`ConfigInvalid` in one line naming it."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigInvalid(f"{name}: not a date YYYY-MM-DD: {str(value)[:40]!r}") from None


@dataclass
class RangeRun:
    """One open run of a range flow: its config, state database, gaps and row in the ``runs`` table."""

    kind: str
    config: Any
    state: st.State
    gaps: list[Gap]
    run_id: int
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)

    @property
    def missions(self) -> list[Any]:
        return missions_of(self.config)


def open_run(kind: str, config_path: str, parameters: dict[str, Any]) -> RangeRun:
    config = load_run_config(config_path)
    state = open_state(st.default_state_url(config))
    gaps = load_gaps(config.gaps)
    record_gaps(state, gaps)
    return RangeRun(kind, config, state, gaps, start_run(state, kind, parameters))


@dataclass(frozen=True)
class Unit:
    """One task's work: one granule (target-focused product) or every granule of a day (global product)."""

    day: dt.date
    refs: tuple[GranuleRef, ...]
    inputs: tuple[GranuleInput, ...]

    @property
    def keys(self) -> list[str]:
        return [claim_key(r) for r in self.refs]


def claim_key(ref: GranuleRef) -> str:
    return f"{ref.mission}/{ref.day.isoformat()}"


@dataclass(frozen=True)
class Row:
    """One line of the run's table: a (mission, day), what became of it and why."""

    mission: str
    day: str
    status: str
    reason: str = ""
    granule: str = ""
    captures: int = 0
    targets: tuple[str, ...] = ()
    quicklooks: tuple[str, ...] = ()
    seconds: float = 0.0
    tried: bool = False  #: processed by this run (not a skipped, busy or not-ready day)


def plan_windows(run: RangeRun, windows: Sequence[tuple[dt.date, dt.date]], reprocess: bool
                 ) -> tuple[list[st.DayPlan], list[Row]]:
    """Search and plan each window; also the failed days the plan skips (with the reason they failed)."""
    plans: list[st.DayPlan] = []
    skipped: list[Row] = []
    for start, end in windows:
        refs = search_granules(run.config, start, end)
        record_granules(run.state, refs)
        plans += plan_ready_days(run.state, refs, run.missions, run.gaps, start, end, reprocess)
        if not reprocess:
            todo = {claim_key(r) for p in plans for r in p.granules}
            skipped += [Row(r["mission"], r["day"], "skipped", f"failed earlier: {r['last_error']}", r["granule"] or "")
                        for r in st.failed_rows(run.state, run.missions, start, end)
                        if f"{r['mission']}/{r['day']}" not in todo]
    return plans, skipped


def units_of(run: RangeRun, plans: Sequence[st.DayPlan]) -> list[Unit]:
    """The tasks to run, in day order: one per granule, or one per day for the global product (whose day slice is
    replaced whole, so every granule of the day goes in)."""
    units = []
    for plan in plans:
        if product_of(run.config) == OCO_GLOBAL:
            refs = tuple(sorted(plan.granules + plan.skipped, key=lambda r: r.mission))
            units.append(Unit(plan.day, refs, tuple(granule_from_ref(r) for r in refs)))
        else:
            units += [Unit(plan.day, (r,), (granule_from_ref(r),)) for r in plan.granules]
    return units


def claim_units(run: RangeRun, units: Sequence[Unit]) -> tuple[list[Unit], list[Row]]:
    """Take a lease on every unit's (mission, day)s; units another live run holds are left to it."""
    busy = st.claim(run.state, [k for u in units for k in u.keys], run.owner, run.run_id)
    mine = [u for u in units if not any(k in busy for k in u.keys)]
    theirs = [Row(r.mission, r.day.isoformat(), "busy", f"being processed by run {busy[claim_key(r)].run_id} "
                  f"(lease until {busy[claim_key(r)].expires_at:%Y-%m-%d %H:%M:%S})", r.name)
              for u in units if u not in mine for r in u.refs if claim_key(r) in busy]
    if theirs:
        log.warning("%d (mission, day)s are being processed by another run: left to it", len(theirs))
    st.release_claims(run.state, run.owner, [k for u in units if u not in mine for k in u.keys])
    return mine, theirs


def quicklook_dir(config: Any) -> str | None:
    """Where the quick-look PNGs go: ``OCO_L3_QUICKLOOK_DIR``, else ``<output.local>/quicklooks`` (none for S3)."""
    if os.environ.get("OCO_L3_QUICKLOOK_DIR"):
        return os.environ["OCO_L3_QUICKLOOK_DIR"]
    return os.path.join(config.output.local, "quicklooks") if config.output.local else None


def _submit(run: RangeRun, unit: Unit, looks: str | None) -> PrefectFuture[Any]:
    if product_of(run.config) == OCO_GLOBAL:
        return process_global_day.submit(run.config, DayBatch(unit.day, unit.inputs))
    return process_granule.submit(run.config, unit.inputs[0], looks)


def process_units(run: RangeRun, units: Sequence[Unit], progress: Progress) -> list[Row]:
    """Submit every unit at once (day order, so a store mostly receives its slices in time order; the task runner's
    width bounds how many run), then record each (mission, day) in the state table as its task finishes."""
    looks = quicklook_dir(run.config)
    for unit in units:
        for ref in unit.refs:
            st.mark_running(run.state, ref, run.run_id)
    futures = {_submit(run, unit, looks): unit for unit in units}
    rows: list[Row] = []
    for future in as_completed(list(futures)):
        unit = futures.pop(future)
        outcomes, unit_rows = _outcomes(unit, *outcome_of(future))
        st.record_outcomes(run.state, outcomes)
        st.release_claims(run.state, run.owner, unit.keys)
        rows += unit_rows
        progress.advance(len(unit.refs), sum(r.status != "done" for r in unit_rows))
        # every granule may run in this process: without this its resident size crept up run after run (10 busy
        # days, measured: peak 486-491 MB without, 425-430 MB with)
        release_memory()
    return rows


def _outcomes(unit: Unit, result: Any, exc: BaseException | None) -> tuple[list[st.GranuleOutcome], list[Row]]:
    if len(unit.inputs) == 1 and not hasattr(result, "outcomes"):
        return _granule_outcome(unit.refs[0], unit.inputs[0], result, exc)
    return _global_outcomes(unit, result, exc)


def _granule_outcome(ref: GranuleRef, granule: GranuleInput, result: GranuleResult | None,
                     exc: BaseException | None) -> tuple[list[st.GranuleOutcome], list[Row]]:
    day = ref.day.isoformat()
    if result is None:
        error = exc or RuntimeError("not processed")
        message = granule_failure(granule.name, error)
        status: st.Status = "waiting" if classify(error).transient else "failed"
        return [st.GranuleOutcome(ref, status, message)], [Row(ref.mission, day, status, message, ref.name, tried=True)]
    outcome = st.GranuleOutcome(ref, "done", None, result.captures, len(result.targets),
                                result.stores + result.cogs, round(result.seconds, 3))
    return [outcome], [Row(ref.mission, day, "done", "", ref.name, result.captures, result.targets,
                           result.quicklooks, result.seconds, tried=True)]


def _global_outcomes(unit: Unit, result: Any, exc: BaseException | None
                     ) -> tuple[list[st.GranuleOutcome], list[Row]]:
    by_name = {o.granule.name: o for o in result.outcomes} if result is not None else {}
    outcomes, rows = [], []
    for ref, granule in zip(unit.refs, unit.inputs, strict=True):
        o = by_name.get(granule.name)
        if o is None or not o.ok:
            error = exc or RuntimeError("not processed")
            message = o.message if o is not None else granule_failure(granule.name, error)
            transient = o.transient if o is not None else classify(error).transient
            status: st.Status = "waiting" if transient else "failed"
            outcomes.append(st.GranuleOutcome(ref, status, message))
            rows.append(Row(ref.mission, ref.day.isoformat(), status, message, ref.name, tried=True))
            continue
        outcomes.append(st.GranuleOutcome(ref, "done", None, o.captures, len(o.targets), tuple(result.stores)))
        rows.append(Row(ref.mission, ref.day.isoformat(), "done", "", ref.name, o.captures, o.targets, tried=True))
    return outcomes, rows


def still_waiting(run: RangeRun, windows: Sequence[tuple[dt.date, dt.date]], seen: set[tuple[str, str]]) -> list[Row]:
    """The (mission, day)s of the windows that stay ``waiting`` without having been tried (no granule yet)."""
    rows = []
    for start, end in windows:
        for r in st.status_rows(run.state, start, end):
            if r["status"] == "waiting" and (r["mission"], r["day"]) not in seen and r["mission"] in run.missions:
                rows.append(Row(r["mission"], r["day"], "waiting", r["last_error"] or "no granule yet", r["granule"] or ""))
    return rows
