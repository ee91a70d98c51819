"""Polar grids for the ICESat-2 daily statistics: EASE-Grid 2.0 and NSIDC sea-ice polar stereographic presets.

A :class:`PolarGrid` is a regular grid in a projected CRS, described by its outer edges. Row 0 is the top
(largest y), so arrays are in GeoTIFF orientation. Definitions (see ``docs`` in ../shared/docs/formats.md §8):

* ``ease2-{north,south}-25km``: EPSG:6931 / EPSG:6932 (Lambert azimuthal equal-area, WGS84), 720 x 720 cells of
  25 km, outer edges +-9,000,000 m; ``-6.25km``: same extent, 2880 x 2880.
* ``nsidc-ps-north-25km``: EPSG:3411 (polar stereographic, lat_ts 70N, lon_0 -45, Hughes 1980 ellipsoid),
  304 (x) x 448 (y), x -3,850,000..3,750,000, y -5,350,000..5,850,000 -- the ATL20/ATL21 grid.
* ``nsidc-ps-south-25km``: EPSG:3412 (lat_ts 70S, lon_0 0, Hughes 1980), 316 x 332, x -3,950,000..3,950,000,
  y -3,950,000..4,350,000. ASSUMPTION: the standard NSIDC south 25 km extent; not verified against an ATL20
  south granule here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyproj

from oco_l3.errors import GridInvalid

MAX_CELLS_PER_SIDE = 20_000

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
        self, longitude: npt.ArrayLike, latitude: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Longitude/latitude (degrees) to grid x/y (m)."""
        x, y = _to_grid(self.crs).transform(
            np.asarray(longitude, dtype=np.float64), np.asarray(latitude, dtype=np.float64)
        )
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def cell_index(self, x: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Linear cell index ``row * nx + col`` of projected points; -1 outside the grid or non-finite."""
        xa = np.asarray(x, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
        inv = 1.0 / self.resolution
        col = (xa - self.x_min) * inv
        row = (self.y_max - ya) * inv
        ok = (col >= 0) & (col < self.nx) & (row >= 0) & (row < self.ny)  # NaN compares False
        with np.errstate(invalid="ignore"):
            linear = row.astype(np.int64) * self.nx + col.astype(np.int64)  # truncation == floor when >= 0
        return np.where(ok, linear, -1)

    def lonlat(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """2-D (ny, nx) longitude and latitude of the cell centres."""
        xx, yy = np.meshgrid(self.x, self.y)
        lon, lat = _from_grid(self.crs).transform(xx, yy)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


@functools.lru_cache(maxsize=32)
def _crs(crs: str) -> pyproj.CRS:
    return pyproj.CRS.from_user_input(crs)


@functools.lru_cache(maxsize=32)
def _to_grid(crs: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs("EPSG:4326", _crs(crs), always_xy=True)


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


def hemisphere_preset(latitude: npt.ArrayLike, family: str = "ease2", res: str = "25km") -> PolarGrid:
    """The north or south preset of a family chosen by the median latitude of the points."""
    lat = np.asarray(latitude, dtype=np.float64)
    north = bool(np.nanmedian(lat) >= 0) if np.isfinite(lat).any() else True
    return PRESETS[f"{family}-{'north' if north else 'south'}-{res}"]
