"""The SYNTHETIC sample-data writer: real layouts, labels, geometry, awkward cases, profiles and tree layout."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from oco_l3 import sample_data as sd
from oco_l3.missions import MISSIONS
from oco_l3.readers import parse_granule_name, read_granule
from oco_l3.soundings import MODE_SAM, MODE_TARGET
from oco_l3.targets import load_targets

DAY = dt.date(2022, 3, 4)


@pytest.fixture(scope="module")
def day_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return sd.write_sample_day(tmp_path_factory.mktemp("day"), DAY)


def test_files_are_named_and_labelled_synthetic(day_files: dict[str, Path]) -> None:
    assert set(day_files) == {"oco3", "oco2", "oco3_sif"}
    for mission, path in day_files.items():
        name = parse_granule_name(path.name)
        assert (name.mission, name.day, name.build) == (mission, DAY, MISSIONS[mission].naming.build)
        with netCDF4.Dataset(path) as nc:
            assert nc.data_model == "NETCDF4"
            assert "SYNTHETIC oco-l3 sample data" in nc.title
            assert "SYNTHETIC oco-l3 sample data" in nc.comment


def test_fp_layout(day_files: dict[str, Path]) -> None:
    with netCDF4.Dataset(day_files["oco3"]) as nc:
        assert {"sounding_id", "levels", "vertices", "bands", "epoch_dimension"} <= set(nc.dimensions)
        assert "footprints" not in nc.dimensions
        assert set(nc.groups) == {"Sounding", "Retrieval", "Meteorology", "Preprocessors"}
        assert nc["xco2"].dimensions == ("sounding_id",) and nc["xco2"].dtype == np.float32
        assert nc["xco2"].missing_value == -999999
        assert nc["xco2_quality_flag"].dtype == np.int8
        assert nc["vertex_latitude"].shape[1] == 4 and nc["time"].dtype == np.float64
        assert nc["Sounding/target_id"].dtype is str
        assert "fossil0005" in set(nc["Sounding/target_id"][:])
        sid = nc["sounding_id"][:]
        assert sid.dtype == np.int64 and len(np.unique(sid)) == sid.size and len(str(sid[0])) == 16
    with netCDF4.Dataset(day_files["oco2"]) as nc:
        assert "footprints" in nc.dimensions and "target_id" not in nc["Sounding"].variables


def test_sif_layout(day_files: dict[str, Path]) -> None:
    with netCDF4.Dataset(day_files["oco3_sif"]) as nc:
        assert {"sounding_dim", "vertex_dim", "sequences_dim"} <= set(nc.dimensions)
        assert {"Metadata", "Science", "Cloud", "Meteo", "Offset", "Sequences"} <= set(nc.groups)
        assert nc["Delta_Time"].units == sd.DEFAULT_DELTA_TIME_UNITS
        assert nc["SIF_740nm"]._FillValue == -999999 and nc["SIF_740nm"].missing_value == -999999
        modes = set(np.unique(nc["Metadata/MeasurementMode"][:]).tolist())
        assert modes == {0, 1, 2, 3, 4}  # SIF table: 3 = SAM, 4 = transition
        ids = list(nc["Sequences/SequencesId"][:])
        assert ids == ["fossil0005", "fossil0036", "tccon105", "Missing", "fossil9999"]
        index = nc["Sequences/SequencesIndex"][:]
        assert index.min() == -1 and index.max() == len(ids) - 1
        assert nc["Quality_Flag"].dtype == np.int8
        assert set(np.unique(nc["Quality_Flag"][:]).tolist()) == {-1, 0, 1, 2}


def _area_km2(vlat: np.ndarray, vlon: np.ndarray) -> np.ndarray:
    y = vlat * sd.KM_PER_DEG
    x = vlon * sd.KM_PER_DEG * np.cos(np.radians(vlat.mean(axis=1, keepdims=True)))
    return 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1))


def test_captures_sit_in_their_bbox_and_tile(day_files: dict[str, Path]) -> None:
    s = read_granule(day_files["oco3"])
    targets = load_targets()
    for tid in ("fossil0005", "fossil0036", "tccon105"):
        sel = s.target_id == tid
        box = targets[tid].bbox
        assert np.all((s.vertex_latitude[sel] > box.min_lat) & (s.vertex_latitude[sel] < box.max_lat))
        assert np.all((s.vertex_longitude[sel] > box.min_lon) & (s.vertex_longitude[sel] < box.max_lon))
        area = _area_km2(s.vertex_latitude[sel], s.vertex_longitude[sel])
        np.testing.assert_allclose(area, 1.6 * 2.1, rtol=0.02)
        box_km2 = 3 * sd.KM_PER_DEG * 3 * sd.KM_PER_DEG * np.cos(np.radians(targets[tid].centroid_lat))
        if tid != "tccon105":
            assert 0.09 < area.sum() / box_km2 < 0.2
    # neighbouring footprints of one frame share an edge: right edge of footprint k == left edge of k+1
    la = np.flatnonzero(s.target_id == "fossil0005")[:8]
    vlat, vlon = s.vertex_latitude[la], s.vertex_longitude[la]
    np.testing.assert_allclose(vlat[:-1, 1], vlat[1:, 0], atol=1e-5)
    np.testing.assert_allclose(vlon[:-1, 2], vlon[1:, 3], atol=1e-5)
    assert s.variable("Sounding/footprint").values[la].tolist() == list(range(1, 9))


def test_awkward_cases(day_files: dict[str, Path]) -> None:
    s = read_granule(day_files["oco3"])
    known = load_targets()
    assert "Missing" in set(s.target_id) and "fossil9999" in set(s.target_id) and "fossil9999" not in known
    assert np.all(s.mode[s.target_id == "Missing"] == MODE_SAM)
    flagged = 1 - s.good.mean()
    assert 0.15 < flagged < 0.25
    for key in sorted(k for k in sd.FILLED if k in sd.ANALYTIC_FP):
        assert 0 < np.isnan(s.variable(key).values).mean() < 0.06
    background = s.target_id == "none"
    assert set(np.unique(s.mode[background]).tolist()) >= {0, 1}
    oco2 = read_granule(day_files["oco2"])
    lamont = load_targets(default="targets_oco2-pub.json")["lamontOK"].bbox
    tg = oco2.mode == MODE_TARGET
    assert tg.sum() == 1000
    assert np.all((oco2.latitude[tg] > lamont.min_lat) & (oco2.latitude[tg] < lamont.max_lat))
    assert np.all((oco2.longitude[tg] > lamont.min_lon) & (oco2.longitude[tg] < lamont.max_lon))


def test_lite_fp_profiles_look_and_store_like_measured_ones(day_files: dict[str, Path]) -> None:
    """The four (N, 20) profiles: real shapes (levels from space to the surface, a kernel near 1 in the lower
    troposphere, weights summing to 1, a prior near xco2_apriori) and measurement-like noise, so they take the
    room zlib + shuffle leaves real ones (the module docstring's calibration); the analytic fields are untouched."""
    import h5py

    with h5py.File(day_files["oco3"], "r") as f:
        n = f["latitude"].shape[0]
        lat, lon = f["latitude"][()].astype(np.float64), f["longitude"][()].astype(np.float64)
        ok = (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
        levels, apriori = f["pressure_levels"][()][ok], f["co2_profile_apriori"][()][ok]
        kernel, weight = f["xco2_averaging_kernel"][()][ok], f["pressure_weight"][()][ok]
        stored = {k: f[k].id.get_storage_size() / n for k in
                  ("pressure_levels", "co2_profile_apriori", "xco2_averaging_kernel", "pressure_weight")}
        assert all(f[k].shape == (n, sd.LEVELS) and f[k].dtype == np.float32 for k in stored)
        assert f["xco2_averaging_kernel"].attrs["missing_value"] == -999999
        xco2_apriori = f["xco2_apriori"][()][ok].astype(np.float64)
    psurf = sd.ANALYTIC["Retrieval/psurf_apriori"](lat[ok], lon[ok])
    assert np.all(np.diff(levels, axis=1) > 0) and np.allclose(levels[:, 0], 0.1)
    assert np.abs(levels[:, -1] - psurf).max() < 6 and 0.5 < np.std(levels[:, -1] - psurf) < 1.5  # retrieval noise
    assert np.allclose(weight.sum(axis=1), 1, atol=1e-5) and np.all(weight > 0)
    assert np.all(np.abs(apriori - xco2_apriori[:, None]) < 10) and np.all(apriori[:, -1] > apriori[:, 0])
    assert kernel.min() > 0.3 and kernel.max() < 1.6 and 0.02 < kernel[:, 15].std() < 0.2  # varies per sounding
    per_value = sum(stored.values()) / (4 * sd.LEVELS)
    assert 1.5 < per_value < 3.0, stored  # bytes per stored value: measured-like, not constants (0.01 B)
    assert np.array_equal(xco2_apriori, sd.ANALYTIC["xco2_apriori"](lat[ok], lon[ok]).astype(np.float32))


def test_profiles_sizes() -> None:
    busy = sd.day_plan(DAY, "busy")
    assert busy.n_background["oco3"] + sum(c.n_soundings for c in busy.captures["oco3"]) == 90_600
    assert sorted(c.n_soundings for c in busy.captures["oco3"]) == [5600, 10000, 15000]
    two = sd.day_plan(DAY, "two-captures")
    assert two.n_background["oco3"] + sum(c.n_soundings for c in two.captures["oco3"]) == 66_800
    assert len(two.captures["oco3"]) == 2 and busy.captures["oco3_sif"] == busy.captures["oco3"]
    with pytest.raises(ValueError, match="unknown sample profile"):
        sd.day_plan(DAY, "huge")


def test_overlapping_captures_are_refused(tmp_path: Path) -> None:
    start = dt.datetime(2022, 3, 4, 0, 0, 40)
    with pytest.raises(ValueError, match="overlap"):
        sd.write_granule(tmp_path / "x.nc4", "oco3", DAY, [sd.CaptureSpec("fossil0005", "sam", 80, start)], 800)
    with pytest.raises(ValueError, match="give center"):
        sd.write_granule(tmp_path / "x.nc4", "oco3", DAY, [sd.CaptureSpec("nowhere", "sam", 8, start)], 0)


def test_sample_tree_layout(tmp_path: Path) -> None:
    days = sd.write_sample_tree(tmp_path, dt.date(2021, 12, 31), dt.date(2022, 1, 1), missions=("oco3", "oco3_sif"))
    assert list(days) == [dt.date(2021, 12, 31), dt.date(2022, 1, 1)]
    for day, paths in days.items():
        for mission, path in paths.items():
            assert path.parent == tmp_path / mission / f"{day:%Y}"
            assert parse_granule_name(path.name).day == day
    a = read_granule(days[dt.date(2021, 12, 31)]["oco3"])
    b = read_granule(days[dt.date(2022, 1, 1)]["oco3"])
    assert a.time[0].astype("datetime64[D]") == np.datetime64("2021-12-31")
    assert not np.array_equal(a.latitude[a.target_id == "fossil0005"], b.latitude[b.target_id == "fossil0005"])


def test_corrupt_variants_written(tmp_path: Path) -> None:
    paths = sd.write_corrupt_variants(tmp_path)
    assert set(paths) == set(sd.CORRUPT_EXPECTED)
    assert paths["zero_byte"].stat().st_size == 0
    assert all(p.parent.name == v and parse_granule_name(p.name).mission == "oco3" for v, p in paths.items())
    assert not list(tmp_path.rglob("*.part"))
