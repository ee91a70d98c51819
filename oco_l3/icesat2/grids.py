"""Polar grids for the ICESat-2 daily statistics: EASE-Grid 2.0 and NSIDC sea-ice polar stereographic presets.

A :class:`PolarGrid` is a regular grid in a projected CRS, described by its outer edges. Row 0 is the top
(largest y), so arrays are in GeoTIFF orientation. Definitions (see ``docs`` in ../shared/docs/formats.md §8):

* ``ease2-{north,south}-25km``: EPSG:6931 / EPSG:6932 (Lambert azimuthal equal-area, WGS84), 720 x 720 cells of
  25 km, outer edges +-9,000,000 m; ``-6.25km``: same extent, 2880 x 2880.
* ``nsidc-ps-north-25km``: EPSG:3411 (polar stereographic, lat_ts 70N, lon_0 -45, Hughes 1980 ellipsoid),
  304 (x) x 448 (y), x -3,850,000..3,750,000, y -5,350,000..5,850,000 -- the ATL20/ATL21 grid.
* ``nsidc-ps-south-25km``: EPSG:3412 (lat_ts 70S, lon_0 0, Hughes 1980), 316 x 332, x -3,950,000..3,950,000,
  y -3,950,000..4,350,000.

Both NSIDC presets are checked (tests/test_icesat2_grids.py) against NSIDC's published polar stereographic grid
tables: shape, outer edges, the mapx definition of the south grid (map origin at column 157.5, row 173.5) and the
published latitude/longitude of the four outer corners. NSIDC publishes the same 25 km grids on the WGS 84
variants EPSG:3413/3976 (cells differ by about 1 m); the presets keep the Hughes 1980 CRSs because the ATL20/ATL21
granules declare EPSG:3411 (``crs`` variable, see formats.md section 8).
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyproj

from oco_l3.errors import GridInvalid

MAX_CELLS_PER_SIDE = 20_000
PARALLEL_MIN_POINTS = 262_144  # below this one call on the calling thread is faster than a fan-out

_PS_NORTH = "EPSG:3411"
_PS_SOUTH = "EPSG:3412"


@dataclass(frozen=True)
class PolarGrid:
    """A regular projected grid: ``nx`` x ``ny`` square cells of ``resolution`` m, left/top outer edges."""

    name: str
    crs: str
    resolution: float
    x_min: float
    y_max: float
    nx: int
    ny: int

    @property
    def x_max(self) -> float:
        return self.x_min + self.nx * self.resolution

    @property
    def y_min(self) -> float:
        return self.y_max - self.ny * self.resolution

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x_min, self.y_min, self.x_max, self.y_max)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ny, self.nx)

    @property
    def n_cells(self) -> int:
        return self.ny * self.nx

    @property
    def x(self) -> npt.NDArray[np.float64]:
        """Cell-centre x (m), increasing."""
        return np.asarray(self.x_min + (np.arange(self.nx) + 0.5) * self.resolution, dtype=np.float64)

    @property
    def y(self) -> npt.NDArray[np.float64]:
        """Cell-centre y (m), decreasing (row 0 is the top)."""
        return np.asarray(self.y_max - (np.arange(self.ny) + 0.5) * self.resolution, dtype=np.float64)

    @property
    def pyproj_crs(self) -> pyproj.CRS:
        return _crs(self.crs)

    def affine(self) -> tuple[float, float, float, float, float, float]:
        """GDAL-style geotransform coefficients (a, b, c, d, e, f) as for ``affine.Affine``."""
        return (self.resolution, 0.0, self.x_min, 0.0, -self.resolution, self.y_max)

    def project(
        self, longitude: npt.ArrayLike, latitude: npt.ArrayLike, workers: int | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Longitude/latitude (degrees) to grid x/y (m); large inputs in chunks on ``workers`` threads.

        PROJ releases the GIL and every thread uses its own transformer, so the chunks run in parallel; each
        point's result is the same as in one single call (tested bit for bit).
        """
        x, y = _owned_flat(longitude, latitude)  # contiguous float64 copies, projected in place

        def part(a: int, b: int) -> None:
            _thread_to_grid(self.crs).transform(x[a:b], y[a:b], inplace=True)

        _in_chunks(x.size, part, workers)
        shape = np.shape(longitude)
        return x.reshape(shape), y.reshape(shape)

    def cell_index(self, x: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Linear cell index ``row * nx + col`` of projected points; -1 outside the grid or non-finite."""
        xa, ya = _owned_flat(x, y)
        return self._index_inplace(xa, ya).reshape(np.shape(x))

    def cell_index_lonlat(
        self, longitude: npt.ArrayLike, latitude: npt.ArrayLike, workers: int | None = None
    ) -> npt.NDArray[np.int64]:
        """:meth:`project` and :meth:`cell_index` fused per chunk (same result, fewer temporaries, threaded)."""
        x, y = _owned_flat(longitude, latitude)
        out = np.empty(x.shape, dtype=np.int64)

        def part(a: int, b: int) -> None:
            xs, ys = x[a:b], y[a:b]
            _thread_to_grid(self.crs).transform(xs, ys, inplace=True)
            out[a:b] = self._index_inplace(xs, ys)

        _in_chunks(x.size, part, workers)
        return out.reshape(np.shape(longitude))

    def _index_inplace(self, xa: npt.NDArray[np.float64], ya: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Cell index of x/y, overwriting both with the fractional column/row (the arithmetic of the plain
        formula ``col = (x - x_min) * (1 / res)``, ``row = (y_max - y) * (1 / res)``; truncation == floor where >= 0)."""
        inv = 1.0 / self.resolution
        col = np.subtract(xa, self.x_min, out=xa)
        col *= inv
        row = np.subtract(self.y_max, ya, out=ya)
        row *= inv
        ok = col >= 0  # NaN compares False
        ok &= col < self.nx
        ok &= row >= 0
        ok &= row < self.ny
        with np.errstate(invalid="ignore"):
            linear = row.astype(np.int64)
            linear *= self.nx
            linear += col.astype(np.int64)
        linear[~ok] = -1
        return linear

    @property
    def hemisphere(self) -> str:
        """``north`` or ``south``: the hemisphere of the grid's centre point."""
        _, lat = _from_grid(self.crs).transform((self.x_min + self.x_max) / 2, (self.y_min + self.y_max) / 2)
        return "south" if float(lat) < 0 else "north"

    def lonlat(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """2-D (ny, nx) longitude and latitude of the cell centres."""
        xx, yy = np.meshgrid(self.x, self.y)
        lon, lat = _from_grid(self.crs).transform(xx, yy)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


@functools.lru_cache(maxsize=32)
def _crs(crs: str) -> pyproj.CRS:
    return pyproj.CRS.from_user_input(crs)


_local = threading.local()


def _thread_to_grid(crs: str) -> pyproj.Transformer:
    """One lon/lat -> grid transformer per thread and CRS (a transformer shared between threads serialises)."""
    cache: dict[str, pyproj.Transformer] | None = getattr(_local, "to_grid", None)
    if cache is None:
        cache = _local.to_grid = {}
    tr = cache.get(crs)
    if tr is None:
        tr = cache[crs] = pyproj.Transformer.from_crs("EPSG:4326", _crs(crs), always_xy=True)
    return tr


def default_workers() -> int:
    """Threads for projecting: the CPUs this process may use (at most 8)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


@functools.lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="icesat2-project")


def _in_chunks(n: int, part: Callable[[int, int], None], workers: int | None) -> None:
    """Run ``part(a, b)`` over ``[0, n)`` in equal contiguous chunks, one per worker thread."""
    w = default_workers() if workers is None else max(1, int(workers))
    if w == 1 or n < PARALLEL_MIN_POINTS:
        if n:
            part(0, n)
        return
    edges = np.linspace(0, n, w + 1).astype(int)
    futures = [_pool(w).submit(part, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    for f in futures:
        f.result()


def _owned_flat(
    a: npt.ArrayLike, b: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Fresh, contiguous, 1-D float64 copies of two same-shaped inputs (safe to overwrite)."""
    x = np.array(a, dtype=np.float64, order="C").reshape(-1)
    y = np.array(b, dtype=np.float64, order="C").reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"coordinate arrays differ in size: {x.size} != {y.size}")
    return x, y


@functools.lru_cache(maxsize=32)
def _from_grid(crs: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(_crs(crs), "EPSG:4326", always_xy=True)


def _ease2(name: str, epsg: int, cells: int) -> PolarGrid:
    return PolarGrid(name, f"EPSG:{epsg}", 18_000_000.0 / cells, -9_000_000.0, 9_000_000.0, cells, cells)


PRESETS: Mapping[str, PolarGrid] = {
    g.name: g
    for g in (
        _ease2("ease2-north-25km", 6931, 720),
        _ease2("ease2-south-25km", 6932, 720),
        _ease2("ease2-north-6.25km", 6931, 2880),
        _ease2("ease2-south-6.25km", 6932, 2880),
        PolarGrid("nsidc-ps-north-25km", _PS_NORTH, 25_000.0, -3_850_000.0, 5_850_000.0, 304, 448),
        PolarGrid("nsidc-ps-south-25km", _PS_SOUTH, 25_000.0, -3_950_000.0, 4_350_000.0, 316, 332),
    )
}


def custom_grid(
    crs: str, resolution: float, bounds: Sequence[float], name: str | None = None
) -> PolarGrid:
    """A grid from ``{crs, resolution, bounds: [xmin, ymin, xmax, ymax]}`` (edges snapped outward)."""
    try:
        _crs(crs)
    except pyproj.exceptions.CRSError:
        raise GridInvalid(f"grid: unknown crs {crs[:60]!r}") from None
    if len(bounds) != 4:
        raise GridInvalid("grid: bounds must be [xmin, ymin, xmax, ymax]")
    x0, y0, x1, y1 = (float(b) for b in bounds)
    if not (resolution > 0 and math.isfinite(resolution)) or not (x1 > x0 and y1 > y0):
        raise GridInvalid(f"grid: empty bounds or bad resolution ({bounds}, {resolution})")
    nx = math.ceil((x1 - x0) / resolution - 1e-9)
    ny = math.ceil((y1 - y0) / resolution - 1e-9)
    if nx > MAX_CELLS_PER_SIDE or ny > MAX_CELLS_PER_SIDE:
        raise GridInvalid(f"grid: {nx} x {ny} cells exceeds {MAX_CELLS_PER_SIDE} per side")
    label = name or f"custom-{crs.replace(':', '').lower()}-{resolution:g}m"
    return PolarGrid(label, crs, float(resolution), x0, y0 + ny * resolution, nx, ny)


def resolve_grid(spec: str | Mapping[str, Any] | PolarGrid) -> PolarGrid:
    """A preset name, a ``{crs, resolution, bounds[, name]}`` mapping or a grid -> :class:`PolarGrid`."""
    if isinstance(spec, PolarGrid):
        return spec
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise GridInvalid(f"grid: unknown preset {spec[:60]!r} (known: {', '.join(PRESETS)})")
        return PRESETS[spec]
    return custom_grid(str(spec["crs"]), float(spec["resolution"]), list(spec["bounds"]), spec.get("name"))


#: The ATL20 grids (NSIDC sea-ice polar stereographic 25 km): the sea-ice default, chosen per segment by hemisphere.
SEAICE_DEFAULT_GRIDS = ("nsidc-ps-north-25km", "nsidc-ps-south-25km")


def hemisphere_preset(latitude: npt.ArrayLike, family: str = "ease2", res: str = "25km") -> PolarGrid:
    """The north or south preset of a family chosen by the median latitude of the points."""
    lat = np.asarray(latitude, dtype=np.float64)
    north = bool(np.nanmedian(lat) >= 0) if np.isfinite(lat).any() else True
    return PRESETS[f"{family}-{'north' if north else 'south'}-{res}"]
