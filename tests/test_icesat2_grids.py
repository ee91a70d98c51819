from __future__ import annotations

import warnings

import numpy as np
import pyproj
import pytest

from oco_l3.errors import GridInvalid
from oco_l3.icesat2.grids import PRESETS, custom_grid, hemisphere_preset, resolve_grid


@pytest.mark.parametrize("name,epsg", [("ease2-north-25km", 6931), ("ease2-south-25km", 6932)])
def test_ease2_25km_definition(name, epsg):
    g = PRESETS[name]
    assert (g.ny, g.nx) == (720, 720)
    assert g.bounds == (-9_000_000.0, -9_000_000.0, 9_000_000.0, 9_000_000.0)
    assert g.resolution == 25_000.0
    assert g.x[0] == -8_987_500.0 and g.y[0] == 8_987_500.0  # first cell centre, row 0 at the top
    assert g.pyproj_crs.to_epsg() == epsg
    # The pole lies at the intersection of the four centre cells.
    x, y = g.project([0.0], [90.0 if "north" in name else -90.0])
    assert abs(x[0]) < 1e-6 and abs(y[0]) < 1e-6
    assert g.cell_index([1.0], [1.0])[0] == 359 * 720 + 360


@pytest.mark.parametrize("name", ["ease2-north-6.25km", "ease2-south-6.25km"])
def test_ease2_625_same_extent(name):
    g = PRESETS[name]
    assert (g.ny, g.nx) == (2880, 2880) and g.resolution == 6250.0
    assert g.bounds == (-9_000_000.0, -9_000_000.0, 9_000_000.0, 9_000_000.0)


# Every preset against the published definition: (name, EPSG, nx, ny, resolution, outer edges x0, y0, x1, y1 in m).
# NSIDC polar stereographic 25 km (nsidc.org/data/polar-stereo/ps_grids.html; south: the mapx Sps.mpp/S3B.gpd
# definition, 316 columns x 332 rows, 4 cells per 100 km map unit, map origin at column 157.5, row 173.5);
# EASE-Grid 2.0 (nsidc.org/data/ease/versions.html): +-9,000 km, 720 cells at 25 km, 2880 at 6.25 km.
PUBLISHED = [
    ("ease2-north-25km", 6931, 720, 720, 25_000.0, -9_000e3, -9_000e3, 9_000e3, 9_000e3),
    ("ease2-south-25km", 6932, 720, 720, 25_000.0, -9_000e3, -9_000e3, 9_000e3, 9_000e3),
    ("ease2-north-6.25km", 6931, 2880, 2880, 6_250.0, -9_000e3, -9_000e3, 9_000e3, 9_000e3),
    ("ease2-south-6.25km", 6932, 2880, 2880, 6_250.0, -9_000e3, -9_000e3, 9_000e3, 9_000e3),
    ("nsidc-ps-north-25km", 3411, 304, 448, 25_000.0, -3_850e3, -5_350e3, 3_750e3, 5_850e3),
    ("nsidc-ps-south-25km", 3412, 316, 332, 25_000.0, -3_950e3, -3_950e3, 3_950e3, 4_350e3),
]


def test_every_preset_is_tested_against_a_published_definition():
    assert sorted(PRESETS) == sorted(row[0] for row in PUBLISHED)


@pytest.mark.parametrize("name,epsg,nx,ny,res,x0,y0,x1,y1", PUBLISHED)
def test_preset_shape_and_outer_edges(name, epsg, nx, ny, res, x0, y0, x1, y1):
    g = PRESETS[name]
    assert (g.nx, g.ny) == (nx, ny) and g.shape == (ny, nx) and g.resolution == res
    assert g.bounds == (x0, y0, x1, y1)
    assert g.pyproj_crs.to_epsg() == epsg
    assert g.x[0] == x0 + res / 2 and g.x[-1] == x1 - res / 2  # centres half a cell inside the edges
    assert g.y[0] == y1 - res / 2 and g.y[-1] == y0 + res / 2  # row 0 at the top
    assert g.affine() == (res, 0.0, x0, 0.0, -res, y1)


def test_nsidc_south_matches_the_mapx_grid_definition():
    # Sps.mpp/S3B.gpd: map x = (column - 157.5) / 4 * 100 km, map y = -(row - 173.5) / 4 * 100 km (cell centres).
    g = PRESETS["nsidc-ps-south-25km"]
    cols, rows = np.arange(316), np.arange(332)
    assert np.array_equal(g.x, (cols - 157.5) / 4 * 100_000.0)
    assert np.array_equal(g.y, -(rows - 173.5) / 4 * 100_000.0)


@pytest.mark.parametrize("name,corners", [
    # Published corner latitudes/longitudes of the outer edges (UL, UR, LR, LL), NSIDC polar stereographic tables.
    ("nsidc-ps-north-25km", [(30.98, 168.35), (31.37, 102.34), (34.35, 350.03), (33.92, 279.26)]),
    ("nsidc-ps-south-25km", [(-39.23, 317.76), (-39.23, 42.24), (-41.45, 135.0), (-41.45, 225.0)]),
])
def test_nsidc_outer_corners_match_published_lat_lon(name, corners):
    g = PRESETS[name]
    tr = pyproj.Transformer.from_crs(g.crs, "EPSG:4326", always_xy=True)
    xs = [g.x_min, g.x_max, g.x_max, g.x_min]
    ys = [g.y_max, g.y_max, g.y_min, g.y_min]
    lon, lat = tr.transform(xs, ys)
    for (plat, plon), la, lo in zip(corners, lat, lon, strict=True):
        assert abs(la - plat) < 0.006
        assert abs(((lo - plon + 180.0) % 360.0) - 180.0) < 0.006


