"""Footprint mask: which grid cells lie inside the 4-vertex footprint of at least one sounding.

A cell is *inside* when its centre lies inside (or on the edge of) a footprint quadrilateral, after the quad is
scaled about its centroid (mean of its vertices) by ``scaling``. The rasteriser is a vectorised scanline over
triangles, with no Python loop over footprints, rows or cells:

1. Vertices are mapped to fractional grid-index space (cell centre of row ``r``, column ``c`` is ``(c, r)``).
2. Each quad becomes two triangles split along an interior diagonal (``0-2`` when the two triangles on it have the
   same orientation, else ``1-3``), so convex and non-convex simple quads are exact and vertex order may be
   clockwise or anticlockwise. A self-intersecting (bow-tie) quad becomes its two lobes (the triangles meeting at
   the crossing point), as ``shapely.make_valid`` would repair it. Zero-area triangles are dropped.
3. For every (triangle, cell row) pair the horizontal line through the row's centres cuts the triangle in one
   interval ``[x_left, x_right]``; the cells ``ceil(x_left) .. floor(x_right)`` are inside.

The intervals are kept (:class:`FootprintIntervals`) so that the mask of any subset of the footprints -- the
post-QF soundings of a capture -- costs only a filter and a fill, not a second rasterisation.

Footprints with a non-finite vertex are ignored. Longitudes are unwrapped to within 180 degrees of the grid centre,
so footprints straddling the antimeridian land on grids next to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from oco_l3.grids import GridSpec

log = logging.getLogger(__name__)

Window = tuple[int, int, int, int]
EMPTY_WINDOW: Window = (0, 0, 0, 0)


@dataclass(frozen=True)
class FootprintIntervals:
    """Runs of inside cells: footprint ``index[i]`` covers row ``row[i]``, columns ``col0[i] .. col1[i]`` inclusive."""

    grid: GridSpec
    index: np.ndarray
    row: np.ndarray
    col0: np.ndarray
    col1: np.ndarray

    def window(self, select: np.ndarray | None = None) -> Window:
        """Half-open ``(r0, r1, c0, c1)`` bounding the inside cells of the footprints ``select`` (bool per footprint)."""
        keep = self._keep(select)
        if not keep.any():
            return EMPTY_WINDOW
        row = self.row[keep]
        return (int(row.min()), int(row.max()) + 1, int(self.col0[keep].min()), int(self.col1[keep].max()) + 1)

    def mask(self, select: np.ndarray | None = None, window: Window | None = None) -> tuple[np.ndarray, Window]:
        """The window-shaped boolean mask and its window, for all footprints or the ``select`` subset; in ``window``
        when given (which must hold every inside cell of the subset), else in the subset's own window."""
        counts, window = self.coverage(select, window, exact=False)
        return counts > 0, window

    def coverage(
        self, select: np.ndarray | None = None, window: Window | None = None, exact: bool = True
    ) -> tuple[np.ndarray, Window]:
        """How many footprints (all, or the ``select`` subset) cover each cell centre of ``window`` (default: the
        subset's window), as a window-shaped int32 array, and the window.

        A footprint is two triangles (see the module docstring): a centre on the diagonal they share lies in both,
        and is counted once when ``exact`` (the default; ``exact=False`` only promises the right zeros, for masks).
        Counted with a difference array along each row: the cost grows with the runs and the window, not with the
        number of covered cells.
        """
        keep = self._keep(select)
        window = self.window(select) if window is None else window
        r0, r1, c0, c1 = window
        width = c1 - c0 + 1  # one spare column for the ends of the runs
        if r1 <= r0 or c1 <= c0:
            return np.zeros((max(r1 - r0, 0), max(c1 - c0, 0)), dtype=np.int32), window
        index, row, col0, col1 = self.index[keep], self.row[keep] - r0, self.col0[keep] - c0, self.col1[keep] - c0
        if row.size and (row.min() < 0 or row.max() >= r1 - r0 or col0.min() < 0 or col1.max() >= c1 - c0):
            raise ValueError(f"window {window} does not hold every footprint of the selection")
        size = (r1 - r0) * width
        diff = np.bincount(row * width + col0, minlength=size) - np.bincount(row * width + col1 + 1, minlength=size)
        if exact and row.size:
            diff += _shared_diagonal_counts(index, row, col0, col1, width, size)
        counts = np.cumsum(diff.reshape(r1 - r0, width), axis=1, dtype=np.int32)
        return counts[:, :-1], window

    def _keep(self, select: np.ndarray | None) -> np.ndarray:
        if select is None:
            return np.ones(self.index.shape[0], dtype=bool)
        return np.asarray(select, dtype=bool)[self.index]


