"""The global daily product: every SAM/target capture of a day, all missions, on one global grid per QF pass.

Layout. One Zarr v2 store per QF pass at ``<root>/<naming.pre_qf|post_qf>`` (consolidated, readable with
``xr.open_zarr``), one time slice per day at 00:00 UTC. Variables carry the mission prefix of the reference product
(``OCO3_global_``, ``OCO2_global_``, ``OCO3_SIF_global_``); a variable of a source group stays in a Zarr group of that
name with the prefixed variable name inside (``Retrieval/OCO3_global_psurf``), as the reference writes it (each
mission's :attr:`~oco_l3.missions.MissionSpec.global_prefix`). Each group carries its own
``time``/``latitude``/``longitude`` coordinates.

Per-cell layers (the missions whose spec has ``global_layers``: OCO-3 and OCO-3 SIF): ``<prefix>_target_id`` (int32, fill -1) is an index into the variable's
``target_ids`` attribute (the list of target ids; an id keeps its index for the life of the store, new ids are
appended), ``<prefix>_target_type`` (int8, fill -1; 1 fossil, 2 ecostress, 3 sif, 4 volcano, 5 tccon, 6 other, the
reference's codes) and ``<prefix>_operation_mode`` (int8, fill -1; normalised Lite FP codes, 2 target, 4 SAM, of the
nearest sounding).

Captures: every SAM and target-mode run of every granule, as the reference's global mode takes them
(:func:`global_captures`): runs split and merged like :mod:`oco_l3.captures`, additionally cut at time gaps over
60 s; ids outside the target file are kept (ad-hoc target, type from the id prefix), ``none``/``Missing`` give
target id -1 with type 6 (other).

Overlaps on one day: per cell and mission, the capture whose nearest sounding is later wins (ties: the capture that
starts later). The winner's values replace all of that mission's variables in the cell, missing ones included.

Masking, QF, fill and exactness rules are those of :mod:`oco_l3.gridding` (each capture is gridded alone in its own
window, see :mod:`oco_l3.global_grid`). A mission without input on a day has no data that day: its variables are
all-fill there (:attr:`GlobalDayResult.absent`). Re-running a day replaces the whole day.

Storage (:func:`global_layout`, written by the one store writer of :mod:`oco_l3.zarr_store`). Chunks are
``(1, chunking.latitude, chunking.longitude)``: one day per chunk, so a day's objects are exactly
``<var>/<day index>/...`` (``dimension_separator`` ``/``). Only chunks that hold data are written; replacing a day
deletes the old day's chunks (listed under ``<var>/<i>/`` only); inserting a day before the last moves the later
days' chunk objects by one index as raw bytes (cost grows with the days after the insertion point, not with the
grid). Zarr v2 or v3 (``output.format``).

COGs (``output.cog``, :func:`export_global_cogs`): after each QF store is committed, one sparse COG per variable
with data that day (:mod:`oco_l3.sparse_cog`, built from the canvas tiles, never the whole grid), named by
:func:`global_cog_name`.

Modules: ``_names`` (variable names, layers), ``captures`` (a granule's captures on the global grid), ``canvas``
(one day and QF pass composed), ``store`` (the commit through the one store writer), ``cogs`` (the sparse COGs);
this module runs a day (:func:`process_global_day`) and keeps every public name at its old import path.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from oco_l3.errors import GlobalDayBlocked, classify
from oco_l3.global_product._names import (
    COORDS,
    LAYER_FILL,
    LAYER_MISSIONS,
    PREFIX,
    QF,
    TYPE_CODES,
    layer_keys,
    output_key,
)
from oco_l3.global_product.canvas import DayCanvas, compose_day
from oco_l3.global_product.captures import (
    MAX_GAP_NS,
    GlobalCaptureProduct,
    GlobalCaptureRef,
    GlobalGranuleProducts,
    global_captures,
    grid_granule_global,
    product_chunks,
    product_grid,
)
from oco_l3.global_product.cogs import (
    _export_and_catalogue,
    canvas_raster,
    export_global_cogs,
    global_cog_name,
)
from oco_l3.global_product.store import (
    GlobalCommit,
    commit_global,
    commit_global_day,
    day_slab,
    expected_missions,
    global_attrs,
    global_layout,
    global_store_path,
)
from oco_l3.pipeline import DayResult
from oco_l3.soundings import Mission

if TYPE_CHECKING:
    from oco_l3.config import RunConfig
    from oco_l3.pipeline import DayBatch

__all__ = [
    "COORDS", "LAYER_FILL", "LAYER_MISSIONS", "MAX_GAP_NS", "PREFIX", "QF", "TYPE_CODES", "DayCanvas",
    "GlobalCaptureProduct", "GlobalCaptureRef", "GlobalCommit", "GlobalDayResult", "GlobalGranuleProducts",
    "canvas_raster", "commit_global", "commit_global_day", "compose_day", "day_slab", "expected_missions",
    "export_global_cogs", "global_attrs", "global_captures", "global_cog_name", "global_layout",
    "global_store_path", "grid_granule_global", "layer_keys", "output_key", "process_global_day", "product_chunks",
    "product_grid", "run_global", "run_global_day",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GlobalDayResult(DayResult):
    """One day of the global product: a :class:`~oco_l3.pipeline.DayResult` that also says which expected missions
    had no readable granule (``absent``: all-fill in the stores that day)."""

    absent: tuple[Mission, ...] = ()
    missions: tuple[Mission, ...] = ()
    n_captures: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return {**super().counts, "captures": self.n_captures, "absent_missions": len(self.absent)}


def _day_of(batch: DayBatch, products: Sequence[GlobalGranuleProducts]) -> dt.date | None:
    if batch.day is not None:
        return batch.day
    firsts = [p.first_time for p in products if p.first_time is not None]
    if not firsts:
        return None
    return dt.date.fromisoformat(str(min(firsts).astype("datetime64[D]")))


def process_global_day(config: RunConfig, batch: DayBatch) -> GlobalDayResult:
    """Grid every granule of the day onto the global grid and commit both QF stores.

    A granule that fails permanently (corrupt, wrong schema; :func:`oco_l3.errors.classify`) is recorded and its
    mission has no data that day (reported in ``absent``); the day is still written. A failure a retry may cure
    (a granule's read or a commit) raises :class:`GlobalDayBlocked` at once and leaves the stored day untouched, so
    a good day is never overwritten by a partial one and the orchestration's retries can fire. A day where no
    granule could be read, or whose date is unknown, is not written and every granule is recorded as failed.
    """
    from oco_l3.pipeline import InputOutcome

    timings: dict[str, float] = {}
    products: list[GlobalGranuleProducts] = []
    failed: dict[Any, str] = {}
    for g in batch.granules:
        try:
            gp = grid_granule_global(config, g)
        except Exception as exc:  # noqa: BLE001 - classified: transient stops the day, permanent is recorded
            verdict = _blocking_or_recorded(exc, f"global day {batch.day or '(unknown)'} not written: {g.name}")
            log.debug("error on %s", g.name, exc_info=True)
            failed[g] = f"{g.name}: {verdict}"
            continue
        products.append(gp)
        for k, v in gp.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    missions = expected_missions(config)
    present = {gp.granule.mission for gp in products}
    absent = tuple(m for m in missions if m not in present)
    day = _day_of(batch, products)
    captures = [c for gp in products for c in gp.captures]
    stores: list[str] = []
    cogs: list[str] = []
    if day is None or not products:
        reason = "the day of the global product is unknown" if day is None else \
            "global day not written: no granule could be read"
        for g in batch.granules:
            failed.setdefault(g, f"{g.name}: {reason}")
    else:
        qfs: tuple[QF, QF] = ("pre", "post")
        for qf in qfs:
            t0 = time.perf_counter()
            canvas = compose_day(product_grid(config), product_chunks(config), captures, qf)
            try:
                stores.append(commit_global(config, day, captures, qf, canvas).store_path)
            except Exception as exc:  # noqa: BLE001 - classified: transient raises, permanent is recorded
                verdict = _blocking_or_recorded(exc, f"global day {day}: {qf}-QF commit failed")
                log.debug("global commit failed", exc_info=True)
                for g in batch.granules:
                    failed.setdefault(g, f"{g.name}: global {qf}-QF commit failed: {verdict}")
                continue
            finally:
                timings["commit"] = timings.get("commit", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            try:  # after the store commit, as for the target product: a failed export never touches the store
                cogs += _export_and_catalogue(config, day, captures, canvas, qf)
            except Exception as exc:  # noqa: BLE001 - classified: transient raises (day redone), permanent recorded
                verdict = _blocking_or_recorded(exc, f"global day {day}: {qf}-QF COG export failed")
                log.debug("global COG export failed", exc_info=True)
                for g in batch.granules:
                    failed.setdefault(g, f"{g.name}: global {qf}-QF COG export failed: {verdict}")
            finally:
                timings["cog"] = timings.get("cog", 0.0) + time.perf_counter() - t0
            del canvas  # before the next pass composes its own: one canvas in memory at a time
    outcomes = []
    for g in batch.granules:
        if g in failed:
            outcomes.append(InputOutcome(g, False, failed[g]))
            continue
        gp = next(p for p in products if p.granule == g)
        targets = tuple(dict.fromkeys(c.target.id for c in gp.captures if c.target is not None))
        outcomes.append(InputOutcome(g, True, f"{g.name}: {len(gp.captures)} captures on the global grid",
                                     len(gp.captures), targets))
    warnings = tuple(w for gp in products for w in gp.warnings)
    return GlobalDayResult(day, tuple(outcomes), tuple(stores), tuple(cogs), warnings=warnings, timings=timings,
                           absent=absent, missions=missions, n_captures=len(captures))


def _blocking_or_recorded(exc: BaseException, where: str) -> str:
    """The permanent failure's one-line reason; a transient one raises :class:`GlobalDayBlocked` naming ``where``."""
    verdict = classify(exc)
    if verdict.transient:
        raise GlobalDayBlocked(f"{where}: {verdict.reason} (retry)") from exc
    return verdict.reason


def run_global_day(config: RunConfig, batch: DayBatch) -> GlobalDayResult:
    """:func:`process_global_day` for callers without retries of their own (``oco-l3 run``, the queue listener):
    a blocked day becomes a result whose every granule failed with the reason, marked transient."""
    from oco_l3.pipeline import InputOutcome

    try:
        return process_global_day(config, batch)
    except Exception as exc:  # noqa: BLE001 - one day's problem must not stop the other days
        verdict = classify(exc)
        log.debug("global day failed", exc_info=True)
        outcomes = tuple(InputOutcome(g, False, f"{g.name}: {verdict.reason}", transient=verdict.transient)
                         for g in batch.granules)
        return GlobalDayResult(batch.day, outcomes, missions=expected_missions(config))


def run_global(config: RunConfig) -> list[GlobalDayResult]:
    """The global product for every day of ``input.files`` (the CLI's ``output.global: true`` path)."""
    from oco_l3.pipeline import batches_from_files

    return [run_global_day(config, batch) for batch in batches_from_files(config)]
