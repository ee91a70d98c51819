"""Exports after the commits: COGs and quick-look PNGs of every capture."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3 import pipeline
from oco_l3.config import RunConfig
from oco_l3.pipeline import GranuleProducts
from tasks._policy import transient_retries


@task(name="export-cogs", cache_policy=NO_CACHE, **transient_retries())
def export_cogs(config: RunConfig, products: GranuleProducts) -> list[str]:
    return pipeline.export_cogs(config, products)


@task(name="write-quicklooks", cache_policy=NO_CACHE)
def write_quicklooks(config: RunConfig, products: GranuleProducts, directory: str) -> list[str]:
    return pipeline.write_quicklooks(config, products, directory)
