"""Scattered-point interpolation with one triangulation per point set, shared by every variable.

:class:`PointInterpolator` is built once from the sounding centres of one capture and one QF pass, then evaluates
all float variables of the pass in one call (``(N, k)`` values -> ``(M, k)`` results) and integer/flag variables
by nearest neighbour (never averaged). Query points are located in the triangulation once
(:meth:`PointInterpolator.locate`) and the :class:`Location` is reused by every method.

Methods. ``linear`` is barycentric interpolation on the Delaunay triangles (what ``LinearNDInterpolator`` does).
``cubic`` is the Clough-Tocher C1 cubic (the element of ``CloughTocher2DInterpolator`` /
``griddata(method="cubic")``) with locally estimated vertex gradients: a weighted least-squares fit over each
vertex's Delaunay 1-ring (a quadratic where the ring has 5 or more neighbours, else a plane), where SciPy solves a
global curvature-minimising problem. Both reproduce linear fields exactly; on curved fields the two differ
slightly (same order of accuracy; see the tests). The local fit is a fixed sparse operator per triangulation, so
all variables get their gradients in one product; the Bezier ordinates and their evaluation are vectorised over
points and variables at once. ``nearest`` is the nearest point (k-d tree, built lazily).

Coordinates. Points live in a local plane: ``x = (lon - lon0) * cos(lat0)``, ``y = lat - lat0`` around the centre
of the point set, with longitudes unwrapped to within 180 degrees of ``lon0``. This is an affine map of lon/lat, so
a field linear in lon/lat stays linear and comes back exactly under ``linear`` and ``cubic``; it makes the
triangles and the nearest-neighbour distances closer to those on the ground.

Policies.

* Outside the convex hull of the points ``linear`` and ``cubic`` return NaN; ``nearest`` returns a value anywhere.
* Missing values (NaN) never become numbers, and never poison values elsewhere: a result is NaN for a variable when
  the triangle that contains it has a vertex whose value is missing (``linear`` and ``cubic``), or when the nearest
  point's value is missing (``nearest``). For ``cubic``, a vertex's gradient is fitted on its neighbours with a
  finite value only (one operator per distinct missing pattern, cached), so a NaN never reaches a gradient.
* Degenerate point sets -- fewer than 3 points, all collinear, all duplicates -- cannot be triangulated: every
  method then falls back to nearest neighbour (logged) instead of raising. Points with non-finite coordinates are
  ignored. No finite point at all raises :class:`~oco_l3.errors.CaptureDegenerate`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from math import factorial
from typing import Literal

import numpy as np
from scipy.sparse import csr_array
from scipy.spatial import Delaunay, QhullError, cKDTree

from oco_l3.errors import CaptureDegenerate
from oco_l3.footprints import rasterise_triangles, to_index_space, unwrap_longitude
from oco_l3.grids import GridSpec

log = logging.getLogger(__name__)

Method = Literal["linear", "cubic", "nearest"]
METHODS: tuple[Method, ...] = ("linear", "cubic", "nearest")

#: Points per block when evaluating the cubic, to keep the gathered ordinates in cache.
_BLOCK = 8192


@dataclass(frozen=True)
class Location:
    """Query points located in a triangulation: plane coordinates, containing triangle (-1 outside, or all -1 when
    there is no triangulation) and barycentric coordinates ``(M, 3)``."""

    points: np.ndarray
    simplex: np.ndarray
    bary: np.ndarray

    @property
    def inside(self) -> np.ndarray:
        return self.simplex >= 0


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
        self.lonlat = np.column_stack([lon_v, lat[self.valid]])
        self.points = self.to_plane(self.lonlat)
        self.tri = _triangulate(self.points, name)
        self._operators: dict[bytes, _GradientOperator] = {}

    @property
    def degenerate(self) -> bool:
        """True when the points could not be triangulated (every method is then nearest neighbour)."""
        return self.tri is None

    def to_plane(self, lonlat: np.ndarray) -> np.ndarray:
        """``(M, 2)`` lon/lat degrees -> local plane coordinates (see the module docstring)."""
        lon = unwrap_longitude(np.asarray(lonlat[:, 0], dtype=float), self.lon0)
        x = (lon - self.lon0) * np.cos(np.deg2rad(self.lat0))
        return np.column_stack([x, np.asarray(lonlat[:, 1], dtype=float) - self.lat0])

    def locate(self, xi: np.ndarray | Location) -> Location:
        """Locate ``(M, 2)`` lon/lat query points once, for any number of evaluations."""
        if isinstance(xi, Location):
            return xi
        pts = self.to_plane(np.asarray(xi, dtype=float).reshape(-1, 2))
        if self.tri is None:
            return Location(pts, np.full(pts.shape[0], -1, dtype=np.intp), np.zeros((pts.shape[0], 3)))
        simplex = np.asarray(self.tri.find_simplex(pts), dtype=np.intp)
        return Location(pts, simplex, _barycentric(self._affine, np.maximum(simplex, 0), pts))

    def locate_cells(self, grid: GridSpec, window: tuple[int, int, int, int], mask: np.ndarray) -> Location:
        """Locate the centres of the cells ``mask`` (window-shaped, ``window`` = r0, r1, c0, c1) of ``grid``.

        Same result as :meth:`locate` on those centres, but the triangles are rasterised onto the window
        (:func:`~oco_l3.footprints.rasterise_triangles`) instead of searched cell by cell. Cells on a shared edge
        go to either triangle (the interpolants agree there).
        """
        r0, _, c0, _ = window
        rows, cols = np.nonzero(mask)
        pts = self.to_plane(np.column_stack([grid.longitude[c0 + cols], grid.latitude[r0 + rows]]))
        if self.tri is None or rows.size == 0:
            return Location(pts, np.full(rows.size, -1, dtype=np.intp), np.zeros((rows.size, 3)))
        x, y = to_index_space(self.lonlat[:, 1], self.lonlat[:, 0], grid)
        corners = self.tri.simplices
        tri_id, row, col0, col1 = rasterise_triangles(x[corners] - c0, y[corners] - r0, mask.shape)
        owner = np.full(mask.shape, -1, dtype=np.intp)
        length = col1 - col0 + 1
        start = row * mask.shape[1] + col0
        offsets = np.cumsum(length) - length
        flat = np.repeat(start - offsets, length) + np.arange(int(length.sum()), dtype=np.int64)
        owner.reshape(-1)[flat] = np.repeat(tri_id, length)
        simplex = owner[rows, cols]
        return Location(pts, simplex, _barycentric(self._affine, np.maximum(simplex, 0), pts))

    def evaluate(self, values: np.ndarray, xi: np.ndarray | Location, method: Method = "cubic") -> np.ndarray:
        """Interpolate ``(N, k)`` float ``values`` (NaN = missing) at lon/lat ``xi``; float64 ``(M, k)``."""
        if method not in METHODS:
            raise ValueError(f"unknown interpolation method {method!r}; expected one of {METHODS}")
        vals = self._own(values).astype(float, copy=False)
        loc = self.locate(xi)
        m = loc.points.shape[0]
        if vals.shape[1] == 0 or m == 0:
            return np.full((m, vals.shape[1]), np.nan)
        if method == "nearest" or self.tri is None:
            return vals[self._nearest(loc)]
        out = np.full((m, vals.shape[1]), np.nan)
        inside = np.flatnonzero(loc.inside)
        if inside.size == 0:
            return out
        simplex, bary = loc.simplex[inside], loc.bary[inside]
        if method == "linear":
            corners = self.tri.simplices[simplex]
            out[inside] = sum(bary[:, j, None] * vals[corners[:, j]] for j in range(3))
        else:
            out[inside] = self._cubic(vals, simplex, bary)
        return out

    def nearest(self, values: np.ndarray, xi: np.ndarray | Location) -> np.ndarray:
        """The value of the nearest point, any dtype, ``(N, k)`` -> ``(M, k)`` (for integer and flag variables)."""
        return self._own(values)[self._nearest(self.locate(xi))]

    def nearest_index(self, xi: np.ndarray | Location) -> np.ndarray:
        """Index (into the input points) of the nearest point to each lon/lat location."""
        return np.flatnonzero(self.valid)[self._nearest(self.locate(xi))]

    # --- internals ---------------------------------------------------------------------------------------
    def _own(self, values: np.ndarray) -> np.ndarray:
        vals = np.asarray(values)
        if vals.ndim == 1:
            vals = vals[:, None]
        if vals.shape[0] != self.n_input:
            raise ValueError(f"{self.name}: expected values for {self.n_input} points, got {vals.shape[0]}")
        return vals if self.valid.all() else vals[self.valid]

    @cached_property
    def _kdtree(self) -> cKDTree:
        return cKDTree(self.points)

    def _nearest(self, loc: Location) -> np.ndarray:
        """Index (into the valid points) of the nearest point of each located query point (k-d tree, exact)."""
        return np.asarray(self._kdtree.query(loc.points)[1], dtype=np.intp)

    def _cubic(self, vals: np.ndarray, simplex: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """Clough-Tocher at located points (all inside), NaN where a corner value is missing."""
        assert self.tri is not None
        finite = np.isfinite(vals)
        filled = vals if finite.all() else np.where(finite, vals, 0.0)
        grad = np.empty(vals.shape + (2,))
        for columns in _group_columns(finite).values():
            grad[:, columns] = self._gradients(finite[:, columns[0]]).apply(filled[:, columns])
        ordinates = _ct_ordinates(self.tri, self._shape_factors, filled, grad)
        out = _ct_evaluate(ordinates, simplex, bary)
        if not finite.all():
            bad = (~finite[self.tri.simplices]).any(axis=1)  # (T, k): a corner value is missing
            out[bad[simplex]] = np.nan
        return out

    def _gradients(self, keep: np.ndarray) -> _GradientOperator:
        """The gradient operator for vertices ``keep`` with a finite value (cached per pattern)."""
        assert self.tri is not None
        key = b"" if keep.all() else np.packbits(keep).tobytes()
        if key not in self._operators:
            self._operators[key] = _gradient_operator(self.tri, None if key == b"" else keep)
        return self._operators[key]

    @cached_property
    def _affine(self) -> np.ndarray:
        """``(T, 6)`` per triangle: the 2x2 map from ``p - p2`` to barycentrics (b0, b1), then ``p2``."""
        assert self.tri is not None
        return _affine_maps(self.tri)

    @cached_property
    def _shape_factors(self) -> np.ndarray:
        """Per triangle and edge (opposite vertex k), the affine-invariant cross-boundary direction factor."""
        assert self.tri is not None
        return _edge_factors(self.tri, self._affine)


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
    if finite.all():
        return {b"": list(range(finite.shape[1]))}
    groups: dict[bytes, list[int]] = {}
    for j in range(finite.shape[1]):
        groups.setdefault(np.packbits(finite[:, j]).tobytes(), []).append(j)
    return groups


@dataclass(frozen=True)
class _GradientOperator:
    """Vertex gradients as fixed weights on the 1-ring: ``grad_i = sum_j w_ij (f_j - f_i)`` over the Delaunay
    neighbours ``j`` of vertex ``i``; geometry only, so built once per triangulation (and per pattern of missing
    values) and applied to any number of variables. ``matrix`` stacks the x weights (rows ``0..N-1``) over the y
    weights (rows ``N..2N-1``); ``diagonal`` is minus each row's sum."""

    matrix: csr_array
    diagonal: np.ndarray

    def apply(self, vals: np.ndarray) -> np.ndarray:
        """``(N, k)`` vertex values -> ``(N, k, 2)`` gradients."""
        n = vals.shape[0]
        both = self.matrix @ vals + self.diagonal[:, None] * np.concatenate([vals, vals])
        return np.stack([both[:n], both[n:]], axis=2)


