"""Planar Delaunay triangulation of sounding centres, with the adjacency the interpolators need.

:func:`triangulate` returns a :class:`Triangulation` (points, triangles, neighbours, vertex 1-rings) built by
Shewchuk's Triangle (the ``triangle`` package, robust exact predicates, about 4x faster than Qhull on a capture) or,
where that package is not installed or ``OCO_L3_DELAUNAY=qhull`` is set, by Qhull through SciPy. For points in
general position both give the same (unique) Delaunay triangulation; they may differ only in how they split
cocircular points, where every split interpolates the corner values the same way along the shared circle's chords.

Degenerate inputs -- fewer than 3 distinct points, all collinear -- have no triangulation: :func:`triangulate`
raises :class:`DelaunayDegenerate` (checked before Triangle is called: it must never see them, one of them crashes
it). Duplicate points are triangulated once; the copies belong to no triangle.

:meth:`Triangulation.find_simplex` locates query points with a small bucket-grid locator of our own
(:class:`TriangleLocator`) that accepts every triangulation :func:`triangulate` returns, including hull slivers that
Triangle's exact predicates make but that are flat or even clockwise in floating point (matplotlib's trapezoid map,
used before, refused those: ``RuntimeError: Triangulation is invalid``).

Conventions (those of :class:`scipy.spatial.Delaunay`): ``neighbors[t, k]`` is the triangle opposite corner ``k`` of
triangle ``t`` (-1 on the hull); ``vertex_neighbor_vertices`` is ``(indptr, indices)``, the 1-ring of vertex ``i``
being ``indices[indptr[i]:indptr[i + 1]]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np

try:  # Triangle's licence restricts commercial redistribution: it stays optional (see the README).
    import triangle as _triangle
except ImportError:  # pragma: no cover - exercised by OCO_L3_DELAUNAY=qhull
    _triangle = None


class DelaunayDegenerate(ValueError):
    """The points have no triangulation (fewer than 3 distinct points, or all on one line)."""


@dataclass(frozen=True, eq=False)
class Triangulation:
    """A Delaunay triangulation: ``points`` ``(N, 2)``, ``simplices`` ``(T, 3)``, ``neighbors`` ``(T, 3)``."""

    points: np.ndarray
    simplices: np.ndarray
    neighbors: np.ndarray
    oriented: bool = False  # every triangle's corners in the same rotational order (Triangle: anticlockwise)

    @cached_property
    def vertex_neighbor_vertices(self) -> tuple[np.ndarray, np.ndarray]:
        """The 1-ring of every vertex as ``(indptr, indices)`` (each neighbour once)."""
        s, nb = self.simplices, self.neighbors
        # Each triangle's edges, directed; an inner edge is seen once each way (from each side, when the
        # triangles are consistently oriented), a hull edge once: add its reverse.
        src = np.concatenate([s[:, 1], s[:, 2], s[:, 0]])
        dst = np.concatenate([s[:, 2], s[:, 0], s[:, 1]])
        if not self.oriented:
            pairs = np.unique(np.concatenate([np.column_stack([src, dst]), np.column_stack([dst, src])]), axis=0)
            src, dst = pairs[:, 0], pairs[:, 1]
        else:
            hull = nb.T.reshape(-1) < 0  # edge opposite corner k of triangle t, in the same order as src/dst
            src, dst = np.concatenate([src, dst[hull]]), np.concatenate([dst, src[hull]])
        # The same stable order; NumPy radix-sorts 16-bit keys, several times faster than 32-bit ones.
        order = np.argsort(src.astype(np.uint16) if self.points.shape[0] <= 1 << 16 else src, kind="stable")
        indptr = np.zeros(self.points.shape[0] + 1, dtype=np.intp)
        np.cumsum(np.bincount(src, minlength=self.points.shape[0]), out=indptr[1:])
        return indptr, dst[order].astype(np.intp)

    def find_simplex(self, xi: np.ndarray) -> np.ndarray:
        """The triangle containing each of ``(M, 2)`` points, -1 outside the triangulation.

        A point on an edge or vertex (within a distance of :data:`EDGE_TOLERANCE` times the extent of the points)
        is in every triangle there; it gets the one it lies deepest in (ties: the lowest index), a triangle that is
        flat in floating point (a hull sliver Triangle's exact predicates accept) only when no other holds it.
        """
        xi = np.asarray(xi, dtype=float).reshape(-1, 2)
        return self._locator.find(xi)

    @cached_property
    def _locator(self) -> TriangleLocator:
        return TriangleLocator.build(self.points, self.simplices)


#: Distance (relative to the extent of the points) within which a point on an edge counts as inside.
EDGE_TOLERANCE = 1e-12
_CHUNK = 1 << 16  # query points located at once (bounds the temporaries)
_CELLS_PER_TRIANGLE = 2  # grid cells per triangle (a few candidate triangles per cell; 1-8 time alike)


@dataclass(frozen=True, eq=False)
class TriangleLocator:
    """Point location in any set of triangles: triangles bucketed by bounding box on a uniform grid of about two
    cells per triangle, and each query point tested against the triangles of its cell by its signed distances to
    their edges (inward unit normals and offsets; either orientation) and, for the sake of triangles flat in
    floating point, its bounding box (widened by the tolerance); those triangles' depth gets a penalty.

    Replaces matplotlib's trapezoid map, which needs every triangle to be non-flat in floating point and refuses
    (``RuntimeError: Triangulation is invalid``) triangulations with slivers that exact predicates accept."""

    origin: np.ndarray  # (2,) lower-left corner of the grid
    cell: float  # cell side
    shape: tuple[int, int]  # rows (y), columns (x)
    indptr: np.ndarray  # (cells + 1,): the triangles of cell c are indices[indptr[c]:indptr[c + 1]], ascending
    indices: np.ndarray
    planes: np.ndarray  # (T, 14): per triangle nx (3), ny (3), d (3), box (4: xmin xmax ymin ymax), penalty
    tol: float

    @classmethod
    def build(cls, points: np.ndarray, simplices: np.ndarray) -> TriangleLocator:
        p = np.take(points, simplices, axis=0)  # (T, 3, 2)
        lo, hi = points.min(axis=0), points.max(axis=0)
        tol = EDGE_TOLERANCE * max(float((hi - lo).max()), float(np.abs(points).max()), 1e-300)
        # Edge k runs from corner k+1 to corner k+2 (opposite corner k).
        u, v = p[:, [1, 2, 0]], p[:, [2, 0, 1]]
        ex, ey = v[..., 0] - u[..., 0], v[..., 1] - u[..., 1]
        length = np.hypot(ex, ey)
        area2 = ex[:, 0] * ey[:, 1] - ey[:, 0] * ex[:, 1]
        sign = np.where(area2 < 0, -1.0, 1.0)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            nx, ny = -ey * sign / length, ex * sign / length
        nx, ny = np.nan_to_num(nx), np.nan_to_num(ny)
        d = nx * u[..., 0] + ny * u[..., 1]
        # Flat in floating point: the orientation is within rounding (of the order of eps * longest edge^2).
        flat = np.abs(area2) <= 16 * np.finfo(float).eps * length.max(axis=1) ** 2
        penalty = np.where(flat, 4 * tol, 0.0)
        box = np.column_stack([p[..., 0].min(1) - tol, p[..., 0].max(1) + tol, p[..., 1].min(1) - tol,
                               p[..., 1].max(1) + tol])
        n_tri = simplices.shape[0]
        origin = lo - 2 * tol
        span = (hi + 2 * tol) - origin
        cell = float(np.sqrt(span[0] * span[1] / max(_CELLS_PER_TRIANGLE * n_tri, 1))) or float(span.max())
        shape = (int(span[1] // cell) + 1, int(span[0] // cell) + 1)
        c0 = ((box[:, 0] - origin[0]) // cell).astype(np.intp)
        c1 = np.minimum((box[:, 1] - origin[0]) // cell, shape[1] - 1).astype(np.intp)
        r0 = ((box[:, 2] - origin[1]) // cell).astype(np.intp)
        r1 = np.minimum((box[:, 3] - origin[1]) // cell, shape[0] - 1).astype(np.intp)
        width = c1 - c0 + 1
        count = width * (r1 - r0 + 1)
        tri = np.repeat(np.arange(n_tri, dtype=np.intp), count)
        local = np.arange(tri.size, dtype=np.intp) - np.repeat(np.cumsum(count) - count, count)
        row, col = r0[tri] + local // width[tri], c0[tri] + local % width[tri]
        flat_cell = row * shape[1] + col
        order = np.argsort(flat_cell, kind="stable")  # by cell, then triangle index
        indptr = np.zeros(shape[0] * shape[1] + 1, dtype=np.intp)
        np.cumsum(np.bincount(flat_cell, minlength=shape[0] * shape[1]), out=indptr[1:])
        planes = np.column_stack([nx, ny, d, box, penalty])
        return cls(origin, cell, shape, indptr, tri[order], planes, tol)

    def find(self, xi: np.ndarray) -> np.ndarray:
        """The containing triangle of each of ``(M, 2)`` points (see :meth:`Triangulation.find_simplex`)."""
        out = np.full(xi.shape[0], -1, dtype=np.intp)
        for start in range(0, xi.shape[0], _CHUNK):
            out[start : start + _CHUNK] = self._find(xi[start : start + _CHUNK])
        return out

    def _find(self, q: np.ndarray) -> np.ndarray:
        col = np.floor((q[:, 0] - self.origin[0]) / self.cell)
        row = np.floor((q[:, 1] - self.origin[1]) / self.cell)
        ok = (col >= 0) & (col < self.shape[1]) & (row >= 0) & (row < self.shape[0])  # False for NaN
        cell = np.where(ok, row * self.shape[1] + col, 0).astype(np.intp)
        first = self.indptr[cell]
        count = np.where(ok, self.indptr[cell + 1] - first, 0)
        # Round j tests the j-th triangle of each point's cell, for the points still open: a point deeper than the
        # tolerance inside a triangle is outside every other one (their interiors are disjoint), so it is done.
        best = np.full(q.shape[0], -1, dtype=np.intp)
        depth = np.full(q.shape[0], -np.inf)
        open_ = np.flatnonzero(count > 0)
        j = 0
        while open_.size:
            tri = self.indices[first[open_] + j]
            x, y = q[open_, 0], q[open_, 1]
            t = self.planes[tri]
            score = np.minimum(np.minimum(t[:, 0] * x + t[:, 3] * y - t[:, 6], t[:, 1] * x + t[:, 4] * y - t[:, 7]),
                               t[:, 2] * x + t[:, 5] * y - t[:, 8])
            rank = score - t[:, 13]
            better = (score >= -self.tol) & (rank > depth[open_])
            better &= (t[:, 9] <= x) & (x <= t[:, 10]) & (t[:, 11] <= y) & (y <= t[:, 12])
            hit = open_[better]
            best[hit], depth[hit] = tri[better], rank[better]
            j += 1
            open_ = open_[(count[open_] > j) & (depth[open_] <= self.tol)]
        return best


def triangulate(points: np.ndarray) -> Triangulation:
    """The Delaunay triangulation of ``(N, 2)`` finite points; :class:`DelaunayDegenerate` if there is none."""
    points = np.ascontiguousarray(points, dtype=float)
    _check_not_degenerate(points)
    if _triangle is None or os.environ.get("OCO_L3_DELAUNAY", "").lower() == "qhull":
        return _qhull(points)
    out = _triangle.triangulate({"vertices": points}, "Qzn")  # quiet, zero-based, with neighbours
    simplices = out.get("triangles")
    if simplices is None or simplices.shape[0] == 0:
        raise DelaunayDegenerate(f"no triangle among {points.shape[0]} points")
    # Triangle lists neighbour k opposite corner k, as SciPy does, and every triangle anticlockwise (decided by
    # exact predicates: a sliver may look flat or even clockwise in floating point).
    return Triangulation(points, simplices.astype(np.intc), out["neighbors"].astype(np.intc), oriented=True)


def _qhull(points: np.ndarray) -> Triangulation:
    from scipy.spatial import Delaunay, QhullError

    try:
        tri = Delaunay(points)
    except (QhullError, ValueError) as exc:
        raise DelaunayDegenerate(str(exc).strip().splitlines()[0]) from exc
    return Triangulation(points, tri.simplices, tri.neighbors)


def _check_not_degenerate(points: np.ndarray) -> None:
    """Raise unless there are 3 distinct points not on one line (relative to the spread of the points)."""
    if points.shape[0] < 3:
        raise DelaunayDegenerate(f"{points.shape[0]} point(s)")
    centred = points - points.mean(axis=0)
    extent = float(np.abs(centred).max())
    if not extent > 0:
        raise DelaunayDegenerate(f"all {points.shape[0]} points coincide")
    # Twice the largest triangle area spanned with the two points farthest apart along the main axis.
    u = centred / extent
    axis = np.linalg.svd(u, full_matrices=False)[2][0]
    along = u @ axis
    a, b = u[int(along.argmin())], u[int(along.argmax())]
    area2 = np.abs((b[0] - a[0]) * (u[:, 1] - a[1]) - (b[1] - a[1]) * (u[:, 0] - a[0]))
    if not area2.max() > 1e-12:
        raise DelaunayDegenerate(f"all {points.shape[0]} points on one line")
