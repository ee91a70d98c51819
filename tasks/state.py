"""State-table tasks of a run's start and end (run inline in the flow's process: they hold a database engine).

The per-granule bookkeeping (attempt started, outcome recorded, claim released) calls :mod:`oco_l3.state`
directly, as each task finishes: one task run per granule is the granule itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3 import state as st
from oco_l3.gaps import Gap
from oco_l3.soundings import Mission
from oco_l3.sources import GranuleRef


@task(name="open-state", cache_policy=NO_CACHE)
def open_state(url: str) -> st.State:
    return st.open_state(url)


@task(name="record-granules", cache_policy=NO_CACHE)
def record_granules(state: st.State, refs: Iterable[GranuleRef]) -> int:
    return st.record_granules(state, refs)


@task(name="record-gaps", cache_policy=NO_CACHE)
def record_gaps(state: st.State, gaps: Iterable[Gap]) -> None:
    st.record_gaps(state, gaps)


@task(name="plan-ready-days", cache_policy=NO_CACHE)
def plan_ready_days(state: st.State, refs: Sequence[GranuleRef], missions: Sequence[Mission], gaps: Sequence[Gap],
                    start: dt.date, end: dt.date, reprocess: bool = False) -> list[st.DayPlan]:
    return st.plan_ready_days(state, refs, missions, gaps, start, end, reprocess)


@task(name="start-run", cache_policy=NO_CACHE)
def start_run(state: st.State, kind: str, parameters: Mapping[str, Any]) -> int:
    return st.start_run(state, kind, parameters)


@task(name="finish-run", cache_policy=NO_CACHE)
def finish_run(state: st.State, run_id: int, summary: Mapping[str, Any]) -> None:
    st.finish_run(state, run_id, summary)
