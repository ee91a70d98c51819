"""Captures on the global grid: each capture is gridded in its own small window, then placed into global tiles.

The global grid (:func:`global_grid`) tiles ``-180..180 x -90..90`` with ``n_lat x n_lon`` cells. A capture is never
gridded on the whole grid: :func:`grid_capture_global` builds a *local* :class:`~oco_l3.grids.GridSpec` that covers
only the capture's footprints (plus one cell), aligned with the global cells, and runs the core engine
(:func:`oco_l3.gridding.grid_capture`) on it, so a 36000 x 18000 grid costs only the capture's window.

Antimeridian. The local grid is built in the capture's own longitude frame: longitudes (centres and vertices) are
unwrapped to within 180 degrees of the capture's circular-mean longitude, the window may then extend past +-180
(extended global column indices < 0 or >= n_lon), and the window is shifted by a whole number of cells so that the
local bbox is a valid one (centred on 0). The shift is a translation in longitude, so linear fields stay linear
and come back exactly. Window columns map back to global columns modulo ``n_lon``; a window that crosses the
antimeridian becomes two :class:`GlobalPiece` values, one each side.

Poles. Rows are clipped to ``0..n_lat``: footprints reaching past +-90 are cut at the grid edge.

Every piece also carries the capture's per-cell *sounding time* (int64 microseconds, of the nearest sounding) and
*operation mode* (int8, nearest sounding, normalised Lite FP codes), computed by the engine as nearest-neighbour
integer variables; :mod:`oco_l3.global_product` uses the time to let later soundings win where captures overlap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from oco_l3.errors import CaptureDegenerate
from oco_l3.gridding import GriddedSlice, grid_capture
from oco_l3.grids import GridSpec
from oco_l3.interpolation import Method
from oco_l3.soundings import Soundings, Variable
from oco_l3.targets import BBox

log = logging.getLogger(__name__)

#: Internal per-sounding integer layers added to every capture before gridding (never written under these keys).
TIME_KEY = "oco_l3_sounding_time"
MODE_KEY = "oco_l3_operation_mode"
TIME_FILL = int(np.iinfo(np.int64).min)
MODE_FILL = -1

Window = tuple[int, int, int, int]
#: The largest extent (degrees, either direction) of one capture; a SAM is about 1 degree across. Anything larger
#: is not one capture (bad coordinates, or overpasses that were not split) and would cost a huge window.
MAX_SPAN_DEG = 20.0


def global_grid(n_lat: int, n_lon: int) -> GridSpec:
    """The global grid: ``n_lat x n_lon`` cells over -180..180, -90..90 (cell centres, ascending)."""
    return GridSpec(BBox(-180.0, -90.0, 180.0, 90.0), n_lat, n_lon)


@dataclass(frozen=True)
class GlobalPiece:
    """Part of one gridded capture pass in global cells ``window = (r0, r1, c0, c1)`` (never wrapping).

    ``data`` holds the science variables (window-shaped; floats NaN, integers ``fills``), ``time`` the per-cell
    sounding time (int64 us, :data:`TIME_FILL` outside the footprints) and ``mode`` the per-cell operation mode.
    """

    window: Window
    data: Mapping[str, np.ndarray]
    fills: Mapping[str, int]
    attrs: Mapping[str, Mapping[str, Any]]
    time: np.ndarray
    mode: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        """Cells inside at least one footprint of the capture pass."""
        return self.time != TIME_FILL


@dataclass(frozen=True)
class GlobalCapture:
    """Both QF passes of one capture as global pieces (``post`` empty when no sounding is good)."""

    pre: tuple[GlobalPiece, ...]
    post: tuple[GlobalPiece, ...]


def _circular_mean(lon: np.ndarray) -> float:
    rad = np.deg2rad(lon)
    return float(np.rad2deg(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean())))


def _unwrap(lon: np.ndarray, centre: float) -> np.ndarray:
    """Longitudes moved by multiples of 360 degrees into ``[centre - 180, centre + 180)``."""
    return (lon - centre + 180.0) % 360.0 - 180.0 + centre


def _with_layers(soundings: Soundings) -> Soundings:
    """The soundings plus the internal time and mode integer layers (nearest-neighbour gridded)."""
    t_us = soundings.time.astype("datetime64[us]").astype(np.int64)
    extra = (
        Variable("", TIME_KEY, t_us, {}, TIME_FILL),
        Variable("", MODE_KEY, np.asarray(soundings.mode, dtype=np.int8), {}, MODE_FILL),
    )
    return replace(soundings, variables=tuple(soundings.variables) + extra)


@dataclass(frozen=True)
class LocalFrame:
    """A capture's local grid: global extended columns ``c_lo..c_lo+n_cols``, rows ``r_lo..r_lo+n_rows``."""

    grid: GridSpec
    r_lo: int
    c_lo: int
    shift: float  # local longitude = unwrapped longitude - shift


