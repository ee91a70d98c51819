"""OCO Lite readers on SYNTHETIC granules (oco_l3.sample_data): values, fills, modes, targets, time, errors."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from oco_l3 import sample_data as sd
from oco_l3.config import parse_config
from oco_l3.errors import ConfigInvalid, GranuleNameUnrecognised, GranuleUnreadable, PermanentError
from oco_l3.readers import Selection, parse_granule_name, read_granule, selection_from_config
from oco_l3.soundings import MODE_SAM, MODE_TARGET, MODE_TRANSITION

DAY = dt.date(2021, 12, 18)


@pytest.fixture(scope="module")
def day_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return sd.write_sample_day(tmp_path_factory.mktemp("day"), DAY)


def _small(tmp_path: Path, mission: str, name: str = "g.nc4", **kw: object) -> Path:
    captures = (sd.CaptureSpec("fossil0005" if mission != "oco2" else "lamontOK", "sam" if mission != "oco2"
                               else "target", 96, dt.datetime(2021, 12, 18, 3, 10), interruption=1),)
    return sd.write_granule(tmp_path / name, mission, DAY, captures, 40, **kw)  # type: ignore[arg-type]


# --- naming ----------------------------------------------------------------------------------------------
def test_parse_granule_names() -> None:
    g = parse_granule_name("/data/x/oco3_LtCO2_211218_B11072Ar_240915205334s.nc4")
    assert (g.mission, g.day, g.build, g.production) == ("oco3", dt.date(2021, 12, 18), "B11072Ar", "240915205334")
    assert g.filename() == "oco3_LtCO2_211218_B11072Ar_240915205334s.nc4"
    assert parse_granule_name("oco2_LtCO2_191012_B11100Ar_230603005524s.nc4").mission == "oco2"
    sif = parse_granule_name("s3://bucket/oco3_LtSIF_210517_B10309r_211011011010s.nc4")
    assert (sif.mission, sif.build) == ("oco3_sif", "B10309r")


@pytest.mark.parametrize("name", ["readme.txt", "oco3_LtCO2_211218.nc4", "oco4_LtCO2_211218_B11072Ar_240915205334s.nc4",
                                  "oco3_LtCO2_211318_B11072Ar_240915205334s.nc4", ""])
def test_bad_granule_names(name: str) -> None:
    with pytest.raises(GranuleNameUnrecognised):
        parse_granule_name(name)


def test_unknown_product_names_list_the_known_ones() -> None:
    with pytest.raises(GranuleNameUnrecognised, match="oco3_LtCO2_\\*, oco3_LtSIF_\\*, oco2_LtCO2_\\*"):
        parse_granule_name("oco2_LtXYZ_220525_B11012Ar_220822215313s.nc4")


# --- FP round trip ---------------------------------------------------------------------------------------
def test_fp_values_match_analytic_fields(day_files: dict[str, Path]) -> None:
    s = read_granule(day_files["oco3"])
    assert s.mission == "oco3" and s.source == day_files["oco3"].name
    assert s.latitude.dtype == np.float64 and s.vertex_latitude.shape == (len(s), 4)
    keys = {v.key for v in s.variables}
    assert set(sd.ANALYTIC_FP) <= keys
    assert not keys & {"latitude", "time", "sounding_id", "Sounding/operation_mode", "Sounding/target_id", "levels"}
    for key in sd.ANALYTIC_FP:
        var = s.variable(key)
        expected = sd.ANALYTIC[key](s.latitude, s.longitude)
        if var.is_integer:
            np.testing.assert_array_equal(var.values, expected)
            assert var.fill is not None
            continue
        assert var.values.dtype == np.float32 and var.fill is None
        nan = np.isnan(var.values)
        if key in sd.FILLED:
            np.testing.assert_array_equal(nan, sd.fill_mask(s.latitude, s.longitude))
            assert nan.any()
        else:
            assert not nan.any(), key
        np.testing.assert_array_equal(var.values[~nan], expected[~nan].astype(np.float32))
    assert s.variable("xco2").attrs["units"] == "ppm"
    np.testing.assert_array_equal(s.good, sd.fp_quality_flag(s.latitude, s.longitude) == 0)


def test_fp_modes_targets_time(day_files: dict[str, Path]) -> None:
    s = read_granule(day_files["oco3"])
    assert s.mode.dtype == np.int8 and set(np.unique(s.mode)) == {0, 1, 2, 3, 4}
    la = s.target_id == "fossil0005"
    assert np.all(s.mode[la] == MODE_SAM) and la.sum() == 2998
    assert s.target_name[la][0] == "fossil_Los_Angeles_USA"
    assert np.all(s.mode[s.target_id == "tccon105"] == MODE_TARGET)
    assert {"Missing", "fossil9999", "none"} <= set(s.target_id)
    assert s.time.dtype == np.dtype("datetime64[ns]") and np.all(np.diff(s.time.astype(np.int64)) >= 0)
    assert s.time[la].min() == np.datetime64("2021-12-18T03:10:00", "ns")
    # the 2-sounding interruption sits inside the fossil0005 run
    idx = np.flatnonzero(la)
    inside = np.arange(idx[0], idx[-1] + 1)
    assert np.count_nonzero(s.mode[inside] == MODE_TRANSITION) == 2


def test_bad_coordinates_are_dropped_with_warning(day_files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        s = read_granule(day_files["oco3"])
    assert len(s) == 13800 - 2
    assert np.all(np.abs(s.latitude) <= 90) and np.all(np.abs(s.longitude) <= 180)
    assert any("dropped 2 of 13800" in r.getMessage() for r in caplog.records)


def test_oco2_without_target_variables(day_files: dict[str, Path], tmp_path: Path) -> None:
    s = read_granule(day_files["oco2"])
    assert s.mission == "oco2" and set(s.target_id) == {"none"} and set(s.target_name) == {"none"}
    assert np.count_nonzero(s.mode == MODE_TARGET) == 1000
    with_ids = read_granule(_small(tmp_path, "oco2", oco2_target_vars=True), mission="oco2")
    assert "lamontOK" in set(with_ids.target_id)


# --- SIF ---------------------------------------------------------------------------------------------------
def test_sif_matches_fp_geometry_and_normalises_modes(day_files: dict[str, Path]) -> None:
    fp, sif = read_granule(day_files["oco3"]), read_granule(day_files["oco3_sif"])
    assert sif.mission == "oco3_sif" and len(sif) == len(fp)
    np.testing.assert_array_equal(sif.latitude, fp.latitude)
    np.testing.assert_array_equal(sif.vertex_longitude, fp.vertex_longitude)
    np.testing.assert_array_equal(sif.mode, fp.mode)  # SIF 3 (SAM) -> 4, SIF 4 (XS) -> 3
    np.testing.assert_array_equal(sif.target_id, fp.target_id)  # via /Sequences, -1 -> "none"
    np.testing.assert_array_equal(sif.target_name, fp.target_name)
    np.testing.assert_array_equal(sif.time, fp.time)  # Delta_Time from 1990 == FP unix time
    np.testing.assert_array_equal(sif.good, np.isin(sd.sif_quality_flag(sif.latitude, sif.longitude), [0, 1]))
    for key in sd.ANALYTIC_SIF:
        var = sif.variable(key)
        expected = sd.ANALYTIC[key](sif.latitude, sif.longitude)
        if var.is_integer:
            np.testing.assert_array_equal(var.values, expected)
            continue
        nan = np.isnan(var.values)
        assert nan.any() == (key in sd.FILLED), key
        np.testing.assert_array_equal(var.values[~nan], expected[~nan].astype(np.float32))


@pytest.mark.parametrize("units", ["seconds since 1990-1-1 0:0:0", "s (TAI93-like, leap seconds ignored)", ""])
def test_sif_delta_time_ignores_units_attribute(tmp_path: Path, units: str) -> None:
    s = read_granule(_small(tmp_path, "oco3_sif", delta_time_units=units), mission="oco3_sif")
    assert s.time[s.target_id == "fossil0005"].min() == np.datetime64("2021-12-18T03:10:00", "ns")


# --- mission detection -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mission", ["oco3", "oco2", "oco3_sif"])
def test_mission_detected_from_content(tmp_path: Path, mission: str) -> None:
    path = _small(tmp_path, mission, name="renamed-granule.nc4")
    assert read_granule(path).mission == mission


# --- selection ---------------------------------------------------------------------------------------------
def test_selection_exclude_drop_and_explicit(day_files: dict[str, Path]) -> None:
    path = day_files["oco3"]
    keys = {v.key for v in read_granule(path, Selection(exclude_groups=frozenset({"/Retrieval"}))).variables}
    assert "xco2" in keys and not any(k.startswith("Retrieval/") for k in keys)
    keys = {v.key for v in read_granule(path, Selection(drop=frozenset({"/Retrieval/psurf", "xco2"}))).variables}
    assert "Retrieval/psurf" not in keys and "xco2" not in keys and "Retrieval/dp" in keys
    s = read_granule(path, Selection(exclude_groups=frozenset({"/Sounding", "/"})))
    assert "fossil0005" in set(s.target_id)  # required /Sounding variables are still read
    assert not any(v.group in ("", "Sounding") for v in s.variables)
    s = read_granule(path, Selection(variables=("xco2", "/Retrieval/psurf", "Retrieval/nope", "latitude")))
    assert [v.key for v in s.variables] == ["xco2", "Retrieval/psurf"]


def test_only_selected_datasets_are_read(day_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = h5py.Dataset.__getitem__

    def spy(self: h5py.Dataset, args: object) -> object:
        seen.append(self.name)
        return original(self, args)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    read_granule(day_files["oco3"], Selection(variables=("xco2",)))
    assert "/xco2" in seen and "/Retrieval/psurf" not in seen and "/pressure_levels" not in seen
    assert len(set(seen)) <= 10


def _config(**extra: object) -> object:
    return parse_config({"output": {"local": "/tmp/out"}, **extra})


def test_seed_sample_config_is_refused_naming_the_key() -> None:
    config = _config(**{
        "drop-dims": [{"group": "/Retrieval", "name": "psurf"}, {"group": "/Sounding", "name": "target_id"},
                      {"group": "/Sounding", "name": "target_name"}],
        "exclude-groups": ["/Preprocessors", "/Meteorology", "/Sounding", "/Retrieval"],
    })
    with pytest.raises(ConfigInvalid, match="drop-dims: /Sounding/target_id .*cannot be dropped"):
        selection_from_config(config, "oco3")  # type: ignore[arg-type]


def test_selection_from_config() -> None:
    config = _config(**{"exclude-groups": ["/Sounding"], "drop-dims": [{"group": "/Retrieval", "name": "psurf"}],
                        "variables": {"oco3": [{"group": "/", "name": "xco2"}, {"group": "/Retrieval", "name": "dp"}]}})
    sel = selection_from_config(config, "oco3")  # type: ignore[arg-type]
    assert sel == Selection(frozenset({"Sounding"}), frozenset({"Retrieval/psurf"}), ("xco2", "Retrieval/dp"))
    assert selection_from_config(config, "oco3_sif").variables is None  # type: ignore[arg-type]
    sif_bad = _config(**{"drop-dims": [{"group": "/Metadata", "name": "MeasurementMode"}]})
    with pytest.raises(ConfigInvalid, match="/Metadata/MeasurementMode"):
        selection_from_config(sif_bad, "oco3_sif")  # type: ignore[arg-type]
    selection_from_config(sif_bad, "oco3")  # type: ignore[arg-type]  # an FP read does not need it


# --- corrupt files -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return sd.write_corrupt_variants(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("variant", sorted(sd.CORRUPT_EXPECTED))
def test_corrupt_variants_give_one_line_errors(variants: dict[str, Path], variant: str) -> None:
    path = variants[variant]
    expected = sd.CORRUPT_EXPECTED[variant]
    if expected is None:
        s = read_granule(path)
        assert np.isnan(s.variable("xco2").values).all() and len(s) > 0
        return
    with pytest.raises(expected) as info:
        read_granule(path)
    message = str(info.value)
    assert isinstance(info.value, PermanentError)
    assert "\n" not in message and message.startswith(str(path) + ": ")
    assert "Traceback" not in message and info.value.__cause__ is None


def test_corrupt_messages_name_the_problem(variants: dict[str, Path], tmp_path: Path) -> None:
    def msg(name: str) -> str:
        with pytest.raises(PermanentError) as info:
            read_granule(variants[name])
        return str(info.value)

    assert "empty file" in msg("zero_byte")
    assert "truncated" in msg("truncated")
    assert "not an HDF5" in msg("not_hdf5")
    assert "not a netCDF-4" in msg("hdf5_not_netcdf")
    assert "missing group /Sounding" in msg("missing_group")
    assert "missing /latitude" in msg("renamed_variable")
    assert "/Sounding/operation_mode has dtype float32" in msg("wrong_dtype")
    assert "/vertex_latitude has shape" in msg("wrong_shape")
    with pytest.raises(GranuleUnreadable, match="no such file"):
        read_granule(tmp_path / "absent.nc4")
    with pytest.raises(GranuleUnreadable, match="is a directory"):
        read_granule(tmp_path)


def test_oco3_requires_target_id(tmp_path: Path) -> None:
    path = _small(tmp_path, "oco2")  # no /Sounding/target_id
    shutil.copy(path, tmp_path / "oco3_LtCO2_211218_B11072Ar_240915205334s.nc4")
    with pytest.raises(PermanentError, match="missing /Sounding/target_id"):
        read_granule(tmp_path / "oco3_LtCO2_211218_B11072Ar_240915205334s.nc4")


# --- speed -------------------------------------------------------------------------------------------------
def test_busy_day_reads_fast(tmp_path: Path) -> None:
    path = sd.write_sample_day(tmp_path, DAY, ("oco3",), profile="busy")["oco3"]
    best = min(_timed(path) for _ in range(2))
    assert best < 1.0  # about 0.15 s for 90,600 soundings and 27 variables on an idle core


def _timed(path: Path) -> float:
    start = time.perf_counter()
    s = read_granule(path)
    assert len(s) == 90_600
    return time.perf_counter() - start


def test_granule_with_no_soundings(tmp_path: Path) -> None:
    import netCDF4

    path = tmp_path / "oco3_LtCO2_211218_B11072Ar_240915205334s.nc4"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("sounding_id", None)
        nc.createDimension("vertices", 4)
        for name in ("latitude", "longitude", "xco2"):
            nc.createVariable(name, "f4", ("sounding_id",))
        nc.createVariable("time", "f8", ("sounding_id",))
        for name in ("vertex_latitude", "vertex_longitude"):
            nc.createVariable(name, "f4", ("sounding_id", "vertices"))
        nc.createVariable("xco2_quality_flag", "i1", ("sounding_id",))
        group = nc.createGroup("Sounding")
        group.createVariable("operation_mode", "i1", ("sounding_id",))
        group.createVariable("target_id", str, ("sounding_id",))
        group.createVariable("target_name", str, ("sounding_id",))
    s = read_granule(path)
    assert len(s) == 0 and s.time.dtype == np.dtype("datetime64[ns]") and s.target_id.shape == (0,)
    assert {v.key for v in s.variables} == {"xco2_quality_flag", "xco2"}


def test_target_strings_read_only_for_target_and_sam_soundings(day_files: dict[str, Path], tmp_path: Path) -> None:
    """Only capture-mode soundings' ids and names are read (the heap of the others is never touched); others are
    ``none`` even where the file holds an id, and the captures are those of a full read."""
    from oco_l3.captures import split_captures
    from oco_l3.readers._hdf import Source, read_strings, read_strings_where
    from oco_l3.targets import load_targets

    path = tmp_path / day_files["oco3"].name
    shutil.copy(day_files["oco3"], path)
    with h5py.File(path, "r+") as f:
        mode = f["Sounding/operation_mode"][()]
        other = int(np.flatnonzero(~np.isin(mode, (MODE_SAM, MODE_TARGET)))[5])
        f["Sounding/target_id"][other] = "fossil0005"  # an id on a nadir/glint sounding: never used
        full = read_strings(Source(f, "x"), f["Sounding/target_id"], "Sounding/target_id", mode.size)
        wanted = np.isin(mode, (MODE_SAM, MODE_TARGET))
        part = read_strings_where(Source(f, "x"), f["Sounding/target_id"], "Sounding/target_id", wanted, "none")
    assert full[other] == "fossil0005" and part[other] == "none"
    np.testing.assert_array_equal(part[wanted], full[wanted])
    assert set(part[~wanted]) == {"none"}
    s = read_granule(path, Selection(variables=("xco2",)))
    assert set(s.target_id[~np.isin(s.mode, (MODE_SAM, MODE_TARGET))]) == {"none"}
    caps = split_captures(s, load_targets()).captures
    ref = split_captures(read_granule(day_files["oco3"], Selection(variables=("xco2",))), load_targets()).captures
    assert [(c.target.id, c.start_time, c.n_soundings) for c in caps] == \
        [(c.target.id, c.start_time, c.n_soundings) for c in ref] and caps
