"""Grid one capture onto its target grid: footprint mask first, then interpolation at the masked cells only.

:func:`grid_capture` makes two :class:`GriddedSlice` values, pre-QF (all soundings) and post-QF (``good`` ones).
Each pass:

1. rasterises the footprints (:mod:`oco_l3.footprints`); the post-QF mask reuses the pre-QF rasterisation;
2. triangulates the sounding centres once (:class:`~oco_l3.interpolation.PointInterpolator`);
3. evaluates all float variables in one call, by ``method``, and integer/flag variables by nearest neighbour,
   only at the cells whose centre lies inside a footprint; every other cell is missing.

Missing means NaN for floats (output float32) and the variable's ``fill`` for integers (dtype kept; a variable
without a fill gets the most negative value of its dtype, or the largest for unsigned; booleans become int8 with
fill -1). See :mod:`oco_l3.interpolation` for the NaN, convex-hull and degenerate-geometry policies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from oco_l3.errors import CaptureDegenerate
from oco_l3.footprints import EMPTY_WINDOW, FootprintIntervals, Window, footprint_intervals
from oco_l3.grids import GridSpec
from oco_l3.interpolation import METHODS, Location, Method, PointInterpolator
from oco_l3.soundings import Soundings, Variable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GriddedSlice:
    """One capture, one QF pass, on ``grid`` inside ``window`` = ``(r0, r1, c0, c1)`` (half-open, row 0 south)."""

    grid: GridSpec
    window: Window
    data: Mapping[str, np.ndarray]
    fills: Mapping[str, int]
    attrs: Mapping[str, Mapping[str, Any]]
    n_soundings: int

    @property
    def empty(self) -> bool:
        """True when no cell of the grid has data (for instance a capture outside the grid)."""
        r0, r1, c0, c1 = self.window
        return r1 <= r0 or c1 <= c0

    def full(self, key: str) -> np.ndarray:
        """The variable on the whole grid ``(n_lat, n_lon)``, missing outside the window."""
        part = self.data[key]
        missing: float | int = self.fills.get(key, np.nan)
        out = np.full(self.grid.shape, missing, dtype=part.dtype)
        r0, r1, c0, c1 = self.window
        out[r0:r1, c0:c1] = part
        return out


@dataclass(frozen=True)
class GriddedCapture:
    """Both QF passes of one capture; ``post`` is None when the capture has no good sounding."""

    pre: GriddedSlice
    post: GriddedSlice | None


def grid_capture(
    soundings: Soundings, grid: GridSpec, method: Method = "cubic", mask_scaling: float = 1.0
) -> GriddedCapture:
    """Grid the soundings of one capture, pre-QF (all) and post-QF (``good``); see the module docstring."""
    if method not in METHODS:
        raise ValueError(f"unknown interpolation method {method!r}; expected one of {METHODS}")
    n = len(soundings)
    name = f"capture of {n} {soundings.mission} soundings from {soundings.source or '<memory>'}"
    if n == 0 or not (np.isfinite(soundings.latitude) & np.isfinite(soundings.longitude)).any():
        raise CaptureDegenerate(f"{name}: no sounding with finite coordinates")
    intervals = footprint_intervals(soundings.vertex_latitude, soundings.vertex_longitude, grid, mask_scaling)
    everything = np.ones(n, dtype=bool)
    pre, nearest = _grid_pass(soundings, everything, intervals, method, f"{name} (pre-QF)", None)
    good = np.asarray(soundings.good, dtype=bool)
    post = None
    if good.any():
        post, _ = _grid_pass(soundings, good, intervals, method, f"{name} (post-QF)", nearest)
    return GriddedCapture(pre=pre, post=post)


@dataclass(frozen=True)
class _NearestMap:
    """Per cell of ``window``, the index of the nearest sounding of a pass (-1 where not computed)."""

    window: Window
    index: np.ndarray


def _grid_pass(
    soundings: Soundings,
    select: np.ndarray,
    intervals: FootprintIntervals,
    method: Method,
    name: str,
    previous: _NearestMap | None,
) -> tuple[GriddedSlice, _NearestMap | None]:
    """One QF pass: the soundings ``select`` (bool), gridded at the cells inside their footprints.

    ``previous`` is the nearest-sounding map of a pass over a superset of the soundings (pre-QF): a cell whose
    nearest sounding there is also selected here keeps it (it is still the nearest), only the others are searched.
    """
    grid = intervals.grid
    mask, window = intervals.mask(None if select.all() else select)
    n_cells = int(np.count_nonzero(mask))
    floats = [v for v in soundings.variables if not v.is_integer]
    ints = [v for v in soundings.variables if v.is_integer]
    data: dict[str, np.ndarray] = {}
    fills = {v.key: _fill(v) for v in ints}
    shape = mask.shape
    nearest_map = None
    if n_cells and (finite := _finite_points(soundings, select)).any():
        index = np.flatnonzero(select & finite)
        interp = PointInterpolator(soundings.longitude[index], soundings.latitude[index], name)
        located = interp.locate_cells(grid, window, mask)
        nearest = None
        if ints or method == "nearest":
            nearest = _nearest_soundings(interp, located, index, select & finite, mask, window, previous)
            nearest_map = _NearestMap(window, _scatter(mask, nearest, -1))
        if floats:
            if method == "nearest" and nearest is not None:
                result = np.column_stack([v.values[nearest] for v in floats]).astype(np.float32)
            else:
                stack = np.column_stack([v.values[index] for v in floats])
                result = interp.evaluate(stack, located, method).astype(np.float32)
            for j, v in enumerate(floats):
                data[v.key] = _scatter(mask, result[:, j], np.float32(np.nan))
        if ints and nearest is not None:
            for v in ints:
                data[v.key] = _scatter(mask, _as_output_int(v)[nearest], fills[v.key])
    for v in floats:
        data.setdefault(v.key, np.full(shape, np.nan, dtype=np.float32))
    for v in ints:
        data.setdefault(v.key, np.full(shape, fills[v.key], dtype=_as_output_int(v).dtype))
    if not n_cells:
        window = EMPTY_WINDOW
        data = {k: a[:0, :0] for k, a in data.items()}
    attrs = {v.key: dict(v.attrs) for v in soundings.variables}
    log.debug("%s: %d cells in window %s", name, n_cells, window)
    return GriddedSlice(grid, window, data, fills, attrs, int(select.sum())), nearest_map


def _nearest_soundings(
    interp: PointInterpolator,
    located: Location,
    index: np.ndarray,
    usable: np.ndarray,
    mask: np.ndarray,
    window: Window,
    previous: _NearestMap | None,
) -> np.ndarray:
    """Index (into the soundings) of the nearest usable sounding of each masked cell, in ``np.nonzero`` order."""
    if previous is None:
        return index[interp.nearest_index(located)]
    rows, cols = np.nonzero(mask)
    rows = rows + window[0] - previous.window[0]
    cols = cols + window[2] - previous.window[2]
    known = np.full(rows.shape, -1, dtype=np.int64)
    ok = (rows >= 0) & (rows < previous.index.shape[0]) & (cols >= 0) & (cols < previous.index.shape[1])
    known[ok] = previous.index[rows[ok], cols[ok]]
    keep = known >= 0
    keep[keep] = usable[known[keep]]
    redo = np.flatnonzero(~keep)
    if redo.size:
        sub = Location(located.points[redo], located.simplex[redo], located.bary[redo])
        known[redo] = index[interp.nearest_index(sub)]
    return known


def _finite_points(soundings: Soundings, select: np.ndarray) -> np.ndarray:
    return select & np.isfinite(soundings.latitude) & np.isfinite(soundings.longitude)


def _scatter(mask: np.ndarray, values: np.ndarray, missing: Any) -> np.ndarray:
    out = np.full(mask.shape, missing, dtype=values.dtype)
    out[mask] = values
    return out


def _as_output_int(v: Variable) -> np.ndarray:
    """Integer values as written: booleans become int8."""
    return v.values.astype(np.int8) if v.values.dtype == np.bool_ else v.values


def _fill(v: Variable) -> int:
    """The output fill of an integer variable (see the module docstring)."""
    if v.fill is not None:
        return int(v.fill)
    if v.values.dtype == np.bool_:
        return -1
    info = np.iinfo(v.values.dtype)
    return int(info.max) if info.min == 0 else int(info.min)
