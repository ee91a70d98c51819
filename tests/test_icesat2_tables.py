"""Land-ice reduction, canopy subset, config validation and the CLI-level entry on YAML configs."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import h5py
import numpy as np
import pandas as pd
import pyproj
import pytest
import xarray as xr
import yaml

from oco_l3.config import load_config
from oco_l3.errors import ConfigInvalid
from oco_l3.icesat2 import run_icesat2
from oco_l3.icesat2.config import LandIceConfig, SeaIceConfig, parse_icesat2_config
from oco_l3.icesat2.landice import ascending_flag

DATA = Path(__file__).parent / "data" / "icesat2"
ATL06 = DATA / "ATL06_20181013235645_02340114_209_01.h5"
ATL08 = DATA / "nsidc-icesat2gis_test_atl08.h5"
ATL07_B = DATA / "processed_ATL07-01_20190225115500_09020201_003_02.h5"


def _atl06_independent(h_max: float = 10_000.0) -> pd.DataFrame:
    rows = []
    with h5py.File(ATL06) as h5:
        for beam in ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r"):
            g = h5[beam]["land_ice_segments"]
            df = pd.DataFrame({"beam": beam, "lat": g["latitude"][:], "lon": g["longitude"][:],
                               "h_li": g["h_li"][:].astype(np.float64), "q": g["atl06_quality_summary"][:],
                               "dt": g["delta_time"][:]})
            rows.append(df[(df.q == 0) & (df.h_li < 1e38) & (df.h_li.abs() < h_max)])
    return pd.concat(rows, ignore_index=True)


def test_landice_reduction_matches_independent_filter(tmp_path):
    results = run_icesat2({"product": "icesat2-landice", "input": {"files": [str(ATL06)]},
                           "output": {"local": str(tmp_path), "cog": False, "quicklook": False},
                           "variables": ["h_li", "h_li_sigma", "dem/dem_h"], "csv": True})
    assert results[0].ok, results[0].message
    gdf = gpd.read_parquet(tmp_path / "icesat2-landice" / f"{ATL06.stem}.parquet")
    expect = _atl06_independent()
    assert len(gdf) == len(expect) == results[0].n_segments > 0
    assert np.allclose(np.sort(gdf.h_li.to_numpy()), np.sort(expect.h_li.to_numpy()))
    assert {"beam", "beam_type", "granule", "ascending", "gps_seconds", "decimal_year", "x", "y", "dem_h"} <= set(gdf)
    assert gdf.crs.to_epsg() == 3031  # the granule is in the southern hemisphere
    x, y = pyproj.Transformer.from_crs(4326, 3031, always_xy=True).transform(gdf.longitude, gdf.latitude)
    assert np.allclose(gdf.x, x) and np.allclose(gdf.geometry.x, x) and np.allclose(gdf.y, y)
    assert gdf.ascending.all()  # forward track heading north in this granule
    assert (gdf.decimal_year.between(2018.78, 2018.79)).all()
    assert (gdf.gps_seconds - gdf.delta_time == 1198800018.0).all()
    assert (tmp_path / "icesat2-landice" / f"{ATL06.stem}.csv").exists()
    ds = xr.open_zarr(tmp_path / "icesat2-landice" / "ease2-south-25km.zarr")
    assert int(ds.n_segments.sum()) == len(gdf)
    assert np.nanmax(ds["mean"].values) <= gdf.h_li.max() + 1e-3


def test_landice_bbox_polygon_and_threshold(tmp_path):
    out = {"local": str(tmp_path), "cog": False, "quicklook": False}
    full = _atl06_independent()
    lat_mid = float(full.lat.median())
    bbox = [-180.0, -90.0, 180.0, lat_mid]
    h_max = float(full.h_li.abs().median()) + 1e-3
    r = run_icesat2({"product": "icesat2-landice", "input": {"files": [str(ATL06)]}, "output": out,
                     "bbox": bbox, "h_li_max": h_max})
    expect = full[(full.lat <= lat_mid) & (full.h_li.abs() < h_max)]
    assert 0 < r[0].n_segments == len(expect) < len(full)
    poly = tmp_path / "poly.geojson"
    poly.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": {
        "type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, lat_mid], [-180, lat_mid], [-180, -90]]]}}))
    r2 = run_icesat2({"product": "icesat2-landice", "input": {"files": [str(ATL06)]}, "output": out,
                      "polygon": str(poly), "h_li_max": h_max, "crs": "EPSG:3413"})
    assert r2[0].n_segments == len(expect)
    assert gpd.read_parquet(tmp_path / "icesat2-landice" / f"{ATL06.stem}.parquet").crs.to_epsg() == 3413


def test_ascending_flag_turnaround():
    lat = np.array([80.0, 81.0, 81.5, 81.4, 80.0])
    dt = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    assert ascending_flag(lat, dt).tolist() == [True, True, True, False, False]
    assert ascending_flag(lat[::-1], dt[::-1]).tolist() == [False, False, True, True, True]
    assert ascending_flag(np.array([1.0]), np.array([0.0])).tolist() == [False]


def test_canopy_subset_inside_polygon(tmp_path):
    with h5py.File(ATL08) as h5:
        lat = h5["gt1l/land_segments/latitude"][:]
        lon = h5["gt1l/land_segments/longitude"][:]
    lat_cut = float(np.nanmedian(lat))
    poly = tmp_path / "area.geojson"
    poly.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [[[-110, 20], [-95, 20], [-95, lat_cut], [-110, lat_cut],
                                                          [-110, 20]]]}}]}))
    results = run_icesat2({"product": "icesat2-canopy", "input": {"files": [str(ATL08), "/nope/missing.h5"]},
                           "polygon": str(poly), "variables": ["canopy/h_canopy", "terrain/h_te_best_fit"],
                           "output": {"local": str(tmp_path)}, "csv": True})
    assert results[0].ok and not results[1].ok and "missing.h5" in results[1].message
    gdf = gpd.read_parquet(tmp_path / "icesat2-canopy" / f"{ATL08.stem}.parquet")
    expect_rows = 0
    with h5py.File(ATL08) as h5:
        for beam in h5:
            la = h5[f"{beam}/land_segments/latitude"][:]
            lo = h5[f"{beam}/land_segments/longitude"][:]
            expect_rows += int(((la <= lat_cut) & (la >= 20) & (lo >= -110) & (lo <= -95)).sum())
    assert len(gdf) == expect_rows == results[0].n_segments > 0
    assert {"granule", "beam", "h_canopy", "h_te_best_fit", "time"} <= set(gdf)
    assert gdf.crs.to_epsg() == 4326 and (gdf.latitude <= lat_cut).all()
    assert gdf.h_canopy.isna().any() and (gdf.h_canopy.dropna() < 100).all()  # fills became NaN
    csv = pd.read_csv(tmp_path / "icesat2-canopy" / f"{ATL08.stem}.csv")
    assert len(csv) == len(gdf) and "geometry_wkt" in csv
    assert lon.size == 101


def test_config_errors_name_the_key():
    base = {"product": "icesat2-seaice", "input": {"files": ["a.h5"]}, "output": {"local": "out"}}
    with pytest.raises(ConfigInvalid, match="beams: "):
        parse_icesat2_config({**base, "beams": "both"})
    with pytest.raises(ConfigInvalid, match="grid: unknown grid preset"):
        parse_icesat2_config({**base, "grid": "ease-north"})
    with pytest.raises(ConfigInvalid, match="colour: unknown key"):
        parse_icesat2_config({**base, "colour": 1})
    with pytest.raises(ConfigInvalid, match="only output.local"):
        parse_icesat2_config({**base, "output": {"s3": {"url": "s3://b/p"}}})
    with pytest.raises(ConfigInvalid, match="unknown ICESat-2 product"):
        parse_icesat2_config({**base, "product": "icesat2-ocean"})
    with pytest.raises(ConfigInvalid, match="polygon: Field required"):
        parse_icesat2_config({**base, "product": "icesat2-canopy"})
    with pytest.raises(ConfigInvalid, match="bbox or polygon"):
        parse_icesat2_config({**base, "product": "icesat2-landice", "bbox": [0, 0, 1, 1], "polygon": "p.json"})
    cfg = parse_icesat2_config({**base, "grid": {"crs": "EPSG:3413", "resolution": 50000,
                                                 "bounds": [-1e6, -1e6, 1e6, 1e6], "name": "arctic-50km"}})
    assert isinstance(cfg, SeaIceConfig) and cfg.beams == "strong" and cfg.filters == "default"


def test_cli_level_yaml_config_through_load_config(tmp_path):
    cfg_path = tmp_path / "run.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "product": "icesat2-seaice", "input": {"files": [str(ATL07_B)]}, "beams": "all", "filters": "none",
        "grid": "ease2-north-25km", "output": {"local": str(tmp_path / "out")}}))
    cfg = load_config(cfg_path)
    assert isinstance(cfg, SeaIceConfig)
    results = run_icesat2(cfg)
    assert results[0].ok and results[0].days == ("2019-02-25",)
    store = tmp_path / "out" / "icesat2-seaice" / "atl07-height" / "ease2-north-25km.zarr"
    assert set(xr.open_zarr(store).data_vars) >= {"n_segments", "mean_segment_length", "mean", "std"}
    again = run_icesat2(cfg_path)  # a YAML path works too
    assert again[0].ok and again[0].n_segments == results[0].n_segments
    land = tmp_path / "land.yaml"
    land.write_text(yaml.safe_dump({"product": "icesat2-landice", "input": {"files": [str(ATL06)]},
                                    "output": {"local": str(tmp_path / "out")}}))
    assert isinstance(load_config(land), LandIceConfig)
