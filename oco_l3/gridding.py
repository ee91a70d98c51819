"""Grid one capture onto its target grid: footprint mask first, then interpolation at the masked cells only.

:func:`grid_capture` makes two :class:`GriddedSlice` values, pre-QF (all soundings) and post-QF (``good`` ones).
Each pass:

1. rasterises the footprints (:mod:`oco_l3.footprints`); the post-QF mask reuses the pre-QF rasterisation;
2. triangulates the sounding centres once (:class:`~oco_l3.interpolation.PointInterpolator`) and locates the
   masked cells by rasterising the triangles onto the window (grouped by triangle, no per-cell search);
   the two passes run side by side in two threads (``parallel``);
3. evaluates all float variables in one call, by ``method``, only at the cells whose centre lies inside a
   footprint; every other cell is missing;
4. gives integer/flag variables (and every variable under ``nearest``) the value of the nearest sounding, from a
   map of the soundings' Voronoi cells rasterised onto the window.

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

    With ``parallel`` the two passes run in two threads (the work is NumPy, SciPy and Triangle calls on whole
    arrays, most of which release the GIL); the result is the same either way.
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

    def grid_pass(selection: tuple[np.ndarray, str]) -> GriddedSlice:
        return _grid_pass(soundings, selection[0], intervals, method, selection[1])

    if parallel and len(selections) > 1:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="post-qf") as pool:
            post_future = pool.submit(grid_pass, selections[1])
            pre = grid_pass(selections[0])
            return GriddedCapture(pre=pre, post=post_future.result())
    slices = [grid_pass(s) for s in selections]
    return GriddedCapture(pre=slices[0], post=slices[1] if len(slices) > 1 else None)


def _grid_pass(
    soundings: Soundings, select: np.ndarray, intervals: FootprintIntervals, method: Method, name: str
) -> GriddedSlice:
    """One QF pass: the soundings ``select`` (bool), gridded at the cells inside their footprints.

    Float variables (``linear``/``cubic``) are evaluated at the masked cells inside the triangulation, all in one
    call; integer variables (and every variable under ``nearest``, or when the soundings cannot be triangulated)
    take the value of the nearest sounding, read from a map of the soundings' Voronoi cells on the window
    (:meth:`PointInterpolator.nearest_cells`).
    """
    grid = intervals.grid
    mask, window = intervals.mask(None if select.all() else select)
    floats = [v for v in soundings.variables if not v.is_integer]
    ints = [v for v in soundings.variables if v.is_integer]
    fills = {v.key: _fill(v) for v in ints}
    data: dict[str, np.ndarray] = {}
    planes = np.full((len(floats), mask.size), np.nan, dtype=np.float32)  # one block: one scatter fills them all
    for j, v in enumerate(floats):
        data[v.key] = planes[j].reshape(mask.shape)
    for v in ints:
        data[v.key] = np.full(mask.shape, fills[v.key], dtype=_as_output_int(v).dtype)
    index = np.flatnonzero(_finite_points(soundings, select))
    if mask.any() and index.size:
        interp = PointInterpolator(soundings.longitude[index], soundings.latitude[index], name)
        by_nearest = ints + floats if method == "nearest" or interp.degenerate else ints
        if by_nearest:
            cells = np.flatnonzero(mask)
            nearest = index[interp.nearest_cells(grid, window, mask.shape).reshape(-1)[cells]]
            for v in by_nearest:
                values = _as_output_int(v) if v.is_integer else v.values.astype(np.float32)
                data[v.key].reshape(-1)[cells] = values[nearest]
        if floats and not (method == "nearest" or interp.degenerate):
            cells, simplex, bary = interp.cells_in_triangles(grid, window, mask)
            stack = np.column_stack([v.values[index] for v in floats])
            planes[:, cells] = interp.interpolate(stack, simplex, bary, method, np.float32).T
    if not mask.any():
        window = EMPTY_WINDOW
        data = {k: a[:0, :0] for k, a in data.items()}
    attrs = {v.key: dict(v.attrs) for v in soundings.variables}
    log.debug("%s: window %s", name, window)
    return GriddedSlice(grid, window, data, fills, attrs, int(select.sum()))


def _finite_points(soundings: Soundings, select: np.ndarray) -> np.ndarray:
    return select & np.isfinite(soundings.latitude) & np.isfinite(soundings.longitude)


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
