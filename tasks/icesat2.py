"""ICESat-2 tasks: each calls the :mod:`oco_l3.icesat2` function of the same name, nothing more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3 import state as st
from oco_l3.icesat2 import discovery, run
from oco_l3.icesat2.discovery import GranuleRef
from oco_l3.icesat2.results import Icesat2Result
from oco_l3.icesat2.run import GranuleExtract, Icesat2Config
from tasks._policy import transient_retries


@task(name="load-icesat2-config", cache_policy=NO_CACHE)
def load_icesat2_config(config: str | Path) -> Icesat2Config:
    return run.load_icesat2_config(config)


@task(name="discover-icesat2-granules", cache_policy=NO_CACHE, **transient_retries())
def discover_granules(config: Icesat2Config, temporal: tuple[str, str] | None = None) -> list[GranuleRef]:
    return discovery.discover_granules(config, temporal=temporal)


@task(name="download-granule", cache_policy=NO_CACHE, task_run_name="download {ref.name}", **transient_retries())
def download_granule(ref: GranuleRef, directory: str) -> str:
    return discovery.download_granule(ref, directory)


@task(name="remove-staged", cache_policy=NO_CACHE)
def remove_staged(paths: list[str], directory: str) -> list[str]:
    return discovery.remove_staged(paths, directory)


@task(name="extract-granule", cache_policy=NO_CACHE, task_run_name="extract {path}", **transient_retries())
def extract_granule(config: Icesat2Config, path: str) -> GranuleExtract:
    return run.extract_granule(config, path)


@task(name="grid-days", cache_policy=NO_CACHE, **transient_retries())
def grid_days(config: Icesat2Config, extracts: list[GranuleExtract]) -> list[Icesat2Result]:
    return run.grid_days(config, extracts)


@task(name="record-product-results", cache_policy=NO_CACHE, **transient_retries())
def record_product_results(state: st.State, product: str, results: list[Icesat2Result]) -> None:
    st.record_product_results(state, product, results)


def as_dict(result: Icesat2Result) -> dict[str, Any]:
    return {"input": result.input, "ok": result.ok, "message": result.message, "n_segments": result.n_segments,
            "days": list(result.days), "outputs": list(result.outputs), "warnings": list(result.warnings),
            "transient": result.transient}
