"""PointInterpolator: exactness, NaN policy, nearest for any dtype, degenerate point sets."""

from __future__ import annotations

import numpy as np
import pytest

from oco_l3.errors import CaptureDegenerate
from oco_l3.interpolation import PointInterpolator


def scattered(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-70.5, -69.5, n), rng.uniform(-33.5, -32.5, n)


def inner_points(m: int = 400, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-70.3, -69.7, m), rng.uniform(-33.3, -32.7, m)])


def linear(lon: np.ndarray, lat: np.ndarray, k: int = 0) -> np.ndarray:
    return 400.0 + k + 2.5 * lat - 1.25 * lon


@pytest.mark.parametrize("method", ["linear", "cubic"])
def test_linear_field_is_exact_for_all_columns(method: str) -> None:
    lon, lat = scattered()
    values = np.column_stack([linear(lon, lat, k) for k in range(4)])
    xi = inner_points()
    out = PointInterpolator(lon, lat).evaluate(values, xi, method)  # type: ignore[arg-type]
    want = np.column_stack([linear(xi[:, 0], xi[:, 1], k) for k in range(4)])
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, want, rtol=1e-9)


def test_nearest_returns_point_values_of_any_dtype() -> None:
    lon, lat = scattered(50)
    interp = PointInterpolator(lon, lat)
    ids = np.arange(50, dtype=np.int16)[:, None]
    got = interp.nearest(ids, np.column_stack([lon, lat]))
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got[:, 0], ids[:, 0])
    out = interp.evaluate(np.arange(50.0), np.column_stack([lon + 1e-7, lat]), "nearest")
    np.testing.assert_array_equal(out[:, 0], np.arange(50.0))


def test_outside_hull_is_nan_for_linear_and_cubic() -> None:
    lon, lat = scattered()
    far = np.array([[-60.0, -33.0]])
    interp = PointInterpolator(lon, lat)
    for method in ("linear", "cubic"):
        assert np.isnan(interp.evaluate(linear(lon, lat), far, method)).all()  # type: ignore[arg-type]
    assert np.isfinite(interp.evaluate(linear(lon, lat), far, "nearest")).all()


@pytest.mark.parametrize("method", ["linear", "cubic", "nearest"])
def test_missing_values_stay_missing_and_do_not_poison(method: str) -> None:
    lon, lat = scattered(400)
    good = linear(lon, lat)
    holed = good.copy()
    holed[::37] = np.nan  # a few missing soundings in one variable only
    values = np.column_stack([good, holed])
    xi = inner_points(2000)
    interp = PointInterpolator(lon, lat)
    out = interp.evaluate(values, xi, method)  # type: ignore[arg-type]
    want = linear(xi[:, 0], xi[:, 1])
    # The complete column is untouched by the other column's holes.
    assert np.isfinite(out[:, 0]).all() if method == "nearest" else np.isfinite(out[:, 0]).mean() > 0.99
    # The holed column: NaN near the holes, exact elsewhere, never a fill-like number.
    nan = np.isnan(out[:, 1])
    assert 0 < nan.sum() < 0.5 * len(xi)
    if method != "nearest":
        np.testing.assert_allclose(out[~nan, 1], want[~nan], rtol=1e-9)
        # Exactly the points whose containing triangle touches a missing vertex are NaN.
        assert interp.tri is not None
        simplex = interp.tri.find_simplex(interp.to_plane(xi))
        touched = np.isnan(holed)[interp.tri.simplices[simplex]].any(axis=1)
        np.testing.assert_array_equal(nan, touched)
    else:
        np.testing.assert_array_equal(nan, np.isnan(holed[interp.nearest_index(xi)]))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_few_points_do_not_crash(n: int) -> None:
    lon, lat = scattered(n)
    interp = PointInterpolator(lon, lat)
    out = interp.evaluate(np.arange(float(n)), np.column_stack([lon, lat]), "cubic")
    assert out.shape == (n, 1)
    if n < 3:
        assert interp.degenerate
        np.testing.assert_array_equal(out[:, 0], np.arange(float(n)))


def test_collinear_and_duplicate_points_fall_back_to_nearest() -> None:
    t = np.linspace(0, 1, 20)
    interp = PointInterpolator(-70 + t, -33 + 0.5 * t)
    assert interp.degenerate
    out = interp.evaluate(t, np.array([[-69.5, -32.75]]), "linear")
    assert out[0, 0] in t
    dup = PointInterpolator(np.full(5, -70.0), np.full(5, -33.0))
    assert dup.degenerate
    assert dup.evaluate(np.ones(5), np.array([[-70.0, -33.0]]), "cubic")[0, 0] == 1.0


