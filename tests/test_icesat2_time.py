from __future__ import annotations

import numpy as np

from oco_l3.icesat2.time import (
    ATLAS_SDP_GPS_EPOCH,
    decimal_year,
    delta_time_to_utc,
    gps_minus_utc,
    gps_to_utc,
)


def _gps_of(utc: str, leap: int) -> float:
    return float((np.datetime64(utc, "s") - np.datetime64("1980-01-06T00:00:00", "s")).astype(int) + leap)


def test_sdp_epoch_is_2018_utc_midnight():
    assert delta_time_to_utc(np.array([0.0]))[0] == np.datetime64("2018-01-01T00:00:00", "ns")
    assert _gps_of("2018-01-01T00:00:00", 18) == ATLAS_SDP_GPS_EPOCH


def test_leap_second_boundary_2017():
    before = _gps_of("2016-12-31T23:59:59", 17)
    after = _gps_of("2017-01-01T00:00:00", 18)
    assert after - before == 2.0  # the inserted leap second 23:59:60 lies between
    assert gps_minus_utc([before, after]).tolist() == [17.0, 18.0]
    out = gps_to_utc(np.array([before, after]))
    assert out[0] == np.datetime64("2016-12-31T23:59:59", "ns")
    assert out[1] == np.datetime64("2017-01-01T00:00:00", "ns")


def test_gps_epoch_and_early_offsets():
    assert gps_to_utc(np.array([0.0]))[0] == np.datetime64("1980-01-06", "ns")
    assert gps_minus_utc([_gps_of("1999-06-01", 13)])[0] == 13.0


def test_fractional_seconds_and_nan():
    out = gps_to_utc(np.array([ATLAS_SDP_GPS_EPOCH + 1.25, np.nan]))
    assert out[0] == np.datetime64("2018-01-01T00:00:01.250", "ns")
    assert np.isnat(out[1])


def test_decimal_year():
    t = np.array(["2019-01-01T00:00", "2019-07-02T12:00", "NaT"], dtype="datetime64[ns]")
    dy = decimal_year(t)
    assert dy[0] == 2019.0
    assert abs(dy[1] - (2019 + 182.5 / 365)) < 1e-9
    assert np.isnan(dy[2])
