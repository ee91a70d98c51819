"""Per-cell quality layers of every OCO slice (issue 13 item 8): ``n_footprints`` and ``nearest_sounding_distance``,
through gridding, the target stores (also stores written before the layers existed), the CLI and the global grid."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import fsspec
import numpy as np
import pytest
import xarray as xr
import yaml
from scipy.spatial import cKDTree

from oco_l3 import sample_data as sd
from oco_l3.captures import split_captures
from oco_l3.gridding import (
    EARTH_RADIUS_KM,
    N_FOOTPRINTS,
    N_FOOTPRINTS_FILL,
    NEAREST_DISTANCE,
    QUALITY_ATTRS,
    distance_km,
    grid_capture,
)
from oco_l3.grids import GridSpec, target_grid
from oco_l3.readers import Selection, read_granule
from oco_l3.soundings import Soundings, Variable
from oco_l3.targets import load_targets
from tests.test_gridding import GRID, footprint_counts, make_soundings

DAY = dt.date(2021, 6, 1)


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    p1, p2, dl = np.deg2rad(lat1), np.deg2rad(lat2), np.deg2rad(lon2 - lon1)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(h))


def nearest_km(s: Soundings, grid: GridSpec) -> np.ndarray:
    """Reference: great-circle distance from every cell centre to the nearest sounding centre, on the sphere."""
    def unit(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        la, lo = np.deg2rad(lat), np.deg2rad(lon)
        return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])

    lon, lat = np.meshgrid(grid.longitude, grid.latitude)
    _, which = cKDTree(unit(s.latitude, s.longitude)).query(unit(lat.ravel(), lon.ravel()))
    return haversine_km(lat.ravel(), lon.ravel(), s.latitude[which], s.longitude[which]).reshape(grid.shape)


def test_distance_formula_matches_haversine() -> None:
    rng = np.random.default_rng(3)
    for lat0 in (0.0, 35.0, 70.0, -69.9):
        row_lat = lat0 + np.linspace(-1.5, 1.5, 50)
        col_lon = 179.0 + np.linspace(-1.5, 1.5, 60)  # crosses the antimeridian
        rows, cols = rng.integers(0, 50, 2000), rng.integers(0, 60, 2000)
        bearing, dist = rng.uniform(0, 2 * np.pi, 2000), rng.uniform(0.01, 5.0, 2000)  # km
        lat = row_lat[rows] + np.rad2deg(dist * np.cos(bearing) / EARTH_RADIUS_KM)
        lon = col_lon[cols] + np.rad2deg(dist * np.sin(bearing) / EARTH_RADIUS_KM / np.cos(np.deg2rad(lat)))
        lon = (lon + 180.0) % 360.0 - 180.0
        got = distance_km(row_lat, col_lon, rows, cols, lat, lon)
        want = haversine_km(row_lat[rows], col_lon[cols], lat, lon)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("method", ["linear", "cubic", "nearest"])
def test_layers_count_footprints_and_measure_the_nearest_centre(method: str) -> None:
    s = make_soundings(n_side=16, spacing=0.02, size=0.9, seed=2)
    g = grid_capture(s, GRID, method, mask_scaling=1.3)  # type: ignore[arg-type]
    for sl, used in ((g.pre, s), (g.post, s.take(s.good))):
        assert sl is not None
        counts = sl.full(N_FOOTPRINTS)
        assert counts.dtype == np.int16 and sl.fills[N_FOOTPRINTS] == N_FOOTPRINTS_FILL
        want = footprint_counts(used, GRID, 1.3)
        assert want.max() >= 2  # scaled footprints overlap
        np.testing.assert_array_equal(counts, np.where(want > 0, want, N_FOOTPRINTS_FILL))
        distance = sl.full(NEAREST_DISTANCE)
        assert distance.dtype == np.float32
        np.testing.assert_array_equal(np.isfinite(distance), want > 0)
        ref = nearest_km(used, GRID)[want > 0]
        got = distance[want > 0]
        # the nearest sounding is found in the capture's local plane: the true one almost everywhere
        rel = np.abs(got - ref) / np.maximum(ref, 1e-3)
        assert np.percentile(rel, 99) < 2e-3 and rel.max() < 0.02, (np.percentile(rel, 99), rel.max())
        assert got.max() < 2.2  # km: soundings 2.2 km apart (0.02 degrees), footprints 90 % of that, scaled 1.3
        for key in (N_FOOTPRINTS, NEAREST_DISTANCE):
            assert sl.attrs[key] == dict(QUALITY_ATTRS[key])
            assert {"units", "long_name"} <= set(sl.attrs[key])
    assert g.post is not None
    post = g.post.full(NEAREST_DISTANCE)
    pre = g.pre.full(NEAREST_DISTANCE)
    both = np.isfinite(post)
    assert (post[both] >= pre[both]).all() and (post[both] > pre[both]).any()  # post-QF: good soundings only


def test_layers_alone_do_not_make_a_slice_worth_writing() -> None:
    from oco_l3.target_stores import is_empty

    s = make_soundings()
    nothing = tuple(Variable(v.group, v.name, np.full(len(s), np.nan), v.attrs) if not v.is_integer else v
                    for v in s.variables)
    sl = grid_capture(replace(s, variables=nothing), GRID, "cubic").pre
    assert not sl.empty and np.isfinite(sl.full(NEAREST_DISTANCE)).any()
    assert not sl.has_values and is_empty(sl)
    assert grid_capture(s, GRID, "cubic").pre.has_values


def test_a_science_variable_of_the_same_name_wins(caplog: pytest.LogCaptureFixture) -> None:
    s = make_soundings()
    own = Variable("", N_FOOTPRINTS, np.arange(len(s), dtype=np.int32), {"units": "1"}, fill=-5)
    sl = grid_capture(replace(s, variables=(*s.variables, own)), GRID, "nearest").pre
    values = sl.full(N_FOOTPRINTS)
    assert values.dtype == np.int32 and sl.fills[N_FOOTPRINTS] == -5
    assert np.isin(values[values != -5], own.values).all()
    assert "quality layer is not written" in caplog.text


@pytest.fixture(scope="module")
def granules(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("granules")
    out = {}
    for i in range(2):
        day = DAY + dt.timedelta(days=i)
        spec = sd.CaptureSpec("fossil0005", "sam", 800, dt.datetime.combine(day, dt.time(3, 10)))
        out[i] = sd.write_granule(folder / sd.sample_filename("oco3", day), "oco3", day, [spec], n_background=40,
                                  seed=i)
    return out


def run_config(path: Path, out: Path, files: list[str]) -> Path:
    path.write_text(yaml.safe_dump({
        "output": {"local": str(out)}, "input": {"files": files},
        "grid": {"latitude": 200, "longitude": 200, "method": "cubic"},
        "variables": {"oco3": [{"group": "/", "name": "xco2"}, {"group": "/", "name": "xco2_quality_flag"}]},
    }))
    return path


def test_cli_writes_the_layers_with_cf_attributes(granules: dict[int, Path], tmp_path: Path) -> None:
    from oco_l3.cli import main

    assert main(["run", "-i", str(run_config(tmp_path / "run.yaml", tmp_path / "out", [str(granules[0])]))]) == 0
    for qf in ("pre_qf", "post_qf"):
        ds = xr.open_zarr(tmp_path / f"out/oco3/{qf}/fossil0005.zarr")
        assert ds[N_FOOTPRINTS].dims == ("time", "latitude", "longitude")
        assert ds[NEAREST_DISTANCE].attrs["units"] == "km" and ds[N_FOOTPRINTS].attrs["units"] == "1"
        assert "long_name" in ds[N_FOOTPRINTS].attrs and "long_name" in ds[NEAREST_DISTANCE].attrs
        counts = ds[N_FOOTPRINTS].isel(time=0).values
        covered = np.isfinite(counts)  # xarray decodes the fill (-1) as NaN
        assert covered.sum() > 100 and np.nanmin(counts) >= 1
        assert (np.isfinite(ds.xco2.isel(time=0).values) <= covered).all()  # data only inside footprints
        distance = ds[NEAREST_DISTANCE].isel(time=0).values
        np.testing.assert_array_equal(np.isfinite(distance), covered)


def test_store_written_without_layers_accepts_slices_with_them(granules: dict[int, Path], tmp_path: Path) -> None:
    # A store from before the layers: day 0 written without them (as the old code wrote it), then day 1 by the
    # CLI. The layers appear from the new slice on; the old slice reads as fill; nothing else changes.
    from oco_l3.cli import main
    from oco_l3.pipeline import CaptureProduct, slice_data
    from oco_l3.stores import SliceData, open_store, upsert_slices

    out = tmp_path / "out"
    s = read_granule(granules[0], Selection(variables=("xco2", "xco2_quality_flag")), "oco3")
    cap = split_captures(s, load_targets()).captures[0]
    sub = s.take(cap.index)
    gridded = grid_capture(sub, target_grid(cap.target.bbox, 200, 200), "cubic")
    product = CaptureProduct("oco3", cap.target, cap.mode, cap.start_time, len(sub), int(sub.good.sum()), "cubic",
                             granules[0].name, gridded.pre, gridded.post)
    new = slice_data(product, "pre")
    old = SliceData(new.time, new.grid, {k: v for k, v in new.data.items() if k not in QUALITY_ATTRS},
                    {k: v for k, v in new.fills.items() if k not in QUALITY_ATTRS},
                    {k: v for k, v in new.var_attrs.items() if k not in QUALITY_ATTRS}, new.attrs, new.window)
    fs = fsspec.filesystem("file")
    store = str(out / "oco3/pre_qf/fossil0005.zarr")
    upsert_slices(fs, store, [old], chunking=(250, 250, 5), title="pre_qf")
    before = open_store(fs, store)
    assert N_FOOTPRINTS not in before and "xco2" in before
    before_xco2 = before.xco2.isel(time=0).values.copy()

    assert main(["run", "-i", str(run_config(tmp_path / "run.yaml", out, [str(granules[1])]))]) == 0
    after = open_store(fs, store)
    assert after.sizes["time"] == 2
    np.testing.assert_array_equal(after.xco2.isel(time=0).values, before_xco2)  # the old slice is untouched
    for key in (N_FOOTPRINTS, NEAREST_DISTANCE):
        assert np.isnan(after[key].isel(time=0).values).all()  # older slices read as fill
        assert np.isfinite(after[key].isel(time=1).values).sum() > 100
    assert after[NEAREST_DISTANCE].attrs["units"] == "km"


def test_global_product_gets_the_layers_of_each_capture() -> None:
    from oco_l3.global_grid import global_grid, grid_capture_global

    s = make_soundings(n_side=16, spacing=0.02, size=0.9, seed=2)
    grid = global_grid(3600, 7200)
    gc = grid_capture_global(s, grid, "linear")
    assert gc.pre
    for piece in gc.pre:
        assert piece.data[N_FOOTPRINTS].dtype == np.int16 and piece.fills[N_FOOTPRINTS] == N_FOOTPRINTS_FILL
        counts, distance = piece.data[N_FOOTPRINTS], piece.data[NEAREST_DISTANCE]
        np.testing.assert_array_equal(counts >= 1, np.isfinite(distance))
        assert (counts >= 1).sum() > 20 and np.nanmax(distance) < 1.5  # inside a footprint: within ~1.4 km
