"""ICESat-2 flows: ``icesat2_process_files`` (the ``input.files`` of a product config), ``icesat2_discover``
(CMR search from the config's ``search:`` section; no login is needed to search), ``icesat2_backfill``
(search, download into ``<output>/staging/<product>``, process, remove the downloads, record) and
``icesat2_daily`` (the backfill over the days since the product's last done day, up to a latency). Every run records
its results per (product, day) in the state table. Recipes, one task a line.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from prefect import flow, unmapped

from flows._settle import reason, settle
from flows.earthdata import earthdata_login
from flows.runners import task_runner
from oco_l3.icesat2.discovery import GranuleRef
from oco_l3.icesat2.results import Icesat2Result
from oco_l3.icesat2.run import GranuleExtract, Icesat2Config
from oco_l3.state import daily_window, default_state_url, open_state
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
    return _search_download_process(cfg, temporal)


@flow(name="icesat2-daily", task_runner=RUNNER)
def icesat2_daily(config: str, latency_days: int = 3, lookback_days: int = 30, today: str | None = None
                  ) -> dict[str, Any]:
    """The scheduled run: the days from the one after the product's last ``done`` day (an empty state looks back
    ``lookback_days``) up to ``today - latency_days``, through the backfill's steps. The latency leaves NSIDC
    time to publish a day's granules: a day is binned once, from the granules CMR lists when it is first run
    (re-run it with ``icesat2-backfill`` if more arrive later)."""
    cfg = load_icesat2_config(config)
    window = icesat2_window(cfg, dt.date.fromisoformat(today) if today else dt.date.today(), latency_days,
                            lookback_days)
    if window is None:
        return {**_summary(cfg, []), "found": 0}
    return _search_download_process(cfg, (window[0].isoformat(), window[1].isoformat()))


def icesat2_window(cfg: Icesat2Config, today: dt.date, latency_days: int, lookback_days: int
                   ) -> tuple[dt.date, dt.date] | None:
    """The days a daily run covers, or None when there is none yet."""
    state = open_state(default_state_url(cfg))
    try:
        start, _ = daily_window(state, [cfg.product], today, lookback_days)  # type: ignore[list-item]
    finally:
        state.close()
    end = today - dt.timedelta(days=latency_days)
    return (start, end) if start <= end else None


def _search_download_process(cfg: Icesat2Config, temporal: tuple[str, str] | None) -> dict[str, Any]:
    refs = discover_granules(cfg, temporal)
    if refs:
        earthdata_login(cfg)
    files, failed = _download(cfg, refs)
    try:
        results = _process(cfg, files) + failed
    finally:
        remove_staged(files, _staging(cfg))
    _record(cfg, results)
    summary = _summary(cfg, results)
    summary["found"] = len(refs)
    return summary
