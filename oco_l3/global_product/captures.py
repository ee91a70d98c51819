"""The global product's captures: every SAM and target-mode run of a granule, gridded onto the global grid."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from oco_l3.errors import GranuleNameUnrecognised, OcoL3Error, one_line
from oco_l3.global_grid import GlobalPiece, global_grid, grid_capture_global
from oco_l3.global_product._names import QF
from oco_l3.grids import GridSpec
from oco_l3.missions import mission_spec
from oco_l3.sounding_footprints import SoundingFootprints
from oco_l3.soundings import MODE_SAM, NO_TARGET, Mission, Soundings
from oco_l3.targets import BBox, Target

if TYPE_CHECKING:
    from oco_l3.config import RunConfig
    from oco_l3.pipeline import GranuleInput

log = logging.getLogger(__name__)

#: Consecutive same-mode, same-target soundings further apart than this belong to different captures (a SAM lasts
#: about two minutes, with a sounding every 1/3 s); without a cut, two OCO-2 target overpasses hours apart with no
#: sounding between them in the file would be one capture spanning the globe.
MAX_GAP_NS = 60 * 10**9


@dataclass(frozen=True)
class GlobalCaptureProduct:
    """One capture on the global grid (both QF passes as global pieces)."""

    mission: Mission
    target: Target | None  # None: no target id (``none``/``Missing``) or a nearest-target mission (OCO-2)
    mode: str
    start_time: np.datetime64
    n_soundings: int
    granule: str
    pre: tuple[GlobalPiece, ...]
    post: tuple[GlobalPiece, ...]
    #: the soundings' footprints (the STAC day item's geometry)
    footprints: SoundingFootprints | None = None

    def pieces(self, qf: QF) -> tuple[GlobalPiece, ...]:
        return self.pre if qf == "pre" else self.post


@dataclass(frozen=True)
class GlobalGranuleProducts:
    granule: GranuleInput
    captures: tuple[GlobalCaptureProduct, ...] = ()
    warnings: tuple[str, ...] = ()
    n_soundings: int = 0
    first_time: np.datetime64 | None = None
    timings: Mapping[str, float] = field(default_factory=dict)


def product_grid(config: RunConfig) -> GridSpec:
    """The global grid of ``config`` (``grid.latitude x grid.longitude`` cells over the globe)."""
    return global_grid(config.grid.latitude, config.grid.longitude)


def product_chunks(config: RunConfig) -> tuple[int, int]:
    grid = product_grid(config)
    return (min(config.chunking.latitude, grid.n_lat), min(config.chunking.longitude, grid.n_lon))


def grid_granule_global(config: RunConfig, granule: GranuleInput) -> GlobalGranuleProducts:
    """Read one granule, split it into captures and grid each onto the global grid (both QF passes).

    Raises :class:`~oco_l3.errors.PermanentError` / :class:`~oco_l3.errors.TransientError` like
    :func:`oco_l3.pipeline.grid_granule`; a capture that cannot be gridded is skipped with a warning.
    """
    from oco_l3.gridded import targets_for
    from oco_l3.inputs import input_staging, open_granule
    from oco_l3.readers import read_granule, selection_from_config

    if granule.mission is None:
        raise GranuleNameUnrecognised(f"{granule.name}: file name follows no OCO Lite FP/SIF naming convention")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with open_granule(granule, input_staging(config)) as path:
        soundings = read_granule(path, selection_from_config(config, granule.mission), granule.mission)
    timings["read"] = time.perf_counter() - t0
    grid = product_grid(config)
    warnings: list[str] = []
    products = []
    t0 = time.perf_counter()
    for cap in global_captures(soundings, targets_for(config, granule.mission)):
        subset = soundings.take(cap.index)
        name = cap.target.id if cap.target is not None else "no target"
        try:
            gc = grid_capture_global(subset, grid, config.grid.method, config.mask_scaling)
        except OcoL3Error as exc:
            warnings.append(f"{granule.name}: skipped capture {name} at {cap.start_time}: {one_line(exc)}")
            log.warning("%s", warnings[-1])
            continue
        products.append(GlobalCaptureProduct(granule.mission, cap.target, cap.mode, cap.start_time,
                                             int(cap.index.size), granule.name, gc.pre, gc.post,
                                             SoundingFootprints.of(subset)))
    timings["grid"] = time.perf_counter() - t0
    first = soundings.time.min() if len(soundings) else None
    return GlobalGranuleProducts(granule, tuple(products), tuple(warnings), len(soundings), first, timings)


@dataclass(frozen=True)
class GlobalCaptureRef:
    """One SAM/target-mode capture for the global product (``target`` None when it has no usable id)."""

    target: Target | None
    mode: str
    start_time: np.datetime64
    index: np.ndarray


def global_captures(soundings: Soundings, targets: Mapping[str, Target]) -> list[GlobalCaptureRef]:
    """Every SAM and target-mode capture of the granule, as the reference's global mode takes them.

    Runs are split (also at time gaps), given their soundings without a target id and merged across short
    interruptions exactly as in :mod:`oco_l3.captures`, but no capture is skipped for its target: an id missing
    from the target file becomes an ad-hoc target (its type from the id prefix), ``none``/``Missing`` ids give no
    target (target-id layer -1, type ``other``). Captures of nearest-target missions (OCO-2 FP and SIF) carry no
    target (the files have no usable ids; they have no target layers).
    """
    from oco_l3.captures import absorb_unidentified, find_runs, group_runs, time_segments

    spec = mission_spec(soundings.mission)
    capture_modes, by_id = set(spec.capture_modes), spec.targets == "id"
    ids = soundings.target_id.tolist()
    segments = time_segments(soundings.time).tolist()
    keys: list[tuple[int, str, int] | None] = []
    for m, t, seg in zip(soundings.mode.tolist(), ids, segments, strict=True):
        keys.append((int(m), str(t) if by_id else "", seg) if m in capture_modes else None)
    out = []
    for (mode, tid, _), parts in group_runs(absorb_unidentified(find_runs(keys))):
        index = np.concatenate([np.arange(r.start, r.stop) for r in parts])
        for piece in _split_at_gaps(index, soundings.time):
            out.append(GlobalCaptureRef(_adhoc_target(tid, targets), "sam" if mode == MODE_SAM else "target",
                                        soundings.time[piece[0]], piece))
    return out


def _split_at_gaps(index: np.ndarray, times: np.ndarray) -> list[np.ndarray]:
    """``index`` cut where consecutive soundings are more than :data:`MAX_GAP` apart (separate overpasses)."""
    t = times[index].astype("datetime64[ns]").astype(np.int64)
    cuts = np.flatnonzero(np.abs(np.diff(t)) > MAX_GAP_NS) + 1
    return [part for part in np.split(index, cuts) if part.size]


def _adhoc_target(tid: str, targets: Mapping[str, Target]) -> Target | None:
    if tid in targets:
        return targets[tid]
    clean = "".join(ch for ch in tid.strip() if ch.isprintable())[:128]
    if not clean or clean in NO_TARGET:
        return None
    return Target(clean, clean, 0.0, 0.0, BBox(-180.0, -90.0, 180.0, 90.0))
