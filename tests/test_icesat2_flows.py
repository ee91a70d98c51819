"""The ICESat-2 flows on the real sample granules (ephemeral Prefect harness on loopback) and discovery."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
import yaml

DATA = Path(__file__).parent / "data" / "icesat2"
ATL07_B = DATA / "processed_ATL07-01_20190225115500_09020201_003_02.h5"


@pytest.fixture(autouse=True)
def _no_retry_delay(monkeypatch):
    monkeypatch.setenv("OCO_L3_RETRY_BASE_SECONDS", "0")


def test_process_files_flow_seaice(tmp_path, prefect_harness):
    from flows.icesat2 import icesat2_process_files

    cfg = tmp_path / "seaice.yaml"
    cfg.write_text(yaml.safe_dump({
        "product": "icesat2-seaice", "input": {"files": [str(ATL07_B), str(tmp_path / "missing.h5")]},
        "beams": "all", "filters": "none", "grid": "nsidc-ps-north-25km",
        "output": {"local": str(tmp_path / "out"), "cog": True, "quicklook": False}}))
    summary = icesat2_process_files(str(cfg))
    assert summary["ok"] == 1 and summary["failed"] == 1
    first, second = summary["results"]
    assert first["days"] == ["2019-02-25"] and any(o.endswith("_std.tif") for o in first["outputs"])
    assert second["message"].startswith("GranuleUnreadable") and "missing.h5" in second["message"]
    ds = xr.open_zarr(tmp_path / "out" / "icesat2-seaice" / "atl07-height" / "nsidc-ps-north-25km.zarr")
    assert int(ds.n_segments.sum()) == first["n_segments"] > 0


def test_discover_flow_uses_search_section(tmp_path, prefect_harness, monkeypatch):
    import earthaccess

    from flows.icesat2 import icesat2_discover

    seen = {}

    class G(dict):
        def data_links(self):
            return ["https://data.example/ATL10-01_20190101000000_13790101_006_01.h5"]

    from oco_l3 import cmr

    monkeypatch.setattr(cmr, "granule_query", lambda params, **_: seen.update(params) or [G(umm={}, meta={})])
    monkeypatch.setattr(earthaccess, "login", lambda *a, **k: pytest.fail("no login"))
    cfg = tmp_path / "d.yaml"
    cfg.write_text(yaml.safe_dump({
        "product": "icesat2-seaice", "input": {"files": ["x.h5"]}, "output": {"local": str(tmp_path)},
        "search": {"temporal": ["2019-01-01", "2019-01-02"], "bbox": [-180, 60, 180, 90], "version": "006"}}))
    found = icesat2_discover(str(cfg))
    assert found == [{"name": "ATL10-01_20190101000000_13790101_006_01.h5", "rgt": 1379,
                      "urls": ["https://data.example/ATL10-01_20190101000000_13790101_006_01.h5"]}]
    assert seen["short_name"] == "ATL10" and seen["version"] == "006"


ATL06 = DATA / "ATL06_20181013235645_02340114_209_01.h5"
ATL08 = DATA / "nsidc-icesat2gis_test_atl08.h5"


def test_process_files_flow_landice_and_canopy(tmp_path, prefect_harness):
    # The two table products through the same flow on the real granules: GeoParquet tables, the land-ice daily
    # grid, and a missing input recorded as failed without stopping the other.
    import json

    import geopandas as gpd

    from flows.icesat2 import icesat2_process_files

    land = tmp_path / "landice.yaml"
    land.write_text(yaml.safe_dump({
        "product": "icesat2-landice", "input": {"files": [str(ATL06), str(tmp_path / "gone.h5")]},
        "output": {"local": str(tmp_path / "out"), "cog": False, "quicklook": False}}))
    summary = icesat2_process_files(str(land))
    assert summary["ok"] == 1 and summary["failed"] == 1
    table = gpd.read_parquet(tmp_path / "out" / "icesat2-landice" / f"{ATL06.stem}.parquet")
    assert len(table) == summary["results"][0]["n_segments"] > 0 and {"beam", "h_li", "ascending"} <= set(table)
    assert (table.h_li.abs() < 10_000).all()
    assert list((tmp_path / "out" / "icesat2-landice").glob("*.zarr"))  # the daily h_li grid

    poly = tmp_path / "area.geojson"
    poly.write_text(json.dumps({"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90],
                                                                      [-180, -90]]]}))
    canopy = tmp_path / "canopy.yaml"
    canopy.write_text(yaml.safe_dump({
        "product": "icesat2-canopy", "input": {"files": [str(ATL08)]}, "polygon": str(poly),
        "output": {"local": str(tmp_path / "out")}}))
    summary = icesat2_process_files(str(canopy))
    assert summary["ok"] == 1 and summary["failed"] == 0
    table = gpd.read_parquet(tmp_path / "out" / "icesat2-canopy" / f"{ATL08.stem}.parquet")
    assert len(table) == summary["results"][0]["n_segments"] > 0 and "h_canopy" in table
