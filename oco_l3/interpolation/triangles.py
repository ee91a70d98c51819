"""Triangle geometry shared by the methods: affine maps to barycentric coordinates, barycentric (``linear``)
interpolation, and matching the triangles of two triangulations by their corners."""

from __future__ import annotations

import numpy as np

from oco_l3.delaunay import Triangulation


def affine_from_vertices(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`affine_maps` of triangles given by ``(T, 3)`` vertex coordinates."""
    x0, y0 = x[:, 0] - x[:, 2], y[:, 0] - y[:, 2]
    x1, y1 = x[:, 1] - x[:, 2], y[:, 1] - y[:, 2]
    det = x0 * y1 - x1 * y0
    det = np.where(det != 0, det, np.inf)  # degenerate sliver: barycentrics (0, 0, 1), never divided by zero
    return np.column_stack([y1 / det, -x1 / det, -y0 / det, x0 / det, x[:, 2], y[:, 2]])


def affine_maps(tri: Triangulation) -> np.ndarray:
    """``(T, 6)`` rows ``a00 a01 a10 a11 x2 y2`` with ``(b0, b1) = A (p - p2)`` in each triangle."""
    p = np.take(tri.points, tri.simplices, axis=0)
    x0, y0 = p[:, 0, 0] - p[:, 2, 0], p[:, 0, 1] - p[:, 2, 1]
    x1, y1 = p[:, 1, 0] - p[:, 2, 0], p[:, 1, 1] - p[:, 2, 1]
    det = x0 * y1 - x1 * y0
    det = np.where(det != 0, det, np.inf)  # degenerate sliver: barycentrics (0, 0, 1), never divided by zero
    return np.column_stack([y1 / det, -x1 / det, -y0 / det, x0 / det, p[:, 2, 0], p[:, 2, 1]])


def barycentric(affine: np.ndarray, simplex: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``(M, 3)`` barycentric coordinates of ``pts`` in triangles ``simplex``."""
    t = np.take(affine, simplex, axis=0)
    dx = pts[:, 0] - t[:, 4]
    dy = pts[:, 1] - t[:, 5]
    b0 = t[:, 0] * dx + t[:, 1] * dy
    b1 = t[:, 2] * dx + t[:, 3] * dy
    return np.column_stack([b0, b1, 1.0 - b0 - b1])


def linear_evaluate(
    simplices: np.ndarray, vals: np.ndarray, simplex: np.ndarray, bary: np.ndarray, dtype: type
) -> np.ndarray:
    """Barycentric interpolation of vertex values ``vals`` ``(N, k)`` at barycentric ``bary`` in triangles
    ``simplex`` (of ``simplices``): ``(M, k)`` of ``dtype``."""
    corners = simplices[simplex]
    b: np.ndarray = bary.astype(dtype, copy=False)
    v: np.ndarray = vals.astype(dtype)
    out = b[:, 0, None] * v[corners[:, 0]]
    out += b[:, 1, None] * v[corners[:, 1]]
    out += b[:, 2, None] * v[corners[:, 2]]
    return out


def match_triangles(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each triangle of ``a`` ``(Ta, 3)`` (vertex ids), the triangle of ``b`` with the same three vertices
    (-1 if none), and ``perm`` ``(Ta, 3)``: the corner of that triangle that is ``a``'s corner ``k``."""
    n = int(max(a.max(initial=0), b.max(initial=0))) + 1
    match = np.full(a.shape[0], -1, dtype=np.intp)
    perm = np.zeros(a.shape, dtype=np.intp)
    if b.shape[0] == 0 or n > 2_000_000:  # keys would overflow int64: no match (the caller grids alone)
        return match, perm

    def keys(t: np.ndarray) -> np.ndarray:  # the sorted corners as one number (no per-row sort: 5x faster)
        a, b, c = t[:, 0].astype(np.int64), t[:, 1].astype(np.int64), t[:, 2].astype(np.int64)
        low, high = np.minimum(np.minimum(a, b), c), np.maximum(np.maximum(a, b), c)
        return (low * n + (a + b + c - low - high)) * n + high

    ka, kb = keys(a), keys(b)
    order = np.argsort(kb)
    candidate = order[np.minimum(np.searchsorted(kb, ka, sorter=order), kb.shape[0] - 1)]
    found = np.flatnonzero(kb[candidate] == ka)
    match[found] = candidate[found]
    perm[found] = (b[candidate[found]][:, None, :] == a[found][:, :, None]).argmax(axis=2)
    return match, perm
