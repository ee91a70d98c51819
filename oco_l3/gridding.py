"""Grid one capture onto its target grid: footprint mask first, then interpolation at the masked cells only.

:func:`grid_capture` makes two :class:`GriddedSlice` values, pre-QF (all soundings) and post-QF (``good`` ones).
Each pass:

1. rasterises the footprints (:mod:`oco_l3.footprints`); the post-QF mask reuses the pre-QF rasterisation;
2. triangulates the sounding centres once (:class:`~oco_l3.interpolation.PointInterpolator`) and locates the
   masked cells by rasterising the triangles onto the window (grouped by triangle, no per-cell search);
   steps 2 and 3 of the two passes run side by side in two threads (``parallel``);
3. evaluates all float variables in one call, by ``method``, only at the cells whose centre lies inside a
   footprint; every other cell is missing;
4. gives integer/flag variables (and every variable under ``nearest``) the value of the nearest sounding, from a
   map of the soundings' Voronoi cells rasterised onto the window; the post-QF pass keeps the pre-QF nearest
   sounding wherever it is good and searches (k-d tree) only the other cells.

Missing means NaN for floats (output float32) and the variable's ``fill`` for integers (dtype kept; a variable
without a fill gets the most negative value of its dtype, or the largest for unsigned; booleans become int8 with
fill -1). See :mod:`oco_l3.interpolation` for the NaN, convex-hull and degenerate-geometry policies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from oco_l3.errors import CaptureDegenerate
from oco_l3.footprints import EMPTY_WINDOW, FootprintIntervals, Window, footprint_intervals
from oco_l3.grids import GridSpec
from oco_l3.interpolation import METHODS, Method, PointInterpolator
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
    soundings: Soundings,
    grid: GridSpec,
    method: Method = "cubic",
    mask_scaling: float = 1.0,
    parallel: bool = True,
) -> GriddedCapture:
    """Grid the soundings of one capture, pre-QF (all) and post-QF (``good``); see the module docstring.

    With ``parallel`` the two passes triangulate and interpolate in two threads (the work is NumPy, SciPy and
    Triangle calls on whole arrays, most of which release the GIL); the result is the same either way.
    """
    if method not in METHODS:
        raise ValueError(f"unknown interpolation method {method!r}; expected one of {METHODS}")
    n = len(soundings)
    name = f"capture of {n} {soundings.mission} soundings from {soundings.source or '<memory>'}"
    if n == 0 or not (np.isfinite(soundings.latitude) & np.isfinite(soundings.longitude)).any():
        raise CaptureDegenerate(f"{name}: no sounding with finite coordinates")
    intervals = footprint_intervals(soundings.vertex_latitude, soundings.vertex_longitude, grid, mask_scaling)
    good = np.asarray(soundings.good, dtype=bool)
    selections = [(np.ones(n, dtype=bool), f"{name} (pre-QF)")]
    if good.any():
        selections.append((good, f"{name} (post-QF)"))

    def interpolate(selection: tuple[np.ndarray, str]) -> _Pass:
        return _interpolate_pass(soundings, selection[0], intervals, method, selection[1])

    if parallel and len(selections) > 1:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="post-qf") as pool:
            post_future = pool.submit(interpolate, selections[1])
            passes = [interpolate(selections[0]), post_future.result()]
    else:
        passes = [interpolate(s) for s in selections]
    pre, nearest = _nearest_pass(soundings, passes[0], method, None)
    post = _nearest_pass(soundings, passes[1], method, nearest)[0] if len(passes) > 1 else None
    return GriddedCapture(pre=pre, post=post)


@dataclass(frozen=True)
class _NearestMap:
    """Per cell of ``window``, the index of the nearest sounding of a pass (-1 where not computed)."""

    window: Window
    index: np.ndarray


@dataclass(frozen=True)
class _Pass:
    """One QF pass after its float variables are interpolated: the soundings ``select`` (bool), their footprint
    ``mask`` on ``window`` of ``grid``, the selected soundings with finite coordinates (``index``) and their interpolator
    (None when there is nothing to interpolate), and the window-shaped arrays of every variable (``data``, the
    integer ones still all fill)."""

    name: str
    grid: GridSpec
    select: np.ndarray
    mask: np.ndarray
    window: Window
    index: np.ndarray
    interp: PointInterpolator | None
    data: dict[str, np.ndarray]
    fills: dict[str, int]


def _interpolate_pass(
    soundings: Soundings, select: np.ndarray, intervals: FootprintIntervals, method: Method, name: str
) -> _Pass:
    """The float variables (``linear``/``cubic``) of one QF pass, evaluated at the masked cells inside the
    triangulation, all in one call."""
    mask, window = intervals.mask(None if select.all() else select)
    floats = [v for v in soundings.variables if not v.is_integer]
    ints = [v for v in soundings.variables if v.is_integer]
    fills = {v.key: _fill(v) for v in ints}
    data: dict[str, np.ndarray] = {}
    for v in floats:
        data[v.key] = np.full(mask.shape, np.nan, dtype=np.float32)
    for v in ints:
        data[v.key] = np.full(mask.shape, fills[v.key], dtype=_as_output_int(v).dtype)
    index = np.flatnonzero(_finite_points(soundings, select))
    interp = None
    if mask.any() and index.size:
        interp = PointInterpolator(soundings.longitude[index], soundings.latitude[index], name)
        if floats and not (method == "nearest" or interp.degenerate):
            cells, simplex, bary = interp.cells_in_triangles(intervals.grid, window, mask)
            stack = np.column_stack([v.values[index] for v in floats])
            result = interp.interpolate(stack, simplex, bary, method, np.float32)
            for j, v in enumerate(floats):
                data[v.key].reshape(-1)[cells] = result[:, j]
    return _Pass(name, intervals.grid, select, mask, window, index, interp, data, fills)


def _nearest_pass(
    soundings: Soundings, p: _Pass, method: Method, previous: _NearestMap | None
) -> tuple[GriddedSlice, _NearestMap | None]:
    """Finish a pass: integer variables (and every variable under ``nearest`` or when the points cannot be
    triangulated) take the value of the nearest sounding, read from a map of the soundings' Voronoi cells on the
    window (:meth:`PointInterpolator.nearest_cells`).

    ``previous`` is that map from a pass over a superset of the soundings (pre-QF): a cell whose nearest sounding
    there is also selected here keeps it (it is still the nearest); only the others are searched (k-d tree).
    """
    grid, window, mask, interp, data = p.grid, p.window, p.mask, p.interp, p.data
    nearest_map = None
    if interp is not None:
        floats = [v for v in soundings.variables if not v.is_integer]
        ints = [v for v in soundings.variables if v.is_integer]
        by_nearest = ints + floats if method == "nearest" or interp.degenerate else ints
        if by_nearest:
            cells = np.flatnonzero(mask)
            if previous is None:
                full_map = p.index[interp.nearest_cells(grid, window, mask.shape)]
                nearest_map = _NearestMap(window, full_map)
                nearest = full_map.reshape(-1)[cells]
            else:
                usable = _finite_points(soundings, p.select)
                nearest = _reuse_nearest(interp, p.index, usable, grid, window, cells, mask.shape[1], previous)
            for v in by_nearest:
                values = _as_output_int(v) if v.is_integer else v.values.astype(np.float32)
                data[v.key].reshape(-1)[cells] = values[nearest]
    if not mask.any():
        window = EMPTY_WINDOW
        data = {k: a[:0, :0] for k, a in data.items()}
    attrs = {v.key: dict(v.attrs) for v in soundings.variables}
    log.debug("%s: window %s", p.name, window)
    return GriddedSlice(grid, window, data, p.fills, attrs, int(p.select.sum())), nearest_map


def _reuse_nearest(
    interp: PointInterpolator,
    index: np.ndarray,
    usable: np.ndarray,
    grid: GridSpec,
    window: Window,
    cells: np.ndarray,
    width: int,
    previous: _NearestMap,
) -> np.ndarray:
    """Index (into the soundings) of the nearest usable sounding of each window cell ``cells`` (flat)."""
    rows, cols = np.divmod(cells, width)
    prow, pcol = rows + window[0] - previous.window[0], cols + window[2] - previous.window[2]
    known = np.full(cells.shape, -1, dtype=np.int64)
    ok = (prow >= 0) & (prow < previous.index.shape[0]) & (pcol >= 0) & (pcol < previous.index.shape[1])
    known[ok] = previous.index[prow[ok], pcol[ok]]
    keep = known >= 0
    keep[keep] = usable[known[keep]]
    redo = np.flatnonzero(~keep)
    if redo.size:
        lonlat = np.column_stack([grid.longitude[window[2] + cols[redo]], grid.latitude[window[0] + rows[redo]]])
        known[redo] = index[interp.nearest_to(lonlat)]
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
