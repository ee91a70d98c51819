"""The OCO flows: ``oco_backfill`` (a day range), ``oco_daily`` (everything new since the last done day) and
``oco_process_files`` (the ``input.files`` of a run config). Each reads like a recipe, one task call a line.

Flow parameters name a run-config file on the worker (never secrets); credentials come from the environment,
a netrc file or a Prefect Secret block (see :mod:`flows.earthdata`).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Sequence
from typing import Any

from prefect import flow

from flows._day import process_global_granules, process_granules
from flows.earthdata import earthdata_login
from flows.runners import task_runner
from oco_l3.errors import ConfigInvalid
from oco_l3.gaps import load_gaps
from oco_l3.pipeline import GranuleInput
from oco_l3.sources import GranuleRef, missions_of
from oco_l3.state import State, daily_window, default_state_url
from tasks.config import load_run_config
from tasks.discover import search_granules
from tasks.report import publish_run_summary
from tasks.state import finish_run, open_state, plan_ready_days, record_gaps, record_granules, start_run

RUNNER = task_runner()


def _quicklook_dir(config: Any) -> str:
    if os.environ.get("OCO_L3_QUICKLOOK_DIR"):
        return os.environ["OCO_L3_QUICKLOOK_DIR"]
    if config.output.local:
        return os.path.join(config.output.local, "quicklooks")
    return tempfile.mkdtemp(prefix="oco-l3-quicklooks-")


def _totals(days: Sequence[dict[str, Any]], seconds: float) -> dict[str, Any]:
    keys = ("granules", "done", "failed", "waiting", "captures")
    totals: dict[str, Any] = {k: sum(d[k] for d in days) for k in keys}
    totals.update(days=len(days), targets=len({t for d in days for t in d["targets"]}), seconds=seconds,
                  failures=[f for d in days for f in d["failures"]])
    return totals


def _process_range(kind: str, config_path: str, start: dt.date, end: dt.date, reprocess: bool) -> dict[str, Any]:
    if end < start:
        raise ConfigInvalid(f"{kind}: end {end} is before start {start}")
    t0 = dt.datetime.now(dt.UTC)
    config = load_run_config(config_path)
    state: State = open_state(default_state_url(config))
    gaps = load_gaps(config.gaps)
    record_gaps(state, gaps)
    run_id = start_run(state, kind, {"config": config_path, "start": start, "end": end, "reprocess": reprocess})
    earthdata_login(config)
    refs = search_granules(config, start, end)
    record_granules(state, refs)
    plans = plan_ready_days(state, refs, missions_of(config), gaps, start, end, reprocess)
    with tempfile.TemporaryDirectory(prefix="oco-l3-staging-") as staging:
        days = [_process_plan(config, state, plan, run_id, staging) for plan in plans]
    totals = _totals(days, (dt.datetime.now(dt.UTC) - t0).total_seconds())
    finish_run(state, run_id, totals)
    publish_run_summary(kind, days, totals)
    state.close()
    return totals


def _process_plan(config: Any, state: State, plan: Any, run_id: int, staging: str) -> dict[str, Any]:
    if config.output.global_:  # the global day slice is replaced whole: process every granule of the day
        refs = sorted(plan.granules + plan.skipped, key=lambda r: r.mission)
        return process_global_granules(config, state, refs, run_id=run_id, staging=staging)
    return process_granules(config, state, plan.granules, run_id=run_id, staging=staging,
                            quicklook_dir=_quicklook_dir(config))


@flow(name="oco-backfill", task_runner=RUNNER)
def oco_backfill(config: str, start: dt.date, end: dt.date, reprocess: bool = False) -> dict[str, Any]:
    """Process every ready day in ``start..end`` that is not done yet (all of them with ``reprocess``)."""
    return _process_range("backfill", config, start, end, reprocess)


@flow(name="oco-daily", task_runner=RUNNER)
def oco_daily(config: str, today: dt.date | None = None, lookback_days: int = 30) -> dict[str, Any]:
    """Discover since the last done (or first waiting) day and process every ready day not yet done, in order."""
    run_config = load_run_config(config)
    state = open_state(default_state_url(run_config))
    start, end = daily_window(state, missions_of(run_config), today or dt.datetime.now(dt.UTC).date(), lookback_days)
    state.close()
    return _process_range("daily", config, start, end, False)


def _file_refs(batch: Any) -> list[tuple[GranuleRef, GranuleInput]]:
    pairs = []
    for g in batch.granules:
        if g.mission is not None and (g.day or batch.day) is not None:
            pairs.append((GranuleRef(g.mission, g.day or batch.day, g.path, None, None, g.name), g))
    return pairs


@flow(name="oco-process-files", task_runner=RUNNER)
def oco_process_files(config: str) -> dict[str, Any]:
    """Process the ``input.files`` of a run config, day by day, and record them in the state table."""
    from oco_l3.pipeline import batches_from_files

    t0 = dt.datetime.now(dt.UTC)
    run_config = load_run_config(config)
    state: State = open_state(default_state_url(run_config))
    run_id = start_run(state, "files", {"config": config})
    days = []
    for batch in batches_from_files(run_config):
        pairs = _file_refs(batch)
        unknown = [f"{g.name}: file name follows no OCO naming convention" for g in batch.granules
                   if all(g is not p for _, p in pairs)]
        refs, inputs = [r for r, _ in pairs], [g for _, g in pairs]
        day = process_global_granules(run_config, state, refs, run_id=run_id, staging="", inputs=inputs) \
            if run_config.output.global_ else process_granules(run_config, state, refs, run_id=run_id, staging="",
                                                               quicklook_dir=_quicklook_dir(run_config), inputs=inputs)
        days.append({**day, "failed": day["failed"] + len(unknown), "failures": day["failures"] + unknown})
    totals = _totals(days, (dt.datetime.now(dt.UTC) - t0).total_seconds())
    finish_run(state, run_id, totals)
    publish_run_summary("files", days, totals)
    state.close()
    return totals
