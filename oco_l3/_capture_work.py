"""Gridding and writing the captures of one split granule: each capture gridded, committed to its two stores and
exported as soon as it is gridded (at most two captures in memory), in this process with a writer thread, or in
forked worker processes. Never raises for one capture: its outcome is a :class:`CaptureWritten`."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from oco_l3.captures import Capture
from oco_l3.config import RunConfig
from oco_l3.errors import OcoL3Error, classify, one_line
from oco_l3.exports import export_cogs, write_quicklooks
from oco_l3.gridded import CaptureProduct, GranuleProducts, SplitGranule, grid_one
from oco_l3.target_stores import StoreCommit, commit_store, plan_commits

log = logging.getLogger("oco_l3.pipeline")


@dataclass(frozen=True)
class CaptureWritten:
    """What gridding and writing one capture did (small and picklable: it comes back from a worker process)."""

    target_id: str
    stores: tuple[str, ...] = ()
    cogs: tuple[str, ...] = ()
    quicklooks: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None
    transient: bool = False


def grid_and_write(config: RunConfig, split: SplitGranule, cap: Capture, quicklook_dir: str | None) -> CaptureWritten:
    """Grid one capture, commit its two stores, export its COGs and quick-look. Never raises for one capture."""
    gridded = _grid_capture(config, split, cap)
    if isinstance(gridded, CaptureWritten):
        return gridded
    return _write_capture(config, split, gridded, quicklook_dir)


def _grid_capture(config: RunConfig, split: SplitGranule, cap: Capture, parallel: bool = True
                  ) -> _Gridded | CaptureWritten:
    """The gridded capture, or the record of its skipping."""
    t0 = time.perf_counter()
    try:
        product = grid_one(config, split, cap, parallel)
    except OcoL3Error as exc:
        msg = f"{split.granule.name}: skipped capture {cap.target.id} at {cap.start_time}: {one_line(exc)}"
        log.warning("%s", msg)
        return CaptureWritten(cap.target.id, skipped=msg)
    return _Gridded(product, time.perf_counter() - t0)


@dataclass(frozen=True)
class _Gridded:
    product: CaptureProduct
    seconds: float


def _write_capture(config: RunConfig, split: SplitGranule, gridded: _Gridded, quicklook_dir: str | None,
                   side_by_side: bool = False) -> CaptureWritten:
    """Commit the two stores of a gridded capture (``side_by_side``: in two threads, for when nothing else
    runs), export its COGs and quick-look. Never raises."""
    product = gridded.product
    timings = {"grid": gridded.seconds}
    stores: list[str] = []
    cogs: list[str] = []
    quicklooks: list[str] = []
    try:
        t0 = time.perf_counter()
        gp = GranuleProducts(split.granule, (product,))
        stores += _commit_stores(config, plan_commits(config, [gp]), side_by_side)
        timings["commit"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cogs += export_cogs(config, gp)
        if quicklook_dir:
            quicklooks += write_quicklooks(config, gp, quicklook_dir)
        timings["export"] = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - recorded against the granule; its other captures go on
        log.debug("commit/export failed", exc_info=True)
        verdict = classify(exc)
        msg = f"{split.granule.name}: writing {product.mission}/{product.target.id} failed: {verdict.reason}"
        return CaptureWritten(product.target.id, tuple(stores), tuple(cogs), tuple(quicklooks), timings,
                              error=msg, transient=verdict.transient)
    return CaptureWritten(product.target.id, tuple(stores), tuple(cogs), tuple(quicklooks), timings)


def _commit_stores(config: RunConfig, commits: Sequence[StoreCommit], side_by_side: bool) -> list[str]:
    """Commit the stores (different stores: independent) one after the other or in two threads; the first error
    is raised after every commit has ended."""
    if not side_by_side or len(commits) < 2:
        return [str(commit_store(config, c).store_path) for c in commits]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="oco-l3-commit") as pool:
        futures = [pool.submit(contextvars.copy_context().run, commit_store, config, c) for c in commits]
    return [str(f.result().store_path) for f in futures]


def _pipelined_captures(config: RunConfig, split: SplitGranule, quicklook_dir: str | None) -> list[CaptureWritten]:
    """Every capture in this process, the writing of one overlapping the gridding of the next (a writer thread:
    both are NumPy, Blosc and file work that mostly release the GIL). At most two captures are in memory, the one
    being written and the one being gridded; captures go largest first, so the overlap is with a smaller one."""
    from concurrent.futures import Future, ThreadPoolExecutor

    order = _largest_first(split)
    done: dict[int, CaptureWritten] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="oco-l3-write") as writer:
        writing: tuple[int, Future[CaptureWritten]] | None = None
        for i in order:
            # Beside a write, one gridding thread: the writer keeps the other core busy, and two passes at once
            # would only add their temporaries to the memory peak.
            gridded = _grid_capture(config, split, split.captures[i], parallel=writing is None)
            if writing is not None:
                done[writing[0]] = writing[1].result()
                writing = None
            if isinstance(gridded, CaptureWritten):
                done[i] = gridded
            else:  # the last capture is written alone: its two stores side by side
                writing = (i, writer.submit(contextvars.copy_context().run, _write_capture, config, split, gridded,
                                            quicklook_dir, i == order[-1]))
            del gridded
        if writing is not None:
            done[writing[0]] = writing[1].result()
    return [done[i] for i in range(len(split.captures))]


def _largest_first(split: SplitGranule) -> list[int]:
    """Capture indices, largest capture first: the last one to finish (or to be written alone) is a small one."""
    return sorted(range(len(split.captures)), key=lambda i: -split.captures[i].n_soundings)


#: The granule forked capture workers read from: set just before the worker pool forks, so the soundings are
#: shared copy-on-write instead of being pickled to every worker.
_FORKED_SPLIT: SplitGranule | None = None


def _forked_capture(config: RunConfig, i: int, quicklook_dir: str | None) -> CaptureWritten:
    assert _FORKED_SPLIT is not None
    return grid_and_write(config, _FORKED_SPLIT, _FORKED_SPLIT.captures[i], quicklook_dir)


def _write_captures(config: RunConfig, split: SplitGranule, quicklook_dir: str | None,
                    workers: int) -> list[CaptureWritten]:
    """Every capture of the granule, in ``workers`` forked processes when more than one (captures are independent;
    two captures of one target serialise on the store lock)."""
    n = len(split.captures)
    if workers <= 1 or n <= 1:
        return _pipelined_captures(config, split, quicklook_dir)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _FORKED_SPLIT
    _FORKED_SPLIT = split
    order = _largest_first(split)
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(workers, n), mp_context=ctx) as pool:
            done = dict(zip(order, pool.map(_forked_capture, [config] * n, order, [quicklook_dir] * n), strict=True))
    finally:
        _FORKED_SPLIT = None
    return [done[i] for i in range(n)]
