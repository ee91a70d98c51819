"""Vertex gradients for the cubic: which neighbours each vertex's gradient is fitted on (:func:`gradient_stencil`)
and the weighted least-squares fit over them as one sparse operator per triangulation (:func:`gradient_operator`),
applied to any number of variables at once (:class:`GradientOperator`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_array

from oco_l3.delaunay import Triangulation
from oco_l3.interpolation.runs import expand_runs


@dataclass(frozen=True)
class GradientOperator:
    """Vertex gradients as fixed weights on the 1-ring: ``grad_i = sum_j w_ij (f_j - f_i)`` over the Delaunay
    neighbours ``j`` of vertex ``i``; geometry only, so built once per triangulation (and per pattern of missing
    values) and applied to any number of variables. ``matrix`` stacks the x weights (rows ``0..N-1``) over the y
    weights (rows ``N..2N-1``); ``diagonal`` is minus each row's sum."""

    matrix: csr_array
    diagonal: np.ndarray
    rows: np.ndarray  # the vertices whose gradients the operator gives

    def apply(self, vals: np.ndarray) -> np.ndarray:
        """``(N, k)`` vertex values -> ``(R, k, 2)`` gradients at the vertices ``rows``."""
        own = vals[self.rows]
        r = own.shape[0]
        both = self.matrix @ vals + self.diagonal[:, None] * np.concatenate([own, own])
        return np.stack([both[:r], both[r:]], axis=2)


#: Edges longer than this many times the triangulation's median edge are left out of the gradient fits.
LONG_EDGE = 3.0


def gradient_stencil(tri: Triangulation) -> tuple[np.ndarray, np.ndarray]:
    """The neighbours each vertex's gradient is fitted on, as ``(indptr, indices)`` like
    ``vertex_neighbor_vertices``.

    Inside the point set: the vertex's Delaunay 1-ring. Two things go wrong at its edge (issue 13: the 1-ring cubic
    overshot within ~3 km of the hull, RMS 1.5-5x SciPy's): a boundary vertex's ring lies on one side of it, so the
    quadratic is extrapolated; and the hull's slivers join soundings far apart (across a swath's ragged end or along
    the hull), which a local fit should not see. So edges longer than :data:`LONG_EDGE` times the median edge are
    left out (unless fewer than 3 would remain), and *boundary* vertices -- on the hull, at a left-out edge, or next
    to such a vertex -- are fitted on their 2-ring (over the kept edges), which surrounds them better.
    """
    indptr, neighbour = tri.vertex_neighbor_vertices
    n = indptr.shape[0] - 1
    owner = np.repeat(np.arange(n), np.diff(indptr))
    d = np.take(tri.points, neighbour, axis=0) - np.take(tri.points, owner, axis=0)
    length = np.hypot(d[:, 0], d[:, 1])
    kept = length <= LONG_EDGE * float(np.median(length)) if length.size else np.ones(0, dtype=bool)
    kept |= (np.bincount(owner[kept], minlength=n) < 3)[owner]
    boundary = np.zeros(n, dtype=bool)
    boundary[owner[~kept]] = True
    hull = tri.neighbors < 0
    for k in range(3):
        boundary[tri.simplices[hull[:, k], (k + 1) % 3]] = True
        boundary[tri.simplices[hull[:, k], (k + 2) % 3]] = True
    boundary[owner[kept & boundary[neighbour]]] = True
    owner, neighbour = owner[kept], neighbour[kept]
    count = np.bincount(owner, minlength=n)
    ring_ptr = np.concatenate([[0], np.cumsum(count)])
    # 2-ring of the boundary vertices (a few hundred): each kept neighbour's kept neighbours, and the neighbour.
    b_edges = np.flatnonzero(boundary[owner])
    via = neighbour[b_edges]
    second, which = expand_runs(ring_ptr[via], ring_ptr[via + 1] - ring_ptr[via])
    b_owner = np.concatenate([owner[b_edges], owner[b_edges][which]])
    b_key = _sorted_unique(b_owner.astype(np.int64) * n + np.concatenate([via, neighbour[second]]))  # by vertex
    b_owner, b_neighbour = np.divmod(b_key, n)
    b_keep = b_owner != b_neighbour
    b_owner, b_neighbour = b_owner[b_keep], b_neighbour[b_keep]
    # Interior vertices keep their ring (already grouped by vertex), boundary ones take their 2-ring.
    count[boundary] = 0
    count += np.bincount(b_owner, minlength=n)
    stencil_ptr = np.concatenate([[0], np.cumsum(count)])
    out = np.empty(int(stencil_ptr[-1]), dtype=np.intp)
    inner = ~boundary[owner]
    out[stencil_ptr[owner[inner]] + (np.arange(owner.shape[0]) - ring_ptr[owner])[inner]] = neighbour[inner]
    out[stencil_ptr[b_owner] + np.arange(b_owner.shape[0]) - np.searchsorted(b_owner, b_owner)] = b_neighbour
    return stencil_ptr, out