def _gradient_operator(tri: Delaunay, keep: np.ndarray | None) -> _GradientOperator:
    """The least-squares gradient fit over each vertex's 1-ring; ``keep`` (bool per vertex, None = all) marks the
    vertices with a usable value: edges to the others are left out.

    Weighted least squares (weight ``1 / |d|^2``) of a quadratic ``g . d + d' H d / 2`` (5 unknowns) where a vertex
    has at least 5 usable neighbours and the fit is well posed, else of a plane ``g . d`` (2 unknowns); both
    reproduce linear fields exactly. Coordinates are scaled by each ring's mean edge length for conditioning.
    """
    indptr, neighbour = tri.vertex_neighbor_vertices
    n = indptr.shape[0] - 1
    owner = np.repeat(np.arange(n), np.diff(indptr))
    d = tri.points[neighbour] - tri.points[owner]
    usable = np.ones(owner.shape[0]) if keep is None else (keep[owner] & keep[neighbour]).astype(float)
    count = np.bincount(owner, usable, minlength=n)
    scale = np.bincount(owner, usable * np.hypot(d[:, 0], d[:, 1]), minlength=n) / np.maximum(count, 1)
    scale = np.where(scale > 0, scale, 1.0)
    ux, uy = d[:, 0] / scale[owner], d[:, 1] / scale[owner]
    weight = usable / np.maximum(ux * ux + uy * uy, 1e-300)
    x = (ux, uy, 0.5 * ux * ux, ux * uy, 0.5 * uy * uy)
    wx = [weight * xi for xi in x]
    normal = np.empty((n, 5, 5))
    for i in range(5):
        for j in range(i, 5):
            normal[:, i, j] = normal[:, j, i] = np.bincount(owner, wx[i] * x[j], minlength=n)
    cx, cy = np.zeros(owner.shape[0]), np.zeros(owner.shape[0])
    quad = count >= 5
    if quad.any():
        rows, ok = _inverse_rows(normal[quad], 2)
        full = np.zeros((n, 2, 5))
        full[quad] = rows
        quad[quad] = ok
        r = full[owner]
        cx = sum((r[:, 0, i] * wx[i] for i in range(5)), cx)
        cy = sum((r[:, 1, i] * wx[i] for i in range(5)), cy)
    a, b, c = normal[:, 0, 0], normal[:, 0, 1], normal[:, 1, 1]
    det = a * c - b * b
    det = np.where(det > 1e-12 * a * c, det, np.inf)[owner]  # no plane fit either: zero gradient
    plane = ~quad[owner]
    a, b, c = a[owner], b[owner], c[owner]
    cx = np.where(plane, (c * wx[0] - b * wx[1]) / det, cx) / scale[owner]
    cy = np.where(plane, (a * wx[1] - b * wx[0]) / det, cy) / scale[owner]
    e = owner.shape[0]
    matrix = csr_array(
        (np.concatenate([cx, cy]), np.concatenate([neighbour, neighbour]), np.concatenate([indptr, indptr[1:] + e])),
        shape=(2 * n, n),
    )
    diagonal = -np.concatenate([np.bincount(owner, cx, minlength=n), np.bincount(owner, cy, minlength=n)])
    return _GradientOperator(matrix, diagonal)


