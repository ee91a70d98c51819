"""Issue #13, ICESat-2 items: product identity (1), hemispheres and off-grid segments (2), beam strength without
``atlas_beam_type`` (4), CF cell methods, time bounds, filters and empty days (8).

Real granules (tests/data/icesat2) wherever one can show it: a southern track is a copy with its latitudes negated,
the fallback a copy without the attribute. ATL10 is synthetic (no real ATL10 granule here).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyproj
import pytest
import xarray as xr
import yaml

from oco_l3 import state as st
from oco_l3.icesat2 import run_icesat2
from oco_l3.icesat2.config import parse_icesat2_config
from oco_l3.icesat2.readers import read_beams
from tests.icesat2_synth import beam_data, modified_copy, write_atl10
from tests.test_icesat2_seaice import NSIDC_NORTH_25KM, NSIDC_SOUTH_25KM, _check_day, _independent_atl07

DATA = Path(__file__).parent / "data" / "icesat2"
ATL07_A = DATA / "processed_ATL07-01_20190222003738_08490201_003_02.h5"
ATL07_B = DATA / "processed_ATL07-01_20190225115500_09020201_003_02.h5"
SOUTH_NAME = "processed_ATL07-02_20190225115500_09020201_003_02.h5"  # -02: Antarctic
DAY_B = "2019-02-25"
NO_FILES = {"cog": False, "quicklook": False}


def _cfg(files: list[Path], root: Path, **extra: object) -> dict:
    return {"product": "icesat2-seaice", "input": {"files": [str(f) for f in files]},
            "output": {"local": str(root), **NO_FILES}, **extra}


def _store(root: Path, slug: str, grid: str) -> Path:
    return root / "icesat2-seaice" / slug / f"{grid}.zarr"


def _cli(tmp_path: Path, raw: dict, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str, dict]:
    """``oco-l3 run`` on a config; exit code, stdout, stderr and the state rows by day."""
    from oco_l3.cli import main

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    code = main(["run", "-i", str(path)])
    out, err = capsys.readouterr()
    state = st.open_state(st.default_state_url(parse_icesat2_config(raw)))
    try:
        rows = {r["day"]: r for r in st.status_rows(state)}
    finally:
        state.close()
    return code, out, err, rows


# --- 1. product identity ------------------------------------------------------------------------------------
def _atl10_on_day_b(path: Path) -> Path:
    """A synthetic ATL10 over ATL07_B's area on the same UTC day (delta_time 0 = 2018-01-01T00:00:00 UTC)."""
    noon = (np.datetime64(DAY_B) - np.datetime64("2018-01-01")).astype(int) * 86400.0 + 43200.0
    beam = beam_data(600, seed=5, lat0=69.3, delta_time0=noon)
    beam["lat"] = np.linspace(69.32, 69.49, 600)
    beam["lon"] = np.linspace(-51.14, -51.08, 600)
    return write_atl10(path, "v006", {"gt1l": beam}, {"gt1l": "strong", "gt1r": "weak"}, empty_beams=("gt1r",))


def test_heights_and_freeboards_of_one_day_do_not_overwrite_each_other(tmp_path: Path) -> None:
    out = {"local": str(tmp_path), "cog": True, "quicklook": False}
    (heights,) = run_icesat2(_cfg([ATL07_B], tmp_path, output=out))
    before = xr.open_zarr(_store(tmp_path, "atl07-height", "nsidc-ps-north-25km")).load()
    atl10 = _atl10_on_day_b(tmp_path / "ATL10-01_20190225115500_09020201_006_01.h5")
    (freeboard,) = run_icesat2(_cfg([atl10], tmp_path, output=out))
    assert heights.ok and freeboard.ok and heights.days == freeboard.days == (DAY_B,)
    h = xr.open_zarr(_store(tmp_path, "atl07-height", "nsidc-ps-north-25km")).load()
    f = xr.open_zarr(_store(tmp_path, "atl10-freeboard", "nsidc-ps-north-25km")).load()
    xr.testing.assert_identical(before, h)  # the ATL07 slice is untouched by the ATL10 run
    assert float(h["mean"].mean()) < 0 < float(f["mean"].mean())  # heights ~ -0.47 m, freeboards > 0
    # Identity in the attributes: source product and variable, CF standard name where the table has one.
    assert (h.attrs["source_product"], h.attrs["source_variable"]) == ("ATL07", "heights/height_segment_height")
    assert (f.attrs["source_product"], f.attrs["source_variable"]) == ("ATL10", "beam_fb_height")
    assert h.attrs["product_id"] == "atl07-height" and f.attrs["product_id"] == "atl10-freeboard"
    assert f["mean"].attrs["standard_name"] == f["std"].attrs["standard_name"] == "sea_ice_freeboard"
    assert f["n_segments"].attrs["standard_name"] == "sea_ice_freeboard number_of_observations"
    assert "standard_name" not in h["mean"].attrs and "mean sea surface" in h["mean"].attrs["long_name"]
    assert h["mean"].attrs["units"] == f["mean"].attrs["units"] == "m"
    # COG names carry the identity too: both days' files exist side by side.
    names = {Path(p).name for p in heights.outputs + freeboard.outputs if p.endswith("_mean.tif")}
    assert names == {f"icesat2-seaice_atl07-height_nsidc-ps-north-25km_{DAY_B}_mean.tif",
                     f"icesat2-seaice_atl10-freeboard_nsidc-ps-north-25km_{DAY_B}_mean.tif"}
    assert all(Path(p).is_file() for p in heights.outputs + freeboard.outputs if p.endswith(".tif"))


