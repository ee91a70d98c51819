"""Voronoi cells of a triangulation's points as fans of triangles (for the ``nearest`` method on grids: the cells
are rasterised, not searched)."""

from __future__ import annotations

import numpy as np

from oco_l3.delaunay import Triangulation


def voronoi_fans(tri: Triangulation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Voronoi cells of the points as triangles ``(site, x (F, 3), y (F, 3))`` fanned from each site.

    A Delaunay edge ``a-b`` between triangles ``t`` and ``u`` is the Voronoi edge between the circumcentres of
    ``t`` and ``u``: it gives the fan triangles ``(a, c_t, c_u)`` and ``(b, c_t, c_u)``. A hull edge gives a ray
    from ``c_t`` outward, cut at a far point ``f``: ``(a, c_t, f)``, ``(b, c_t, f)``; and each hull vertex closes its
    cell with ``(h, f_1, f_2)`` between its two rays. Triangles with a corner at infinity (the circumcentre of a
    sliver) are dropped; zero-area ones are left to the caller.
    """
    p = tri.points
    s = tri.simplices
    centre = circumcentres(np.take(p, s, axis=0))
    far = 1e3 * (1.0 + float(np.abs(p).max()) + float(np.abs(centre[np.isfinite(centre)]).max(initial=0.0)))
    sites, corners = [], []
    hull_site, hull_far = [], []
    for k in range(3):
        a, b, nb = s[:, (k + 1) % 3], s[:, (k + 2) % 3], tri.neighbors[:, k]
        inner = np.flatnonzero(nb > np.arange(s.shape[0]))
        for v in (a, b):
            sites.append(v[inner])
            corners.append(np.stack([np.take(p, v[inner], axis=0), np.take(centre, inner, axis=0),
                                     np.take(centre, nb[inner], axis=0)], axis=1))
        hull = np.flatnonzero(nb < 0)
        e = p[b[hull]] - p[a[hull]]
        normal = np.column_stack([e[:, 1], -e[:, 0]]) / np.hypot(e[:, 0], e[:, 1])[:, None]
        inward = np.einsum("ij,ij->i", normal, p[s[hull, k]] - p[a[hull]]) > 0
        normal[inward] *= -1
        f = centre[hull] + far * normal
        for v in (a, b):
            sites.append(v[hull])
            corners.append(np.stack([p[v[hull]], centre[hull], f], axis=1))
            hull_site.append(v[hull])
            hull_far.append(f)
    hs, hf = np.concatenate(hull_site), np.concatenate(hull_far)
    order = np.argsort(hs, kind="stable")
    hs, hf = hs[order], hf[order]
    pair = np.flatnonzero(hs[1:] == hs[:-1])  # each hull vertex has two hull edges
    sites.append(hs[pair])
    corners.append(np.stack([p[hs[pair]], hf[pair], hf[pair + 1]], axis=1))
    tri_xy = np.concatenate(corners)
    # A sliver on the hull (three nearly collinear soundings along a swath edge) can have no finite circumcentre:
    # its Voronoi vertex is at infinity. Its fan triangles are left out; the cells they would cover are searched.
    finite = np.isfinite(tri_xy).all(axis=(1, 2))
    if finite.all():
        return np.concatenate(sites), tri_xy[:, :, 0], tri_xy[:, :, 1]
    return np.concatenate(sites)[finite], tri_xy[finite, :, 0], tri_xy[finite, :, 1]


def circumcentres(p: np.ndarray) -> np.ndarray:
    """``(T, 2)`` circumcentres of triangles ``(T, 3, 2)`` (non-finite for degenerate ones)."""
    b = p[:, 1] - p[:, 0]
    c = p[:, 2] - p[:, 0]
    d = 2.0 * (b[:, 0] * c[:, 1] - b[:, 1] * c[:, 0])
    bb, cc = (b * b).sum(axis=1), (c * c).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = (c[:, 1] * bb - b[:, 1] * cc) / d
        uy = (b[:, 0] * cc - c[:, 0] * bb) / d
    return p[:, 0] + np.column_stack([ux, uy])
