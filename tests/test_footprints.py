"""Footprint rasteriser: vectorised scanline versus a slow shapely reference on cell centres."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from oco_l3.footprints import footprint_intervals, footprint_mask
from oco_l3.grids import GridSpec
from oco_l3.targets import BBox

GRID = GridSpec(BBox(10.0, 40.0, 11.0, 41.0), 97, 113)


def reference_mask(vlat: np.ndarray, vlon: np.ndarray, grid: GridSpec) -> np.ndarray:
    """Slow reference: shapely ``contains`` of every cell centre, full-grid shaped."""
    lon, lat = np.meshgrid(grid.longitude, grid.latitude)
    out = np.zeros(grid.shape, dtype=bool)
    for la, lo in zip(vlat, vlon, strict=True):
        poly = shapely.Polygon(np.column_stack([lo, la]))
        if not poly.is_valid:
            poly = shapely.make_valid(poly)
        out |= shapely.contains_xy(poly, lon, lat)
    return out


def full(mask: np.ndarray, window: tuple[int, int, int, int], grid: GridSpec) -> np.ndarray:
    out = np.zeros(grid.shape, dtype=bool)
    r0, r1, c0, c1 = window
    out[r0:r1, c0:c1] = mask
    return out


def near_edge(vlat: np.ndarray, vlon: np.ndarray, grid: GridSpec, tol: float = 1e-9) -> bool:
    lon, lat = np.meshgrid(grid.longitude, grid.latitude)
    points = shapely.points(lon.ravel(), lat.ravel())
    for la, lo in zip(vlat, vlon, strict=True):
        ring = shapely.LinearRing(np.column_stack([lo, la]))
        if (shapely.distance(ring, points) < tol).any():
            return True
    return False


def random_convex_quads(rng: np.random.Generator, n: int, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Random parallelograms (rotated, sheared) of a few cells, some partly off the grid."""
    clat = rng.uniform(grid.bbox.min_lat - 0.05, grid.bbox.max_lat + 0.05, n)
    clon = rng.uniform(grid.bbox.min_lon - 0.05, grid.bbox.max_lon + 0.05, n)
    u = rng.uniform(-0.04, 0.04, (n, 2))
    v = rng.uniform(-0.04, 0.04, (n, 2))
    signs = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])
    dlon = signs[None, :, 0] * u[:, None, 0] + signs[None, :, 1] * v[:, None, 0]
    dlat = signs[None, :, 0] * u[:, None, 1] + signs[None, :, 1] * v[:, None, 1]
    return clat[:, None] + dlat, clon[:, None] + dlon


