"""End-to-end: the `oco-l3` CLI over SYNTHETIC sample days (issue 2's "done when")."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
import yaml
from rio_cogeo.cogeo import cog_validate

from oco_l3.cli import main
from oco_l3.sample_data import ANALYTIC, write_sample_tree

DAY0 = dt.date(2020, 3, 3)
VARIABLES = {
    "oco3": [{"group": "/", "name": "xco2"}, {"group": "/Retrieval", "name": "psurf"},
             {"group": "/Retrieval", "name": "surface_type"}],
    "oco2": [{"group": "/", "name": "xco2"}],
    "oco3_sif": [{"group": "/", "name": "Daily_SIF_757nm"}],
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict[dt.date, dict[str, Path]]:
    root = tmp_path_factory.mktemp("granules")
    return write_sample_tree(root, DAY0, DAY0 + dt.timedelta(days=1))  # type: ignore[return-value]


def write_config(path: Path, out: Path, files: list[str], method: str = "cubic", cog: bool = True) -> Path:
    cfg: dict = {
        "output": {"local": str(out / "zarr"), "naming": {"pre_qf": "pre", "post_qf": "post"}},
        "input": {"files": files},
        "grid": {"latitude": 150, "longitude": 150, "method": method},
        "variables": VARIABLES,
    }
    if cog:
        cfg["output"]["cog"] = {"output": {"local": str(out / "cog")}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def all_files(tree: dict) -> list[str]:
    return [str(p) for d in sorted(tree) for p in tree[d].values()]


@pytest.fixture(scope="module")
def run_once(tree: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    cfg = write_config(out / "cfg.yml", out, all_files(tree))
    assert main(["run", "-i", str(cfg)]) == 0
    return out


def test_layout(run_once: Path) -> None:
    stores = sorted(str(p.relative_to(run_once / "zarr")) for p in (run_once / "zarr").glob("*/*/*.zarr"))
    for mission in ("oco3", "oco3_sif"):
        for qf in ("pre", "post"):
            for target in ("fossil0005", "fossil0036", "tccon105"):
                assert f"{mission}/{qf}/{target}.zarr" in stores
    assert "oco2/pre/lamontOK.zarr" in stores
    assert not any("Missing" in s or "fossil9999" in s for s in stores)
    ds = xr.open_zarr(run_once / "zarr/oco3/pre/fossil0005.zarr")
    assert ds.xco2.dims == ("time", "latitude", "longitude")
    assert ds.time.size == 2 and bool((np.diff(ds.time.values) > np.timedelta64(0)).all())
    grp = xr.open_zarr(run_once / "zarr/oco3/pre/fossil0005.zarr", group="Retrieval")
    assert set(grp.data_vars) == {"psurf", "surface_type"}


@pytest.mark.parametrize("mission,key", [("oco3", "xco2"), ("oco3", "Retrieval/psurf"), ("oco3_sif", "Daily_SIF_757nm"),
                                         ("oco2", "xco2")])
def test_exact_analytic_values_and_no_fill(run_once: Path, mission: str, key: str) -> None:
    target = "lamontOK" if mission == "oco2" else "fossil0005"
    group, _, name = key.rpartition("/")
    ds = xr.open_zarr(run_once / f"zarr/{mission}/pre/{target}.zarr", group=group or None)
    lat, lon = np.meshgrid(ds.latitude.values, ds.longitude.values, indexing="ij")
    truth = ANALYTIC[key](lat, lon)
    values = ds[name].values
    finite = np.isfinite(values)
    assert finite.sum() > 200
    for t in range(values.shape[0]):
        np.testing.assert_allclose(values[t][finite[t]], truth[finite[t]], rtol=2e-6, atol=1e-4)
    assert np.nanmin(values) > -1000, "a fill value leaked into the output"
    # NaN outside the capture: the box corners are far from any footprint
    assert np.isnan(values[:, 0, 0]).all() and np.isnan(values[:, -1, -1]).all()


def test_post_qf_has_same_time_and_fewer_cells(run_once: Path) -> None:
    pre = xr.open_zarr(run_once / "zarr/oco3/pre/fossil0005.zarr")
    post = xr.open_zarr(run_once / "zarr/oco3/post/fossil0005.zarr")
    assert (pre.time.values == post.time.values).all()
    assert post.attrs["quality_flag_filtered"] is True and pre.attrs["quality_flag_filtered"] is False


def test_integer_variable_stays_integer_valued(run_once: Path) -> None:
    ds = xr.open_zarr(run_once / "zarr/oco3/pre/fossil0005.zarr", group="Retrieval", mask_and_scale=False)
    st = ds.surface_type
    assert st.dtype.kind in "iu"
    fill = st.attrs.get("_FillValue", st.encoding.get("_FillValue"))
    vals = np.unique(st.values)
    assert set(vals.tolist()) - {fill} <= {0, 1, 2, 3, 4}


def test_cogs_valid_north_up_with_nodata(run_once: Path) -> None:
    cogs = sorted((run_once / "cog").glob("oco3-co2_fossil0005_2020-03-03T031000Z_unfiltered_*.tif"))
    names = {p.name.split("_unfiltered_")[1] for p in cogs}
    assert names == {"xco2.tif", "Retrieval.psurf.tif", "Retrieval.surface_type.tif", "n_footprints.tif",
                     "nearest_sounding_distance.tif"}
    path = run_once / "cog/oco3-co2_fossil0005_2020-03-03T031000Z_unfiltered_xco2.tif"
    ok, errors, _ = cog_validate(str(path))
    assert ok, errors
    ds = xr.open_zarr(run_once / "zarr/oco3/pre/fossil0005.zarr")
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 4326 and src.nodata is not None
        assert src.transform.e < 0  # north-up
        band = src.read(1)
    np.testing.assert_array_equal(np.isnan(band), np.isnan(ds.xco2.values[0][::-1]))


def test_rerun_keeps_one_slice_per_capture_and_new_data_wins(tree: dict, tmp_path: Path) -> None:
    out = tmp_path
    files = all_files(tree)
    cfg = write_config(out / "cfg.yml", out, files, method="linear", cog=False)
    assert main(["run", "-i", str(cfg)]) == 0
    cfg = write_config(out / "cfg.yml", out, files, method="nearest", cog=False)
    assert main(["run", "-i", str(cfg)]) == 0
    ds = xr.open_zarr(out / "zarr/oco3/pre/fossil0005.zarr")
    assert ds.time.size == 2
    assert ds.attrs["interpolation_method"] == "nearest"


def test_corrupt_granule_fails_alone(tree: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "oco3_LtCO2_200305_B11072Ar_210101000000s.nc4"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    cfg = write_config(tmp_path / "cfg.yml", tmp_path, all_files(tree) + [str(bad)], cog=False)
    assert main(["run", "-i", str(cfg)]) == 1
    captured = capsys.readouterr()
    lines = [ln for ln in captured.out.splitlines() + captured.err.splitlines() if bad.name in ln]
    assert any("FAIL" in ln and "GranuleUnreadable" in ln for ln in lines)
    assert "Traceback" not in captured.err
    assert (tmp_path / "zarr/oco3/pre/fossil0005.zarr").exists()
    assert xr.open_zarr(tmp_path / "zarr/oco3/pre/fossil0005.zarr").time.size == 2


def test_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yml"
    cfg.write_text("output: {local: /tmp/x}\ninput: {files: []}\ngrid: {method: bicubic}\n")
    proc = subprocess.run([sys.executable, "-m", "oco_l3.cli", "run", "-i", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "grid.method" in proc.stderr


def test_validate_command(tmp_path: Path, tree: dict, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "cfg.yml", tmp_path, all_files(tree))
    assert main(["validate", "-i", str(cfg)]) == 0
    assert "ok" in capsys.readouterr().out


def test_run_does_not_import_prefect_or_matplotlib(tmp_path: Path, tree: dict) -> None:
    cfg = write_config(tmp_path / "cfg.yml", tmp_path, [all_files(tree)[1]], cog=False)
    code = (
        f"import sys; from oco_l3.cli import main; rc = main(['run', '-i', {str(cfg)!r}]); "
        "print('PREFECT' if 'prefect' in sys.modules else 'MATPLOTLIB' if 'matplotlib' in sys.modules else 'CLEAN'); "
        "sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("CLEAN")


def test_captures_in_worker_processes_write_the_same_stores(tree: dict, tmp_path: Path) -> None:
    """One day with max-workers 2 grids its captures in two forked processes: the stores equal a sequential run."""
    files = [str(p) for p in tree[DAY0].values()]
    seq = write_config(tmp_path / "seq.yml", tmp_path / "seq", files, cog=False)
    par = tmp_path / "par.yml"
    par.write_text(seq.read_text().replace(str(tmp_path / "seq"), str(tmp_path / "par")) + "max-workers: 2\n")
    assert main(["run", "-i", str(seq)]) == 0
    assert main(["run", "-i", str(par)]) == 0
    a = sorted(p.relative_to(tmp_path / "seq") for p in (tmp_path / "seq").glob("zarr/*/*/*.zarr"))
    b = sorted(p.relative_to(tmp_path / "par") for p in (tmp_path / "par").glob("zarr/*/*/*.zarr"))
    assert a == b and len(a) >= 10
    for rel in a:
        x, y = xr.open_zarr(tmp_path / "seq" / rel), xr.open_zarr(tmp_path / "par" / rel)
        xr.testing.assert_equal(x.drop_attrs(), y.drop_attrs())


@pytest.mark.parametrize("argv, verbose", [
    (["run", "-i", "c.yml"], 0),
    (["-v", "run", "-i", "c.yml"], 1),
    (["run", "-i", "c.yml", "-v"], 1),
    (["run", "-v", "-i", "c.yml", "-v"], 2),
    (["status", "-i", "c.yml", "-v"], 1),
    (["backfill", "-i", "c.yml", "--start", "2021-01-01", "--end", "2021-01-02", "-vv"], 2),
])
def test_verbose_before_or_after_the_subcommand(argv: list[str], verbose: int) -> None:
    from oco_l3.cli import build_parser

    assert build_parser().parse_args(argv).verbose == verbose
