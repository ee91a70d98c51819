"""The target-focused product, one step per module: inputs -> read and split -> grid -> commit -> export.

The unit of work is one granule, :func:`process_granule`: read and split it (:mod:`oco_l3.gridded`), then grid
each capture, commit it to its two stores (:mod:`oco_l3.target_stores`, under each store's lock) and export its
COGs and quick-look (:mod:`oco_l3.exports`) as soon as it is gridded (:mod:`oco_l3._capture_work`), so at most two
captures are in memory; a small picklable :class:`GranuleResult` comes back. ``oco-l3 run`` loops over it
(:func:`process_day`, through :mod:`oco_l3.runs`); the Prefect flows run it as one task per granule over a whole
day range. The stores on the output filesystem are the hand-off between steps: gridded slices never leave the
process that gridded them. A bad capture is skipped with a one-line reason; a granule that cannot be read raises.

This module keeps the granule and day outcomes and re-exports the steps' public names (their old import path).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from oco_l3._capture_work import CaptureWritten, grid_and_write
from oco_l3._capture_work import _write_captures as _write_captures
from oco_l3.config import RunConfig
from oco_l3.errors import CaptureUnwritten, CaptureWriteBlocked, classify
from oco_l3.exports import cog_filesystem, export_cogs, quicklook_variable, write_quicklooks
from oco_l3.gridded import (
    QF,
    CaptureProduct,
    GranuleProducts,
    SplitGranule,
    grid_one,
    read_and_split,
    targets_for,
)
from oco_l3.inputs import (
    DayBatch,
    GranuleInput,
    batches_from_files,
    batches_from_items,
    granule_from_ref,
    granule_input,
    input_staging,
    open_granule,
)
from oco_l3.target_stores import (
    StoreCommit,
    commit_store,
    is_empty,
    naming,
    output_filesystem,
    plan_commits,
    slice_data,
    slice_to_write,
    store_attrs,
    store_path,
)

__all__ = [
    "QF", "CaptureProduct", "CaptureWritten", "DayBatch", "DayResult", "GranuleInput", "GranuleProducts",
    "GranuleResult", "InputOutcome", "SplitGranule", "StoreCommit", "batches_from_files", "batches_from_items",
    "cog_filesystem", "commit_store", "export_cogs", "grid_and_write", "grid_one", "granule_failure",
    "granule_from_ref", "granule_input", "input_staging", "is_empty", "naming", "open_granule",
    "output_filesystem", "plan_commits", "process_day", "process_granule", "quicklook_variable", "read_and_split",
    "slice_data", "slice_to_write", "store_attrs", "store_path", "targets_for", "write_quicklooks",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputOutcome:
    granule: GranuleInput
    ok: bool
    message: str
    captures: int = 0
    targets: tuple[str, ...] = ()
    #: The failure may go away on retry (network, throttling, a busy store lock): :func:`oco_l3.errors.classify`.
    transient: bool = False


@dataclass(frozen=True)
class DayResult:
    day: dt.date | None
    outcomes: tuple[InputOutcome, ...]
    stores: tuple[str, ...] = ()
    cogs: tuple[str, ...] = ()
    quicklooks: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def errors(self) -> list[str]:
        return [o.message for o in self.outcomes if not o.ok]

    @property
    def counts(self) -> dict[str, int]:
        return {
            "granules": len(self.outcomes),
            "failed": sum(not o.ok for o in self.outcomes),
            "captures": sum(o.captures for o in self.outcomes),
            "targets": len({t for o in self.outcomes for t in o.targets}),
            "stores": len(self.stores),
            "cogs": len(self.cogs),
        }


@dataclass(frozen=True)
class GranuleResult:
    """What processing one granule did (small and picklable: it comes back from a worker process or machine)."""

    granule: str
    captures: int = 0
    targets: tuple[str, ...] = ()
    stores: tuple[str, ...] = ()
    cogs: tuple[str, ...] = ()
    quicklooks: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def message(self) -> str:
        skipped = len(self.warnings)
        return f"{self.granule}: {self.captures} captures ({', '.join(self.targets) or 'none'}), {skipped} skipped"


def process_granule(config: RunConfig, granule: GranuleInput, quicklook_dir: str | None = None,
                    capture_workers: int = 1) -> GranuleResult:
    """Read and split one granule, then grid each capture, commit it to its two stores and export its COGs and
    quick-look as soon as it is gridded (``capture_workers`` > 1: in that many forked processes).

    Raises :class:`PermanentError` for a granule that can never be read, :class:`TransientError` when a read may
    succeed later; after every capture was tried, :class:`CaptureWriteBlocked` (retry) or :class:`CaptureUnwritten`
    when a capture could not be written (the others were). A capture that cannot be gridded is skipped with a
    warning. Re-running a granule replaces its slices (the upsert is keyed by capture time).
    """
    t0 = time.perf_counter()
    split = read_and_split(config, granule)
    written = _write_captures(config, split, quicklook_dir, capture_workers)
    errors = [w for w in written if w.error]
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        permanent = [w for w in errors if not w.transient]
        raise (CaptureUnwritten(f"{permanent[0].error}{more}") if permanent
               else CaptureWriteBlocked(f"{errors[0].error}{more}"))
    timings = dict(split.timings)
    for w in written:
        for k, v in w.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    done = [w for w in written if not w.skipped]
    result = GranuleResult(
        granule.name, len(done), tuple(dict.fromkeys(w.target_id for w in done)),
        tuple(dict.fromkeys(s for w in written for s in w.stores)), tuple(c for w in written for c in w.cogs),
        tuple(q for w in written for q in w.quicklooks), split.warnings + tuple(str(w.skipped) for w in written
                                                                               if w.skipped),
        timings, time.perf_counter() - t0)
    log.info("%s in %.2f s", result.message, result.seconds)
    return result


def process_day(config: RunConfig, batch: DayBatch, quicklook_dir: str | None = None,
                capture_workers: int = 1) -> DayResult:
    """:func:`process_granule` for every granule of the day, one after the other (memory stays at two captures'
    slices per process); each granule's outcome is one line and a failed granule never stops the others."""
    results: dict[GranuleInput, GranuleResult] = {}
    failed: dict[GranuleInput, tuple[str, bool]] = {}
    for g in batch.granules:
        try:
            results[g] = process_granule(config, g, quicklook_dir, capture_workers)
        except Exception as exc:  # noqa: BLE001 - an unreadable granule must not stop the others
            log.debug("error on %s", g.name, exc_info=True)
            failed[g] = (granule_failure(g.name, exc), classify(exc).transient)
    outcomes = tuple(_outcome(g, results.get(g), failed.get(g)) for g in batch.granules)
    timings: dict[str, float] = {}
    for r in results.values():
        for k, v in r.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    rs = [results[g] for g in batch.granules if g in results]
    return DayResult(batch.day, outcomes, tuple(dict.fromkeys(s for r in rs for s in r.stores)),
                     tuple(c for r in rs for c in r.cogs), tuple(q for r in rs for q in r.quicklooks),
                     tuple(w for r in rs for w in r.warnings), timings)


def granule_failure(name: str, exc: BaseException) -> str:
    """The one-line reason a granule failed, starting with its name (:func:`oco_l3.errors.classify`'s reason:
    ``unexpected`` for a non-oco_l3 error)."""
    if isinstance(exc, CaptureUnwritten | CaptureWriteBlocked):  # already "<granule>: writing ... failed: ..."
        return str(exc).strip().splitlines()[0]
    return f"{name}: {classify(exc).reason}"


def _outcome(g: GranuleInput, result: GranuleResult | None, failure: tuple[str, bool] | None) -> InputOutcome:
    if result is None:
        message, transient = failure or (f"{g.name}: not processed", True)
        return InputOutcome(g, False, message, transient=transient)
    return InputOutcome(g, True, result.message, result.captures, result.targets)