def random_quads(rng: np.random.Generator, n: int, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Quads with 4 random vertices: convex, non-convex and self-intersecting (bow-tie) ones."""
    clat = rng.uniform(grid.bbox.min_lat, grid.bbox.max_lat, n)
    clon = rng.uniform(grid.bbox.min_lon, grid.bbox.max_lon, n)
    return clat[:, None] + rng.uniform(-0.05, 0.05, (n, 4)), clon[:, None] + rng.uniform(-0.05, 0.05, (n, 4))


def test_matches_shapely_on_random_convex_quads() -> None:
    rng = np.random.default_rng(7)
    vlat, vlon = random_convex_quads(rng, 60, GRID)
    assert not near_edge(vlat, vlon, GRID)
    mask, window = footprint_mask(vlat, vlon, GRID)
    ref = reference_mask(vlat, vlon, GRID)
    assert ref.sum() > 300
    np.testing.assert_array_equal(full(mask, window, GRID), ref)


def test_matches_shapely_on_non_convex_quads_either_orientation() -> None:
    rng = np.random.default_rng(11)
    n = 40
    clat = rng.uniform(40.2, 40.8, n)
    clon = rng.uniform(10.2, 10.8, n)
    # Arrow-head quads: vertex 1 or 2 is reflex (pulled towards the centre).
    base = np.array([[-1.0, -1.0], [0.0, -0.2], [1.0, -1.0], [0.0, 1.0]]) * 0.04
    rot = rng.uniform(0, 2 * np.pi, n)
    x = base[None, :, 0] * np.cos(rot)[:, None] - base[None, :, 1] * np.sin(rot)[:, None]
    y = base[None, :, 0] * np.sin(rot)[:, None] + base[None, :, 1] * np.cos(rot)[:, None]
    vlat, vlon = clat[:, None] + y, clon[:, None] + x
    shift = rng.integers(0, 4, n)
    vlat = np.array([np.roll(r, s) for r, s in zip(vlat, shift, strict=True)])
    vlon = np.array([np.roll(r, s) for r, s in zip(vlon, shift, strict=True)])
    vlat[::2], vlon[::2] = vlat[::2, ::-1], vlon[::2, ::-1]  # half of them clockwise
    assert not near_edge(vlat, vlon, GRID)
    mask, window = footprint_mask(vlat, vlon, GRID)
    np.testing.assert_array_equal(full(mask, window, GRID), reference_mask(vlat, vlon, GRID))


def test_matches_shapely_make_valid_on_any_random_quads() -> None:
    rng = np.random.default_rng(13)
    vlat, vlon = random_quads(rng, 80, GRID)
    assert not near_edge(vlat, vlon, GRID)
    kinds = [shapely.Polygon(np.column_stack([lo, la])).is_valid for la, lo in zip(vlat, vlon, strict=True)]
    assert 0 < sum(kinds) < len(kinds)  # both simple and self-intersecting quads are exercised
    mask, window = footprint_mask(vlat, vlon, GRID)
    np.testing.assert_array_equal(full(mask, window, GRID), reference_mask(vlat, vlon, GRID))


def test_vertex_order_does_not_matter() -> None:
    rng = np.random.default_rng(3)
    vlat, vlon = random_convex_quads(rng, 30, GRID)
    a = footprint_mask(vlat, vlon, GRID)
    b = footprint_mask(vlat[:, ::-1], vlon[:, ::-1], GRID)
    assert a[1] == b[1]
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].any()


def test_window_bounds_the_true_cells() -> None:
    rng = np.random.default_rng(5)
    vlat, vlon = random_convex_quads(rng, 10, GRID)
    mask, (r0, r1, c0, c1) = footprint_mask(vlat, vlon, GRID)
    assert mask.shape == (r1 - r0, c1 - c0)
    assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()


def test_scaling_enlarges_about_centroid() -> None:
    rng = np.random.default_rng(9)
    vlat, vlon = random_convex_quads(rng, 20, GRID)
    small = full(*footprint_mask(vlat, vlon, GRID), GRID)
    large = full(*footprint_mask(vlat, vlon, GRID, scaling=1.5), GRID)
    assert (large >= small).all()
    assert large.sum() > 1.5 * small.sum()
    clat, clon = vlat.mean(1, keepdims=True), vlon.mean(1, keepdims=True)
    expect = reference_mask(clat + 1.5 * (vlat - clat), clon + 1.5 * (vlon - clon), GRID)
    np.testing.assert_array_equal(large, expect)


def test_nan_vertices_are_ignored() -> None:
    rng = np.random.default_rng(1)
    vlat, vlon = random_convex_quads(rng, 10, GRID)
    bad_lat = vlat.copy()
    bad_lat[3, 2] = np.nan
    got = full(*footprint_mask(bad_lat, vlon, GRID), GRID)
    keep = np.arange(10) != 3
    np.testing.assert_array_equal(got, reference_mask(vlat[keep], vlon[keep], GRID))


def test_outside_grid_and_empty_input_give_empty_window() -> None:
    vlat = np.array([[0.0, 0.0, 0.1, 0.1]])
    vlon = np.array([[0.0, 0.1, 0.1, 0.0]])
    mask, window = footprint_mask(vlat, vlon, GRID)
    assert window == (0, 0, 0, 0) and mask.shape == (0, 0)
    mask, window = footprint_mask(np.zeros((0, 4)), np.zeros((0, 4)), GRID)
    assert window == (0, 0, 0, 0) and mask.size == 0


def test_degenerate_quads_do_not_crash() -> None:
    vlat = np.array([[40.5, 40.5, 40.5, 40.5], [40.2, 40.3, 40.4, 40.5], [40.2, 40.6, 40.2, 40.6]])
    vlon = np.array([[10.5, 10.5, 10.5, 10.5], [10.2, 10.3, 10.4, 10.5], [10.2, 10.6, 10.6, 10.2]])
    mask, window = footprint_mask(vlat, vlon, GRID)
    assert mask.shape == (window[1] - window[0], window[3] - window[2])
    # The bow-tie (third quad) covers the centre of its crossing point's neighbourhood.
    assert mask.any()


def test_one_by_one_grid() -> None:
    grid = GridSpec(BBox(10.0, 40.0, 11.0, 41.0), 1, 1)
    vlat = np.array([[40.4, 40.4, 40.6, 40.6]])
    vlon = np.array([[10.4, 10.6, 10.6, 10.4]])
    mask, window = footprint_mask(vlat, vlon, grid)
    assert window == (0, 1, 0, 1) and mask.tolist() == [[True]]


def test_subset_mask_equals_rasterising_the_subset() -> None:
    rng = np.random.default_rng(2)
    vlat, vlon = random_convex_quads(rng, 50, GRID)
    select = rng.random(50) < 0.5
    intervals = footprint_intervals(vlat, vlon, GRID)
    got = intervals.mask(select)
    want = footprint_mask(vlat[select], vlon[select], GRID)
    assert got[1] == want[1]
    np.testing.assert_array_equal(got[0], want[0])


def test_antimeridian_footprint_lands_on_grid_near_180() -> None:
    grid = GridSpec(BBox(179.0, 0.0, 180.0, 1.0), 10, 10)
    vlat = np.array([[0.4, 0.4, 0.6, 0.6]])
    vlon = np.array([[179.8, -179.9, -179.9, 179.8]])
    mask, window = footprint_mask(vlat, vlon, grid)
    assert window[2:] == (8, 10) and mask.all()


def test_rejects_bad_shapes_and_scaling() -> None:
    with pytest.raises(ValueError):
        footprint_mask(np.zeros((2, 3)), np.zeros((2, 3)), GRID)
    with pytest.raises(ValueError):
        footprint_mask(np.zeros((2, 4)), np.zeros((2, 4)), GRID, scaling=0.0)


def reference_counts(vlat: np.ndarray, vlon: np.ndarray, grid: GridSpec) -> np.ndarray:
    """Slow reference: how many footprints (shapely ``contains``) hold each cell centre."""
    lon, lat = np.meshgrid(grid.longitude, grid.latitude)
    out = np.zeros(grid.shape, dtype=np.int64)
    for la, lo in zip(vlat, vlon, strict=True):
        out += shapely.contains_xy(shapely.Polygon(np.column_stack([lo, la])), lon, lat)
    return out


def test_coverage_counts_overlapping_footprints_like_shapely() -> None:
    rng = np.random.default_rng(11)
    vlat, vlon = random_convex_quads(rng, 60, GRID)
    if near_edge(vlat, vlon, GRID):
        pytest.skip("a cell centre on a footprint edge: contains() and the rasteriser may differ")
    counts, window = footprint_intervals(vlat, vlon, GRID).coverage()
    want = reference_counts(vlat, vlon, GRID)
    assert want.max() >= 2  # footprints overlap
    r0, r1, c0, c1 = window
    np.testing.assert_array_equal(counts, want[r0:r1, c0:c1])
    assert want.sum() == counts.sum()  # nothing outside the window
    select = np.arange(60) % 3 == 0
    sub, sub_window = footprint_intervals(vlat, vlon, GRID).coverage(select, window)
    assert sub_window == window
    np.testing.assert_array_equal(sub, reference_counts(vlat[select], vlon[select], GRID)[r0:r1, c0:c1])


def test_coverage_counts_a_cell_on_a_footprints_diagonal_once() -> None:
    # A footprint is rasterised as two triangles; cell centres on the diagonal they share lie in both.
    grid = GridSpec(BBox(0.0, 0.0, 10.0, 10.0), 10, 10)  # cell centres at 0.5, 1.5, ...
    square = np.array([[0.5, 0.5, 4.5, 4.5], [2.5, 2.5, 6.5, 6.5]])  # lat of corners 0..3, counterclockwise
    vlat = square
    vlon = np.array([[0.5, 4.5, 4.5, 0.5], [2.5, 6.5, 6.5, 2.5]])
    counts, window = footprint_intervals(vlat, vlon, grid).coverage()
    r0, r1, c0, c1 = window
    full_counts = np.zeros(grid.shape, dtype=int)
    full_counts[r0:r1, c0:c1] = counts
    want = np.zeros(grid.shape, dtype=int)
    want[0:5, 0:5] += 1  # edges count as inside: 5 x 5 centres per square
    want[2:7, 2:7] += 1
    np.testing.assert_array_equal(full_counts, want)
    mask, _ = footprint_intervals(vlat, vlon, grid).mask()
    np.testing.assert_array_equal(mask, counts > 0)
    with pytest.raises(ValueError, match="does not hold"):
        footprint_intervals(vlat, vlon, grid).coverage(window=(0, 3, 0, 3))
