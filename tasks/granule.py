"""The unit of work of the OCO flows: one granule read, split, gridded, committed to its stores and exported."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3 import pipeline
from oco_l3.config import RunConfig
from oco_l3.pipeline import GranuleInput, GranuleResult
from tasks._logs import library_logs_to_prefect
from tasks._policy import transient_retries


@task(name="process-granule", cache_policy=NO_CACHE, task_run_name="{granule.name}", **transient_retries())
def process_granule(config: RunConfig, granule: GranuleInput, quicklook_dir: str | None = None) -> GranuleResult:
    with library_logs_to_prefect():
        return pipeline.process_granule(config, granule, quicklook_dir)
