"""Discovery: search the configured granule source (the granules themselves are read by the task that grids them)."""

from __future__ import annotations

import datetime as dt

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3 import sources
from oco_l3.config import RunConfig
from oco_l3.sources import GranuleRef
from tasks._policy import transient_retries


@task(name="search-granules", cache_policy=NO_CACHE, task_run_name="search {start}..{end}", **transient_retries())
def search_granules(config: RunConfig, start: dt.date, end: dt.date) -> list[GranuleRef]:
    return sources.search_granules(config, start, end)
