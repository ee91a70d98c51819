"""Regular latitude/longitude grids with cell-centre coordinates.

A :class:`GridSpec` tiles a bbox with ``n_lat x n_lon`` equal cells; coordinates are the cell centres, ascending.
Row ``i`` of an array on the grid is latitude ``latitude[i]`` (south first); writers that need north-up flip.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from oco_l3.errors import GridInvalid
from oco_l3.targets import BBox

#: Upper bound on cells per side, to protect memory (the global product's 36000 cells is the largest use).
MAX_CELLS_PER_SIDE = 40_000
#: Upper bound on the cells of one target grid (8000 x 8000).
MAX_TARGET_CELLS = 64_000_000


@dataclass(frozen=True)
class GridSpec:
    bbox: BBox
    n_lat: int
    n_lon: int

    def __post_init__(self) -> None:
        for name, n in (("latitude", self.n_lat), ("longitude", self.n_lon)):
            if not isinstance(n, int) or not 1 <= n <= MAX_CELLS_PER_SIDE:
                raise GridInvalid(f"grid.{name} must be an integer in 1..{MAX_CELLS_PER_SIDE}, got {n!r}")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_lat, self.n_lon)

    @property
    def dlat(self) -> float:
        return (self.bbox.max_lat - self.bbox.min_lat) / self.n_lat

    @property
    def dlon(self) -> float:
        return (self.bbox.max_lon - self.bbox.min_lon) / self.n_lon

    @cached_property
    def latitude(self) -> np.ndarray:
        """Cell-centre latitudes, ascending (float64)."""
        return self.bbox.min_lat + (np.arange(self.n_lat) + 0.5) * self.dlat

    @cached_property
    def longitude(self) -> np.ndarray:
        """Cell-centre longitudes, ascending (float64)."""
        return self.bbox.min_lon + (np.arange(self.n_lon) + 0.5) * self.dlon

    def row_range(self, lat_min: float, lat_max: float) -> tuple[int, int]:
        """Half-open row range ``[r0, r1)`` of cells whose centres may lie in ``[lat_min, lat_max]``."""
        r0 = int(np.floor((lat_min - self.bbox.min_lat) / self.dlat - 0.5))
        r1 = int(np.ceil((lat_max - self.bbox.min_lat) / self.dlat - 0.5)) + 1
        return max(r0, 0), min(max(r1, 0), self.n_lat)

    def col_range(self, lon_min: float, lon_max: float) -> tuple[int, int]:
        """Half-open column range ``[c0, c1)`` of cells whose centres may lie in ``[lon_min, lon_max]``."""
        c0 = int(np.floor((lon_min - self.bbox.min_lon) / self.dlon - 0.5))
        c1 = int(np.ceil((lon_max - self.bbox.min_lon) / self.dlon - 0.5)) + 1
        return max(c0, 0), min(max(c1, 0), self.n_lon)

    def transform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL geotransform-style affine (a, b, c, d, e, f) of the north-up raster of this grid."""
        return (self.dlon, 0.0, self.bbox.min_lon, 0.0, -self.dlat, self.bbox.max_lat)


def target_grid(bbox: BBox, n_lat: int, n_lon: int) -> GridSpec:
    """The grid of one target, with the memory bound of the target-focused product."""
    if n_lat * n_lon > MAX_TARGET_CELLS:
        raise GridInvalid(f"grid {n_lat} x {n_lon} has more than {MAX_TARGET_CELLS} cells")
    return GridSpec(bbox, n_lat, n_lon)
