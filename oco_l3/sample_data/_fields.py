"""SYNTHETIC sample data: the analytic fields every science variable follows, the quality flags and fills."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

import numpy as np

from oco_l3.missions import mission_spec
from oco_l3.soundings import (
    Mission,
)

SYNTHETIC = "SYNTHETIC oco-l3 sample data"
FILL = -999999.0
FRAME_SECONDS = 1.0 / 3.0
KM_PER_DEG = 111.32
#: Footprint size (across-track, along-track) in km, per platform (the file-name platform of a product).
FOOTPRINT_KM: dict[str, tuple[float, float]] = {"oco3": (1.6, 2.1), "oco2": (1.29, 2.25)}
UNIX_EPOCH = dt.datetime(1970, 1, 1)
SIF_EPOCH_OFFSET = 631152000.0  # seconds from 1970-01-01 to 1990-01-01
DEFAULT_DELTA_TIME_UNITS = "seconds since 1990-01-01 00:00:00 UTC"

Field = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _hash(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A deterministic pseudo-random number in [0, 1) from the coordinates."""
    return _frac(np.asarray(lat, np.float64) * 754.8776662 + np.asarray(lon, np.float64) * 569.840291)


def fill_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Where the variables in :data:`FILLED` hold ``-999999`` (about 3 % of soundings)."""
    return _frac(np.asarray(lat, np.float64) * 431.17 + np.asarray(lon, np.float64) * 977.31) < 0.03


def fp_quality_flag(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Lite FP ``xco2_quality_flag``: 1 (bad) for about 20 % of soundings, else 0."""
    return (_hash(lat, lon) < 0.2).astype(np.int8)