def test_nsidc_polar_stereographic_presets():
    n = PRESETS["nsidc-ps-north-25km"]
    assert (n.nx, n.ny) == (304, 448)
    assert n.bounds == (-3_850_000.0, -5_350_000.0, 3_750_000.0, 5_850_000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crs = n.pyproj_crs.to_dict()
    assert crs["proj"] == "stere" and crs["lat_ts"] == 70 and crs["lon_0"] == -45 and crs["a"] == 6378273
    s = PRESETS["nsidc-ps-south-25km"]
    assert (s.nx, s.ny) == (316, 332)
    assert s.bounds == (-3_950_000.0, -3_950_000.0, 3_950_000.0, 4_350_000.0)
    assert s.pyproj_crs.to_epsg() == 3412
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crs = s.pyproj_crs.to_dict()
    assert crs["proj"] == "stere" and crs["lat_ts"] == -70 and crs["lon_0"] == 0 and crs["a"] == 6378273


@pytest.mark.parametrize("workers", [2, 3])
def test_threaded_projection_equals_one_call_exactly(monkeypatch, workers):
    import oco_l3.icesat2.grids as grids

    monkeypatch.setattr(grids, "PARALLEL_MIN_POINTS", 1000)
    rng = np.random.default_rng(7)
    n = 20_001  # uneven chunks
    lon = rng.uniform(-180.0, 180.0, n)
    lat = rng.uniform(55.0, 90.0, n)
    lat[::97] = np.nan
    lon0, lat0 = lon.copy(), lat.copy()
    g = PRESETS["ease2-north-25km"]
    # The reference: one pyproj call on the calling thread, then the plain cell formula.
    tr = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:6931", always_xy=True)
    rx, ry = tr.transform(lon, lat)
    x, y = g.project(lon, lat, workers=workers)
    assert np.array_equal(x, rx, equal_nan=True) and np.array_equal(y, ry, equal_nan=True)
    x1, y1 = g.project(lon, lat, workers=1)
    assert np.array_equal(x, x1, equal_nan=True) and np.array_equal(y, y1, equal_nan=True)
    col = (rx - g.x_min) * (1.0 / g.resolution)
    row = (g.y_max - ry) * (1.0 / g.resolution)
    inside = (col >= 0) & (col < g.nx) & (row >= 0) & (row < g.ny)
    expected = np.where(inside, np.floor(np.nan_to_num(row)) * g.nx + np.floor(np.nan_to_num(col)), -1)
    fused = g.cell_index_lonlat(lon, lat, workers=workers)
    assert np.array_equal(fused, expected.astype(np.int64))
    assert np.array_equal(fused, g.cell_index(x, y))
    assert (fused[::97] == -1).all() and (fused >= 0).sum() > n // 2
    assert np.array_equal(lon, lon0) and np.array_equal(lat, lat0, equal_nan=True)  # inputs untouched


def test_project_keeps_shape_and_small_inputs():
    g = PRESETS["nsidc-ps-north-25km"]
    x, y = g.project(np.zeros((2, 3)), np.full((2, 3), 80.0))
    assert x.shape == (2, 3) and np.allclose(x, x[0, 0]) and y.shape == (2, 3)
    assert g.cell_index_lonlat([], []).shape == (0,)
    with pytest.raises(ValueError, match="differ in size"):
        g.project([0.0, 1.0], [80.0])


def test_cell_index_matches_independent_floor_and_rejects_outside():
    g = PRESETS["nsidc-ps-north-25km"]
    rng = np.random.default_rng(1)
    x = rng.uniform(-4.5e6, 4.5e6, 10_000)
    y = rng.uniform(-6e6, 6.5e6, 10_000)
    idx = g.cell_index(x, y)
    col = np.floor((x + 3_850_000.0) / 25_000.0)
    row = np.floor((5_850_000.0 - y) / 25_000.0)
    inside = (col >= 0) & (col < 304) & (row >= 0) & (row < 448)
    assert (idx[~inside] == -1).all()
    assert np.array_equal(idx[inside], (row * 304 + col)[inside].astype(np.int64))
    assert g.cell_index([np.nan], [0.0])[0] == -1


def test_lonlat_round_trip():
    g = PRESETS["ease2-north-25km"]
    lon, lat = g.lonlat()
    assert lon.shape == (720, 720)
    tr = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:6931", always_xy=True)
    x, y = tr.transform(lon[100, 200], lat[100, 200])
    assert abs(x - g.x[200]) < 0.01 and abs(y - g.y[100]) < 0.01


def test_custom_grid_and_errors():
    g = resolve_grid({"crs": "EPSG:3413", "resolution": 10_000, "bounds": [0, 0, 95_000, 50_000]})
    assert (g.nx, g.ny) == (10, 5) and g.y_max == 50_000 and g.x_max == 100_000
    with pytest.raises(GridInvalid, match="unknown preset"):
        resolve_grid("ease2-north-1km")
    with pytest.raises(GridInvalid, match="exceeds"):
        custom_grid("EPSG:3413", 1.0, [0, 0, 1e6, 1e6])
    with pytest.raises(GridInvalid, match="unknown crs"):
        custom_grid("EPSG:999999", 1000.0, [0, 0, 1e4, 1e4])


def test_hemisphere_preset():
    assert hemisphere_preset([-75.0, -80.0]).name == "ease2-south-25km"
    assert hemisphere_preset([70.0]).name == "ease2-north-25km"
