"""A run config's OCO product over its inputs, a day batch at a time: the one dispatch that ``oco-l3 run``, the queue
listener and the demo share (the flows choose their tasks with the same :func:`oco_l3.config.product_of`).

* :func:`process_batch` -- one day batch through the product the config makes (target-focused:
  :func:`oco_l3.pipeline.process_day`; global: :func:`oco_l3.global_product.run_global_day`); never raises for an
  input: each granule's outcome is one line, transient or not by :func:`oco_l3.errors.classify`.
* :func:`run_files` -- every day of ``input.files``; days in parallel processes up to ``max-workers`` (one day, or
  one worker: the day's captures use the workers instead).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from oco_l3.config import OCO_GLOBAL, OCO_TARGET, RunConfig, product_of
from oco_l3.errors import ConfigInvalid

if TYPE_CHECKING:  # pragma: no cover
    from oco_l3.pipeline import DayBatch, DayResult


def process_batch(config: RunConfig, batch: DayBatch, quicklook_dir: str | None = None,
                  capture_workers: int = 1) -> DayResult:
    """One day batch through the config's product (see the module docstring)."""
    product = product_of(config)
    if product == OCO_GLOBAL:
        from oco_l3.global_product import run_global_day

        return run_global_day(config, batch)
    if product != OCO_TARGET:
        raise ConfigInvalid(f"product {product!r} does not run on OCO day batches")
    from oco_l3.pipeline import process_day

    return process_day(config, batch, quicklook_dir, capture_workers)


def run_files(config: RunConfig, quicklook_dir: str | None = None,
              on_day: Callable[[DayResult], None] | None = None) -> list[DayResult]:
    """Every day of ``input.files`` through the config's product; ``on_day`` sees each day's result as it ends
    (in the order the days end)."""
    from oco_l3.pipeline import batches_from_files

    batches = batches_from_files(config)
    report = on_day or (lambda result: None)
    if config.max_workers <= 1 or len(batches) <= 1:
        results = []
        for b in batches:
            results.append(process_batch(config, b, quicklook_dir, capture_workers=config.max_workers))
            report(results[-1])
        return results
    return _in_processes(config, batches, quicklook_dir, report)


def _in_processes(config: RunConfig, batches: Sequence[DayBatch], quicklook_dir: str | None,
                  report: Callable[[DayResult], None]) -> list[DayResult]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("fork")
    workers = min(config.max_workers, len(batches))
    n = len(batches)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_forget_inherited_pools) as pool:
        results = list(pool.map(process_batch, [config] * n, batches, [quicklook_dir] * n))
    for r in results:
        report(r)
    return results


def _forget_inherited_pools() -> None:
    """In a forked worker: drop thread pools inherited from the parent (their threads did not survive the fork),
    so that dask (used by xarray reads) starts a fresh one instead of waiting forever on a dead one."""
    import sys

    threaded: Any = sys.modules.get("dask.threaded")
    if threaded is not None:
        threaded.default_pool = None
        threaded.pools.clear()