def sif_quality_flag(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Lite SIF ``Quality_Flag``: 2 (bad) 12 %, -1 (not investigated) 6 %, 1 (good) 27 %, 0 (best) 55 %."""
    h = _hash(lat, lon)
    return np.select([h < 0.12, h < 0.18, h < 0.45], [2, -1, 1], 0).astype(np.int8)


def _lin(c: float, a: float, b: float) -> Field:
    def f(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return c + a * np.asarray(lat, np.float64) + b * np.asarray(lon, np.float64)

    f.__doc__ = f"{c} + {a} * lat + {b} * lon"
    return f


def _wave(c: float, amplitude: float, wavelength_lat: float, wavelength_lon: float) -> Field:
    """A sine/cosine pattern (SYNTHETIC): ``c + amplitude sin(2 pi lat / wl_lat) cos(2 pi lon / wl_lon)``."""

    def f(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        la, lo = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
        return c + amplitude * np.sin(2 * np.pi * la / wavelength_lat) * np.cos(2 * np.pi * lo / wavelength_lon)

    f.__doc__ = f"{c} + {amplitude} * sin(2 pi lat / {wavelength_lat}) * cos(2 pi lon / {wavelength_lon})"
    return f


def _plume(c: float, amplitude: float, sigma_along: float, sigma_across: float, wind_deg: float,
           period: float = 1.0) -> Field:
    """Gaussian plumes (SYNTHETIC), one every ``period`` degrees along and across a wind direction ``wind_deg``
    (anticlockwise from east): ``c + amplitude exp(k_a (cos(2 pi a / P) - 1) + k_c (cos(2 pi x / P) - 1))`` with
    ``a``, ``x`` the along- and across-wind coordinates in degrees. Near each plume's centre this is the Gaussian
    with standard deviations ``sigma_along``/``sigma_across`` (``k = (P / (2 pi sigma))^2``); the periodic form keeps
    the field smooth everywhere, so every capture sees a plume whatever its target."""
    theta = math.radians(wind_deg)
    k_along = (period / (2 * math.pi * sigma_along)) ** 2
    k_across = (period / (2 * math.pi * sigma_across)) ** 2

    def f(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        la, lo = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
        along = lo * math.cos(theta) + la * math.sin(theta)
        across = -lo * math.sin(theta) + la * math.cos(theta)
        w = 2 * np.pi / period
        return c + amplitude * np.exp(k_along * (np.cos(w * along) - 1) + k_across * (np.cos(w * across) - 1))

    f.__doc__ = (f"{c} + {amplitude} * Gaussian plumes (sigma {sigma_along} x {sigma_across} degrees, wind "
                 f"{wind_deg} degrees, one every {period} degree)")
    return f


def _azimuth(c: float, a: float, b: float) -> Field:
    """An azimuth in ``[0, 360)`` that wraps (SYNTHETIC): ``(c + a lat + b lon) mod 360``."""

    def f(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return np.mod(c + a * np.asarray(lat, np.float64) + b * np.asarray(lon, np.float64), 360.0)

    f.__doc__ = f"({c} + {a} * lat + {b} * lon) mod 360"
    return f


def _checker(scale_lat: float, scale_lon: float, modulo: int, offset: int = 0) -> Field:
    def f(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        cells = np.floor(np.asarray(lat, np.float64) * scale_lat) + np.floor(np.asarray(lon, np.float64) * scale_lon)
        return (offset + np.mod(cells, modulo)).astype(np.int8)

    f.__doc__ = f"{offset} + (floor(lat * {scale_lat}) + floor(lon * {scale_lon})) mod {modulo}"
    return f


#: Lite FP science variables: key -> function of (lat, lon). Floats are linear except :data:`CURVED`; ints
#: piecewise constant.
ANALYTIC_FP: dict[str, Field] = {
    "xco2": _lin(410.0, 0.05, 0.02),
    "xco2_uncertainty": _lin(0.5, 0.002, 0.001),
    "xco2_apriori": _lin(405.0, 0.04, -0.01),
    "solar_zenith_angle": _lin(40.0, 0.3, 0.01),
    "sensor_zenith_angle": _lin(10.0, 0.05, -0.02),
    "xco2_quality_flag": fp_quality_flag,
    "Sounding/land_fraction": _lin(50.0, 0.2, 0.1),
    "Sounding/altitude": _lin(200.0, 5.0, 2.0),
    "Sounding/solar_azimuth_angle": _azimuth(180.0, 300.0, 200.0),
    "Sounding/sensor_azimuth_angle": _lin(90.0, 0.2, -0.1),
    "Sounding/land_water_indicator": _checker(0.0, 2.0, 2),
    "Retrieval/psurf": _lin(1000.0, -0.5, 0.1),
    "Retrieval/psurf_apriori": _lin(1001.0, -0.5, 0.1),
    "Retrieval/xco2_raw": _lin(411.0, 0.05, 0.02),
    "Retrieval/dp": _lin(1.0, 0.1, -0.05),
    "Retrieval/windspeed": _lin(5.0, 0.03, 0.01),
    "Retrieval/aod_total": _plume(0.05, 0.5, 0.12, 0.05, 30.0),
    "Retrieval/tcwv": _wave(20.0, 5.0, 0.45, 0.35),
    "Retrieval/surface_type": _checker(4.0, 4.0, 2, offset=1),
    "Meteorology/psurf_apriori_o2a": _lin(1002.0, -0.5, 0.1),
    "Meteorology/windspeed_u_met": _lin(2.0, 0.04, -0.03),
    "Meteorology/windspeed_v_met": _lin(-1.0, 0.02, 0.05),
    "Preprocessors/co2_ratio": _lin(1.0, 0.001, 0.0002),
    "Preprocessors/dp_abp": _lin(3.0, -0.02, 0.01),
}

#: Lite SIF science variables: key -> function of (lat, lon).
ANALYTIC_SIF: dict[str, Field] = {
    "SIF_740nm": _lin(1.0, 0.01, 0.005),
    "SIF_Uncertainty_740nm": _lin(0.3, 0.001, 0.0005),
    "Daily_SIF_740nm": _lin(0.8, 0.008, 0.004),
    "Daily_SIF_757nm": _lin(0.6, 0.006, 0.003),
    "Daily_SIF_771nm": _lin(0.4, 0.004, 0.002),
    "Quality_Flag": sif_quality_flag,
    "Science/SIF_757nm": _lin(0.7, 0.007, 0.0035),
    "Science/SIF_771nm": _lin(0.5, 0.005, 0.0025),
    "Science/SIF_Uncertainty_757nm": _lin(0.25, 0.001, 0.0002),
    "Science/daily_correction_factor": _lin(1.2, 0.001, 0.0),
    "Science/IGBP_index": _checker(1.0, 1.0, 17, offset=1),
    "Cloud/cloud_flag_abp": _checker(2.0, 3.0, 3),
    "Cloud/o2_ratio": _lin(0.9, 0.0005, 0.0002),
    "Cloud/surface_albedo_abp": _lin(0.2, 0.001, -0.0005),
    "Meteo/specific_humidity": _lin(0.01, 0.0001, 0.00002),
    "Meteo/surface_pressure": _lin(1000.0, -0.4, 0.1),
    "Meteo/temperature_skin": _lin(290.0, -0.3, 0.01),
    "Meteo/temperature_two_meter": _lin(288.0, -0.3, 0.01),
    "Meteo/vapor_pressure_deficit": _lin(1.0, 0.01, 0.005),
    "Offset/SIF_Relative_SDev_757nm": _lin(0.05, 0.0002, 0.0001),
}

#: Every analytic field of both products (keys are distinct between FP and SIF).
ANALYTIC: dict[str, Field] = {**ANALYTIC_FP, **ANALYTIC_SIF}
#: Float variables that are not linear in latitude and longitude (see the module docstring).
CURVED: frozenset[str] = frozenset({"Retrieval/tcwv", "Retrieval/aod_total", "Sounding/solar_azimuth_angle"})
#: Float variables that hold -999999 where :func:`fill_mask` is true.
FILLED: frozenset[str] = frozenset({
    "xco2_uncertainty", "Sounding/altitude", "Retrieval/windspeed", "Meteorology/windspeed_u_met",
    "SIF_Uncertainty_740nm", "Science/SIF_771nm", "Meteo/temperature_skin",
})

_UNITS: dict[str, str] = {
    "xco2": "ppm", "xco2_uncertainty": "ppm", "xco2_apriori": "ppm", "solar_zenith_angle": "degrees",
    "sensor_zenith_angle": "degrees", "Sounding/land_fraction": "percent", "Sounding/altitude": "m",
    "Sounding/solar_azimuth_angle": "degrees", "Sounding/sensor_azimuth_angle": "degrees",
    "Retrieval/psurf": "hPa", "Retrieval/psurf_apriori": "hPa", "Retrieval/xco2_raw": "ppm", "Retrieval/dp": "hPa",
    "Retrieval/windspeed": "m s-1", "Retrieval/tcwv": "kg m-2", "Meteorology/psurf_apriori_o2a": "hPa",
    "Meteorology/windspeed_u_met": "m s-1", "Meteorology/windspeed_v_met": "m s-1", "Preprocessors/dp_abp": "hPa",
    "SIF_740nm": "W/m^2/sr/um", "SIF_Uncertainty_740nm": "W/m^2/sr/um", "Daily_SIF_740nm": "W/m^2/sr/um",
    "Daily_SIF_757nm": "W/m^2/sr/um", "Daily_SIF_771nm": "W/m^2/sr/um", "Science/SIF_757nm": "W/m^2/sr/um",
    "Science/SIF_771nm": "W/m^2/sr/um", "Science/SIF_Uncertainty_757nm": "W/m^2/sr/um",
    "Meteo/surface_pressure": "hPa", "Meteo/temperature_skin": "K", "Meteo/temperature_two_meter": "K",
    "Meteo/vapor_pressure_deficit": "hPa", "Meteo/specific_humidity": "kg kg-1",
}


def _is_sif(mission: Mission) -> bool:
    return mission_spec(mission).naming.kind == "SIF"


def analytic_keys(mission: Mission) -> tuple[str, ...]:
    """The analytic science variables written for ``mission``."""
    return tuple(ANALYTIC_SIF if _is_sif(mission) else ANALYTIC_FP)
