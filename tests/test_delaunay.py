"""The Delaunay triangulation: same triangles as Qhull, SciPy's adjacency conventions, degenerate inputs refused
before Triangle sees them (one of them crashes it)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial import Delaunay

from oco_l3 import delaunay
from oco_l3.delaunay import DelaunayDegenerate, triangulate


def random_points(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 2)) * [2.0, 1.0]


def triangle_set(simplices: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(t) for t in np.sort(simplices, axis=1).tolist()}


@pytest.mark.parametrize("backend", ["triangle", "qhull"])
def test_same_triangles_as_scipy_and_scipy_conventions(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCO_L3_DELAUNAY", backend)
    pts = random_points(3000, seed=1)
    tri = triangulate(pts)
    ref = Delaunay(pts)
    assert triangle_set(tri.simplices) == triangle_set(ref.simplices)
    # neighbors[t, k] is the triangle across the edge opposite corner k: it shares the other two corners.
    for t in range(0, tri.simplices.shape[0], 7):
        for k in range(3):
            u = tri.neighbors[t, k]
            edge = set(tri.simplices[t]) - {tri.simplices[t, k]}
            if u < 0:
                continue
            assert edge <= set(tri.simplices[u]) and tri.simplices[t, k] not in tri.simplices[u]
    # Hull edges: as many as SciPy's.
    assert (tri.neighbors < 0).sum() == (ref.neighbors < 0).sum()
    indptr, indices = tri.vertex_neighbor_vertices
    ref_ptr, ref_idx = ref.vertex_neighbor_vertices
    for v in range(pts.shape[0]):
        assert sorted(indices[indptr[v] : indptr[v + 1]]) == sorted(ref_idx[ref_ptr[v] : ref_ptr[v + 1]])


def test_find_simplex_returns_the_containing_triangle_or_minus_one() -> None:
    pts = random_points(500, seed=2)
    tri = triangulate(pts)
    rng = np.random.default_rng(3)
    xi = rng.random((4000, 2)) * [2.4, 1.4] - 0.2
    found = tri.find_simplex(xi)
    ref = Delaunay(pts).find_simplex(xi)
    np.testing.assert_array_equal(found >= 0, ref >= 0)
    corners = pts[tri.simplices[found[found >= 0]]]
    inside = xi[found >= 0]
    # Barycentric coordinates of each point in its triangle are all >= 0 (to rounding).
    v0, v1 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    d = inside - corners[:, 0]
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    b1 = (d[:, 0] * v1[:, 1] - d[:, 1] * v1[:, 0]) / det
    b2 = (v0[:, 0] * d[:, 1] - v0[:, 1] * d[:, 0]) / det
    assert (b1 >= -1e-12).all() and (b2 >= -1e-12).all() and (b1 + b2 <= 1 + 1e-12).all()


@pytest.mark.parametrize(
    "points",
    [
        np.zeros((0, 2)),
        np.array([[0.0, 0.0], [1.0, 1.0]]),
        np.array([[0.5, 0.5]] * 10),  # all coincide: this input makes Triangle itself crash
        np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [1.0, 1.0]]),  # collinear, with a duplicate
        np.array([[0.0, 0.0], [1.0, 1.0]] * 5),  # two distinct points
    ],
    ids=["none", "two", "coincide", "collinear", "two-distinct"],
)
@pytest.mark.parametrize("backend", ["triangle", "qhull"])
def test_degenerate_points_raise(points: np.ndarray, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCO_L3_DELAUNAY", backend)
    with pytest.raises(DelaunayDegenerate):
        triangulate(points)


def test_duplicates_are_triangulated_once() -> None:
    pts = np.concatenate([random_points(200, seed=4), random_points(200, seed=4)[:20]])
    tri = triangulate(pts)
    used = np.unique(tri.simplices)
    assert used.shape[0] == 200  # one of each pair of copies (either may be the one)
    first = np.where(tri.simplices >= 200, tri.simplices - 200, tri.simplices)  # the copies of 0..19 are 200..219
    assert triangle_set(first) == triangle_set(Delaunay(pts[:200]).simplices)


def test_coinciding_points_do_not_crash_the_process() -> None:
    # Triangle segfaults on points that all coincide; triangulate must refuse them first. Run in a child process
    # so that a crash shows as a failed test, not a dead test run.
    code = (
        "import numpy as np\n"
        "from oco_l3.delaunay import DelaunayDegenerate, triangulate\n"
        "try:\n    triangulate(np.full((5, 2), 3.0))\nexcept DelaunayDegenerate:\n    print('refused')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "refused", out


def test_triangle_backend_is_installed() -> None:
    assert delaunay._triangle is not None


def test_triangle_output_is_anticlockwise() -> None:
    # The 1-ring construction relies on it (each inner edge seen once each way).
    tri = triangulate(random_points(2000, seed=6))
    assert tri.oriented
    p = tri.points[tri.simplices]
    cross = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0])
    assert (cross > 0).all()
