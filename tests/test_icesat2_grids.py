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
