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
from oco_l3.errors import classify
from oco_l3.icesat2.discovery import GranuleRef
from oco_l3.icesat2.results import Icesat2Result
from oco_l3.icesat2.run import GranuleExtract, Icesat2Config
from oco_l3.state import daily_days, default_state_url, open_state
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
    extracts = [extracted.get(i) or GranuleExtract(_failure(files[i], cfg, errors[i]))
                for i in range(len(files))]
    return grid_days(cfg, extracts) if extracts else []


def _failure(name: str, cfg: Icesat2Config, exc: BaseException) -> Icesat2Result:
    """An input whose task failed after its retries: recorded ``waiting`` when the failure was transient (the daily
    run retries the day), ``failed`` otherwise."""
    return Icesat2Result(name, cfg.product, False, reason(exc), transient=classify(exc).transient)


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
    failed = [_failure(refs[i].name, cfg, e) for i, e in sorted(errors.items())]
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
def icesat2_daily(config: str, latency_days: int = 3, lookback_days: int = 30, today: str | None = None,
                  max_retry_days: int = 60) -> dict[str, Any]:
    """The scheduled run, like the OCO daily: every day still ``waiting`` after a transient failure (oldest first,
    whatever its age, at most ``max_retry_days``) and the new days from the one after the product's last ``done``
    day (an empty state looks back ``lookback_days``) up to ``today - latency_days``, through the backfill's steps.
    The latency leaves NSIDC time to publish a day's granules: a new day is binned once, from the granules CMR
    lists when it is first run (re-run it with ``icesat2-backfill`` if more arrive later)."""
    cfg = load_icesat2_config(config)
    windows = icesat2_windows(cfg, dt.date.fromisoformat(today) if today else dt.date.today(), latency_days,
                              lookback_days, max_retry_days)
    if not windows:
        return {**_summary(cfg, []), "found": 0}
    return _search_download_process(cfg, *[(a.isoformat(), b.isoformat()) for a, b in windows])


def icesat2_windows(cfg: Icesat2Config, today: dt.date, latency_days: int, lookback_days: int,
                    max_retry_days: int = 60) -> list[tuple[dt.date, dt.date]]:
    """The day ranges a daily run searches (:func:`oco_l3.state.daily_days` with the latency)."""
    state = open_state(default_state_url(cfg))
    try:
        days = daily_days(state, [cfg.product], today, lookback_days, max_retry_days, latency_days)
    finally:
        state.close()
    return days.windows()


def _search_download_process(cfg: Icesat2Config, *windows: tuple[str, str] | None) -> dict[str, Any]:
    refs = list({r.url: r for w in windows for r in discover_granules(cfg, w)}.values())
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