def local_frame(soundings: Soundings, grid: GridSpec, scaling: float = 1.0) -> LocalFrame | None:
    """The smallest global-aligned window (in the capture's longitude frame) holding its footprints, or None."""
    vlat = np.asarray(soundings.vertex_latitude, dtype=float)
    vlon = np.asarray(soundings.vertex_longitude, dtype=float)
    ok = np.isfinite(vlat).all(axis=1) & np.isfinite(vlon).all(axis=1)
    centres = np.asarray(soundings.longitude, dtype=float)
    finite_c = centres[np.isfinite(centres)]
    if not ok.any() or finite_c.size == 0:
        return None
    centre = _circular_mean(finite_c)
    lon = _unwrap(vlon[ok], centre)
    lat = vlat[ok]
    half = 0.5 * max(scaling, 1.0) * max(float(np.ptp(lon, axis=1).max()), float(np.ptp(lat, axis=1).max()))
    lon_min, lon_max = float(lon.min()) - half, float(lon.max()) + half
    lat_min, lat_max = float(lat.min()) - half, float(lat.max()) + half
    if lon_max - lon_min > MAX_SPAN_DEG or lat_max - lat_min > MAX_SPAN_DEG:
        raise CaptureDegenerate(
            f"capture of {len(soundings)} {soundings.mission} soundings from {soundings.source or '<memory>'} spans "
            f"{lon_max - lon_min:.1f} x {lat_max - lat_min:.1f} degrees (longitude x latitude); "
            f"a SAM or target capture spans at most {MAX_SPAN_DEG:g}")
    b = grid.bbox
    c_lo = math.floor((lon_min - b.min_lon) / grid.dlon) - 1
    c_hi = math.ceil((lon_max - b.min_lon) / grid.dlon) + 1
    if c_hi - c_lo > grid.n_lon:  # wider than the globe: keep one turn around the centre
        c_mid = (c_lo + c_hi) // 2
        c_lo, c_hi = c_mid - grid.n_lon // 2, c_mid - grid.n_lon // 2 + grid.n_lon
    r_lo = max(math.floor((lat_min - b.min_lat) / grid.dlat) - 1, 0)
    r_hi = min(math.ceil((lat_max - b.min_lat) / grid.dlat) + 1, grid.n_lat)
    if r_hi <= r_lo or c_hi <= c_lo:
        return None
    n_cols, n_rows = c_hi - c_lo, r_hi - r_lo
    half_width = 0.5 * n_cols * grid.dlon  # local bbox centred on 0 keeps it inside -180..180
    shift = (b.min_lon + c_lo * grid.dlon) + half_width
    local = GridSpec(
        BBox(-half_width, b.min_lat + r_lo * grid.dlat, half_width, b.min_lat + r_hi * grid.dlat), n_rows, n_cols
    )
    return LocalFrame(local, r_lo, c_lo, shift)


def _shifted(soundings: Soundings, frame: LocalFrame, centre: float) -> Soundings:
    """The soundings' longitudes in the local frame (unwrapped around ``centre``, then translated)."""
    return replace(
        soundings,
        longitude=_unwrap(np.asarray(soundings.longitude, dtype=float), centre) - frame.shift,
        vertex_longitude=_unwrap(np.asarray(soundings.vertex_longitude, dtype=float), centre) - frame.shift,
    )


def grid_capture_global(
    soundings: Soundings, grid: GridSpec, method: Method = "linear", mask_scaling: float = 1.0
) -> GlobalCapture:
    """Grid one capture (both QF passes) onto the global ``grid``; see the module docstring."""
    frame = local_frame(soundings, grid, mask_scaling)
    if frame is None:
        return GlobalCapture((), ())
    finite = np.asarray(soundings.longitude, dtype=float)
    centre = _circular_mean(finite[np.isfinite(finite)])
    gridded = grid_capture(_shifted(_with_layers(soundings), frame, centre), frame.grid, method, mask_scaling)
    pre = place(gridded.pre, frame, grid)
    post = place(gridded.post, frame, grid) if gridded.post is not None else ()
    return GlobalCapture(pre, post)


def place(gslice: GriddedSlice, frame: LocalFrame, grid: GridSpec) -> tuple[GlobalPiece, ...]:
    """A local gridded slice as global pieces, split where the window crosses the antimeridian."""
    if gslice.empty:
        return ()
    r0, r1, c0, c1 = gslice.window
    g_r0 = frame.r_lo + r0
    g_c0 = frame.c_lo + c0  # extended column index (may be < 0 or >= n_lon)
    width = c1 - c0
    pieces = []
    start = 0
    while start < width:
        col = (g_c0 + start) % grid.n_lon
        run = min(width - start, grid.n_lon - col)
        pieces.append(_piece(gslice, (g_r0, g_r0 + (r1 - r0), col, col + run), slice(start, start + run)))
        start += run
    return tuple(p for p in pieces if p.covered.any())


def _piece(gslice: GriddedSlice, window: Window, cols: slice) -> GlobalPiece:
    data = {k: v[:, cols] for k, v in gslice.data.items() if k not in (TIME_KEY, MODE_KEY)}
    fills = {k: v for k, v in gslice.fills.items() if k not in (TIME_KEY, MODE_KEY)}
    attrs = {k: v for k, v in gslice.attrs.items() if k not in (TIME_KEY, MODE_KEY)}
    return GlobalPiece(window, data, fills, attrs, gslice.data[TIME_KEY][:, cols], gslice.data[MODE_KEY][:, cols])