# --- 2. hemispheres -----------------------------------------------------------------------------------------
def test_southern_granule_is_binned_on_the_south_atl20_grid(tmp_path: Path) -> None:
    south = modified_copy(ATL07_B, tmp_path / "in" / SOUTH_NAME, flip_beams=["gt1l", "gt1r"])
    (result,) = run_icesat2(_cfg([south], tmp_path / "out"))  # default grid, strong beams, default filters
    assert result.ok and result.n_segments == 443 and result.day_segments == (443,), result.message
    assert not _store(tmp_path / "out", "atl07-height", "nsidc-ps-north-25km").exists()
    ds = xr.open_zarr(_store(tmp_path / "out", "atl07-height", "nsidc-ps-south-25km"))
    assert pyproj.CRS.from_wkt(ds.crs.attrs["crs_wkt"]).to_epsg() == 3412 and ds.sizes["x"] == 316
    _check_day(ds, DAY_B, _independent_atl07(south, default_filter=True, beams=("gt1l",), grid=NSIDC_SOUTH_25KM))


def test_one_granule_feeds_both_hemispheres(tmp_path: Path) -> None:
    mixed = modified_copy(ATL07_B, tmp_path / "in" / ATL07_B.name, flip_beams=["gt1r"])
    (result,) = run_icesat2(_cfg([mixed], tmp_path / "out", beams="all", filters="none"))
    north = xr.open_zarr(_store(tmp_path / "out", "atl07-height", "nsidc-ps-north-25km"))
    south = xr.open_zarr(_store(tmp_path / "out", "atl07-height", "nsidc-ps-south-25km"))
    _check_day(north, DAY_B, _independent_atl07(mixed, False, beams=("gt1l",), grid=NSIDC_NORTH_25KM))
    _check_day(south, DAY_B, _independent_atl07(mixed, False, beams=("gt1r",), grid=NSIDC_SOUTH_25KM))
    assert result.ok and result.day_segments == (868 + 874,) and not result.warnings
    assert sum(o.endswith(".zarr") for o in result.outputs) == 2


