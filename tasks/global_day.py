"""The global product: one task per day (grid every granule onto the global grid, commit both QF stores), in a
worker process of :mod:`oco_l3.process_pool` like the granule task (the flow's process stays small: a full-resolution
day holds several hundred MB while it grids)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3 import global_product
from oco_l3.config import RunConfig
from oco_l3.global_product import GlobalDayResult
from oco_l3.pipeline import DayBatch
from oco_l3.process_pool import call_in_worker
from tasks._logs import library_logs_to_prefect
from tasks._policy import transient_retries


@task(name="process-global-day", cache_policy=NO_CACHE, task_run_name="global {batch.day}", **transient_retries())
def process_global_day(config: RunConfig, batch: DayBatch) -> GlobalDayResult:
    with library_logs_to_prefect():
        return call_in_worker(global_product.process_global_day, config, batch)
