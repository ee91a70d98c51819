from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from oco_l3.errors import BeamStrengthUnknown, GranuleSchemaMismatch, GranuleUnreadable
from oco_l3.icesat2.readers import granule_rgt, read_beams
from tests.icesat2_synth import beam_data, write_atl10

DATA = Path(__file__).parent / "data" / "icesat2"
ATL07_A = DATA / "processed_ATL07-01_20190222003738_08490201_003_02.h5"
ATL07_B = DATA / "processed_ATL07-01_20190225115500_09020201_003_02.h5"
ATL06 = DATA / "ATL06_20181013235645_02340114_209_01.h5"
ATL08 = DATA / "nsidc-icesat2gis_test_atl08.h5"
H = "heights/height_segment_height"


def test_atl07_real_beams_strong_weak_from_attribute_and_empty_beam_skipped():
    beams = read_beams(ATL07_A, "ATL07", "all", [H])
    assert [b.beam for b in beams] == ["gt1l", "gt1r", "gt2l", "gt3l", "gt3r"]  # gt2r has no datasets
    # sc_orient backward in this granule: the LEFT beams are strong.
    assert {b.beam: b.beam_type for b in beams} == {
        "gt1l": "strong", "gt1r": "weak", "gt2l": "strong", "gt3l": "strong", "gt3r": "weak"}
    strong = read_beams(ATL07_A, "ATL07", "strong", [H])
    assert [b.beam for b in strong] == ["gt1l", "gt2l", "gt3l"]
    assert [b.beam for b in read_beams(ATL07_A, "ATL07", "weak", [H])] == ["gt1r", "gt3r"]
    gt1l = beams[0]
    with h5py.File(ATL07_A) as h5:
        raw = h5["gt1l/sea_ice_segments/heights/height_segment_height"][:]
        fill = h5["gt1l/sea_ice_segments/heights/height_segment_height"].attrs["_FillValue"][0]
    assert (raw == fill).sum() == 33 and np.isnan(gt1l.variables[H]).sum() == 33
    ok = raw != fill
    assert np.allclose(gt1l.variables[H][ok], raw[ok])
    assert gt1l.rgt == 849 and gt1l.cycle == 2


def test_atl06_forward_orientation_right_beams_strong_and_time():
    beams = read_beams(ATL06, "ATL06", "strong", ["h_li"])
    assert [b.beam for b in beams] == ["gt1r", "gt2r", "gt3r"]
    b = beams[0]
    with h5py.File(ATL06) as h5:
        dt = h5["gt1r/land_ice_segments/delta_time"][0]
        epoch = h5["ancillary_data/atlas_sdp_gps_epoch"][0]
    expected = np.datetime64("1980-01-06", "ns") + np.timedelta64(int(round((dt + epoch - 18) * 1e9)), "ns")
    assert abs((b.time[0] - expected).astype(np.int64)) < 1000  # within 1 us
    assert str(b.time[0].astype("datetime64[D]")) == "2018-10-13"


def test_atl08_without_beam_attributes_or_epoch():
    beams = read_beams(ATL08, "ATL08", "all", ["canopy/h_canopy"])
    assert [b.beam for b in beams] == ["gt1l", "gt1r", "gt2r", "gt3l", "gt3r"]
    assert all(b.beam_type is None for b in beams)
    # No attribute and no orbit_info/sc_orient: a strong/weak selection is refused with the reason.
    with pytest.raises(BeamStrengthUnknown, match="without atlas_beam_type and no orbit_info/sc_orient"):
        read_beams(ATL08, "ATL08", "strong", ["canopy/h_canopy"])
    assert all(np.nanmax(b.variables["canopy/h_canopy"]) < 1e3 for b in beams)


@pytest.mark.parametrize("layout", ["v005", "v006"])
def test_atl10_both_layouts_read_identically(tmp_path, layout):
    data = {"gt1l": beam_data(50, 1), "gt2l": beam_data(30, 2)}
    data["gt1l"]["fb"][:5] = np.float32(3.4028235e38)
    path = write_atl10(tmp_path / f"ATL10-01_20190101000000_13790101_{layout}_01.h5", layout, data,
                       {"gt1l": "weak", "gt1r": "strong", "gt2l": "strong", "gt2r": "weak"},
                       empty_beams=("gt1r",))
    names = ["beam_fb_height", "heights/height_segment_length_seg", "beam_fb_quality_flag"]
    beams = read_beams(path, "ATL10", "all", names)
    assert [b.beam for b in beams] == ["gt1l", "gt2l"]  # gt1r: group without datasets; gt2r: no data given
    assert beams[0].beam_type == "weak" and beams[1].beam_type == "strong"  # attribute, not the name
    assert np.isnan(beams[0].variables["beam_fb_height"][:5]).all()
    assert np.allclose(beams[0].variables["beam_fb_height"][5:], data["gt1l"]["fb"][5:])
    assert np.allclose(beams[1].variables["heights/height_segment_length_seg"], data["gt2l"]["length"])
    assert beams[0].fills == {"beam_fb_quality_flag": -1}
    assert [b.beam for b in read_beams(path, "ATL10", "strong", names)] == ["gt2l"]


def test_all_fill_beam_is_returned_with_nan(tmp_path):
    d = beam_data(10)
    d["fb"][:] = np.float32(3.4028235e38)
    path = write_atl10(tmp_path / "a.h5", "v006", {"gt1l": d}, {"gt1l": "strong"})
    (b,) = read_beams(path, "ATL10", "strong", ["beam_fb_height"])
    assert np.isnan(b.variables["beam_fb_height"]).all() and not b.valid("beam_fb_height").any()


def test_errors_are_one_line_and_name_the_file(tmp_path):
    bad = tmp_path / "ATL07-01_20190101000000_00010101_006_01.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(GranuleUnreadable, match=bad.name):
        read_beams(bad, "ATL07", "all", [H])
    empty = tmp_path / "zero.h5"
    empty.write_bytes(b"")
    with pytest.raises(GranuleUnreadable, match="zero.h5"):
        read_beams(empty, "ATL07", "all")
    with pytest.raises(GranuleSchemaMismatch, match="is ATL06, expected ATL07"):
        read_beams(ATL06, "ATL07", "all")
    with pytest.raises(GranuleSchemaMismatch, match="no gtx/land_ice_segments"):
        read_beams(ATL08, "ATL06", "all")
    with pytest.raises(GranuleSchemaMismatch, match=r"gt1l/sea_ice_segments/heights/nope missing"):
        read_beams(ATL07_B, "ATL07", "all", ["heights/nope"])
    with pytest.raises(GranuleSchemaMismatch, match="unsupported product"):
        read_beams(ATL07_B, "ATL99", "all")
    for exc_type, args in ((GranuleUnreadable, (bad, "ATL07")),):
        with pytest.raises(exc_type) as info:
            read_beams(*args)
        assert "\n" not in str(info.value)


def test_truncated_granule_is_unreadable(tmp_path):
    cut = tmp_path / ATL07_B.name
    cut.write_bytes(ATL07_B.read_bytes()[: 400_000])
    with pytest.raises(GranuleUnreadable):
        read_beams(cut, "ATL07", "all", [H])


def test_granule_rgt_from_name():
    assert granule_rgt(ATL06.name) == 234
    assert granule_rgt("ATL10-02_20181227215113_13790101_006_02.h5") == 1379
    assert granule_rgt("whatever.h5") is None