def test_all_segments_off_the_grid_is_an_error_most_is_a_warning(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    south = modified_copy(ATL07_B, tmp_path / "in" / SOUTH_NAME, flip_beams=["gt1l", "gt1r"])
    code, out, err, rows = _cli(tmp_path, _cfg([south], tmp_path / "a", grid="nsidc-ps-north-25km"), capsys)
    assert code == 1 and out.startswith("FAIL SegmentsOffGrid: ")
    assert f"{SOUTH_NAME}: all 443 kept segments fall outside nsidc-ps-north-25km" in out
    assert rows[DAY_B]["status"] == "failed" and "SegmentsOffGrid" in rows[DAY_B]["last_error"]
    assert not _store(tmp_path / "a", "atl07-height", "nsidc-ps-north-25km").exists()
    # gt1r (874 of 1742 kept segments) moved south, a northern grid configured: most dropped -> a warning.
    half = modified_copy(ATL07_B, tmp_path / "in2" / ATL07_B.name, flip_beams=["gt1r"])
    raw = _cfg([half], tmp_path / "b", grid="nsidc-ps-north-25km", beams="all", filters="none")
    code, out, err, rows = _cli(tmp_path, raw, capsys)
    assert code == 0 and out.startswith(f"ok   {ATL07_B.name}: 1742 of 1756 segments kept")
    assert "874 of 1742 kept segments fall outside nsidc-ps-north-25km and were dropped" in out
    assert f"\nWARNING {ATL07_B.name}: most kept segments dropped: 874 of 1742" in f"\n{err}"
    row = rows[DAY_B]
    assert row["status"] == "done" and row["captures"] == 868
    assert row["last_error"].startswith(f"warning: {ATL07_B.name}: most kept segments dropped")
    # gt1l (868 of 1742) moved instead: fewer than half dropped -> said in the message, not a warning.
    less = modified_copy(ATL07_B, tmp_path / "in3" / ATL07_B.name, flip_beams=["gt1l"])
    code, out, err, rows = _cli(tmp_path, {**raw, "input": {"files": [str(less)]},
                                           "output": {"local": str(tmp_path / "c"), **NO_FILES}}, capsys)
    assert code == 0 and "868 of 1742 kept segments fall outside" in out and "WARNING" not in err
    assert rows[DAY_B]["last_error"] is None and rows[DAY_B]["captures"] == 874


# --- 4. beam strength ---------------------------------------------------------------------------------------
def test_without_atlas_beam_type_strength_comes_from_sc_orient(tmp_path: Path) -> None:
    stripped = modified_copy(ATL07_B, tmp_path / "s" / ATL07_B.name, drop_beam_types=True)  # sc_orient 0
    (reference,) = run_icesat2(_cfg([ATL07_B], tmp_path / "ref"))
    (got,) = run_icesat2(_cfg([stripped], tmp_path / "got"))
    assert got.ok and got.n_segments == reference.n_segments == 443 and got.message == reference.message
    a = xr.open_zarr(_store(tmp_path / "ref", "atl07-height", "nsidc-ps-north-25km")).load()
    b = xr.open_zarr(_store(tmp_path / "got", "atl07-height", "nsidc-ps-north-25km")).load()
    for name in ("n_segments", "mean", "std", "mean_segment_length"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    # Forward orientation: the right beams are the strong ones.
    forward = modified_copy(ATL07_B, tmp_path / "f" / ATL07_B.name, drop_beam_types=True, sc_orient=1)
    assert [s.beam for s in read_beams(forward, "ATL07", "strong")] == ["gt1r"]
    assert [(s.beam, s.beam_type) for s in read_beams(forward, "ATL07", "weak")] == [("gt1l", "weak")]
    (weak_ref,) = run_icesat2(_cfg([ATL07_B], tmp_path / "wref", beams="weak"))
    (fwd,) = run_icesat2(_cfg([forward], tmp_path / "fwd"))
    assert fwd.ok and fwd.n_segments == weak_ref.n_segments > 0


def test_transition_orientation_and_empty_beams_are_failures(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    transition = modified_copy(ATL07_B, tmp_path / "t" / ATL07_B.name, drop_beam_types=True, sc_orient=2)
    code, out, _, rows = _cli(tmp_path, _cfg([transition], tmp_path / "a"), capsys)
    assert code == 1 and out.startswith("FAIL BeamStrengthUnknown: ")
    assert "orbit_info/sc_orient = 2 (transition)" in out and "granule skipped" in out
    assert rows[DAY_B]["status"] == "failed" and "transition" in rows[DAY_B]["last_error"]
    (every,) = run_icesat2(_cfg([transition], tmp_path / "b", beams="all"))  # all beams need no strength
    assert every.ok and every.n_segments == 907
    # The strong beams of this subset emptied (as the subsetter leaves them): nothing read is a failure.
    hollow = modified_copy(ATL07_B, tmp_path / "h" / ATL07_B.name, emptied_beams=["gt1l"])
    code, out, _, rows = _cli(tmp_path, _cfg([hollow], tmp_path / "c"), capsys)
    assert code == 1 and out.startswith("FAIL BeamsEmpty: ") and "no segment in the strong beams" in out
    assert rows[DAY_B]["status"] == "failed"


@pytest.mark.parametrize(("orient", "times", "strong"), [
    ([0, 1], [100.0, 200.0], "gt1r"),  # turned forward before the data began: right beams
    ([1, 0], [100.0, 1e12], "gt1r"),  # turns backward long after the data: still forward
    ([0, 1], [100.0, 86400.0 * 365 * 31.5 + 50.0], None),  # turns during the data: strength unknown
])
def test_orientation_in_force_during_the_data(tmp_path: Path, orient: list[int], times: list[float],
                                               strong: str | None) -> None:
    from oco_l3.errors import BeamStrengthUnknown

    dt0 = 86400.0 * 365 * 31.5  # the beams span dt0 .. dt0 + 100 s
    data = {"gt1l": beam_data(50, 1, delta_time0=dt0), "gt1r": beam_data(50, 2, delta_time0=dt0)}
    path = write_atl10(tmp_path / "ATL10-01_20190101000000_13790101_006_01.h5", "v006", data,
                       {"gt1l": None, "gt1r": None}, sc_orient=orient, sc_orient_time=times)
    if strong is None:
        with pytest.raises(BeamStrengthUnknown, match=r"changes within the granule \(sc_orient \[0, 1\]\)"):
            read_beams(path, "ATL10", "strong", ["beam_fb_height"])
    else:
        assert [b.beam for b in read_beams(path, "ATL10", "strong", ["beam_fb_height"])] == [strong]


# --- 8. CF, filters, empty days -----------------------------------------------------------------------------
def test_cf_cell_methods_time_bounds_and_filters_in_the_attributes(tmp_path: Path) -> None:
    atl10 = _atl10_on_day_b(tmp_path / "ATL10-01_20190225115500_09020201_006_01.h5")
    run_icesat2(_cfg([atl10], tmp_path / "d", fb_quality_max=3))
    run_icesat2(_cfg([ATL07_B], tmp_path / "n", filters="none"))
    ds = xr.open_zarr(_store(tmp_path / "d", "atl10-freeboard", "nsidc-ps-north-25km"))
    assert ds["mean"].attrs["cell_methods"] == "area: time: mean where sea_ice (comment: weighted by segment length)"
    assert ds["std"].attrs["cell_methods"].startswith("area: time: standard_deviation where sea_ice (comment: ")
    assert ds["n_segments"].attrs["cell_methods"] == "area: time: sum where sea_ice"
    assert ds["mean_segment_length"].attrs["cell_methods"] == "area: time: mean where sea_ice"
    assert ds.time.attrs["bounds"] == "time_bnds" and ds.time_bnds.dims == ("time", "nv")
    np.testing.assert_array_equal(ds.time_bnds.values[0], np.array(["2019-02-25", "2019-02-26"], "datetime64[ns]"))
    assert (ds.attrs["beams"], ds.attrs["filters"], ds.attrs["fb_quality_max"]) == ("strong", "default", 3)
    assert ds.attrs["filter_quality"] == "0 <= beam_fb_quality_flag <= 3"
    assert ds.attrs["filter_lead_flag"].startswith("heights/height_segment_ssh_flag == 0")
    assert "sc_orient" in ds.attrs["beam_strength"]
    # A tighter quality threshold into the same store is refused: the attributes stay true for every day.
    (tighter,) = run_icesat2(_cfg([atl10], tmp_path / "d", fb_quality_max=2))
    assert not tighter.ok and "fb_quality_max = 3, this run 2" in tighter.message
    # filters: none keeps leads too: no "where sea_ice", no filter attributes beyond fills and lengths.
    none = xr.open_zarr(_store(tmp_path / "n", "atl07-height", "nsidc-ps-north-25km"))
    assert none["mean"].attrs["cell_methods"] == "area: time: mean (comment: weighted by segment length)"
    assert none.attrs["filters"] == "none" and "filter_quality" not in none.attrs and none.attrs["filter_valid"]


def test_day_with_every_segment_filtered_out_is_an_empty_day(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # ATL07_A has height_segment_quality == 0 everywhere: the default filters keep nothing.
    raw = {**_cfg([ATL07_A, ATL07_B], tmp_path / "out"), "output": {"local": str(tmp_path / "out"),
                                                                     "cog": True, "quicklook": False}}
    code, out, _, rows = _cli(tmp_path, raw, capsys)
    assert code == 0 and out.splitlines()[0] == (f"EMPTY {ATL07_A.name}: 0 of 470 segments kept from 3 beams "
                                                 "(every segment filtered out: empty day)")
    assert {d: r["status"] for d, r in rows.items()} == {"2019-02-22": "empty", DAY_B: "done"}
    assert rows["2019-02-22"]["captures"] == 0 and rows["2019-02-22"]["outputs"]
    ds = xr.open_zarr(_store(tmp_path / "out", "atl07-height", "nsidc-ps-north-25km"))
    days = list(np.datetime_as_string(ds.time.values, unit="D"))
    assert days == ["2019-02-22", DAY_B]  # 2019-02-23/24 were never processed: absent, not empty
    assert int(ds.n_segments.sel(time="2019-02-22").sum()) == 0
    assert bool(np.isnan(ds["mean"].sel(time="2019-02-22")).all())
    # `oco-l3 status` lists it as empty.
    from oco_l3.cli import main

    assert main(["status", "-i", str(tmp_path / "run.yaml"), "--json"]) == 0
    assert [r["status"] for r in json.loads(capsys.readouterr().out)] == ["empty", "done"]
    assert st.status_command(parse_icesat2_config(raw)).splitlines()[-1].endswith("1 empty")
