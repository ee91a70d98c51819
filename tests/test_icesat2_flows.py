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
    ds = xr.open_zarr(tmp_path / "out" / "icesat2-seaice" / "nsidc-ps-north-25km.zarr")
    assert int(ds.n_segments.sum()) == first["n_segments"] > 0


def test_discover_flow_uses_search_section(tmp_path, prefect_harness, monkeypatch):
    import earthaccess

    from flows.icesat2 import icesat2_discover

    seen = {}

    class G(dict):
        def data_links(self):
            return ["https://data.example/ATL10-01_20190101000000_13790101_006_01.h5"]

    monkeypatch.setattr(earthaccess, "search_data", lambda **k: seen.update(k) or [G(umm={}, meta={})])
    monkeypatch.setattr(earthaccess, "login", lambda *a, **k: pytest.fail("no login"))
    cfg = tmp_path / "d.yaml"
    cfg.write_text(yaml.safe_dump({
        "product": "icesat2-seaice", "input": {"files": ["x.h5"]}, "output": {"local": str(tmp_path)},
        "search": {"temporal": ["2019-01-01", "2019-01-02"], "bbox": [-180, 60, 180, 90], "version": "006"}}))
    found = icesat2_discover(str(cfg))
    assert found == [{"name": "ATL10-01_20190101000000_13790101_006_01.h5", "rgt": 1379,
                      "urls": ["https://data.example/ATL10-01_20190101000000_13790101_006_01.h5"]}]
    assert seen["short_name"] == "ATL10" and seen["version"] == "006"
