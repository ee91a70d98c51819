"""Grid cells located by rasterising triangles onto a window of the grid instead of searching cell by cell: the
triangle owning each cell centre, the masked cells of a set of triangles with their barycentric coordinates, and
maps painted run by run (:func:`~oco_l3.footprints.rasterise_triangles` gives one run of cells per triangle and row).
"""

from __future__ import annotations

import numpy as np

from oco_l3.footprints import Window, rasterise_triangles, to_index_space
from oco_l3.grids import GridSpec
from oco_l3.interpolation.runs import blocks, expand_runs, paint_runs
from oco_l3.interpolation.triangles import affine_from_vertices

#: Cells per block of runs (about) when listing the cells of triangles: the per-cell temporaries stay small.
RUN_BLOCK = 131072


def triangle_owner(lonlat: np.ndarray, corners: np.ndarray, grid: GridSpec, window: Window,
                   shape: tuple[int, int]) -> np.ndarray:
    """Window-shaped map (``window`` = r0, r1, c0, c1) of the triangle (row of ``corners``, indices into the
    ``(N, 2)`` lon/lat points) whose rasterisation covers each cell centre, -1 where none does. Cells on a shared
    edge go to either triangle."""
    r0, _, c0, _ = window
    x, y = to_index_space(lonlat[:, 1], lonlat[:, 0], grid)
    tri_id, row, col0, col1 = rasterise_triangles(x[corners] - c0, y[corners] - r0, shape)
    owner = np.full(shape, -1, dtype=np.intp)
    paint_runs(owner, row, col0, col1, tri_id)
    return owner


def cells_in_triangles(lonlat: np.ndarray, corners: np.ndarray, grid: GridSpec, window: Window,
                       mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cells ``mask`` (window-shaped) inside the triangles ``corners`` ``(T, 3)`` (indices into the ``(N, 2)``
    lon/lat points): ``(flat, triangle, bary)``, grouped by triangle, ``triangle`` indexing ``corners`` (see
    :meth:`~oco_l3.interpolation.PointInterpolator.cells_in_triangles`)."""
    r0, _, c0, _ = window
    x, y = to_index_space(lonlat[:, 1], lonlat[:, 0], grid)
    tx, ty = x[corners] - c0, y[corners] - r0
    tri_id, row, col0, col1 = rasterise_triangles(tx, ty, mask.shape)
    if tri_id.size == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros((0, 3))
    # Barycentrics are affine along a run: the value at (col0, row) plus a step per column.
    a00, a01, a10, a11, x2, y2 = affine_from_vertices(tx, ty).T
    a00, a01, a10, a11, x2, y2 = a00[tri_id], a01[tri_id], a10[tri_id], a11[tri_id], x2[tri_id], y2[tri_id]
    dx, dy = col0 - x2, row - y2
    base0, base1 = a00 * dx + a01 * dy, a10 * dx + a11 * dy
    start = row * mask.shape[1] + col0
    length = col1 - col0 + 1
    return _masked_cells_of_runs(mask.reshape(-1), start, length, tri_id, (base0, a00), (base1, a10))


def _masked_cells_of_runs(
    mask: np.ndarray, start: np.ndarray, length: np.ndarray, tri_id: np.ndarray,
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cells of the runs (flat ``start``, ``length``) that the flat ``mask`` keeps, with their run's triangle
    and barycentric coordinates: the first two are each (value at the run's start, step per column), the third
    is one minus them. The outputs are allocated once (the masked cells per run come from a running count of the
    mask) and filled block by block of runs, so the per-cell temporaries stay small."""
    count = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    kept = count[start + length] - count[start]
    flat = np.empty(int(kept.sum()), dtype=np.intp)
    triangle = np.empty(flat.shape[0], dtype=np.intp)
    bary = np.empty((flat.shape[0], 3))
    (base0, step0), (base1, step1) = first, second
    done = 0
    for lo, hi in blocks(length, RUN_BLOCK):
        cells, run = expand_runs(start[lo:hi], length[lo:hi])
        inside = mask[cells]
        cells, run = cells[inside], run[inside] + lo
        step = (cells - start[run]).astype(float)
        part = slice(done, done + cells.shape[0])
        flat[part], triangle[part] = cells, tri_id[run]
        bary[part, 0] = base0[run] + step0[run] * step
        bary[part, 1] = base1[run] + step1[run] * step
        np.subtract(1.0 - bary[part, 0], bary[part, 1], out=bary[part, 2])
        done += cells.shape[0]
    return flat, triangle, bary
