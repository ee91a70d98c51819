from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyproj
import pytest
import rasterio
import xarray as xr
from rio_cogeo.cogeo import cog_validate

from oco_l3.icesat2 import run_icesat2
from oco_l3.icesat2.binning import bin_statistics
from tests.icesat2_synth import beam_data, write_atl10

DATA = Path(__file__).parent / "data" / "icesat2"
ATL07_A = DATA / "processed_ATL07-01_20190222003738_08490201_003_02.h5"
ATL07_B = DATA / "processed_ATL07-01_20190225115500_09020201_003_02.h5"
FILL = np.float32(3.4028235e38)


EASE2_NORTH_25KM = (6931, -9e6, 9e6, 720)  # EPSG, left edge, top edge, columns (25 km cells)
NSIDC_NORTH_25KM = (3411, -3.85e6, 5.85e6, 304)
NSIDC_SOUTH_25KM = (3412, -3.95e6, 4.35e6, 316)


def _independent_atl07(path: Path, default_filter: bool, strong_only: bool = False,
                       grid: tuple[int, float, float, int] = EASE2_NORTH_25KM,
                       beams: tuple[str, ...] = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")) -> pd.DataFrame:
    """Per-cell statistics computed straight from h5py + pyproj + pandas groupby (no oco_l3 code)."""
    epsg, x_min, y_max, nx = grid
    rows = []
    with h5py.File(path) as h5:
        for beam in beams:
            g = h5[beam]["sea_ice_segments"]
            if "latitude" not in g:
                continue
            if strong_only and h5[beam].attrs["atlas_beam_type"] != b"strong":
                continue
            h = g["heights"]
            df = pd.DataFrame({
                "lat": g["latitude"][:], "lon": g["longitude"][:],
                "h": h["height_segment_height"][:].astype(np.float64),
                "l": h["height_segment_length_seg"][:].astype(np.float64),
                "t": h["height_segment_type"][:], "q": h["height_segment_quality"][:],
                "s": h["height_segment_ssh_flag"][:]})
            # Fills dropped; v003 has a few negative segment lengths (fixed in v004): they cannot weight.
            df = df[(df.h < 1e38) & (df.l > 0)]
            if default_filter:
                df = df[(df.t == 1) & (df.q == 1) & (df.s == 0)]
            rows.append(df)
    df = pd.concat(rows)
    x, y = pyproj.Transformer.from_crs(4326, epsg, always_xy=True).transform(df.lon.values, df.lat.values)
    df["cell"] = (np.floor((y_max - y) / 25e3) * nx + np.floor((x - x_min) / 25e3)).astype(int)
    df["lh"] = df.l * df.h
    g = df.groupby("cell")
    out = pd.DataFrame({"n": g.size(), "L": g.l.sum(), "LH": g.lh.sum()})
    out["mean"] = out.LH / out.L
    df = df.join(out["mean"], on="cell")
    df["dev2"] = df.l * (df.h - df["mean"]) ** 2
    out["std"] = np.sqrt(df.groupby("cell").dev2.sum() / out.L)
    out["mlen"] = out.L / out.n
    return out


def _config(files, root, **extra):
    return {"product": "icesat2-seaice", "input": {"files": [str(f) for f in files]},
            "output": {"local": str(root)}, **extra}


def _check_day(ds: xr.Dataset, day: str, expected: pd.DataFrame) -> None:
    sel = ds.sel(time=np.datetime64(day, "ns"))
    n = sel.n_segments.values.ravel()
    assert set(np.flatnonzero(n)) == set(expected.index)
    idx = expected.index.to_numpy()
    assert np.array_equal(n[idx], expected.n.to_numpy())
    assert np.allclose(sel["mean"].values.ravel()[idx], expected["mean"], rtol=1e-5, atol=1e-6)
    assert np.allclose(sel["std"].values.ravel()[idx], expected["std"], rtol=1e-4, atol=1e-5)
    assert np.allclose(sel.mean_segment_length.values.ravel()[idx], expected.mlen, rtol=1e-5)
    assert np.isnan(sel["mean"].values.ravel()[np.flatnonzero(n == 0)]).all()


def test_real_atl07_all_beams_no_filter_matches_independent_groupby(tmp_path):
    results = run_icesat2(_config([ATL07_A, ATL07_B], tmp_path, beams="all", filters="none",
                                  grid="ease2-north-25km"))
    assert [r.ok for r in results] == [True, True]
    assert results[0].days == ("2019-02-22",) and results[1].days == ("2019-02-25",)
    store = tmp_path / "icesat2-seaice" / "atl07-height" / "ease2-north-25km.zarr"
    ds = xr.open_zarr(store)
    assert set(ds.data_vars) >= {"n_segments", "mean_segment_length", "mean", "std", "crs"}
    assert ds["mean"].dims == ("time", "y", "x") and ds["mean"].attrs["grid_mapping"] == "crs"
    assert ds.lat.dims == ("y", "x") and ds.sizes == {"time": 2, "y": 720, "x": 720, "nv": 2}
    assert pyproj.CRS.from_wkt(ds.crs.attrs["crs_wkt"]).to_epsg() == 6931
    _check_day(ds, "2019-02-22", _independent_atl07(ATL07_A, default_filter=False))
    _check_day(ds, "2019-02-25", _independent_atl07(ATL07_B, default_filter=False))
    assert int(ds.n_segments.sum()) == results[0].n_segments + results[1].n_segments


def test_real_atl07_default_filter_strong_beams_and_cogs(tmp_path):
    results = run_icesat2(_config([ATL07_B, ATL07_A], tmp_path, grid="ease2-north-25km"))
    # The 2019-02-22 subset has height_segment_quality == 0 everywhere: nothing survives the default filter, so
    # that day is written as an EMPTY day (zero counts), not left out.
    assert results[1].ok and results[1].n_segments == 0 and results[1].days == ("2019-02-22",)
    assert results[1].empty and results[1].day_segments == (0,)
    expected = _independent_atl07(ATL07_B, default_filter=True, strong_only=True)
    ds = xr.open_zarr(tmp_path / "icesat2-seaice" / "atl07-height" / "ease2-north-25km.zarr")
    assert list(ds.time.values.astype("datetime64[D]").astype(str)) == ["2019-02-22", "2019-02-25"]
    assert int(ds.n_segments.sel(time="2019-02-22").sum()) == 0
    _check_day(ds, "2019-02-25", expected)
    tifs = sorted(p for p in results[0].outputs if p.endswith(".tif"))
    assert len(tifs) == 4
    for tif in tifs:
        assert cog_validate(tif)[0]
    with rasterio.open(next(t for t in tifs if t.endswith("_mean.tif"))) as src:
        assert src.crs.to_epsg() == 6931 and src.shape == (720, 720)
        assert src.transform.c == -9_000_000 and src.transform.f == 9_000_000
        arr = src.read(1)
        assert np.isnan(src.nodata)
        assert np.allclose(arr.ravel()[expected.index], expected["mean"], rtol=1e-5)
    assert any(p.endswith(".png") and Path(p).stat().st_size > 1000 for p in results[0].outputs)


def test_rerun_of_a_day_replaces_it(tmp_path):
    store = tmp_path / "icesat2-seaice" / "atl07-height" / "nsidc-ps-north-25km.zarr"
    cfg = dict(beams="all", filters="none", grid="nsidc-ps-north-25km")
    cfg_out = {"cog": False, "quicklook": False, "local": str(tmp_path)}
    run_icesat2({**_config([ATL07_A, ATL07_B], tmp_path, **cfg), "output": cfg_out})
    first = xr.open_zarr(store).load()
    # Re-run only one day from a new production of its granule (here: gt1r's heights all fill): that day is
    # replaced, the other kept untouched.
    reprocessed = tmp_path / "new" / ATL07_B.name
    reprocessed.parent.mkdir()
    shutil.copy(ATL07_B, reprocessed)
    with h5py.File(reprocessed, "r+") as h5:
        h = h5["gt1r/sea_ice_segments/heights/height_segment_height"]
        h[...] = h.attrs["_FillValue"][0]
    run_icesat2({**_config([reprocessed], tmp_path, **cfg), "output": cfg_out})
    second = xr.open_zarr(store).load()
    assert second.sizes["time"] == 2 and second.sizes["x"] == 304 and second.sizes["y"] == 448
    d22, d25 = np.datetime64("2019-02-22", "ns"), np.datetime64("2019-02-25", "ns")
    xr.testing.assert_identical(first.sel(time=d22), second.sel(time=d22))
    assert 0 < int(second.n_segments.sel(time=d25).sum()) < int(first.n_segments.sel(time=d25).sum())
    # Re-running the same thing again is a no-op on the content.
    run_icesat2({**_config([reprocessed], tmp_path, **cfg), "output": cfg_out})
    xr.testing.assert_identical(second, xr.open_zarr(store).load())
    # Another beam selection into the same store is refused (one store, one selection): nothing changes.
    (refused,) = run_icesat2({**_config([ATL07_B], tmp_path, **{**cfg, "beams": "strong"}), "output": cfg_out})
    assert not refused.ok and refused.message.startswith("StoreCorrupt: ")
    assert "beams = 'all', this run 'strong'" in refused.message
    xr.testing.assert_identical(second, xr.open_zarr(store).load())


def test_bad_granule_does_not_stop_the_others(tmp_path):
    bad = tmp_path / "ATL07-01_20190101000000_00010101_006_01.h5"
    bad.write_bytes(b"\x89HDF garbage")
    results = run_icesat2(_config([bad, ATL07_B, tmp_path / "missing.h5"], tmp_path,
                                  output={"local": str(tmp_path), "cog": False, "quicklook": False}))
    assert [r.ok for r in results] == [False, True, False]
    assert results[0].message.startswith("GranuleUnreadable: ") and bad.name in results[0].message
    assert "\n" not in results[0].message and results[1].n_segments > 0


@pytest.mark.parametrize("layout", ["v005", "v006"])
def test_synthetic_atl10_both_layouts_same_statistics(tmp_path, layout):
    data = {"gt1l": beam_data(400, 3), "gt2l": beam_data(300, 4, lat0=81.0)}
    data["gt1l"]["fb"][:7] = FILL
    data["gt2l"]["length"][:3] = FILL
    path = write_atl10(tmp_path / f"ATL10-01_20190101000000_13790101_{layout}_01.h5", layout, data,
                       {"gt1l": "strong", "gt1r": "weak", "gt2l": "strong"}, empty_beams=("gt1r",))
    out = tmp_path / "out"
    results = run_icesat2(_config([path], out, fb_quality_max=3, grid="ease2-north-25km",
                                  output={"local": str(out), "cog": False, "quicklook": False}))
    assert results[0].ok, results[0].message
    frames = []
    for d in data.values():
        df = pd.DataFrame({k: v.astype(np.float64) for k, v in d.items()})
        frames.append(df[(df.fb < 1e38) & (df.length < 1e38) & (df.quality <= 3) & (df.ssh == 0)])
    df = pd.concat(frames)
    assert results[0].n_segments == len(df)
    x, y = pyproj.Transformer.from_crs(4326, 6931, always_xy=True).transform(df.lon.values, df.lat.values)
    cell = (np.floor((9e6 - y) / 25e3) * 720 + np.floor((x + 9e6) / 25e3)).astype(int)
    weights = df.length.to_numpy()
    ds = xr.open_zarr(out / "icesat2-seaice" / "atl10-freeboard" / "ease2-north-25km.zarr").isel(time=0)
    mean = ds["mean"].values.ravel()
    for c in np.unique(cell):
        m = cell == c
        expect = np.average(df.fb.to_numpy()[m], weights=weights[m])
        assert mean[c] == pytest.approx(expect, rel=1e-5)
    assert str(ds.time.values.astype("datetime64[D]")) == "2019-01-01"


def test_binning_random_against_pandas_and_empty():
    rng = np.random.default_rng(7)
    n, cells = 50_000, 300
    cell = rng.integers(-5, cells, n)
    v = rng.normal(size=n)
    w = rng.uniform(1, 100, n)
    v[::97] = np.nan
    s = bin_statistics(cell, v, w, cells)
    df = pd.DataFrame({"c": cell, "v": v, "w": w}).dropna()
    df = df[df.c >= 0]
    g = df.groupby("c")
    mean = g.apply(lambda t: np.average(t.v, weights=t.w))
    std = g.apply(lambda t: np.sqrt(np.average((t.v - np.average(t.v, weights=t.w)) ** 2, weights=t.w)))
    assert np.array_equal(s.n_segments[mean.index], g.size().to_numpy())
    assert np.allclose(s.mean[mean.index], mean.to_numpy(), rtol=1e-5, atol=1e-6)
    assert np.allclose(s.std[std.index], std.to_numpy(), rtol=1e-5, atol=1e-6)
    assert np.allclose(s.mean_segment_length[mean.index], g.w.mean().to_numpy(), rtol=1e-5)
    empty = bin_statistics(np.empty(0, np.int64), np.empty(0), np.empty(0), 4)
    assert empty.n_segments.tolist() == [0, 0, 0, 0] and np.isnan(empty.mean).all()


def test_older_day_is_inserted_in_time_order_and_interrupted_swap_recovers(tmp_path):
    out = {"local": str(tmp_path), "cog": False, "quicklook": False}
    store = tmp_path / "icesat2-seaice" / "atl07-height" / "ease2-north-25km.zarr"
    cfg = {"beams": "all", "filters": "none", "grid": "ease2-north-25km", "output": out}
    run_icesat2(_config([ATL07_B], tmp_path, **cfg))
    first = xr.open_zarr(store).load()
    run_icesat2(_config([ATL07_A], tmp_path, **cfg))
    ds = xr.open_zarr(store).load()
    assert list(ds.time.values.astype("datetime64[D]").astype(str)) == ["2019-02-22", "2019-02-25"]
    xr.testing.assert_identical(first.isel(time=0), ds.isel(time=1))
    assert ds.crs.attrs["crs_wkt"] and ds.lat.dims == ("y", "x")
    _check_day(ds, "2019-02-22", _independent_atl07(ATL07_A, default_filter=False))
    # A swap interrupted between its two renames leaves only the old copy: the next write restores it.
    old = store.with_name(f".{store.name}.old-deadbeef")
    store.rename(old)
    run_icesat2(_config([ATL07_B], tmp_path, **cfg))
    again = xr.open_zarr(store).load()
    assert again.sizes["time"] == 2 and not old.exists()
    xr.testing.assert_identical(ds, again)
