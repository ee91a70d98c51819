"""Scattered-point interpolation with one triangulation per point set, shared by every variable.

:class:`PointInterpolator` is built once from the sounding centres of one capture and one QF pass, then evaluates
all float variables of the pass in one call (``(N, k)`` values -> ``(M, k)`` results) and integer/flag variables
by nearest neighbour (never averaged).

Coordinates. Points live in a local plane: ``x = (lon - lon0) * cos(lat0)``, ``y = lat - lat0`` around the centre
of the point set, with longitudes unwrapped to within 180 degrees of ``lon0``. This is an affine map of lon/lat, so
a field linear in lon/lat stays linear and comes back exactly under ``linear`` and ``cubic``; it makes the
triangles and the nearest-neighbour distances closer to those on the ground.

Policies.

* Outside the convex hull of the points ``linear`` and ``cubic`` return NaN; ``nearest`` returns a value anywhere.
* Missing values (NaN) never become numbers, and never poison values elsewhere: a result is NaN for a variable when
  the triangle of the full triangulation that contains it has a vertex whose value is missing (``linear`` and
  ``cubic``), or when the nearest point's value is missing (``nearest``). For ``cubic``, variables whose missing
  values differ from the common case are interpolated on a triangulation of their own finite points (one per
  distinct missing pattern, cached), so the global gradient estimate of Clough-Tocher never sees a NaN.
* Degenerate point sets -- fewer than 3 points, all collinear, all duplicates -- cannot be triangulated: every
  method then falls back to nearest neighbour (logged) instead of raising. Points with non-finite coordinates are
  ignored. No finite point at all raises :class:`~oco_l3.errors.CaptureDegenerate`.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from scipy.interpolate import CloughTocher2DInterpolator, LinearNDInterpolator
from scipy.spatial import Delaunay, QhullError, cKDTree

from oco_l3.errors import CaptureDegenerate
from oco_l3.footprints import unwrap_longitude

log = logging.getLogger(__name__)

Method = Literal["linear", "cubic", "nearest"]
METHODS: tuple[Method, ...] = ("linear", "cubic", "nearest")


class PointInterpolator:
    """One point set (lon/lat degrees), triangulated once, evaluated for many variables at once."""

    def __init__(self, lon: np.ndarray, lat: np.ndarray, name: str = "points") -> None:
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        self.name = name
        self.n_input = int(lon.shape[0])
        self.valid = np.isfinite(lon) & np.isfinite(lat)
        if not self.valid.any():
            raise CaptureDegenerate(f"{name}: no sounding with finite coordinates among {self.n_input}")
        self.lat0 = float(np.mean(lat[self.valid]))
        lon_v = lon[self.valid]
        self.lon0 = float(np.mean(unwrap_longitude(lon_v, float(lon_v[0]))))
        self.points = self.to_plane(np.column_stack([lon_v, lat[self.valid]]))
        self.tri = _triangulate(self.points, name)
        self._kdtree: cKDTree | None = None
        self._subsets: dict[bytes, PointInterpolator] = {}

    @property
    def degenerate(self) -> bool:
        """True when the points could not be triangulated (every method is then nearest neighbour)."""
        return self.tri is None

    def to_plane(self, lonlat: np.ndarray) -> np.ndarray:
        """``(M, 2)`` lon/lat degrees -> local plane coordinates (see the module docstring)."""
        lon = unwrap_longitude(np.asarray(lonlat[:, 0], dtype=float), self.lon0)
        x = (lon - self.lon0) * np.cos(np.deg2rad(self.lat0))
        return np.column_stack([x, np.asarray(lonlat[:, 1], dtype=float) - self.lat0])

    def evaluate(self, values: np.ndarray, xi: np.ndarray, method: Method = "cubic") -> np.ndarray:
        """Interpolate ``(N, k)`` float ``values`` (NaN = missing) at ``(M, 2)`` lon/lat ``xi``; float64 ``(M, k)``."""
        if method not in METHODS:
            raise ValueError(f"unknown interpolation method {method!r}; expected one of {METHODS}")
        vals = self._own(values).astype(float, copy=False)
        pts = self.to_plane(np.asarray(xi, dtype=float).reshape(-1, 2))
        if vals.shape[1] == 0 or pts.shape[0] == 0:
            return np.full((pts.shape[0], vals.shape[1]), np.nan)
        if method == "nearest" or self.tri is None:
            return vals[self._nearest_index(pts)]
        if method == "linear":
            return np.asarray(LinearNDInterpolator(self.tri, vals)(pts))
        return self._cubic(vals, pts)

    def nearest(self, values: np.ndarray, xi: np.ndarray) -> np.ndarray:
        """The value of the nearest point, any dtype, ``(N, k)`` -> ``(M, k)`` (for integer and flag variables)."""
        vals = self._own(values)
        pts = self.to_plane(np.asarray(xi, dtype=float).reshape(-1, 2))
        return vals[self._nearest_index(pts)]

    def nearest_index(self, xi: np.ndarray) -> np.ndarray:
        """Index (into the input points) of the nearest point to each ``(M, 2)`` lon/lat location."""
        pts = self.to_plane(np.asarray(xi, dtype=float).reshape(-1, 2))
        return np.flatnonzero(self.valid)[self._nearest_index(pts)]

    def _own(self, values: np.ndarray) -> np.ndarray:
        vals = np.asarray(values)
        if vals.ndim == 1:
            vals = vals[:, None]
        if vals.shape[0] != self.n_input:
            raise ValueError(f"{self.name}: expected values for {self.n_input} points, got {vals.shape[0]}")
        return vals if self.valid.all() else vals[self.valid]

    def _nearest_index(self, pts: np.ndarray) -> np.ndarray:
        if self._kdtree is None:
            self._kdtree = cKDTree(self.points)
        _, index = self._kdtree.query(pts)
        return np.asarray(index, dtype=np.intp)

    def _cubic(self, vals: np.ndarray, pts: np.ndarray) -> np.ndarray:
        finite = np.isfinite(vals)
        if finite.all():
            return np.asarray(CloughTocher2DInterpolator(self.tri, vals)(pts))
        out = np.full((pts.shape[0], vals.shape[1]), np.nan)
        assert self.tri is not None
        simplex = self.tri.find_simplex(pts)
        corners = self.tri.simplices[np.maximum(simplex, 0)]
        for pattern, columns in _group_columns(finite).items():
            keep = finite[:, columns[0]]
            if keep.all():
                out[:, columns] = CloughTocher2DInterpolator(self.tri, vals[:, columns])(pts)
                continue
            touched = (simplex < 0) | ~keep[corners].all(axis=1)
            sub = self._subset(pattern, keep)
            if sub is not None and (~touched).any():
                part = sub.evaluate(vals[keep][:, columns], self._from_plane(pts[~touched]), "cubic")
                out[np.flatnonzero(~touched)[:, None], columns] = part
        return out

    def _subset(self, pattern: bytes, keep: np.ndarray) -> PointInterpolator | None:
        """The interpolator of the points whose value is finite under one missing-value pattern (cached)."""
        if not keep.any():
            return None
        if pattern not in self._subsets:
            lonlat = self._from_plane(self.points[keep])
            self._subsets[pattern] = PointInterpolator(lonlat[:, 0], lonlat[:, 1], f"{self.name} (finite subset)")
        return self._subsets[pattern]

    def _from_plane(self, pts: np.ndarray) -> np.ndarray:
        lon = pts[:, 0] / np.cos(np.deg2rad(self.lat0)) + self.lon0
        return np.column_stack([lon, pts[:, 1] + self.lat0])


def _triangulate(points: np.ndarray, name: str) -> Delaunay | None:
    """The Delaunay triangulation, or None (nearest-neighbour fallback) when the points are degenerate."""
    if points.shape[0] < 3:
        log.info("%s: %d point(s) cannot be triangulated; using nearest neighbour", name, points.shape[0])
        return None
    try:
        return Delaunay(points)
    except (QhullError, ValueError) as exc:
        log.info("%s: degenerate geometry (%s); using nearest neighbour", name, str(exc).strip().splitlines()[0])
        return None


def _group_columns(finite: np.ndarray) -> dict[bytes, list[int]]:
    """Columns grouped by their pattern of finite values (key: the packed pattern)."""
    groups: dict[bytes, list[int]] = {}
    for j in range(finite.shape[1]):
        groups.setdefault(np.packbits(finite[:, j]).tobytes(), []).append(j)
    return groups
