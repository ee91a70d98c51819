"""Angles on a circle: which variables are circular, and gridding them across 0/360 (issue 13 item 6)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from oco_l3 import sample_data as sd
from oco_l3.captures import split_captures
from oco_l3.circular import circular_start, from_components, is_circular, to_components
from oco_l3.gridding import grid_capture
from oco_l3.grids import target_grid
from oco_l3.readers import Selection, read_granule
from oco_l3.soundings import Variable
from oco_l3.targets import load_targets
from tests.test_gridding import GRID, centres, make_soundings


def circular_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.mark.parametrize(("name", "attrs", "expected"), [
    ("Sounding/solar_azimuth_angle", {}, True),  # by name, whatever the attributes say
    ("sensor_azimuth_angle", {"units": "deg"}, True),
    ("Sounding/pma_azimuth_angle", {"units": "degrees"}, True),
    ("Meteorology/wind_azimuth", {"units": "degrees"}, True),  # units say degrees, name says azimuth
    ("wind_azimuth", {"units": "radians"}, False),
    ("wind_azimuth", {}, False),
    ("solar_zenith_angle", {"units": "degrees"}, False),  # zenith angles do not wrap
    ("sensor_zenith_angle", {"units": "degrees"}, False),
    ("longitude_offset", {"units": "degrees"}, False),
])
def test_which_variables_are_circular(name: str, attrs: dict[str, str], expected: bool) -> None:
    assert is_circular(name, attrs) is expected


def test_components_round_trip_into_the_variable_range() -> None:
    angles = np.array([0.0, 1.0, 179.0, 180.0, 181.0, 359.0, 359.9999999])
    assert circular_start(angles) == 0.0
    back = from_components(*to_components(angles), 0.0, np.float32)
    assert back.dtype == np.float32 and ((back >= 0) & (back < 360)).all()  # 359.9999999 rounds to 360 in float32
    np.testing.assert_allclose(circular_error(back, angles), 0.0, atol=1e-4)
    signed = np.array([-179.0, -1.0, 0.0, 90.0, np.nan])
    assert circular_start(signed) == -180.0
    back = from_components(*to_components(signed), -180.0)
    np.testing.assert_allclose(back[:4], signed[:4], atol=1e-9)
    assert np.isnan(back[4])


def azimuth(lat: np.ndarray, lon: np.ndarray, start: float = 0.0) -> np.ndarray:
    """An azimuth that turns 360 degrees across the test capture (about 0.3 degrees), wrapping at 0/360."""
    return (10.0 + 900.0 * (lat + 33.5) + 500.0 * (lon + 69.5) - start) % 360.0 + start


@pytest.mark.parametrize("method", ["linear", "cubic"])
@pytest.mark.parametrize("start", [0.0, -180.0])
def test_azimuths_are_interpolated_on_the_circle(method: str, start: float) -> None:
    # On the old code (plain numbers) the cells between 359 and 1 came out near 180.
    s = make_soundings(n_side=16, spacing=0.02)
    angle = azimuth(s.latitude, s.longitude, start)
    assert angle.min() < start + 5 and angle.max() > start + 355  # the field wraps inside the capture
    zenith = Variable("", "solar_zenith_angle", 40.0 + 3.0 * s.latitude, {"units": "degrees"})
    s = replace(s, variables=(*s.variables, Variable("Sounding", "solar_azimuth_angle", angle, {"units": "degrees"}),
                              zenith))
    g = grid_capture(s, GRID, method)  # type: ignore[arg-type]
    for sl in (g.pre, g.post):
        assert sl is not None
        out = sl.full("Sounding/solar_azimuth_angle")
        finite = np.isfinite(out)
        assert finite.sum() > 300
        assert ((out[finite] >= start) & (out[finite] < start + 360)).all()
        lat, lon = centres(GRID)
        err = circular_error(out[finite], azimuth(lat, lon, start)[finite])
        # About 15 degrees of turn between neighbouring soundings (the chord costs up to ~1 degree, more
        # in the long slivers on the hull); plain numbers gave ~180 degrees between 359 and 1.
        assert np.percentile(err, 99) < 1.0 and err.max() < 5.0, (np.percentile(err, 99), err.max())
        # the zenith angle is not circular: a linear field comes back exactly
        np.testing.assert_allclose(sl.full("solar_zenith_angle")[finite], (40.0 + 3.0 * lat)[finite], rtol=1e-6)


def test_azimuths_under_nearest_are_sounding_values() -> None:
    s = make_soundings(n_side=16, spacing=0.02)
    angle = azimuth(s.latitude, s.longitude)
    s = replace(s, variables=(Variable("Sounding", "sensor_azimuth_angle", angle, {"units": "degrees"}),))
    out = grid_capture(s, GRID, "nearest").pre.full("Sounding/sensor_azimuth_angle")
    assert np.isin(out[np.isfinite(out)], angle.astype(np.float32)).all()


@pytest.fixture(scope="module")
def sample_sam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = sd.CaptureSpec("fossil0036", "sam", 3000, dt.datetime(2021, 6, 1, 3, 10))
    return sd.write_granule(tmp_path_factory.mktemp("sam") / sd.sample_filename("oco3", dt.date(2021, 6, 1)),
                            "oco3", dt.date(2021, 6, 1), [spec], n_background=0, seed=2)


def test_sample_data_azimuth_wraps_and_grids_on_the_circle(sample_sam: Path) -> None:
    key = "Sounding/solar_azimuth_angle"
    s = read_granule(sample_sam, Selection(variables=(key,)), "oco3")
    cap = split_captures(s, load_targets()).captures[0]
    sub = s.take(cap.index)
    values = sub.variable(key).values
    assert values.min() < 2 and values.max() > 358  # the SYNTHETIC azimuth wraps inside the capture
    grid = target_grid(cap.target.bbox, 400, 400)
    out = grid_capture(sub, grid, "cubic").pre.full(key)
    lat, lon = np.meshgrid(grid.latitude, grid.longitude, indexing="ij")
    finite = np.isfinite(out)
    assert finite.sum() > 5000
    err = circular_error(out[finite], sd.ANALYTIC[key](lat, lon)[finite])
    assert err.max() < 0.1 and np.percentile(err, 99) < 0.02, (err.max(), np.percentile(err, 99))
