"""OCO-2 Lite SIF, the product added as one registry entry (issue 14): names, the SYNTHETIC granules the sample-data
module writes for it, ``oco-l3 run`` (target-focused and global) and the backfill flow."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import yaml

from oco_l3 import sample_data as sd
from oco_l3.missions import MISSIONS, MODE_TARGET
from oco_l3.readers import parse_granule_name, read_granule

DAY = dt.date(2021, 12, 18)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One SYNTHETIC day of OCO-2 SIF and OCO-2 FP (the OCO-2 plan: a target-mode capture over lamontOK)."""
    return sd.write_sample_day(tmp_path_factory.mktemp("oco2sif"), DAY, missions=("oco2_sif", "oco2"))


def test_names_parse_as_the_oco2_sif_product() -> None:
    g = parse_granule_name("s3://b/oco2_LtSIF_220525_B11012Ar_220822215313s.nc4")
    assert (g.mission, g.day, g.build) == ("oco2_sif", dt.date(2022, 5, 25), "B11012Ar")
    assert g.filename() == "oco2_LtSIF_220525_B11012Ar_220822215313s.nc4"
    spec = MISSIONS["oco2_sif"]
    assert (spec.collection.short_name, spec.collection.version) == ("OCO2_L2_Lite_SIF", "11r")
    assert not spec.default  # not searched (nor waited for) unless a config lists it


def test_sample_granule_is_the_lite_sif_layout_with_oco2_naming(day: dict[str, Path]) -> None:
    import netCDF4

    path = day["oco2_sif"]
    assert path.name.startswith("oco2_LtSIF_211218_B11012Ar_")
    with netCDF4.Dataset(path) as nc:
        assert {"sounding_dim", "vertex_dim", "sequences_dim"} <= set(nc.dimensions)
        assert {"Metadata", "Science", "Sequences"} <= set(nc.groups)
        assert nc.platform == "OCO-2" and "SYNTHETIC" in nc.title
        assert set(np.unique(nc["Metadata/MeasurementMode"][:]).tolist()) <= {0, 1, 2}  # no SAM on OCO-2
    s = read_granule(path)
    assert s.mission == "oco2_sif" and np.count_nonzero(s.mode == MODE_TARGET) == 1000
    qf = sd.sif_quality_flag(s.latitude, s.longitude)
    np.testing.assert_array_equal(s.good, (qf == 0) | (qf == 1))
    sif = s.variable("Daily_SIF_757nm").values
    ok = np.isfinite(sif)
    np.testing.assert_allclose(sif[ok], sd.ANALYTIC["Daily_SIF_757nm"](s.latitude, s.longitude)[ok], rtol=1e-6)
    # without a usable name the content says which product it is (Lite SIF layout, OCO-2 platform)
    anonymous = path.with_name("granule.nc4")
    anonymous.write_bytes(path.read_bytes())
    assert read_granule(anonymous).mission == "oco2_sif"


def _run(tmp: Path, files: list[str], cells: tuple[int, int] = (40, 40), **output: Any) -> int:
    from oco_l3.cli import main

    cfg = tmp / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "input": {"files": files}, "output": {"local": str(tmp / "out"), **output},
        "grid": {"latitude": cells[0], "longitude": cells[1], "method": "linear"}}))
    return main(["run", "-i", str(cfg)])


def test_run_grids_the_target_capture_onto_the_oco2_target(day: dict[str, Path], tmp_path: Path) -> None:
    cog = {"output": {"local": str(tmp_path / "cog")}}
    assert _run(tmp_path, [str(day["oco2_sif"])], cog=cog) == 0
    store = tmp_path / "out" / "oco2_sif" / "pre_qf" / "lamontOK.zarr"
    with xr.open_zarr(store, consolidated=True) as ds:
        assert ds.attrs["platform"] == "OCO-2" and ds.attrs["source"] == "OCO-2 L2 Lite SIF"
        values = ds["Daily_SIF_757nm"].isel(time=0).values
        lon, lat = np.meshgrid(ds.longitude.values, ds.latitude.values)
        finite = np.isfinite(values)
        assert finite.sum() > 20
        np.testing.assert_allclose(values[finite], sd.ANALYTIC["Daily_SIF_757nm"](lat, lon)[finite], rtol=1e-5)
    post = xr.open_zarr(tmp_path / "out" / "oco2_sif" / "post_qf" / "lamontOK.zarr", consolidated=True)
    assert "Quality_Flag in {0, 1}" in post.attrs["qf_state"]
    cogs = sorted(p.name for p in (tmp_path / "cog").glob("*.tif"))
    assert cogs and all(name.startswith("oco2-sif_lamontOK_2021-12-18T1830") for name in cogs)


def test_global_product_carries_oco2_sif_variables_without_target_layers(day: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    assert _run(tmp_path, [str(p) for p in day.values()], (1800, 3600), **{"global": True}) == 0
    with xr.open_zarr(tmp_path / "out" / "pre_qf", consolidated=True) as ds:
        assert np.isfinite(ds["OCO2_SIF_global_Daily_SIF_757nm"].isel(time=0).values).sum() > 0
        assert np.isfinite(ds["OCO2_global_xco2"].isel(time=0).values).sum() > 0
        assert not [v for v in ds.data_vars if v.startswith("OCO2_SIF_global_target")]


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_flow_records_oco2_sif_days(day: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from oco_l3.cli import main

    granules = tmp_path / "granules"
    granules.mkdir()
    (granules / day["oco2_sif"].name).write_bytes(day["oco2_sif"].read_bytes())
    cfg = tmp_path / "flow.yaml"
    cfg.write_text(yaml.safe_dump({
        "output": {"local": str(tmp_path / "out")}, "grid": {"latitude": 30, "longitude": 30, "method": "linear"},
        "search": {"source": "local", "local": str(granules), "missions": ["oco2_sif"]}}))
    assert main(["backfill", "-i", str(cfg), "--start", str(DAY), "--end", str(DAY)]) == 0
    capsys.readouterr()
    assert main(["status", "-i", str(cfg), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["mission"], row["day"], row["status"], row["captures"]) == ("oco2_sif", str(DAY), "done", 1)
    assert (tmp_path / "out" / "oco2_sif" / "post_qf" / "lamontOK.zarr").is_dir()