def _shared_diagonal_counts(
    index: np.ndarray, row: np.ndarray, col0: np.ndarray, col1: np.ndarray, width: int, size: int
) -> np.ndarray:
    """The difference-array correction that counts once the cells two runs of one footprint on one row share.

    Runs come grouped by footprint (``index`` non-decreasing), so the two runs of a footprint's two triangles on
    one row are neighbours once sorted by ``(footprint, row)``.
    """
    key = index.astype(np.int64) * (int(row.max()) + 1) + row
    order = np.argsort(key, kind="stable")
    same = np.flatnonzero(key[order[1:]] == key[order[:-1]])
    a, b = order[same], order[same + 1]
    lo, hi = np.maximum(col0[a], col0[b]), np.minimum(col1[a], col1[b])
    both = hi >= lo
    fix = np.zeros(size, dtype=np.int64)
    if both.any():
        r, lo, hi = row[a][both], lo[both], hi[both]
        fix -= np.bincount(r * width + lo, minlength=size)
        fix += np.bincount(r * width + hi + 1, minlength=size)
    return fix


def footprint_mask(
    vertex_lat: np.ndarray, vertex_lon: np.ndarray, grid: GridSpec, scaling: float = 1.0
) -> tuple[np.ndarray, Window]:
    """Cells of ``grid`` whose centre lies in at least one footprint, as ``(mask, (r0, r1, c0, c1))``.

    ``vertex_lat``/``vertex_lon`` are ``(N, 4)`` in degrees; ``scaling`` (> 0, the product allows 1..1.5) enlarges
    each quad about its centroid. ``mask`` is window-shaped (``(r1 - r0, c1 - c0)``, row 0 = southernmost row of
    the window); the window is the bounding box of the inside cells and is ``(0, 0, 0, 0)`` when there are none.
    """
    return footprint_intervals(vertex_lat, vertex_lon, grid, scaling).mask()


def footprint_intervals(
    vertex_lat: np.ndarray, vertex_lon: np.ndarray, grid: GridSpec, scaling: float = 1.0
) -> FootprintIntervals:
    """Rasterise the footprints once into :class:`FootprintIntervals` (see the module docstring)."""
    if not (np.isfinite(scaling) and scaling > 0):
        raise ValueError(f"footprint scaling must be a positive number, got {scaling!r}")
    x, y = _index_space(np.asarray(vertex_lat, float), np.asarray(vertex_lon, float), grid, scaling)
    finite = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    if not finite.all():
        log.debug("ignoring %d footprints with non-finite vertices", int((~finite).sum()))
    ids = np.flatnonzero(finite)
    tri_id, tx, ty = _triangles(ids, x[finite], y[finite])
    index, row, col0, col1 = _scanline(tri_id, tx, ty, grid.shape)
    return FootprintIntervals(grid, index, row, col0, col1)


