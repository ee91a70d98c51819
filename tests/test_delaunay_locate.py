"""Point location in our own triangulation (``Triangulation.find_simplex``, hence ``PointInterpolator.locate``):
every query point gets a triangle that contains it, or -1 outside the hull, on any input ``triangulate`` accepts --
including the busy day's 15,000-sounding SAM, whose hull slivers are flat in floating point (matplotlib's trapezoid
map refused that triangulation: "Triangulation is invalid")."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from scipy.spatial import Delaunay

from oco_l3.delaunay import Triangulation, triangulate
from oco_l3.interpolation import PointInterpolator
from oco_l3.sample_data import day_plan
from oco_l3.sample_data._geometry import _build_table


@pytest.fixture(scope="module")
def busy_sam() -> tuple[np.ndarray, np.ndarray]:
    """lon, lat of the busy day's largest SAM (fossil0018, 15,000 soundings) as written with seed 2 (seeds 2 and 30
    give this capture triangles flat in floating point on its hull; seed 0 happens not to)."""
    day = dt.date(2021, 6, 1)
    plan = day_plan(day, "busy")
    table = _build_table("oco3", day, plan.captures["oco3"], 0, 2, 0)  # no background: it draws no random numbers
    keep = table.target_id == "fossil0018"
    return table.lon[keep], table.lat[keep]


def depth(tri: Triangulation, simplex: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """Signed distance of each point to the nearest edge of its triangle (>= 0 inside), either orientation."""
    p = tri.points[tri.simplices[simplex]]
    u, v = p[:, [1, 2, 0]], p[:, [2, 0, 1]]
    e = v - u
    area2 = e[:, 0, 0] * e[:, 1, 1] - e[:, 0, 1] * e[:, 1, 0]
    side = (e[..., 0] * (xi[:, None, 1] - u[..., 1]) - e[..., 1] * (xi[:, None, 0] - u[..., 0])) / np.hypot(
        e[..., 0], e[..., 1]
    )
    return (side * np.where(area2 < 0, -1.0, 1.0)[:, None]).min(axis=1)


def extent(points: np.ndarray) -> float:
    return float(max(np.ptp(points, axis=0).max(), np.abs(points).max()))


def check_located(tri: Triangulation, xi: np.ndarray, found: np.ndarray) -> None:
    """Every point given a triangle is in it, to the tolerance (no claim about the points given -1)."""
    tol = 1e-11 * extent(tri.points)  # "a tiny tolerance on edges" (find_simplex uses 1e-12)
    inside = found >= 0
    assert (depth(tri, found[inside], xi[inside]) >= -tol).all()


def edge_midpoints(tri: Triangulation) -> np.ndarray:
    return (tri.points[tri.simplices] + tri.points[np.roll(tri.simplices, 1, axis=1)]).reshape(-1, 2) / 2


def depth_to_hull(points: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """Signed distance to the convex hull's boundary lines (min over hull edges; > 0 well inside)."""
    from scipy.spatial import ConvexHull

    hull = ConvexHull(points)
    normals, offsets = hull.equations[:, :2], hull.equations[:, 2]
    return -(xi @ normals.T + offsets).max(axis=1)


def test_busy_sam_locates_every_sounding_and_points_between(busy_sam: tuple[np.ndarray, np.ndarray]) -> None:
    lon, lat = busy_sam
    interp = PointInterpolator(lon, lat)
    assert interp.tri is not None
    p = interp.tri.points[interp.tri.simplices]
    area2 = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0])
    assert (area2 <= 0).any()  # the capture still has triangles flat in floating point (what broke matplotlib)
    rng = np.random.default_rng(0)
    soundings = np.column_stack([lon, lat])
    between = soundings[rng.integers(0, lon.size, 20_000)] + rng.normal(0, 0.01, (20_000, 2))
    xi = np.concatenate([soundings, between])
    loc = interp.locate(xi)  # raised RuntimeError("Triangulation is invalid") with matplotlib's trifinder
    assert loc.inside[: lon.size].all()  # every sounding is a vertex of the triangulation
    check_located(interp.tri, loc.points, loc.simplex)
    # Outside points: SciPy's Delaunay of the same points has the same hull.
    ref = Delaunay(interp.tri.points).find_simplex(loc.points)
    clear = np.abs(depth_to_hull(interp.tri.points, loc.points)) > 1e-9
    assert 100 < (clear & ~loc.inside).sum() < 10_000
    np.testing.assert_array_equal(loc.inside[clear], ref[clear] >= 0)


