"""The per-granule fan-out: read + split + grid one granule."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3 import pipeline
from oco_l3.config import RunConfig
from oco_l3.pipeline import GranuleInput, GranuleProducts
from tasks._policy import transient_retries


@task(name="grid-granule", cache_policy=NO_CACHE, task_run_name="grid {granule.name}", **transient_retries())
def grid_granule(config: RunConfig, granule: GranuleInput) -> GranuleProducts:
    return pipeline.grid_granule(config, granule)