def gradient_operator(
    points: np.ndarray, stencil: tuple[np.ndarray, np.ndarray], keep: np.ndarray | None, rows: np.ndarray | None = None
) -> GradientOperator:
    """The least-squares gradient fit over each vertex's stencil (:func:`gradient_stencil`), at the vertices
    ``rows`` (None = all); ``keep`` (bool per vertex, None = all) marks the vertices with a usable value: the
    others are left out.

    Weighted least squares (weight ``1 / |d|^2``) of a quadratic ``g . d + d' H d / 2`` (5 unknowns) where a vertex
    has at least 5 usable neighbours and the fit is well posed, else of a plane ``g . d`` (2 unknowns); both
    reproduce linear fields exactly. Coordinates are scaled by each ring's mean edge length for conditioning.
    """
    indptr, neighbour = stencil
    if rows is None:
        rows = np.arange(indptr.shape[0] - 1)
    else:
        degree = indptr[rows + 1] - indptr[rows]
        edges, _ = expand_runs(indptr[rows], degree)
        neighbour = neighbour[edges]
        indptr = np.concatenate([[0], np.cumsum(degree)])
    n = rows.shape[0]
    degree = np.diff(indptr)
    owner = np.repeat(np.arange(n), degree)
    d = np.take(points, neighbour, axis=0) - np.take(points, rows[owner], axis=0)  # take: 2x fancy indexing
    length = np.hypot(d[:, 0], d[:, 1])
    if keep is None:  # every neighbour usable (weights of one, left out)
        count = degree.astype(float)
        scale = np.bincount(owner, length, minlength=n) / np.maximum(count, 1)
    else:
        usable = (keep[rows[owner]] & keep[neighbour]).astype(float)
        count = np.bincount(owner, usable, minlength=n)
        scale = np.bincount(owner, usable * length, minlength=n) / np.maximum(count, 1)
    scale = np.where(scale > 0, scale, 1.0)
    scale_at = scale[owner]
    ux, uy = d[:, 0] / scale_at, d[:, 1] / scale_at
    square = np.maximum(ux * ux + uy * uy, 1e-300)
    weight = 1 / square if keep is None else usable / square
    x = (ux, uy, 0.5 * ux * ux, ux * uy, 0.5 * uy * uy)
    wx = [weight * xi for xi in x]
    packed = np.empty((5, 5, n))  # the normal matrices entry by entry: each bincount written to contiguous memory
    for i in range(5):
        for j in range(i, 5):
            packed[i, j] = packed[j, i] = np.bincount(owner, wx[i] * x[j], minlength=n)
    normal = packed.transpose(2, 0, 1)  # (n, 5, 5)
    cx, cy = np.zeros(owner.shape[0]), np.zeros(owner.shape[0])
    quad = count >= 5
    if quad.any():
        inv_rows, ok = _inverse_rows(np.ascontiguousarray(normal[quad]), 2)
        full = np.zeros((n, 2, 5))
        full[quad] = inv_rows
        quad[quad] = ok
        r = np.take(full.reshape(n, 10), owner, axis=0)  # (E, 10): take is 2x fancy indexing here
        cx = sum((r[:, i] * wx[i] for i in range(5)), cx)
        cy = sum((r[:, 5 + i] * wx[i] for i in range(5)), cy)
    a, b, c = normal[:, 0, 0], normal[:, 0, 1], normal[:, 1, 1]
    det = a * c - b * b
    det = np.where(det > 1e-8 * a * c, det, np.inf)  # no plane fit either: zero gradient
    plane = np.flatnonzero(~quad[owner])  # the few edges of vertices fitted by a plane
    at = owner[plane]
    cx[plane] = (c[at] * wx[0][plane] - b[at] * wx[1][plane]) / det[at]
    cy[plane] = (a[at] * wx[1][plane] - b[at] * wx[0][plane]) / det[at]
    cx /= scale_at
    cy /= scale_at
    e = owner.shape[0]
    matrix = csr_array(
        (np.concatenate([cx, cy]), np.concatenate([neighbour, neighbour]), np.concatenate([indptr, indptr[1:] + e])),
        shape=(2 * n, points.shape[0]),
    )
    diagonal = -np.concatenate([np.bincount(owner, cx, minlength=n), np.bincount(owner, cy, minlength=n)])
    return GradientOperator(matrix, diagonal, rows)


def rows_next_to_missing(stencil: tuple[np.ndarray, np.ndarray], keep: np.ndarray) -> np.ndarray:
    """The vertices with a usable value (``keep``) whose stencil has a vertex without one: the only gradients a
    pattern of missing values changes."""
    indptr, neighbour = stencil
    owner = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    touched = np.zeros(keep.shape[0], dtype=bool)
    touched[owner[~keep[neighbour]]] = True
    return np.flatnonzero(touched & keep)


def _inverse_rows(normal: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``rows`` rows of the inverses of symmetric ``(N, m, m)`` matrices, by a Cholesky factorisation
    vectorised over N (NumPy's batched inverse costs several times more for many small matrices), and whether
    each matrix is positive definite and well conditioned: every pivot above 1e-3 of its diagonal entry (a ring
    that barely constrains the quadratic, say 3 of 5 neighbours on a line, would amplify the noise in the values
    by orders of magnitude); rows of the others are zero."""
    n, m, _ = normal.shape
    low = np.zeros_like(normal)
    ok = np.ones(n, dtype=bool)
    for j in range(m):
        pivot = normal[:, j, j] - np.einsum("nk,nk->n", low[:, j, :j], low[:, j, :j])
        ok &= pivot > 1e-3 * normal[:, j, j]
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


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """``np.unique`` of integer ``keys`` by a sort and a comparison with the neighbour (NumPy's hash-based unique
    then sorts: 3-4x slower here)."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if keys.size else keys

