"""The unit of work of the OCO flows: one granule read, split, gridded, committed to its stores and exported.

The granule is processed in a worker process of :mod:`oco_l3.process_pool` (which never imports Prefect): the
flow's process (or the Dask worker's) keeps only Prefect and the bookkeeping, and two granules at once use two
cores without sharing a GIL. The worker's ``oco_l3`` log records are re-emitted in the task's thread (so they reach
the Prefect API with the task run's id) and its exceptions come back with their type (so only transient ones are
retried). ``OCO_L3_WORKER_PROCESS=0`` processes the granule in the task's own process instead.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3 import pipeline
from oco_l3.config import RunConfig
from oco_l3.pipeline import GranuleInput, GranuleResult
from oco_l3.process_pool import call_in_worker
from tasks._logs import library_logs_to_prefect
from tasks._policy import transient_retries


@task(name="process-granule", cache_policy=NO_CACHE, task_run_name="{granule.name}", **transient_retries())
def process_granule(config: RunConfig, granule: GranuleInput, quicklook_dir: str | None = None) -> GranuleResult:
    with library_logs_to_prefect():
        return call_in_worker(pipeline.process_granule, config, granule, quicklook_dir)
