"""The Clough-Tocher C1 cubic element (the element of SciPy's ``CloughTocher2DInterpolator``) evaluated for many
variables at once: per-edge cross-boundary factors (:func:`edge_factors`), Bezier ordinates made block by block of
triangles (:func:`ordinates_block`) and the Bernstein weights of the points as one sparse matrix
(:func:`cubic_weights`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_array

from oco_l3.delaunay import Triangulation
from oco_l3.interpolation.triangles import barycentric

#: Points per block when evaluating the cubic, to keep the temporaries in cache.
POINT_BLOCK = 16384
#: Triangles per block when computing the cubic's ordinates.
TRIANGLE_BLOCK = 2048


@dataclass(frozen=True)
class Element:
    """What the interpolants need on a triangulation's vertices: plane coordinates ``(N, 2)``, the cubic's edge
    factors ``(T, 3)`` (:func:`edge_factors`; or ``(T, 3, G)``, ``G`` sets of them, and ``groups``: the set each
    column uses), values ``(N, k)`` and gradients ``(N, k, 2)`` (None for ``linear``)."""

    points: np.ndarray
    factors: np.ndarray | None
    vals: np.ndarray
    grad: np.ndarray | None
    groups: np.ndarray | None = None  # with factors (T, 3, G): the group (of factors) of each column

def edge_factors(tri: Triangulation, affine: np.ndarray) -> np.ndarray:
    """``(T, 3)`` factors fixing, per edge, the direction in which the cubic's cross-boundary derivative is linear.

    The direction is from this triangle's centroid to the neighbour's (the affine-invariant choice), written in
    barycentric coordinates of this triangle; edges on the hull use the centroid direction (-2/3).
    """
    neighbours, p, s = tri.neighbors, tri.points, tri.simplices
    centroids = (np.take(p, s[:, 0], axis=0) + np.take(p, s[:, 1], axis=0) + np.take(p, s[:, 2], axis=0)) / 3  # = mean
    factors = np.full(neighbours.shape, -2.0 / 3.0)
    for k in range(3):
        has = neighbours[:, k] >= 0
        t = np.flatnonzero(has)
        c = barycentric(affine, t, np.take(centroids, neighbours[t, k], axis=0))
        a, b = c[:, (k + 1) % 3], c[:, (k + 2) % 3]
        factors[t, k] = (2 * b + a - 1) / (2 - 3 * b - 3 * a)
    return factors


#: Exponents of the 10 cubic terms on one Clough-Tocher sub-triangle, over (u, v, w) = (the two barycentric
#: coordinates other than the smallest one, minus it; three times the smallest one).
_TERMS = ((3, 0, 0), (0, 3, 0), (0, 0, 3), (2, 1, 0), (2, 0, 1), (1, 2, 0), (0, 2, 1), (1, 0, 2), (0, 1, 2), (1, 1, 1))


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
#: The 19 distinct ordinates of one triangle, and for each sub-triangle q and term j the index of its ordinate.
_UNIQUE = tuple(sorted(set(_NAMES.ravel())))
_SLOTS = np.array([[_UNIQUE.index(name) for name in row] for row in _NAMES], dtype=np.intp)


def evaluate_cubic(
    simplices: np.ndarray, element: Element, simplex: np.ndarray, bary: np.ndarray, dtype: type
) -> np.ndarray:
    """The Clough-Tocher cubic at barycentric ``bary`` in triangles ``simplex`` (of ``simplices``): ``(M, k)`` of
    ``dtype``.

    Streams over blocks of triangles: the Bezier ordinates of a block (:func:`ordinates_block`) are made, the
    points inside the block's triangles evaluated, and the ordinates dropped, so memory stays a few MB whatever the
    number of triangles, points and variables. Points are taken in triangle order (sorted first if need be). When
    the points lie in few of the triangles, only those are visited.
    """
    order = None
    if simplex.shape[0] > 1 and (np.diff(simplex) < 0).any():
        order = np.argsort(simplex, kind="stable")
        simplex, bary = simplex[order], bary[order]
    s, factors = simplices, element.factors
    assert element.grad is not None and factors is not None
    if simplex.shape[0]:
        first = np.concatenate([[True], simplex[1:] != simplex[:-1]])
        if np.count_nonzero(first) < s.shape[0] // 2:  # points in few of the triangles: visit those only
            s, factors = s[simplex[first]], factors[simplex[first]]
            simplex = np.cumsum(first) - 1
    k = element.vals.shape[1]
    out: np.ndarray = np.empty((simplex.shape[0], k), dtype=dtype)
    starts = np.arange(0, s.shape[0], TRIANGLE_BLOCK)
    first_point = np.searchsorted(simplex, np.append(starts, s.shape[0]))
    ordinates = np.empty((len(_UNIQUE), TRIANGLE_BLOCK, k))
    for i, t0 in enumerate(starts):
        p0, p1 = first_point[i], first_point[i + 1]
        if p1 == p0:
            continue
        part = slice(t0, t0 + TRIANGLE_BLOCK)
        block = ordinates[:, : s[part].shape[0]]
        f = factors[part] if element.groups is None else factors[part][:, :, element.groups]  # (t, 3[, k])
        ordinates_block(element.points, s[part], f, element.vals, element.grad, block)
        table = block.reshape(-1, k)
        for q0 in range(p0, p1, POINT_BLOCK):
            q1 = min(q0 + POINT_BLOCK, p1)
            out[q0:q1] = cubic_weights(simplex[q0:q1] - t0, bary[q0:q1], block.shape[1]) @ table
    if order is not None:
        unsorted = np.empty_like(out)
        unsorted[order] = out
        out = unsorted
    return out



def ordinates_block(
    points: np.ndarray, s: np.ndarray, factors: np.ndarray, vals: np.ndarray, grad: np.ndarray, out: np.ndarray
) -> None:
    """Bezier ordinates of the Clough-Tocher macro-element of the triangles ``s`` (corner indices), in the order
    of :data:`_UNIQUE`, written into ``out`` ``(19, len(s), k)``; ``factors`` ``(len(s), 3)``, or ``(len(s), 3, k)``
    per column."""
    p = np.take(points, s, axis=0)  # (T, 3, 2)
    corners = np.ascontiguousarray(s.T)
    f = np.take(vals, corners, axis=0)  # (3, T, k), gathered in that order: no transposing copy
    g = np.ascontiguousarray(np.moveaxis(np.take(grad, corners, axis=0), 3, 1))  # (3, 2, T, k)
    c = {name: out[i] for i, name in enumerate(_UNIQUE)}
    c["3000"][:], c["0300"][:], c["0030"][:] = f[0], f[1], f[2]
    for i, j, name in ((0, 1, "2100"), (0, 2, "2010"), (1, 0, "1200"), (1, 2, "0210"), (2, 0, "1020"), (2, 1, "0120")):
        e = p[:, j] - p[:, i]  # ordinate next to vertex i on the edge towards j: f_i + (grad_i . e) / 3
        np.multiply(g[i, 0], e[:, 0, None] / 3, out=c[name])
        c[name] += g[i, 1] * (e[:, 1, None] / 3)
        c[name] += f[i]
    np.add(c["2100"], c["2010"], out=c["2001"])
    np.add(c["1200"], c["0210"], out=c["0201"])
    np.add(c["1020"], c["0120"], out=c["0021"])
    for name, vertex in (("2001", "3000"), ("0201", "0300"), ("0021", "0030")):
        c[name] += c[vertex]
        c[name] /= 3
    for name, (a, b3, c3, d, e, g2) in {
        "0111": ("0300", "0210", "0120", "0030", "0021", "0201"),
        "1011": ("0030", "1020", "2010", "3000", "2001", "0021"),
        "1101": ("3000", "2100", "1200", "0300", "0201", "2001"),
    }.items():
        edge = {"0111": 0, "1011": 1, "1101": 2}[name]
        gamma = factors[:, edge, None] if factors.ndim == 2 else factors[:, edge]  # for all columns, or each
        cross = c[d] - c[a] + 3 * (c[b3] - c[c3])
        c[name][:] = (gamma * cross - c[a] + 2 * c[b3] - c[c3] + c[e] + c[g2]) / 2
    c["1002"][:] = (c["1101"] + c["1011"] + c["2001"]) / 3
    c["0102"][:] = (c["1101"] + c["0111"] + c["0201"]) / 3
    c["0012"][:] = (c["1011"] + c["0111"] + c["0021"]) / 3
    c["0003"][:] = (c["1002"] + c["0102"] + c["0012"]) / 3


def cubic_weights(simplex: np.ndarray, bary: np.ndarray, n_triangles: int) -> csr_array:
    """The cubic at barycentric ``bary`` in triangles ``simplex`` (of ``n_triangles``) as a sparse ``(M, 19 T)``
    matrix: applied to the ``(19 T, k)`` ordinates (flattened) it gives the ``(M, k)`` values.

    Each point's value is its 10 Bernstein basis values times the 10 ordinates of its sub-triangle; one sparse
    product costs a fraction of a batched gather and product over tiny matrices.
    """
    b0, b1, b2 = bary[:, 0], bary[:, 1], bary[:, 2]
    first = b0 <= b1
    q = np.where(first, np.where(b0 <= b2, 0, 2), np.where(b1 <= b2, 1, 2))  # sub-triangle opposite vertex q
    low = np.minimum(np.where(first, b0, b1), b2)
    # The two coordinates other than the smallest, in vertex order, minus it; and three times the smallest.
    u = np.where(q == 0, b1, b0) - low
    v = np.where(q == 2, b1, b2) - low
    m = q.shape[0]
    columns = np.take((_SLOTS * n_triangles).astype(np.int32), q, axis=0)  # (m, 10); take: 2x fancy indexing
    columns += simplex.astype(np.int32)[:, None]
    indptr = np.arange(0, 10 * m + 1, 10, dtype=np.int32)
    basis = _cubic_basis(u, v, 3 * low)
    return csr_array((basis.reshape(-1), columns.reshape(-1), indptr), shape=(m, len(_UNIQUE) * n_triangles))


def _cubic_basis(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(M, 10)`` Bernstein basis of :data:`_TERMS` (multinomials included) at (u, v, w)."""
    basis = np.empty((10, u.shape[0]))  # term by term in contiguous rows, then one transposing copy: 2x faster
    u2, v2, w2 = u * u, v * v, w * w
    u3, v3, w3 = 3 * u, 3 * v, 3 * w
    row = iter(basis)
    for a, b in ((u2, u), (v2, v), (w2, w), (u2, v3), (u2, w3), (u3, v2), (v2, w3), (u3, w2), (v3, w2), (u3, v)):
        np.multiply(a, b, out=next(row))
    basis[9] *= 2 * w  # 6 u v w
    return basis.T.copy()