def test_busy_sam_linear_field_is_exact(busy_sam: tuple[np.ndarray, np.ndarray]) -> None:
    lon, lat = busy_sam
    interp = PointInterpolator(lon, lat)
    rng = np.random.default_rng(1)
    xi = np.column_stack([rng.uniform(lon.min(), lon.max(), 50_000), rng.uniform(lat.min(), lat.max(), 50_000)])
    values = 400.0 + 2.5 * lat - 1.25 * lon
    for method in ("linear", "cubic"):
        out = interp.evaluate(values, xi, method)[:, 0]
        inside = interp.locate(xi).inside
        assert 0.3 < inside.mean() < 1
        np.testing.assert_allclose(out[inside], 400.0 + 2.5 * xi[inside, 1] - 1.25 * xi[inside, 0], rtol=1e-12)
        assert np.isnan(out[~inside]).all()


# Five points on a line in floating point but not exactly, and one off it (found by a random search): Triangle's
# exact predicates make hull slivers of the five, one of them clockwise in floating point. matplotlib's trapezoid map
# refused this triangulation ("Triangulation is invalid").
SLIVERS = np.array([
    [0.8071679300934899, 0.022610530546880114], [0.7135062408409566, 0.12017676258845422],
    [0.7107970532272072, 0.12299889007170463], [0.653216794693293, 0.18297953861613345],
    [0.3746069717348577, 0.47320397138856884], [0.36559073049332935, 0.03162677178840839],
])


def test_slivers_flat_in_floating_point_are_located_around() -> None:
    tri = triangulate(SLIVERS)
    p = tri.points[tri.simplices]
    area2 = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0])
    assert (area2 <= 0).any()  # the input still shows the case (Triangle calls every triangle anticlockwise)
    proper = area2 > 1e-6
    xi = np.concatenate([SLIVERS, edge_midpoints(tri), p[proper].mean(axis=1), SLIVERS.mean(axis=0)[None]])
    found = tri.find_simplex(xi)
    assert (found >= 0).all()
    check_located(tri, xi, found)
    # A centroid of a proper triangle is in that triangle only.
    n = SLIVERS.shape[0] + 3 * tri.simplices.shape[0]
    np.testing.assert_array_equal(found[n : n + proper.sum()], np.flatnonzero(proper))
    # Just beyond the line of the five, and far away: outside.
    a, b = SLIVERS[0], SLIVERS[4]
    normal = np.array([b[1] - a[1], a[0] - b[0]]) / np.hypot(*(b - a))  # away from the sixth point
    assert normal @ (SLIVERS[5] - a) < 0
    beyond = (a + b) / 2 + 1e-6 * normal
    np.testing.assert_array_equal(tri.find_simplex(np.array([beyond, [5.0, 5.0], [0.6, -1.0]])), -1)


def test_shared_edges_vertices_and_outside_points_on_a_regular_grid() -> None:
    """A regular grid: every query on a shared edge or vertex (cocircular points, many ties) is in a triangle that
    holds it; just outside is -1; ties go to the lowest triangle index, so results do not depend on the run."""
    g = np.arange(6.0)
    x, y = np.meshgrid(g * 0.1, g * 0.1)
    pts = np.column_stack([x.ravel(), y.ravel()])
    tri = triangulate(pts)
    h = np.arange(0, 11) * 0.05
    qx, qy = np.meshgrid(h, h)
    on_edges = np.column_stack([qx.ravel(), qy.ravel()])  # vertices, edge midpoints and cell centres
    found = tri.find_simplex(on_edges)
    assert (found >= 0).all()
    check_located(tri, on_edges, found)
    np.testing.assert_array_equal(found, tri.find_simplex(on_edges[::-1])[::-1])
    for t in (0, tri.simplices.shape[0] - 1):  # each triangle's own corners: the lowest index holding them
        holders = [u for u in range(tri.simplices.shape[0]) if tri.simplices[t, 0] in tri.simplices[u]]
        assert tri.find_simplex(pts[tri.simplices[t, 0]][None])[0] == min(holders)
    outside = np.array([[-1e-6, 0.25], [0.5 + 1e-6, 0.25], [0.25, -1e-6], [0.25, 0.5 + 1e-6], [np.nan, 0.1]])
    np.testing.assert_array_equal(tri.find_simplex(outside), -1)


@pytest.mark.parametrize("backend", ["triangle", "qhull"])
def test_containment_agrees_with_scipy_on_random_points(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCO_L3_DELAUNAY", backend)
    rng = np.random.default_rng(5)
    pts = rng.random((2000, 2)) * [2.0, 1.0]
    tri = triangulate(pts)
    xi = np.concatenate([rng.random((20_000, 2)) * [2.4, 1.4] - 0.2, pts, edge_midpoints(tri)])
    found = tri.find_simplex(xi)
    ref = Delaunay(pts).find_simplex(xi, tol=1e-12)
    np.testing.assert_array_equal(found >= 0, ref >= 0)
    check_located(tri, xi, found)
