"""Planar Delaunay triangulation of sounding centres, with the adjacency the interpolators need.

:func:`triangulate` returns a :class:`Triangulation` (points, triangles, neighbours, vertex 1-rings) built by
Shewchuk's Triangle (the ``triangle`` package, robust exact predicates, about 4x faster than Qhull on a capture) or,
where that package is not installed or ``OCO_L3_DELAUNAY=qhull`` is set, by Qhull through SciPy. For points in
general position both give the same (unique) Delaunay triangulation; they may differ only in how they split
cocircular points, where every split interpolates the corner values the same way along the shared circle's chords.

Degenerate inputs -- fewer than 3 distinct points, all collinear -- have no triangulation: :func:`triangulate`
raises :class:`DelaunayDegenerate` (checked before Triangle is called: it must never see them, one of them crashes
it). Duplicate points are triangulated once; the copies belong to no triangle.

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
        """The triangle containing each of ``(M, 2)`` points, -1 outside the triangulation."""
        xi = np.asarray(xi, dtype=float).reshape(-1, 2)
        return np.asarray(self._finder(xi[:, 0], xi[:, 1]), dtype=np.intp)

    @cached_property
    def _finder(self):  # type: ignore[no-untyped-def]
        from matplotlib.tri import Triangulation as MplTriangulation

        return MplTriangulation(self.points[:, 0], self.points[:, 1], self.simplices).get_trifinder()


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