def _inverse_rows(normal: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``rows`` rows of the inverses of symmetric ``(N, m, m)`` matrices, by a Cholesky factorisation
    vectorised over N (NumPy's batched inverse costs several times more for many small matrices), and whether
    each matrix is positive definite and well conditioned (pivot / diagonal > 1e-9); rows of others are zero."""
    n, m, _ = normal.shape
    low = np.zeros_like(normal)
    ok = np.ones(n, dtype=bool)
    for j in range(m):
        pivot = normal[:, j, j] - np.einsum("nk,nk->n", low[:, j, :j], low[:, j, :j])
        ok &= pivot > 1e-9 * normal[:, j, j]
        low[:, j, j] = np.sqrt(np.where(ok, pivot, 1.0))
        for i in range(j + 1, m):
            dot = np.einsum("nk,nk->n", low[:, i, :j], low[:, j, :j])
            low[:, i, j] = (normal[:, i, j] - dot) / low[:, j, j]
    out = np.zeros((n, rows, m))
    for r in range(rows):
        y = np.zeros((n, m))  # L y = e_r
        for i in range(r, m):
            y[:, i] = ((i == r) - np.einsum("nk,nk->n", low[:, i, r:i], y[:, r:i])) / low[:, i, i]
        for i in range(m - 1, -1, -1):  # L' z = y
            out[:, r, i] = (y[:, i] - np.einsum("nk,nk->n", low[:, i + 1 :, i], out[:, r, i + 1 :])) / low[:, i, i]
    out[~ok] = 0.0
    return out, ok


def _affine_maps(tri: Delaunay) -> np.ndarray:
    """``(T, 6)`` rows ``a00 a01 a10 a11 x2 y2`` with ``(b0, b1) = A (p - p2)`` in each triangle."""
    p = tri.points[tri.simplices]
    x0, y0 = p[:, 0, 0] - p[:, 2, 0], p[:, 0, 1] - p[:, 2, 1]
    x1, y1 = p[:, 1, 0] - p[:, 2, 0], p[:, 1, 1] - p[:, 2, 1]
    det = x0 * y1 - x1 * y0
    det = np.where(det != 0, det, np.inf)  # degenerate sliver: barycentrics (0, 0, 1), never divided by zero
    return np.column_stack([y1 / det, -x1 / det, -y0 / det, x0 / det, p[:, 2, 0], p[:, 2, 1]])


def _barycentric(affine: np.ndarray, simplex: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``(M, 3)`` barycentric coordinates of ``pts`` in triangles ``simplex``."""
    t = affine[simplex]
    dx = pts[:, 0] - t[:, 4]
    dy = pts[:, 1] - t[:, 5]
    b0 = t[:, 0] * dx + t[:, 1] * dy
    b1 = t[:, 2] * dx + t[:, 3] * dy
    return np.column_stack([b0, b1, 1.0 - b0 - b1])


def _edge_factors(tri: Delaunay, affine: np.ndarray) -> np.ndarray:
    """``(T, 3)`` factors fixing, per edge, the direction in which the cubic's cross-boundary derivative is linear.

    The direction is from this triangle's centroid to the neighbour's (the affine-invariant choice), written in
    barycentric coordinates of this triangle; edges on the hull use the centroid direction (-2/3).
    """
    neighbours = tri.neighbors
    centroids = tri.points[tri.simplices].mean(axis=1)
    factors = np.full(neighbours.shape, -2.0 / 3.0)
    for k in range(3):
        has = neighbours[:, k] >= 0
        t = np.flatnonzero(has)
        c = _barycentric(affine, t, centroids[neighbours[t, k]])
        a, b = c[:, (k + 1) % 3], c[:, (k + 2) % 3]
        factors[t, k] = (2 * b + a - 1) / (2 - 3 * b - 3 * a)
    return factors


#: Exponents of the 10 cubic terms on one Clough-Tocher sub-triangle, over (u, v, w) = (the two barycentric
#: coordinates other than the smallest one, minus it; three times the smallest one), and their multinomials.
_TERMS = ((3, 0, 0), (0, 3, 0), (0, 0, 3), (2, 1, 0), (2, 0, 1), (1, 2, 0), (0, 2, 1), (1, 0, 2), (0, 1, 2), (1, 1, 1))
_MULTINOMIAL = np.array([6 // (factorial(a) * factorial(b) * factorial(c)) for a, b, c in _TERMS], dtype=float)


def _ordinate_names() -> np.ndarray:
    """``(3, 10)`` names (4-digit exponent strings) of the ordinates used on the sub-triangle opposite vertex q."""
    names = []
    for q in range(3):
        others = [i for i in range(3) if i != q]
        row = []
        for a, b, c in _TERMS:
            e = [0, 0, 0, c]
            e[others[0]], e[others[1]] = a, b
            row.append("".join(map(str, e)))
        names.append(row)
    return np.array(names)


_NAMES = _ordinate_names()


def _ct_ordinates(tri: Delaunay, factors: np.ndarray, vals: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Bezier ordinates ``(T * 3, 10, k)`` of the Clough-Tocher macro-element, rows ``3 * triangle + q``."""
    p = tri.points[tri.simplices]  # (T, 3, 2)
    f = vals[tri.simplices]  # (T, 3, k)
    g = grad[tri.simplices]  # (T, 3, k, 2)
    edge = {(i, j): p[:, j] - p[:, i] for i in range(3) for j in range(3) if i != j}

    def slope(i: int, j: int) -> np.ndarray:  # derivative at vertex i along the edge towards j
        e = edge[(i, j)]
        return g[:, i, :, 0] * e[:, 0, None] + g[:, i, :, 1] * e[:, 1, None]

    c: dict[str, np.ndarray] = {"3000": f[:, 0], "0300": f[:, 1], "0030": f[:, 2]}
    c["2100"] = (slope(0, 1) + 3 * c["3000"]) / 3
    c["2010"] = (slope(0, 2) + 3 * c["3000"]) / 3
    c["1200"] = (slope(1, 0) + 3 * c["0300"]) / 3
    c["0210"] = (slope(1, 2) + 3 * c["0300"]) / 3
    c["1020"] = (slope(2, 0) + 3 * c["0030"]) / 3
    c["0120"] = (slope(2, 1) + 3 * c["0030"]) / 3
    c["2001"] = (c["2100"] + c["2010"] + c["3000"]) / 3
    c["0201"] = (c["1200"] + c["0300"] + c["0210"]) / 3
    c["0021"] = (c["1020"] + c["0120"] + c["0030"]) / 3
    g1, g2, g3 = (factors[:, k, None] for k in range(3))
    c["0111"] = (g1 * (-c["0300"] + 3 * c["0210"] - 3 * c["0120"] + c["0030"])
                 + (-c["0300"] + 2 * c["0210"] - c["0120"] + c["0021"] + c["0201"])) / 2  # fmt: skip
    c["1011"] = (g2 * (-c["0030"] + 3 * c["1020"] - 3 * c["2010"] + c["3000"])
                 + (-c["0030"] + 2 * c["1020"] - c["2010"] + c["2001"] + c["0021"])) / 2  # fmt: skip
    c["1101"] = (g3 * (-c["3000"] + 3 * c["2100"] - 3 * c["1200"] + c["0300"])
                 + (-c["3000"] + 2 * c["2100"] - c["1200"] + c["2001"] + c["0201"])) / 2  # fmt: skip
    c["1002"] = (c["1101"] + c["1011"] + c["2001"]) / 3
    c["0102"] = (c["1101"] + c["0111"] + c["0201"]) / 3
    c["0012"] = (c["1011"] + c["0111"] + c["0021"]) / 3
    c["0003"] = (c["1002"] + c["0102"] + c["0012"]) / 3
    return np.stack([c[name] for name in _NAMES.ravel()], axis=1).reshape(p.shape[0] * 3, 10, vals.shape[1])


def _ct_evaluate(ordinates: np.ndarray, simplex: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Evaluate the cubic at barycentric ``bary`` in triangles ``simplex``; ``(M, k)``."""
    out = np.empty((bary.shape[0], ordinates.shape[2]))
    for start in range(0, bary.shape[0], _BLOCK):
        part = slice(start, start + _BLOCK)
        b0, b1, b2 = bary[part].T
        q = bary[part].argmin(axis=1)
        low = np.minimum(np.minimum(b0, b1), b2)
        u = np.where(q == 0, b1, b0) - low  # the two coordinates other than the smallest, in vertex order
        v = np.where(q == 2, b1, b2) - low
        basis = _cubic_basis(u, v, 3 * low)
        rows = ordinates[simplex[part] * 3 + q]
        out[part] = np.matmul(basis[:, None, :], rows)[:, 0]
    return out


def _cubic_basis(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(M, 10)`` Bernstein basis of :data:`_TERMS` (multinomials included) at (u, v, w)."""
    pu = (1.0, u, u * u, u * u * u)
    pv = (1.0, v, v * v, v * v * v)
    pw = (1.0, w, w * w, w * w * w)
    basis = np.empty((u.shape[0], 10))
    for j, (a, b, c) in enumerate(_TERMS):
        basis[:, j] = _MULTINOMIAL[j] * pu[a] * pv[b] * pw[c]
    return basis
