"""The interpolator of one point set: :class:`PointInterpolator` (triangulated once, evaluated for many variables
at once), the :class:`Location` of query points in its triangulation and the :class:`Subset` of its points that
shares most of its triangles. The methods and policies are described in :mod:`oco_l3.interpolation`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Literal

import numpy as np

from oco_l3.delaunay import DelaunayDegenerate, Triangulation, triangulate
from oco_l3.errors import CaptureDegenerate
from oco_l3.footprints import Window, rasterise_triangles, to_index_space, unwrap_longitude
from oco_l3.grids import GridSpec
from oco_l3.interpolation import cells
from oco_l3.interpolation.clough_tocher import Element, edge_factors, evaluate_cubic
from oco_l3.interpolation.gradients import (
    GradientOperator,
    gradient_operator,
    gradient_stencil,
    rows_next_to_missing,
)
from oco_l3.interpolation.runs import paint_runs
from oco_l3.interpolation.triangles import affine_maps, barycentric, linear_evaluate, match_triangles
from oco_l3.interpolation.voronoi import voronoi_fans

if TYPE_CHECKING:
    from scipy.spatial import cKDTree

log = logging.getLogger("oco_l3.interpolation")

Method = Literal["linear", "cubic", "nearest"]
METHODS: tuple[Method, ...] = ("linear", "cubic", "nearest")

#: Query points x sounding pairs up to which a nearest-neighbour search is done by brute force.
_BRUTE_FORCE = 4_000_000


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
        self._operators: dict[bytes, GradientOperator] = {}

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
        return Location(pts, simplex, barycentric(self._affine, np.maximum(simplex, 0), pts))

    def locate_cells(self, grid: GridSpec, window: tuple[int, int, int, int], mask: np.ndarray) -> Location:
        """Locate the centres of the cells ``mask`` (window-shaped, ``window`` = r0, r1, c0, c1) of ``grid``.

        Same result as :meth:`locate` on those centres, but the triangles are rasterised onto the window
        (:func:`~oco_l3.footprints.rasterise_triangles`) instead of searched cell by cell. Cells on a shared edge
        go to either triangle (the interpolants agree there).
        """
        rows, cols = np.nonzero(mask)
        pts = self._cell_centres(grid, window, rows, cols)
        if self.tri is None or rows.size == 0:
            return Location(pts, np.full(rows.size, -1, dtype=np.intp), np.zeros((rows.size, 3)))
        simplex = cells.triangle_owner(self.lonlat, self.tri.simplices, grid, window, mask.shape)[rows, cols]
        return Location(pts, simplex, barycentric(self._affine, np.maximum(simplex, 0), pts))

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
        if self.tri is None or not mask.any() or (triangles is not None and triangles.size == 0):
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros((0, 3))
        corners = self.tri.simplices if triangles is None else self.tri.simplices[triangles]
        flat, simplex, bary = cells.cells_in_triangles(self.lonlat, corners, grid, window, mask)
        return flat, simplex if triangles is None else triangles[simplex], bary

    def nearest_cells(self, grid: GridSpec, window: Window, shape: tuple[int, int]) -> np.ndarray:
        """Window-shaped map of the nearest valid point (index into the valid points) to every cell centre.

        The Voronoi cell of each point (convex, built from the circumcentres of the Delaunay triangles around it,
        with rays beyond the hull) is rasterised as a fan of triangles, so no cell is searched; the few centres no
        fan triangle covers (on a shared edge, lost to rounding; or degenerate geometry) are searched directly.
        Centres equidistant from two points may go to either.
        """
        owner = np.full(shape, -1, dtype=np.intp)
        if self.tri is not None and owner.size:
            site, tx, ty = self._voronoi_fans_in_window(grid, window)
            tri_id, row, col0, col1 = rasterise_triangles(tx, ty, shape)
            paint_runs(owner, row, col0, col1, site[tri_id])
        missing = np.flatnonzero(owner.reshape(-1) < 0)
        if missing.size:
            rows, cols = np.divmod(missing, shape[1])
            owner.reshape(-1)[missing] = self._nearest_points(self._cell_centres(grid, window, rows, cols))
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
        offset = _finite_means(vals, finite)
        vals = vals - offset
        if method == "linear":
            out = linear_evaluate(self.tri.simplices, vals, simplex, bary, dtype)
        else:
            filled = vals if finite.all() else np.where(finite, vals, 0.0)
            element = Element(self.tri.points, self._shape_factors, filled, self._gradients_of(filled, finite))
            out = evaluate_cubic(self.tri.simplices, element, simplex, bary, dtype)
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
        prepared = [self._part_on_base(subset, values, method == "cubic") for subset, values in parts]
        columns = [p.values for p in prepared]
        widths = [c.shape[1] for c in columns]
        vals = columns[0] if len(columns) == 1 else np.concatenate(columns, axis=1)
        if method == "linear":
            out = linear_evaluate(self.tri.simplices, vals, simplex, bary, dtype)
        else:
            gradients = [p.gradients for p in prepared if p.gradients is not None]
            factors = [p.factors for p in prepared if p.factors is not None]
            grad = gradients[0] if len(gradients) == 1 else np.concatenate(gradients, axis=1)
            element = Element(self.tri.points, factors[0], vals, grad)
            if len(factors) > 1:  # each part's columns with its own factors (expanded block by block)
                groups = np.repeat(np.arange(len(factors)), widths)
                element = Element(self.tri.points, np.stack(factors, axis=2), vals, grad, groups)
            out = evaluate_cubic(self.tri.simplices, element, simplex, bary, dtype)
        col = 0
        for width, part in zip(widths, prepared, strict=True):
            if part.shared is not None:
                out[~part.shared[simplex], col : col + width] = np.nan
            col += width
        out += np.concatenate([p.offset for p in prepared]).astype(dtype)
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

    def _gradients(self, keep: np.ndarray | None) -> GradientOperator:
        """The gradient operator (cached per pattern): at every vertex when all values are finite (``keep`` None),
        else only at the vertices with a finite value next to one without (``keep`` False); the others keep the
        first's gradients."""
        assert self.tri is not None
        key = b"" if keep is None else np.packbits(keep).tobytes()
        if key not in self._operators:
            if keep is None:
                self._operators[key] = gradient_operator(self.tri.points, self._stencil, None)
            else:
                rows = rows_next_to_missing(self._stencil, keep)
                self._operators[key] = gradient_operator(self.tri.points, self._stencil, keep, rows)
        return self._operators[key]

    def _gradients_of(self, filled: np.ndarray, finite: np.ndarray) -> np.ndarray:
        """``(N, k, 2)`` vertex gradients of the columns of ``filled`` (missing values zeroed), each fitted on the
        neighbours where its value is ``finite``: one operator for all, patched per pattern of missing values."""
        grad = self._gradients(None).apply(filled)
        for columns in _group_columns(finite).values():
            keep = finite[:, columns[0]]
            if not keep.all():
                patch = self._gradients(keep)
                grad[np.ix_(patch.rows, np.asarray(columns))] = patch.apply(filled[:, columns])
        return grad

    def _part_on_base(self, subset: Subset | None, values: np.ndarray, cubic: bool) -> _Part:
        """One part of :meth:`interpolate_parts` on this interpolator's points: values shifted by their column means
        (as :meth:`interpolate` does) and NaN at the points the subset leaves out, with their gradients (x scaled
        from the subset's plane to this one) and edge factors for the cubic."""
        assert self.tri is not None
        n = self.tri.points.shape[0]
        own = self if subset is None else subset.interp
        vals = np.asarray(values, dtype=float)
        offset = vals.sum(axis=0) / max(vals.shape[0], 1)
        vals = vals - offset
        at_base = vals if subset is None else np.full((n, vals.shape[1]), np.nan)
        if subset is not None:
            at_base[subset.index] = vals
        shared = None if subset is None else subset.match >= 0
        if not cubic:
            return _Part(at_base, offset, shared, None, None)
        grad = own._gradients(None).apply(vals)
        if subset is not None:
            grad_at_base = np.full((n, vals.shape[1], 2), np.nan)
            grad_at_base[subset.index] = grad
            grad_at_base[:, :, 0] *= np.cos(np.deg2rad(own.lat0)) / np.cos(np.deg2rad(self.lat0))
            grad = grad_at_base
        return _Part(at_base, offset, shared, grad, self._shape_factors if subset is None else subset.factors)

    def _cell_centres(self, grid: GridSpec, window: Window, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Plane coordinates of the centres of the window's cells ``(rows, cols)``."""
        r0, _, c0, _ = window
        return self.to_plane(np.column_stack([grid.longitude[c0 + cols], grid.latitude[r0 + rows]]))

    def _voronoi_fans_in_window(self, grid: GridSpec, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The Voronoi fan triangles (:func:`~oco_l3.interpolation.voronoi.voronoi_fans`) in the window's index
        space: ``(site, x (F, 3), y (F, 3))``. The plane is an affine map of lon/lat, so of grid indices too."""
        assert self.tri is not None
        r0, _, c0, _ = window
        site, fx, fy = voronoi_fans(self.tri)
        alpha = 1.0 / (np.cos(np.deg2rad(self.lat0)) * grid.dlon)
        x, y = to_index_space(self.lonlat[:1, 1], self.lonlat[:1, 0], grid)
        tx = alpha * (fx - self.points[0, 0]) + (x[0] - c0)
        ty = (fy - self.points[0, 1]) / grid.dlat + (y[0] - r0)
        return site, tx, ty

    @cached_property
    def _stencil(self) -> tuple[np.ndarray, np.ndarray]:
        """The neighbours each vertex's gradient is fitted on (:func:`gradient_stencil`)."""
        assert self.tri is not None
        return gradient_stencil(self.tri)

    @cached_property
    def _affine(self) -> np.ndarray:
        """``(T, 6)`` per triangle: the 2x2 map from ``p - p2`` to barycentrics (b0, b1), then ``p2``."""
        assert self.tri is not None
        return affine_maps(self.tri)

    @cached_property
    def _shape_factors(self) -> np.ndarray:
        """Per triangle and edge (opposite vertex k), the affine-invariant cross-boundary direction factor."""
        assert self.tri is not None
        return edge_factors(self.tri, self._affine)


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
        """The subset's cubic edge factors (:func:`edge_factors`) on the base's triangles, in the base's corner
        order; NaN on the triangles it does not share."""
        factors = np.full(self.match.shape + (3,), np.nan)
        ok = self.match >= 0
        factors[ok] = np.take_along_axis(self.interp._shape_factors[self.match[ok]], self.perm[ok], axis=1)
        return factors


@dataclass(frozen=True)
class _Part:
    """One part of :meth:`PointInterpolator.interpolate_parts` on the base's points: shifted values ``(N, k)``, the
    column means they were shifted by, which base triangles the part's own triangulation shares (None: all), and
    for the cubic its gradients ``(N, k, 2)`` and edge factors ``(T, 3)``."""

    values: np.ndarray
    offset: np.ndarray
    shared: np.ndarray | None
    gradients: np.ndarray | None
    factors: np.ndarray | None


def _finite_means(vals: np.ndarray, finite: np.ndarray) -> np.ndarray:
    """Each column's mean over its finite values (0 for a column without any)."""
    offset = np.zeros(vals.shape[1])
    counts = finite.sum(axis=0)
    offset[counts > 0] = np.where(finite, vals, 0.0).sum(axis=0)[counts > 0] / counts[counts > 0]
    return offset


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