def rasterise_triangles(
    tx: np.ndarray, ty: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cells whose centre lies in each triangle, as runs ``(triangle, row, col0, col1)`` (columns inclusive).

    ``tx``/``ty`` are ``(T, 3)`` vertex coordinates in fractional grid-index space (column, row; cell centres at
    integers), see :func:`to_index_space`; only cells of an array of ``shape`` (rows, cols) count. Zero-area
    triangles and triangles with a non-finite corner are dropped; edges count as inside.
    """
    tx = np.asarray(tx, dtype=float)
    ty = np.asarray(ty, dtype=float)
    finite = np.flatnonzero(_finite_rows(tx) & _finite_rows(ty))
    if finite.size < tx.shape[0]:
        tx, ty = tx[finite], ty[finite]
    area = _cross(tx[:, 0], ty[:, 0], tx[:, 1], ty[:, 1], tx[:, 2], ty[:, 2])
    keep = np.flatnonzero(np.isfinite(area) & (area != 0))  # an area can overflow to inf - inf
    if keep.size == tx.shape[0]:  # the usual case: no copies
        return _scanline(finite, tx, ty, shape)
    return _scanline(finite[keep], tx[keep], ty[keep], shape)


def _finite_rows(a: np.ndarray) -> np.ndarray:
    """Rows of ``(T, k)`` ``a`` with every entry finite: ``np.isfinite(a).all(axis=1)``, column by column (a
    reduction along a short axis costs 3x more)."""
    finite = np.isfinite(a)
    out = finite[:, 0].copy()
    for j in range(1, a.shape[1]):
        out &= finite[:, j]
    return out


def to_index_space(lat: np.ndarray, lon: np.ndarray, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (column, row) grid indices of lon/lat positions; cell centres sit at integers."""
    lon = unwrap_longitude(np.asarray(lon, dtype=float), 0.5 * (grid.bbox.min_lon + grid.bbox.max_lon))
    x = (lon - grid.bbox.min_lon) / grid.dlon - 0.5
    y = (np.asarray(lat, dtype=float) - grid.bbox.min_lat) / grid.dlat - 0.5
    return x, y


def _index_space(
    vlat: np.ndarray, vlon: np.ndarray, grid: GridSpec, scaling: float
) -> tuple[np.ndarray, np.ndarray]:
    """Vertices as fractional column (x) and row (y) indices; cell centres sit at integers."""
    if vlat.ndim != 2 or vlat.shape[1] != 4 or vlat.shape != vlon.shape:
        raise ValueError(f"footprint vertices must be two (N, 4) arrays, got {vlat.shape} and {vlon.shape}")
    x, y = to_index_space(vlat, vlon, grid)
    if scaling != 1.0:
        cx = x.mean(axis=1, keepdims=True)
        cy = y.mean(axis=1, keepdims=True)
        x = cx + (x - cx) * scaling
        y = cy + (y - cy) * scaling
    return x, y


def unwrap_longitude(lon: np.ndarray, centre: float) -> np.ndarray:
    """Longitudes shifted by 360 degrees where that brings them within 180 degrees of ``centre`` (else unchanged)."""
    far = np.abs(lon - centre) > 180.0
    if not far.any():
        return lon
    return np.where(far, (lon - centre + 180.0) % 360.0 - 180.0 + centre, lon)


def _cross(ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Twice the signed area of triangle abc."""
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


#: Triangles (indices into the 4 vertices and the crossing point, 4) per quad kind, see :func:`_triangles`.
_SPLITS = np.array(
    [
        [[0, 1, 2], [0, 2, 3]],  # convex, or simple with 0-2 inside (also the fallback for degenerate quads)
        [[1, 2, 3], [1, 3, 0]],  # simple with 1-3 inside
        [[4, 1, 2], [4, 3, 0]],  # bow-tie, edges 0-1 and 2-3 cross at point 4
        [[4, 2, 3], [4, 0, 1]],  # bow-tie, edges 1-2 and 3-0 cross at point 4
    ]
)


def _triangles(ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two triangles per quad; returns the footprint id of each triangle and its (T, 3) vertex coordinates.

    Simple quads are split on an interior diagonal; a self-intersecting (bow-tie) quad becomes its two lobes.
    """
    x0, x1, x2, x3 = x.T
    y0, y1, y2, y3 = y.T
    on02 = np.sign(_cross(x0, y0, x1, y1, x2, y2)) * np.sign(_cross(x0, y0, x2, y2, x3, y3)) > 0
    on13 = np.sign(_cross(x1, y1, x2, y2, x3, y3)) * np.sign(_cross(x1, y1, x3, y3, x0, y0)) > 0
    cross01 = _segments_cross(x0, y0, x1, y1, x2, y2, x3, y3)
    cross12 = _segments_cross(x1, y1, x2, y2, x3, y3, x0, y0)
    kind = np.select([on02, on13, cross01, cross12], [0, 1, 2, 3], default=0)
    px, py = _crossing_point(x, y, kind)
    xs = np.column_stack([x, px])
    ys = np.column_stack([y, py])
    split = _SPLITS[kind]  # (n, 2, 3)
    tx = np.take_along_axis(xs[:, None, :], split, axis=2).reshape(-1, 3)
    ty = np.take_along_axis(ys[:, None, :], split, axis=2).reshape(-1, 3)
    tri_id = np.repeat(ids, 2)
    area = _cross(tx[:, 0], ty[:, 0], tx[:, 1], ty[:, 1], tx[:, 2], ty[:, 2])
    keep = area != 0
    return tri_id[keep], tx[keep], ty[keep]


def _segments_cross(
    ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray,
    cx: np.ndarray, cy: np.ndarray, dx: np.ndarray, dy: np.ndarray,
) -> np.ndarray:
    """True where segments ab and cd cross at a point interior to both."""
    d1 = np.sign(_cross(ax, ay, bx, by, cx, cy))
    d2 = np.sign(_cross(ax, ay, bx, by, dx, dy))
    d3 = np.sign(_cross(cx, cy, dx, dy, ax, ay))
    d4 = np.sign(_cross(cx, cy, dx, dy, bx, by))
    return (d1 * d2 < 0) & (d3 * d4 < 0)


def _crossing_point(x: np.ndarray, y: np.ndarray, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where edge 0-1 meets 2-3 (kind 2) or 1-2 meets 3-0 (kind 3); the centroid for the other kinds."""
    first = np.where(kind == 3, 1, 0)[:, None]
    a = np.column_stack([first, first + 1, first + 2, (first + 3) % 4])
    ax, bx, cx, dx = np.take_along_axis(x, a, axis=1).T
    ay, by, cy, dy = np.take_along_axis(y, a, axis=1).T
    denom = (bx - ax) * (dy - cy) - (by - ay) * (dx - cx)
    bow = (kind >= 2) & (denom != 0)
    t = np.where(bow, ((cx - ax) * (dy - cy) - (cy - ay) * (dx - cx)) / np.where(bow, denom, 1.0), 0.0)
    px = np.where(bow, ax + t * (bx - ax), x.mean(axis=1))
    py = np.where(bow, ay + t * (by - ay), y.mean(axis=1))
    return px, py


#: Triangles per block in the scanline, to keep its per-(triangle, row) temporaries in cache.
_SCAN_BLOCK = 4096


def _scanline(
    tri_id: np.ndarray, tx: np.ndarray, ty: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (triangle, row) the inclusive column range of cell centres inside the triangle, clipped to ``shape``."""
    if tri_id.shape[0] <= _SCAN_BLOCK:
        return _scanline_block(tri_id, tx, ty, shape)
    parts = [
        _scanline_block(tri_id[i : i + _SCAN_BLOCK], tx[i : i + _SCAN_BLOCK], ty[i : i + _SCAN_BLOCK], shape)
        for i in range(0, tri_id.shape[0], _SCAN_BLOCK)
    ]
    return tuple(np.concatenate(arrays) for arrays in zip(*parts, strict=True))  # type: ignore[return-value]


def _scanline_block(
    tri_id: np.ndarray, tx: np.ndarray, ty: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_rows, n_cols = shape
    ax, ay, bx, by, cx, cy = _sort_by_y(tx, ty)  # vertices A, B, C from the lowest to the highest
    lo = np.clip(np.ceil(ay), 0, n_rows)
    hi = np.clip(np.floor(cy), -1, n_rows - 1)
    x_min = np.minimum(np.minimum(ax, bx), cx)
    x_max = np.maximum(np.maximum(ax, bx), cx)
    inside = (hi >= lo) & (np.floor(x_max) >= 0) & (np.ceil(x_min) <= n_cols - 1)
    count = np.where(inside, hi - lo + 1, 0).astype(np.int64)
    total = int(count.sum())
    if total == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    which = np.repeat(np.arange(tri_id.shape[0]), count)
    offsets = np.cumsum(count) - count
    row = np.repeat(lo.astype(np.int64) - offsets, count) + np.arange(total, dtype=np.int64)
    params = (ax, ay, bx, by, _slope(ax, ay, cx, cy), _slope(ax, ay, bx, by), _slope(bx, by, cx, cy))
    x_left, x_right = _row_extent(tuple(np.repeat(a, count) for a in params), row.astype(float))  # = a[which]
    col0 = np.maximum(np.ceil(x_left), 0)
    col1 = np.minimum(np.floor(x_right), n_cols - 1)
    keep = np.flatnonzero(col1 >= col0)
    return tri_id[which[keep]], row[keep], col0[keep].astype(np.int64), col1[keep].astype(np.int64)


def _sort_by_y(tx: np.ndarray, ty: np.ndarray) -> tuple[np.ndarray, ...]:
    """The three vertices of each triangle ordered by y (stable): ``ax, ay, bx, by, cx, cy``."""
    x0, x1, x2 = tx[:, 0], tx[:, 1], tx[:, 2]
    y0, y1, y2 = ty[:, 0], ty[:, 1], ty[:, 2]
    swap = y1 < y0  # sort the first two
    x0, x1 = np.where(swap, x1, x0), np.where(swap, x0, x1)
    y0, y1 = np.where(swap, y1, y0), np.where(swap, y0, y1)
    swap = y2 < y1  # sink the third
    x1, x2 = np.where(swap, x2, x1), np.where(swap, x1, x2)
    y1, y2 = np.where(swap, y2, y1), np.where(swap, y1, y2)
    swap = y1 < y0
    x0, x1 = np.where(swap, x1, x0), np.where(swap, x0, x1)
    y0, y1 = np.where(swap, y1, y0), np.where(swap, y0, y1)
    return x0, y0, x1, y1, x2, y2


def _slope(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
    """dx/dy of the edge from (x0, y0) to (x1, y1); 0 for horizontal edges."""
    dy = y1 - y0
    flat = dy == 0
    return np.where(flat, 0.0, (x1 - x0) / np.where(flat, 1.0, dy))


def _row_extent(params: tuple[np.ndarray, ...], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Leftmost and rightmost x where the line ``y`` (between the triangle's lowest and highest vertex) meets it.

    ``params`` are, per line, of its triangle (vertices A, B, C sorted by y): xA, yA, xB, yB and the slopes dx/dy
    of AC, AB, BC. The long edge AC always crosses; the other crossing is on AB below B and on BC from B up.
    """
    xa, ya, xb, yb, s_ac, s_ab, s_bc = params
    dya = y - ya
    x_long = xa + dya * s_ac
    x_short = np.where(y < yb, xa + dya * s_ab, xb + (y - yb) * s_bc)
    return np.minimum(x_long, x_short), np.maximum(x_long, x_short)