def test_no_finite_point_raises_capture_degenerate() -> None:
    with pytest.raises(CaptureDegenerate):
        PointInterpolator(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(CaptureDegenerate):
        PointInterpolator(np.zeros(0), np.zeros(0))


def test_non_finite_points_are_ignored() -> None:
    lon, lat = scattered(100)
    lon[5] = np.nan
    values = linear(lon, lat)
    values[5] = 1e9  # would show up if the point were used
    out = PointInterpolator(lon, lat).evaluate(values, inner_points(), "linear")
    assert np.nanmax(out) < 1000


def test_unknown_method_and_wrong_length_raise() -> None:
    lon, lat = scattered(10)
    interp = PointInterpolator(lon, lat)
    with pytest.raises(ValueError):
        interp.evaluate(np.zeros(10), inner_points(3), "bilinear")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        interp.evaluate(np.zeros(9), inner_points(3), "linear")


def test_cubic_close_to_scipy_and_linear_equal_to_scipy_on_a_curved_field() -> None:
    from scipy.interpolate import CloughTocher2DInterpolator, LinearNDInterpolator
    from scipy.spatial import Delaunay  # the same triangulation as ours for points in general position

    lon, lat = scattered(400, seed=4)

    def field(lo: np.ndarray, la: np.ndarray) -> np.ndarray:
        return np.column_stack([np.sin(3 * la) * np.cos(2 * lo), la * lo, np.exp(la + 33)])

    values = field(lon, lat)
    xi = inner_points(3000, seed=5)
    interp = PointInterpolator(lon, lat)
    plane = interp.to_plane(xi)
    assert interp.tri is not None
    # Our cubic is the same Clough-Tocher element as SciPy's but with vertex gradients fitted locally over each
    # 1-ring (SciPy estimates them globally), so the two differ slightly on non-linear data: compare to a tolerance
    # relative to each field's range, and check that ours is as close to the true field as SciPy's.
    ours = interp.evaluate(values, xi, "cubic")
    ct = CloughTocher2DInterpolator(Delaunay(interp.tri.points), values)(plane)
    spread = values.max(axis=0) - values.min(axis=0)
    assert (np.abs(ours - ct).max(axis=0) / spread < 5e-3).all()
    true = field(xi[:, 0], xi[:, 1])
    err_ours, err_scipy = np.abs(ours - true).mean(axis=0), np.abs(ct - true).mean(axis=0)
    assert (err_ours < 2 * err_scipy + 1e-12).all(), (err_ours, err_scipy)
    lin = LinearNDInterpolator(Delaunay(interp.tri.points), values)(plane)
    np.testing.assert_allclose(interp.evaluate(values, xi, "linear"), lin, rtol=1e-9, atol=1e-12)
    assert (np.abs(ours - true).mean(axis=0) < np.abs(lin - true).mean(axis=0)).all()  # cubic beats linear


def test_locate_cells_agrees_with_locate() -> None:
    from oco_l3.grids import GridSpec
    from oco_l3.targets import BBox

    lon, lat = scattered(200, seed=6)
    grid = GridSpec(BBox(-70.6, -33.6, -69.4, -32.4), 90, 70)
    mask = np.zeros((60, 50), dtype=bool)
    mask[5:55:3, 2:48] = True
    mask[:, 10] = True
    window = (15, 75, 10, 60)
    interp = PointInterpolator(lon, lat)
    cells = interp.locate_cells(grid, window, mask)
    rows, cols = np.nonzero(mask)
    xi = np.column_stack([grid.longitude[10 + cols], grid.latitude[15 + rows]])
    direct = interp.locate(xi)
    np.testing.assert_array_equal(cells.inside, direct.inside)
    values = np.column_stack([np.sin(5 * lat) + lon, lat])
    for method in ("linear", "cubic", "nearest"):
        a = interp.evaluate(values, cells, method)  # type: ignore[arg-type]
        b = interp.evaluate(values, direct, method)  # type: ignore[arg-type]
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_cubic_element_equals_scipy_given_the_same_vertex_gradients() -> None:
    # Only the vertex gradients differ from SciPy's: with ours put into SciPy's interpolator, values agree.
    from scipy.interpolate import CloughTocher2DInterpolator
    from scipy.spatial import Delaunay  # the same triangulation as ours for points in general position

    lon, lat = scattered(300, seed=7)
    values = np.column_stack([np.sin(4 * lat) * np.cos(3 * lon), np.exp(lon + 70) * lat])
    xi = inner_points(2000, seed=8)
    interp = PointInterpolator(lon, lat)
    assert interp.tri is not None
    ours = interp.evaluate(values, xi, "cubic")
    ct = CloughTocher2DInterpolator(Delaunay(interp.tri.points), values)
    grad = interp._gradients(None).apply(values)
    ct.grad = grad.reshape(ct.grad.shape)
    np.testing.assert_allclose(ours, ct(interp.to_plane(xi)), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("lattice", [False, True])
def test_nearest_cells_map_is_the_nearest_point(lattice: bool) -> None:
    # The rasterised Voronoi map equals a k-d tree search (up to ties), also on an exact lattice (cocircular points).
    from scipy.spatial import cKDTree

    from oco_l3.grids import GridSpec
    from oco_l3.targets import BBox

    if lattice:
        g = np.meshgrid(np.linspace(-70.4, -69.6, 9), np.linspace(-33.4, -32.6, 9))
        lon, lat = g[0].ravel(), g[1].ravel()
    else:
        lon, lat = scattered(300, seed=9)
    grid = GridSpec(BBox(-70.6, -33.6, -69.4, -32.4), 97, 97)
    window = (3, 80, 5, 90)
    interp = PointInterpolator(lon, lat)
    owner = interp.nearest_cells(grid, window, (77, 85))
    rows, cols = np.indices(owner.shape)
    xi = np.column_stack([grid.longitude[5 + cols.ravel()], grid.latitude[3 + rows.ravel()]])
    plane = interp.to_plane(xi)
    dist, _ = cKDTree(interp.points).query(plane)
    got = np.hypot(*(plane - interp.points[owner.ravel()]).T)
    np.testing.assert_allclose(got, dist, rtol=1e-9, atol=1e-12)


def test_cells_in_triangles_agree_with_locate() -> None:
    from oco_l3.grids import GridSpec
    from oco_l3.targets import BBox

    lon, lat = scattered(200, seed=10)
    grid = GridSpec(BBox(-70.6, -33.6, -69.4, -32.4), 90, 70)
    mask = np.zeros((60, 50), dtype=bool)
    mask[5:55:2, 2:48] = True
    window = (15, 75, 10, 60)
    interp = PointInterpolator(lon, lat)
    flat, simplex, bary = interp.cells_in_triangles(grid, window, mask)
    rows, cols = np.divmod(flat, mask.shape[1])
    assert mask[rows, cols].all()
    xi = np.column_stack([grid.longitude[10 + cols], grid.latitude[15 + rows]])
    direct = interp.locate(xi)
    inside = direct.inside
    assert inside.mean() > 0.99  # centres exactly on the hull may go either way
    np.testing.assert_allclose(bary[inside], direct.bary[inside], atol=1e-9)
    all_rows, all_cols = np.nonzero(mask)
    in_hull = interp.locate(np.column_stack([grid.longitude[10 + all_cols], grid.latitude[15 + all_rows]])).inside
    assert abs(len(np.unique(flat)) - in_hull.sum()) <= 2


@pytest.mark.parametrize("eps", [0.0, 1e-6, 1e-5])
def test_near_singular_ring_does_not_amplify_noise(eps: float) -> None:
    # Sounding centres on a line (as along an OCO track) can put 3 of a vertex's 5 neighbours on a line: the
    # quadratic fit is then (near-)singular and must fall back to a plane, not amplify float32 noise in the values.
    step = np.array([0.00427258, -0.0183754])
    ring = [-step, step, 2 * step + [eps, 0.0], [-0.01399965, -0.00325775], [-0.01827223, 0.01511765]]
    pts = np.array([[0.0, 0.0], *ring])
    interp = PointInterpolator(pts[:, 0] - 70.0, pts[:, 1])
    values = linear(pts[:, 0] - 70.0, pts[:, 1]).astype(np.float32).astype(float)  # float32 noise, ~3e-5
    grad = interp._gradients(None).apply(values[:, None] - 400.0)[0, 0]
    true = np.array([-1.25 / np.cos(np.deg2rad(interp.lat0)), 2.5])  # d/dx in the plane, d/dy
    assert np.hypot(*(grad - true)) < 0.01


def test_hull_sliver_with_a_circumcentre_at_infinity_gives_no_runtime_warning() -> None:
    # footprints.py:154 warned "invalid value encountered in subtract" on every run: three soundings along a swath
    # edge (these are from a SYNTHETIC sample capture, in plane coordinates) make a hull sliver whose circumcentre
    # overflows, and its Voronoi fan triangles reached the rasteriser with corners at infinity.
    import warnings

    from oco_l3.delaunay import triangulate
    from oco_l3.footprints import rasterise_triangles
    from oco_l3.interpolation.voronoi import circumcentres, voronoi_fans

    edge = [[-0.2006863969248489, -0.49559239087858487], [-0.31385614199574297, -0.5158827656344442],
            [-0.08751665185395484, -0.4753020161227255], [0.025653093216939232, -0.4550116413668661]]
    inner = [[-0.3, -0.45], [-0.15, -0.42], [0.0, -0.40], [-0.2, -0.38]]
    tri = triangulate(np.array(edge + inner))
    assert not np.isfinite(circumcentres(tri.points[tri.simplices])).all()  # the case this test is about
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        site, fx, fy = voronoi_fans(tri)
        assert np.isfinite(fx).all() and np.isfinite(fy).all() and site.shape[0] == fx.shape[0]
        tri_id, *_ = rasterise_triangles(np.array([[0.0, 4.0, np.inf], [0.0, 4.0, 0.0]]),
                                         np.array([[0.0, 0.0, 3.0], [0.0, 0.0, 3.0]]), (5, 5))
        assert set(tri_id.tolist()) == {1}  # the finite triangle is rasterised, the other dropped
