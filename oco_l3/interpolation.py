"""Scattered-point interpolation with one triangulation per point set, shared by every variable.

:class:`PointInterpolator` is built once from the sounding centres of one capture and one QF pass, then evaluates
all float variables of the pass in one call (``(N, k)`` values -> ``(M, k)`` results) and integer/flag variables
by nearest neighbour (never averaged). Query points are located in the triangulation once
(:meth:`PointInterpolator.locate`) and the :class:`Location` is reused by every method.

Methods. ``linear`` is barycentric interpolation on the Delaunay triangles (what ``LinearNDInterpolator`` does).
``cubic`` is the Clough-Tocher C1 cubic (the element of ``CloughTocher2DInterpolator`` /
``griddata(method="cubic")``) with locally estimated vertex gradients: a weighted least-squares fit over each
vertex's neighbours (a quadratic where it has 5 or more, else a plane) -- its Delaunay 1-ring inside the point set,
its 2-ring at the edge of it, never across the hull's long slivers (:func:`gradient_stencil`) -- where SciPy solves
a global curvature-minimising problem. Both reproduce linear fields exactly; on the SYNTHETIC curved fields ours has
0.3-1.1x SciPy's RMS error on a sine/cosine pattern, 0.6-1.9x on narrow Gaussian plumes (README, "How it differs";
tests in tests/test_gridding.py). The local fit is a fixed sparse operator per triangulation, so
all variables get their gradients in one product; the Bezier ordinates and their evaluation are vectorised over
points and variables at once. ``nearest`` is the nearest point (a rasterised Voronoi map on grids, else brute
force or a k-d tree).

Coordinates. Points live in a local plane: ``x = (lon - lon0) * cos(lat0)``, ``y = lat - lat0`` around the centre
of the point set, with longitudes unwrapped to within 180 degrees of ``lon0``. This is an affine map of lon/lat, so
a field linear in lon/lat stays linear and comes back exactly under ``linear`` and ``cubic``; it makes the
triangles and the nearest-neighbour distances closer to those on the ground.

Policies.

* Outside the convex hull of the points ``linear`` and ``cubic`` return NaN; ``nearest`` returns a value anywhere.
* Missing values (NaN) never become numbers, and never poison values elsewhere (:func:`oco_l3.gridding.grid_capture`
  avoids them altogether: it builds one interpolator per set of points where the variables have values): a result
  is NaN for a variable when the triangle that contains it has a vertex whose value is missing (``linear`` and
  ``cubic``), or when the nearest point's value is missing (``nearest``). For ``cubic``, a vertex's gradient is
  fitted on its neighbours with a finite value only (one operator per distinct missing pattern, cached), so a NaN
  never reaches a gradient.
* Degenerate point sets -- fewer than 3 points, all collinear, all duplicates -- cannot be triangulated: every
  method then falls back to nearest neighbour (logged) instead of raising. Points with non-finite coordinates are
  ignored. No finite point at all raises :class:`~oco_l3.errors.CaptureDegenerate`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from math import factorial
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy.sparse import csr_array

from oco_l3.delaunay import DelaunayDegenerate, Triangulation, triangulate
from oco_l3.errors import CaptureDegenerate
from oco_l3.footprints import Window, rasterise_triangles, to_index_space, unwrap_longitude
from oco_l3.grids import GridSpec

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

log = logging.getLogger(__name__)

Method = Literal["linear", "cubic", "nearest"]
METHODS: tuple[Method, ...] = ("linear", "cubic", "nearest")

#: Points per block when evaluating the cubic, to keep the temporaries in cache.
_BLOCK = 16384
#: Query points x sounding pairs up to which a nearest-neighbour search is done by brute force.
_BRUTE_FORCE = 4_000_000
#: Triangles per block when computing the cubic's ordinates.
_TRI_BLOCK = 2048


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

    def prepare(self, method: Method) -> None:
        """Compute now what evaluating by ``method`` needs of the triangulation (the cubic's vertex gradient operator
        and edge factors), instead of at the first evaluation."""
        if method == "cubic" and self.tri is not None:
            self._gradients(None)
            _ = self._shape_factors

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

    def cells_in_triangles(
        self, grid: GridSpec, window: Window, mask: np.ndarray, triangles: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The cells ``mask`` (window-shaped) inside the triangulation (or inside its ``triangles``, indices):
        ``(flat, simplex, bary)``.

        ``flat`` indexes the flattened window, ``simplex`` is the containing triangle and ``bary`` the barycentric
        coordinates, grouped by triangle (so evaluations read each triangle's data once, in order). Found by
        rasterising the triangles onto the window in grid-index space, where the barycentrics are the same as in
        the plane (they are affine-invariant). A cell centre on an edge shared by two triangles may be listed
        twice (the interpolants agree there).
        """
        none = np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros((0, 3))
        if self.tri is None or not mask.any() or (triangles is not None and triangles.size == 0):
            return none
        r0, _, c0, _ = window
        width = mask.shape[1]
        x, y = to_index_space(self.lonlat[:, 1], self.lonlat[:, 0], grid)
        corners = self.tri.simplices if triangles is None else self.tri.simplices[triangles]
        tx, ty = x[corners] - c0, y[corners] - r0
        tri_id, row, col0, col1 = rasterise_triangles(tx, ty, mask.shape)
        if tri_id.size == 0:
            return none
        # Barycentrics are affine along a run: the value at (col0, row) plus a step per column.
        a00, a01, a10, a11, x2, y2 = _affine_from_vertices(tx, ty).T
        a00, a01, a10, a11, x2, y2 = a00[tri_id], a01[tri_id], a10[tri_id], a11[tri_id], x2[tri_id], y2[tri_id]
        dx, dy = col0 - x2, row - y2
        base0, base1 = a00 * dx + a01 * dy, a10 * dx + a11 * dy
        start = row * width + col0
        length = col1 - col0 + 1
        # Masked cells per run (from a running count of the mask), so the outputs are allocated once.
        count = np.concatenate([[0], np.cumsum(mask.reshape(-1), dtype=np.int64)])
        kept = count[start + length] - count[start]
        flat = np.empty(int(kept.sum()), dtype=np.intp)
        simplex = np.empty(flat.shape[0], dtype=np.intp)
        bary = np.empty((flat.shape[0], 3))
        done = 0
        for lo, hi in _blocks(length, _BLOCK * 8):  # runs in blocks: the per-cell temporaries stay small
            cells, run = _expand_runs(start[lo:hi], length[lo:hi])
            inside = mask.reshape(-1)[cells]
            cells, run = cells[inside], run[inside] + lo
            step = (cells - start[run]).astype(float)
            part = slice(done, done + cells.shape[0])
            flat[part], simplex[part] = cells, tri_id[run] if triangles is None else triangles[tri_id[run]]
            bary[part, 0] = base0[run] + a00[run] * step
            bary[part, 1] = base1[run] + a10[run] * step
            np.subtract(1.0 - bary[part, 0], bary[part, 1], out=bary[part, 2])
            done += cells.shape[0]
        return flat, simplex, bary

    def nearest_cells(self, grid: GridSpec, window: Window, shape: tuple[int, int]) -> np.ndarray:
        """Window-shaped map of the nearest valid point (index into the valid points) to every cell centre.

        The Voronoi cell of each point (convex, built from the circumcentres of the Delaunay triangles around it,
        with rays beyond the hull) is rasterised as a fan of triangles, so no cell is searched; the few centres no
        fan triangle covers (on a shared edge, lost to rounding; or degenerate geometry) are searched directly.
        Centres equidistant from two points may go to either.
        """
        r0, _, c0, _ = window
        owner = np.full(shape, -1, dtype=np.intp)
        if self.tri is not None and owner.size:
            site, fx, fy = _voronoi_fans(self.tri)
            alpha = 1.0 / (np.cos(np.deg2rad(self.lat0)) * grid.dlon)
            x, y = to_index_space(self.lonlat[:1, 1], self.lonlat[:1, 0], grid)
            tx = alpha * (fx - self.points[0, 0]) + (x[0] - c0)
            ty = (fy - self.points[0, 1]) / grid.dlat + (y[0] - r0)
            tri_id, row, col0, col1 = rasterise_triangles(tx, ty, shape)
            length = col1 - col0 + 1  # runs expanded by repeats (cheaper than gathers), in the same order
            offsets = np.cumsum(length) - length
            flat = np.repeat(row * shape[1] + col0 - offsets, length) + np.arange(int(length.sum()), dtype=np.int64)
            owner.reshape(-1)[flat] = np.repeat(site[tri_id], length)
        missing = np.flatnonzero(owner.reshape(-1) < 0)
        if missing.size:
            rows, cols = np.divmod(missing, shape[1])
            pts = self.to_plane(np.column_stack([grid.longitude[c0 + cols], grid.latitude[r0 + rows]]))
            owner.reshape(-1)[missing] = self._nearest_points(pts)
        return owner

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
        if inside.size:
            out[inside] = self.interpolate(vals, loc.simplex[inside], loc.bary[inside], method)
        return out

    def interpolate(
        self, values: np.ndarray, simplex: np.ndarray, bary: np.ndarray, method: Method, dtype: type = np.float64
    ) -> np.ndarray:
        """``linear`` or ``cubic`` at points given by triangle ``simplex`` (all >= 0) and barycentrics ``bary``.

        ``values`` are ``(N_valid, k)`` float (NaN = missing), one row per valid point. Each column is shifted
        by its mean before the arithmetic and back after, so a ``float32`` ``dtype`` (half the memory traffic)
        loses precision only relative to the spread of a column, not its magnitude.
        """
        assert self.tri is not None and method in ("linear", "cubic")
        vals = np.asarray(values, dtype=float)
        finite = np.isfinite(vals)
        all_finite = bool(finite.all())
        offset = np.zeros(vals.shape[1])
        counts = finite.sum(axis=0)
        offset[counts > 0] = np.where(finite, vals, 0.0).sum(axis=0)[counts > 0] / counts[counts > 0]
        vals = vals - offset
        if method == "linear":
            out = _linear_evaluate(self.tri.simplices, _Element(self.tri.points, None, vals, None), simplex, bary, dtype)
        else:
            filled = vals if all_finite else np.where(finite, vals, 0.0)
            grad = self._gradients(None).apply(filled)
            for columns in _group_columns(finite).values():
                keep = finite[:, columns[0]]
                if not keep.all():
                    patch = self._gradients(keep)
                    grad[np.ix_(patch.rows, np.asarray(columns))] = patch.apply(filled[:, columns])
            element = _Element(self.tri.points, self._shape_factors, filled, grad)
            out = _ct_evaluate(self.tri.simplices, element, simplex, bary, dtype)
            for j in np.flatnonzero(~finite.all(axis=0)):
                bad = (~finite[self.tri.simplices, j]).any(axis=1)  # (T,): a corner value is missing
                out[bad[simplex], j] = np.nan
        out += offset.astype(dtype)
        return out

    def subset(self, keep: np.ndarray, name: str) -> Subset:
        """The interpolator of the points ``keep`` (bool per valid point) -- the same as one made from those points
        alone, with its own triangulation -- and how its triangles map onto this one's (:class:`Subset`)."""
        index = np.flatnonzero(keep)
        own = PointInterpolator(self.lonlat[index, 0], self.lonlat[index, 1], name)
        n_base = 0 if self.tri is None else self.tri.simplices.shape[0]
        if self.tri is None or own.tri is None:
            return Subset(own, index, np.full(n_base, -1, dtype=np.intp), np.zeros((n_base, 3), dtype=np.intp))
        match, perm = match_triangles(self.tri.simplices, index[own.tri.simplices])
        return Subset(own, index, match, perm)

    def interpolate_parts(
        self, parts: list[tuple[Subset | None, np.ndarray]], simplex: np.ndarray, bary: np.ndarray, method: Method,
        dtype: type = np.float64,
    ) -> np.ndarray:
        """``linear`` or ``cubic`` of several sets of columns at once, at points located in this triangulation
        (``simplex``, ``bary``, as for :meth:`interpolate`); ``(M, k)``, the parts' columns side by side.

        A part is ``(subset, values)``: ``values`` ``(N, k)``, finite, at the points of ``subset``
        (:meth:`subset`; None: this interpolator's own points), interpolated on the subset's own triangulation
        as its :meth:`interpolate` would (the same within rounding). This works in the triangles the subset shares
        with this triangulation (all but those around the points it leaves out); at a point in any other triangle
        the part's columns are NaN: locate such points in the subset's :attr:`Subset.fresh` triangles instead.
        All columns are evaluated as one: the points' cubic weights, the costly part, are computed once.

        A subset's element on a shared triangle is the same polynomial in this interpolator's plane: its values,
        its gradients (its own plane differs from this one by a scale of x and a shift, so the x components are
        scaled) and its cross-boundary factors (affine-invariant, but they depend on the neighbouring triangles, so
        they are the subset's own, per column).
        """
        assert self.tri is not None and method in ("linear", "cubic")
        n, cubic = self.tri.points.shape[0], method == "cubic"
        columns: list[np.ndarray] = []
        gradients: list[np.ndarray] = []
        factors: list[np.ndarray] = []
        offsets, shared = [], []
        for subset, values in parts:
            own = self if subset is None else subset.interp
            vals = np.asarray(values, dtype=float)
            offset = vals.sum(axis=0) / max(vals.shape[0], 1)  # as interpolate(): shifted by the column means
            vals = vals - offset
            offsets.append(offset)
            shared.append(None if subset is None else subset.match >= 0)
            at_base = vals if subset is None else np.full((n, vals.shape[1]), np.nan)
            if subset is not None:
                at_base[subset.index] = vals
            columns.append(at_base)
            if not cubic:
                continue
            grad = own._gradients(None).apply(vals)
            if subset is not None:
                grad_at_base = np.full((n, vals.shape[1], 2), np.nan)
                grad_at_base[subset.index] = grad
                grad_at_base[:, :, 0] *= np.cos(np.deg2rad(own.lat0)) / np.cos(np.deg2rad(self.lat0))
                grad = grad_at_base
            gradients.append(grad)
            factors.append(self._shape_factors if subset is None else subset.factors)
        widths = [c.shape[1] for c in columns]
        vals = columns[0] if len(columns) == 1 else np.concatenate(columns, axis=1)
        if not cubic:
            out = _linear_evaluate(self.tri.simplices, _Element(self.tri.points, None, vals, None), simplex, bary, dtype)
        else:
            grad = gradients[0] if len(gradients) == 1 else np.concatenate(gradients, axis=1)
            element = _Element(self.tri.points, factors[0], vals, grad)
            if len(factors) > 1:  # each part's columns with its own factors (expanded block by block)
                groups = np.repeat(np.arange(len(factors)), widths)
                element = _Element(self.tri.points, np.stack(factors, axis=2), vals, grad, groups)
            out = _ct_evaluate(self.tri.simplices, element, simplex, bary, dtype)
        col = 0
        for width, ok in zip(widths, shared, strict=True):
            if ok is not None:
                out[~ok[simplex], col : col + width] = np.nan
            col += width
        out += np.concatenate(offsets).astype(dtype)
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
        from scipy.spatial import cKDTree  # imported when first needed: scipy.spatial costs 0.13 s to import

        return cKDTree(self.points)

    def _nearest(self, loc: Location) -> np.ndarray:
        """Index (into the valid points) of the nearest point of each located query point (exact)."""
        return self._nearest_points(loc.points)

    def _nearest_points(self, pts: np.ndarray) -> np.ndarray:
        """Index (into the valid points) of the nearest point to each ``(M, 2)`` plane position: by brute force
        when there are few (the odd cell no Voronoi fan covers), else with a k-d tree."""
        n = self.points.shape[0]
        if pts.shape[0] * n > _BRUTE_FORCE:
            return np.asarray(self._kdtree.query(pts)[1], dtype=np.intp)
        out = np.empty(pts.shape[0], dtype=np.intp)
        step = max(1, _BRUTE_FORCE // (16 * n))
        for i in range(0, pts.shape[0], step):
            d = pts[i : i + step, None, :] - self.points[None, :, :]
            out[i : i + step] = np.einsum("mnk,mnk->mn", d, d).argmin(axis=1)
        return out

    def _gradients(self, keep: np.ndarray | None) -> _GradientOperator:
        """The gradient operator (cached per pattern): at every vertex when all values are finite (``keep`` None),
        else only at the vertices with a finite value next to one without (``keep`` False); the others keep the
        first's gradients."""
        assert self.tri is not None
        key = b"" if keep is None else np.packbits(keep).tobytes()
        if key not in self._operators:
            stencil = self._stencil
            if keep is None:
                self._operators[key] = _gradient_operator(self.tri.points, stencil, None)
            else:
                indptr, neighbour = stencil
                owner = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
                touched = np.zeros(keep.shape[0], dtype=bool)
                touched[owner[~keep[neighbour]]] = True
                rows = np.flatnonzero(touched & keep)
                self._operators[key] = _gradient_operator(self.tri.points, stencil, keep, rows)
        return self._operators[key]

    @cached_property
    def _stencil(self) -> tuple[np.ndarray, np.ndarray]:
        """The neighbours each vertex's gradient is fitted on (:func:`gradient_stencil`)."""
        assert self.tri is not None
        return gradient_stencil(self.tri)

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


@dataclass(frozen=True)
class Subset:
    """A subset of a base interpolator's points (:meth:`PointInterpolator.subset`): their own interpolator
    ``interp`` (point ``i`` is the base's valid point ``index[i]``) and, per base triangle, the subset triangle with
    the same corners (``match``, -1 if none) and which of its corners is the base triangle's corner ``k``
    (``perm``). Removing points changes only the triangles around them, so most triangles are shared."""

    interp: PointInterpolator
    index: np.ndarray
    match: np.ndarray
    perm: np.ndarray

    @property
    def shared(self) -> float:
        """The fraction of the base triangles the subset's triangulation shares."""
        return float((self.match >= 0).mean()) if self.match.size else 0.0

    @cached_property
    def fresh(self) -> np.ndarray:
        """The subset's triangles that are not base triangles (they cover the holes left by the removed points)."""
        tri = self.interp.tri
        if tri is None:
            return np.zeros(0, dtype=np.intp)
        twin = np.zeros(tri.simplices.shape[0], dtype=bool)
        twin[self.match[self.match >= 0]] = True
        return np.flatnonzero(~twin)

    @cached_property
    def factors(self) -> np.ndarray:
        """The subset's cubic edge factors (:func:`_edge_factors`) on the base's triangles, in the base's corner
        order; NaN on the triangles it does not share."""
        factors = np.full(self.match.shape + (3,), np.nan)
        ok = self.match >= 0
        factors[ok] = np.take_along_axis(self.interp._shape_factors[self.match[ok]], self.perm[ok], axis=1)
        return factors


@dataclass(frozen=True)
class _Element:
    """What the interpolants need on a triangulation's vertices: plane coordinates ``(N, 2)``, the cubic's edge
    factors ``(T, 3)`` (:func:`_edge_factors`; or ``(T, 3, G)``, ``G`` sets of them, and ``groups``: the set each
    column uses), values ``(N, k)`` and gradients ``(N, k, 2)`` (None for ``linear``)."""

    points: np.ndarray
    factors: np.ndarray | None
    vals: np.ndarray
    grad: np.ndarray | None
    groups: np.ndarray | None = None  # with factors (T, 3, G): the group (of factors) of each column


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


def _triangulate(points: np.ndarray, name: str) -> Triangulation | None:
    """The Delaunay triangulation, or None (nearest-neighbour fallback) when the points are degenerate."""
    try:
        return triangulate(points)
    except DelaunayDegenerate as exc:
        log.info("%s: cannot triangulate (%s); using nearest neighbour", name, exc)
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
    second, which = _expand_runs(ring_ptr[via], ring_ptr[via + 1] - ring_ptr[via])
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


def _gradient_operator(
    points: np.ndarray, stencil: tuple[np.ndarray, np.ndarray], keep: np.ndarray | None, rows: np.ndarray | None = None
) -> _GradientOperator:
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
        edges, _ = _expand_runs(indptr[rows], degree)
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
    return _GradientOperator(matrix, diagonal, rows)


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


def _blocks(length: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Consecutive ranges ``[lo, hi)`` of runs whose lengths add up to about ``size`` (at least one run each)."""
    ends = np.searchsorted(np.cumsum(length), np.arange(size, int(length.sum()) + size, size), side="right")
    bounds = np.unique(np.concatenate([[0], np.minimum(ends, length.shape[0]), [length.shape[0]]]))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _expand_runs(start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of consecutive flat indices -> ``(flat, run)``: every index, and the run it belongs to."""
    total = int(length.sum())
    offsets = np.cumsum(length) - length
    which = np.repeat(np.arange(length.shape[0]), length)
    return np.repeat(start - offsets, length) + np.arange(total, dtype=np.int64), which


def _voronoi_fans(tri: Triangulation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Voronoi cells of the points as triangles ``(site, x (F, 3), y (F, 3))`` fanned from each site.

    A Delaunay edge ``a-b`` between triangles ``t`` and ``u`` is the Voronoi edge between the circumcentres of
    ``t`` and ``u``: it gives the fan triangles ``(a, c_t, c_u)`` and ``(b, c_t, c_u)``. A hull edge gives a ray
    from ``c_t`` outward, cut at a far point ``f``: ``(a, c_t, f)``, ``(b, c_t, f)``; and each hull vertex closes its
    cell with ``(h, f_1, f_2)`` between its two rays. Triangles with a corner at infinity (the circumcentre of a
    sliver) are dropped; zero-area ones are left to the caller.
    """
    p = tri.points
    s = tri.simplices
    centre = _circumcentres(np.take(p, s, axis=0))
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


def _circumcentres(p: np.ndarray) -> np.ndarray:
    """``(T, 2)`` circumcentres of triangles ``(T, 3, 2)`` (non-finite for degenerate ones)."""
    b = p[:, 1] - p[:, 0]
    c = p[:, 2] - p[:, 0]
    d = 2.0 * (b[:, 0] * c[:, 1] - b[:, 1] * c[:, 0])
    bb, cc = (b * b).sum(axis=1), (c * c).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = (c[:, 1] * bb - b[:, 1] * cc) / d
        uy = (b[:, 0] * cc - c[:, 0] * bb) / d
    return p[:, 0] + np.column_stack([ux, uy])


def _affine_from_vertices(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`_affine_maps` of triangles given by ``(T, 3)`` vertex coordinates."""
    x0, y0 = x[:, 0] - x[:, 2], y[:, 0] - y[:, 2]
    x1, y1 = x[:, 1] - x[:, 2], y[:, 1] - y[:, 2]
    det = x0 * y1 - x1 * y0
    det = np.where(det != 0, det, np.inf)  # degenerate sliver: barycentrics (0, 0, 1), never divided by zero
    return np.column_stack([y1 / det, -x1 / det, -y0 / det, x0 / det, x[:, 2], y[:, 2]])


def _affine_maps(tri: Triangulation) -> np.ndarray:
    """``(T, 6)`` rows ``a00 a01 a10 a11 x2 y2`` with ``(b0, b1) = A (p - p2)`` in each triangle."""
    p = np.take(tri.points, tri.simplices, axis=0)
    x0, y0 = p[:, 0, 0] - p[:, 2, 0], p[:, 0, 1] - p[:, 2, 1]
    x1, y1 = p[:, 1, 0] - p[:, 2, 0], p[:, 1, 1] - p[:, 2, 1]
    det = x0 * y1 - x1 * y0
    det = np.where(det != 0, det, np.inf)  # degenerate sliver: barycentrics (0, 0, 1), never divided by zero
    return np.column_stack([y1 / det, -x1 / det, -y0 / det, x0 / det, p[:, 2, 0], p[:, 2, 1]])


def _barycentric(affine: np.ndarray, simplex: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``(M, 3)`` barycentric coordinates of ``pts`` in triangles ``simplex``."""
    t = np.take(affine, simplex, axis=0)
    dx = pts[:, 0] - t[:, 4]
    dy = pts[:, 1] - t[:, 5]
    b0 = t[:, 0] * dx + t[:, 1] * dy
    b1 = t[:, 2] * dx + t[:, 3] * dy
    return np.column_stack([b0, b1, 1.0 - b0 - b1])


def _edge_factors(tri: Triangulation, affine: np.ndarray) -> np.ndarray:
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
        c = _barycentric(affine, t, np.take(centroids, neighbours[t, k], axis=0))
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
#: The 19 distinct ordinates of one triangle, and for each sub-triangle q and term j the index of its ordinate.
_UNIQUE = tuple(sorted(set(_NAMES.ravel())))
_SLOTS = np.array([[_UNIQUE.index(name) for name in row] for row in _NAMES], dtype=np.intp)


def _ct_evaluate(
    simplices: np.ndarray, element: _Element, simplex: np.ndarray, bary: np.ndarray, dtype: type
) -> np.ndarray:
    """The Clough-Tocher cubic at barycentric ``bary`` in triangles ``simplex`` (of ``simplices``): ``(M, k)`` of
    ``dtype``.

    Streams over blocks of triangles: the Bezier ordinates of a block (:func:`_ct_ordinates_block`) are made, the
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
    starts = np.arange(0, s.shape[0], _TRI_BLOCK)
    first_point = np.searchsorted(simplex, np.append(starts, s.shape[0]))
    ordinates = np.empty((len(_UNIQUE), _TRI_BLOCK, k))
    for i, t0 in enumerate(starts):
        p0, p1 = first_point[i], first_point[i + 1]
        if p1 == p0:
            continue
        part = slice(t0, t0 + _TRI_BLOCK)
        block = ordinates[:, : s[part].shape[0]]
        f = factors[part] if element.groups is None else factors[part][:, :, element.groups]  # (t, 3[, k])
        _ct_ordinates_block(element.points, s[part], f, element.vals, element.grad, block)
        table = block.reshape(-1, k)
        for q0 in range(p0, p1, _BLOCK):
            q1 = min(q0 + _BLOCK, p1)
            out[q0:q1] = _ct_weights(simplex[q0:q1] - t0, bary[q0:q1], block.shape[1]) @ table
    if order is not None:
        unsorted = np.empty_like(out)
        unsorted[order] = out
        out = unsorted
    return out


def _linear_evaluate(
    simplices: np.ndarray, element: _Element, simplex: np.ndarray, bary: np.ndarray, dtype: type
) -> np.ndarray:
    """Barycentric interpolation at barycentric ``bary`` in triangles ``simplex``: ``(M, k)`` of ``dtype``."""
    corners = simplices[simplex]
    b: np.ndarray = bary.astype(dtype, copy=False)
    v: np.ndarray = element.vals.astype(dtype)
    out = b[:, 0, None] * v[corners[:, 0]]
    out += b[:, 1, None] * v[corners[:, 1]]
    out += b[:, 2, None] * v[corners[:, 2]]
    return out


def _ct_ordinates_block(
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


def _ct_weights(simplex: np.ndarray, bary: np.ndarray, n_triangles: int) -> csr_array:
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
