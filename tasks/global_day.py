"""The global product: one task per day (grid every granule onto the global grid, commit both QF stores)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3 import global_product
from oco_l3.allocator import keep_freed_memory
from oco_l3.config import RunConfig
from oco_l3.global_product import GlobalDayResult
from oco_l3.pipeline import DayBatch
from tasks._logs import library_logs_to_prefect
from tasks._policy import transient_retries


@task(name="process-global-day", cache_policy=NO_CACHE, task_run_name="global {batch.day}", **transient_retries())
def process_global_day(config: RunConfig, batch: DayBatch) -> GlobalDayResult:
    keep_freed_memory()  # this process grids: the flow's (thread runner) or a Dask worker's
    with library_logs_to_prefect():
        return global_product.process_global_day(config, batch)
