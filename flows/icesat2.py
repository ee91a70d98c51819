"""ICESat-2 flows: ``icesat2_process_files`` (the ``input.files`` of a product config), ``icesat2_discover``
(CMR search from the config's ``search:`` section; no login is needed to search) and ``icesat2_backfill``
(search, download into ``<output>/staging/<product>``, process, remove the downloads, record). Every run records
its results per (product, day) in the state table. Recipes, one task a line.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from prefect import flow, unmapped

from flows._settle import reason, settle
from flows.runners import task_runner
from oco_l3.icesat2.discovery import GranuleRef
from oco_l3.icesat2.results import Icesat2Result
from oco_l3.icesat2.run import GranuleExtract, Icesat2Config
from oco_l3.state import default_state_url, open_state
from tasks.icesat2 import (
    as_dict,
    discover_granules,
    download_granule,
    extract_granule,
    grid_days,
    load_icesat2_config,
    record_product_results,
    remove_staged,
)

log = logging.getLogger(__name__)

RUNNER = task_runner()


def _process(cfg: Icesat2Config, files: list[str]) -> list[Icesat2Result]:
    extracted, errors = settle(extract_granule.map(unmapped(cfg), files))
    extracts = [extracted.get(i) or GranuleExtract(Icesat2Result(files[i], cfg.product, False, reason(errors[i])))
                for i in range(len(files))]
    return grid_days(cfg, extracts) if extracts else []


def _record(cfg: Icesat2Config, results: list[Icesat2Result]) -> None:
    state = open_state(default_state_url(cfg))
    try:
        record_product_results(state, cfg.product, results)
    finally:
        state.close()


def _summary(cfg: Icesat2Config, results: list[Icesat2Result]) -> dict[str, Any]:
    return {"product": cfg.product, "ok": sum(r.ok for r in results), "failed": sum(not r.ok for r in results),
            "results": [as_dict(r) for r in results]}


@flow(name="icesat2-process-files", task_runner=RUNNER)
def icesat2_process_files(config: str) -> dict[str, Any]:
    """Extract every input granule in parallel, then bin and write the days; one result per input."""
    cfg = load_icesat2_config(config)
    results = _process(cfg, list(cfg.input.files))
    _record(cfg, results)
    return _summary(cfg, results)


@flow(name="icesat2-discover", task_runner=RUNNER)
def icesat2_discover(config: str) -> list[dict[str, Any]]:
    """The CMR granules the config's ``search:`` finds (narrowed by RGTs when a tracks file is given)."""
    cfg = load_icesat2_config(config)
    return [{"name": r.name, "rgt": r.rgt, "urls": list(r.urls)} for r in discover_granules(cfg)]


def _login_from_environment() -> bool:
    """Earthdata login only from ``EARTHDATA_TOKEN`` or ``EARTHDATA_USERNAME``/``PASSWORD`` (never a parameter)."""
    if not (os.environ.get("EARTHDATA_TOKEN") or os.environ.get("EARTHDATA_USERNAME")):
        log.warning("No Earthdata credentials in the environment: downloads may fail")
        return False
    import earthaccess

    return bool(earthaccess.login(strategy="environment"))


def _staging(cfg: Icesat2Config) -> str:
    return str(cfg.output_root / "staging" / cfg.product)


def _download(cfg: Icesat2Config, refs: list[GranuleRef]) -> tuple[list[str], list[Icesat2Result]]:
    staging = _staging(cfg)
    fetched, errors = settle(download_granule.map(refs, unmapped(staging)))
    failed = [Icesat2Result(refs[i].name, cfg.product, False, reason(e)) for i, e in sorted(errors.items())]
    return [fetched[i] for i in sorted(fetched)], failed


@flow(name="icesat2-backfill", task_runner=RUNNER)
def icesat2_backfill(config: str, start: str | None = None, end: str | None = None) -> dict[str, Any]:
    """Search CMR (``start``..``end`` when given, else ``search.temporal``), download what is found into the
    staging folder, process it like :func:`icesat2_process_files`, remove the downloads (processed or failed)
    and record every result in the state table."""
    cfg = load_icesat2_config(config)
    temporal = (start or cfg.search.temporal[0], end or cfg.search.temporal[1]) if cfg.search else None
    refs = discover_granules(cfg, temporal)
    if refs:
        _login_from_environment()
    files, failed = _download(cfg, refs)
    try:
        results = _process(cfg, files) + failed
    finally:
        remove_staged(files, _staging(cfg))
    _record(cfg, results)
    summary = _summary(cfg, results)
    summary["found"] = len(refs)
    return summary
