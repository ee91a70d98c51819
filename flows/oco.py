"""The OCO flows: ``oco_backfill`` (a day range), ``oco_daily`` (waiting days and everything new since the last done
day) and ``oco_process_files`` (the ``input.files`` of a run config). Each is the same recipe: plan the days, claim
the work, run ONE task per granule over the whole range (:func:`tasks.granule.process_granule`, the step that
``oco-l3 run`` loops over), record each (mission, day) as its task finishes, report.

Flow parameters name a run-config file on the worker (never secrets); credentials come from the environment,
a netrc file or a Prefect Secret block (see :mod:`flows.earthdata`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from prefect import flow
from prefect.states import State

from flows._range import (
    RangeRun,
    Row,
    Unit,
    claim_units,
    open_run,
    parse_day,
    plan_windows,
    process_units,
    still_waiting,
    units_of,
)
from flows._report import Progress, final_state, publish, totals
from flows.earthdata import earthdata_login
from flows.runners import task_runner
from oco_l3 import state as st
from oco_l3.config import OCO_GLOBAL, product_of
from oco_l3.errors import ConfigInvalid
from oco_l3.pipeline import batches_from_files
from oco_l3.sources import GranuleRef, missions_of
from tasks.config import load_run_config
from tasks.state import finish_run

RUNNER = task_runner()


def _finish(run: RangeRun, rows: list[Row], notes: Sequence[str]) -> State[Any]:
    t = totals(rows, time.perf_counter() - run.started)
    finish_run(run.state, run.run_id, t)
    publish(run.kind, rows, t, notes)
    return final_state(run.kind, t)


def _run_units(run: RangeRun, units: Sequence[Unit]) -> list[Row]:
    mine, busy = claim_units(run, units)
    return process_units(run, mine, Progress(run.kind, sum(len(u.refs) for u in mine))) + busy


def _run_windows(kind: str, config: str, windows: Sequence[tuple[dt.date, dt.date]], reprocess: bool,
                 parameters: dict[str, Any], notes: Sequence[str] = ()) -> State[Any]:
    """The recipe of backfill and daily: plan, claim, fan out over every window at once, record, report."""
    run = open_run(kind, config, parameters)
    try:
        earthdata_login(run.config)
        with st.held_claims(run.state, run.owner):
            plans, skipped = plan_windows(run, windows, reprocess)
            rows = _run_units(run, units_of(run, plans)) + skipped
        rows += still_waiting(run, windows, {(r.mission, r.day) for r in rows})
        return _finish(run, rows, notes)
    finally:
        run.state.close()


@flow(name="oco-backfill", task_runner=RUNNER, validate_parameters=False)
def oco_backfill(config: str, start: dt.date, end: dt.date, reprocess: bool = False) -> State[Any]:
    """Process every ready day in start..end that is not done yet: one task per granule over the whole range.

    Args:
        config: Path of the run-config YAML on the worker (e.g. deployments/oco-l3.yaml).
        start: First day, YYYY-MM-DD.
        end: Last day, YYYY-MM-DD (inclusive).
        reprocess: Process days again even when done or failed (their slices are replaced).
    """
    first, last = parse_day("start", start), parse_day("end", end)
    if last < first:
        raise ConfigInvalid(f"end: {last} is before start {first}")
    return _run_windows("backfill", config, [(first, last)], reprocess,
                        {"config": config, "start": first, "end": last, "reprocess": reprocess})


@flow(name="oco-daily", task_runner=RUNNER, validate_parameters=False)
def oco_daily(config: str, today: dt.date | None = None, lookback_days: int = 30,
              max_retry_days: int = 60) -> State[Any]:
    """The scheduled run: every day still waiting (oldest first, whatever its age) plus the new days since the
    last done day, through the backfill's steps.

    Args:
        config: Path of the run-config YAML on the worker (e.g. deployments/oco-l3.yaml).
        today: Pretend today is this day, YYYY-MM-DD (default: today, UTC).
        lookback_days: How far back a run looks when nothing is done yet.
        max_retry_days: At most this many waiting days older than the new ones are retried per run, oldest first.
    """
    day = parse_day("today", today) if today else dt.datetime.now(dt.UTC).date()
    run_config = load_run_config(config)
    state = st.open_state(st.default_state_url(run_config))
    try:
        days = st.daily_days(state, missions_of(run_config), day, int(lookback_days), int(max_retry_days))
    finally:
        state.close()
    retry = ", ".join(d.isoformat() for d in days.retry) or "none"
    new = f"{days.new[0]}..{days.new[1]}" if days.new is not None else "none"
    notes = [f"new days: {new}", f"waiting days retried ({len(days.retry)}): {retry}"]
    return _run_windows("daily", config, days.windows(), False,
                        {"config": config, "today": day, "lookback_days": lookback_days}, notes)


def _file_units(run: RangeRun) -> tuple[list[Unit], list[Row]]:
    """One unit per granule of ``input.files`` (per day for the global product); files whose name gives no
    mission or day cannot be recorded and are reported as failed."""
    units: list[Unit] = []
    unknown: list[Row] = []
    for batch in batches_from_files(run.config):
        pairs = []
        for g in batch.granules:
            day = g.day or batch.day
            if g.mission is None or day is None:
                unknown.append(Row("?", "?", "failed", f"{g.name}: file name follows no OCO naming convention",
                                   g.name, tried=True))
                continue
            pairs.append((GranuleRef(g.mission, day, g.path, None, None, g.name), g))
        if product_of(run.config) == OCO_GLOBAL and pairs and batch.day is not None:
            units.append(Unit(batch.day, tuple(r for r, _ in pairs), tuple(g for _, g in pairs)))
        else:
            units += [Unit(r.day, (r,), (g,)) for r, g in pairs]
    return units, unknown


@flow(name="oco-process-files", task_runner=RUNNER, validate_parameters=False)
def oco_process_files(config: str) -> State[Any]:
    """Process the input.files of a run config (one task per granule) and record them in the state table.

    Args:
        config: Path of the run-config YAML on the worker; its input.files are processed.
    """
    run = open_run("files", config, {"config": config})
    try:
        units, unknown = _file_units(run)
        with st.held_claims(run.state, run.owner):
            rows = _run_units(run, units) + unknown
        return _finish(run, rows, ())
    finally:
        run.state.close()
