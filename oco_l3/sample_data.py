"""SYNTHETIC sample data: OCO L2 Lite granules in the exact real layouts, with analytic fields.

Nothing here is a real measurement. Every file written by this module says so in its global attributes
(``title`` and ``comment`` contain "SYNTHETIC oco-l3 sample data"). The files follow formats.md sections 1 and 2:

Which layout, name, platform, build, target list and capture plan a granule gets comes from its product's
:class:`~oco_l3.missions.MissionSpec` (a new registered product needs nothing here unless its layout is new).

* Lite FP (``oco3_LtCO2_*``, ``oco2_LtCO2_*``): dimension ``sounding_id`` (also a coordinate variable),
  ``levels`` = 20, ``vertices`` = 4, ``bands`` = 3, ``epoch_dimension`` = 7 and (OCO-2 only) ``footprints`` = 8;
  float32 variables with ``missing_value = -999999``; int8 ``xco2_quality_flag``; ``time`` in seconds since
  1970-01-01; groups ``/Sounding`` (``operation_mode``, string ``target_id``/``target_name`` -- OCO-3 only by
  default, OCO-2 files lack them), ``/Retrieval``, ``/Meteorology``, ``/Preprocessors``.
* Lite SIF (``oco3_LtSIF_*``, ``oco2_LtSIF_*``): dimensions ``sounding_dim``, ``vertex_dim``, ``sequences_dim``; float32 variables
  with ``_FillValue = missing_value = -999999``; ``Delta_Time`` in seconds since 1990-01-01; SIF mode codes
  (3 = SAM, 4 = transition) in ``/Metadata/MeasurementMode``; targets in ``/Sequences``.

Values: every float science variable is an analytic function of latitude and longitude, given in :data:`ANALYTIC`
(evaluated in float64 on the float32 coordinates stored in the file, then stored as float32), so a test can
check a read or gridded value against the formula. Most are LINEAR (``linear`` and ``cubic`` gridding must give
them back exactly); the ones in :data:`CURVED` are not, to measure interpolation errors: ``Retrieval/tcwv`` is a
sine/cosine pattern (:func:`_wave`), ``Retrieval/aod_total`` a field of Gaussian plumes (:func:`_plume`), and
``Sounding/solar_azimuth_angle`` an azimuth that wraps around 360 degrees several times across any capture
(:func:`_azimuth`). Integer variables in :data:`ANALYTIC` are piecewise-constant functions of the coordinates; the
quality flags come from a deterministic hash of the coordinates (about 20 % flagged). Variables in :data:`FILLED`
hold ``-999999`` where :func:`fill_mask` is true (about 3 % of soundings).

Storage: as the netCDF-4 writers of the Lite files store them (:data:`LITE_STORAGE`): every numeric variable
chunked and compressed with zlib (deflate) after the shuffle filter, netCDF4-python's default level 4 and netCDF-C's
default chunk shapes for the variable's real shape (formats.md gives no chunking or deflate level for the Lite
files, so the library defaults stand in); strings are variable-length (HDF5 cannot filter them). The byte counts of
in-place reads (``bench/inplace.py``) are measured on these files.

Geometry: a capture is a swath of 8 footprints across-track times frames along-track; footprints are
1.6 x 2.1 km (OCO-2: 1.29 x 2.25 km) quadrilaterals that tile the swath exactly; SAMs are laid out as adjacent
strips (boustrophedon), rotated by about 12 degrees, centred on the target centroid. Frames are 1/3 s apart.
Background soundings (nadir/glint, target "none") follow a track over the Atlantic (-55..55 N, -35..-5 E).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import netCDF4
import numpy as np

from oco_l3.errors import GranuleSchemaMismatch, GranuleUnreadable, OcoL3Error
from oco_l3.missions import DEFAULT_MISSIONS, MISSION_KEYS, MISSIONS, MissionSpec, mission_spec
from oco_l3.readers.naming import granule_filename
from oco_l3.soundings import (
    MODE_GLINT,
    MODE_NADIR,
    MODE_SAM,
    MODE_TARGET,
    MODE_TRANSITION,
    Mission,
)
from oco_l3.targets import Target, load_targets

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


# --------------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaptureSpec:
    """One synthetic capture (SAM or target mode).

    ``center`` is ``(lat, lon)``; by default the target's centroid from the mission's bundled target file (give
    it for ids that are not in the file, such as ``"Missing"``). ``interruption`` (0..2) soundings in the middle
    of the run get the transition mode and target ``"none"`` (a run interrupted by one or two soundings);
    ``unidentified`` soundings a third of the way into the run keep its mode but have target ``"none"`` (SIF:
    a negative sequence index).
    """

    target_id: str
    mode: Literal["sam", "target"]
    n_soundings: int
    start: dt.datetime
    center: tuple[float, float] | None = None
    target_name: str | None = None
    angle_deg: float = 12.0
    interruption: int = 0
    unidentified: int = 0


@dataclass
class _Table:
    """The per-sounding columns of a synthetic granule (float64 coordinates rounded to float32)."""

    lat: np.ndarray
    lon: np.ndarray
    vlat: np.ndarray
    vlon: np.ndarray
    unix: np.ndarray
    mode: np.ndarray
    target_id: np.ndarray
    target_name: np.ndarray
    sequence: np.ndarray
    footprint: np.ndarray
    sequences: list[tuple[str, str]] = field(default_factory=list)


def _swath(n: int, center: tuple[float, float], size_km: tuple[float, float], angle_deg: float,
           max_strips: int | None) -> tuple[np.ndarray, ...]:
    """Centres and corners of ``n`` footprints in adjacent 8-footprint strips; plus frame and footprint index."""
    w, h = size_km
    frames = math.ceil(n / 8)
    length = max(1, round(math.sqrt(frames * 8 * w / h)))
    strips = math.ceil(frames / length)
    if max_strips is not None and strips > max_strips:
        strips = max_strips
        length = math.ceil(frames / strips)
    idx = np.arange(n)
    frame, foot = idx // 8, idx % 8
    strip, k = frame // length, frame % length
    k = np.where(strip % 2 == 1, length - 1 - k, k)
    x = (strip - (strips - 1) / 2) * 8 * w + (foot - 3.5) * w
    y = (k + 0.5) * h - length * h / 2
    corner_x = x[:, None] + np.array([-0.5, 0.5, 0.5, -0.5]) * w
    corner_y = y[:, None] + np.array([-0.5, -0.5, 0.5, 0.5]) * h
    lat0, lon0 = center
    theta = math.radians(angle_deg)
    coslat = math.cos(math.radians(lat0))

    def to_deg(px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rx = px * math.cos(theta) - py * math.sin(theta)
        ry = px * math.sin(theta) + py * math.cos(theta)
        return lat0 + ry / KM_PER_DEG, lon0 + rx / (KM_PER_DEG * coslat)

    lat, lon = to_deg(x, y)
    vlat, vlon = to_deg(corner_x, corner_y)
    return lat, lon, vlat, vlon, frame, foot + 1


def _background(n: int, size_km: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """A nadir/glint track over the Atlantic: blocks of 250 frames alternate nadir and glint."""
    frames = max(1, math.ceil(n / 8))
    idx = np.arange(n)
    frame, foot = idx // 8, idx % 8
    t = frame / max(frames - 1, 1)
    clat = -55.0 + 110.0 * t
    clon = -35.0 + 30.0 * t
    w, h = size_km
    coslat = np.cos(np.radians(clat))
    lon = clon + (foot - 3.5) * w / (KM_PER_DEG * coslat)
    dx = np.array([-0.5, 0.5, 0.5, -0.5]) * w
    dy = np.array([-0.5, -0.5, 0.5, 0.5]) * h
    vlat = clat[:, None] + dy / KM_PER_DEG
    vlon = lon[:, None] + dx / (KM_PER_DEG * coslat[:, None])
    mode = np.where((frame // 250) % 2 == 0, MODE_NADIR, MODE_GLINT)
    return clat, lon, vlat, vlon, frame, foot + 1, mode


def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float64).astype(np.float32).astype(np.float64)


def _seconds(when: dt.datetime) -> float:
    when = when.replace(tzinfo=None) if when.tzinfo is None else when.astimezone(dt.UTC).replace(tzinfo=None)
    return (when - UNIX_EPOCH).total_seconds()


def _targets_for(mission: Mission) -> Mapping[str, Target]:
    return load_targets(default=mission_spec(mission).target_list.bundled)


def _build_table(mission: Mission, day: dt.date, captures: Sequence[CaptureSpec], n_background: int,
                 seed: int, bad_coordinates: int) -> _Table:
    rng = np.random.default_rng(seed)
    targets = _targets_for(mission)
    size = FOOTPRINT_KM[mission_spec(mission).naming.platform]
    parts: list[dict[str, np.ndarray]] = []
    sequences: list[tuple[str, str]] = []
    day_start = _seconds(dt.datetime.combine(day, dt.time()))
    if n_background > 0:
        lat, lon, vlat, vlon, frame, foot, mode = _background(n_background, size)
        parts.append(dict(lat=lat, lon=lon, vlat=vlat, vlon=vlon, unix=day_start + 30 + frame * FRAME_SECONDS,
                          mode=mode, tid=np.full(n_background, "none"), tname=np.full(n_background, "none"),
                          seq=np.full(n_background, -1), foot=foot))
    for spec in captures:
        parts.append(_capture_part(spec, mission, targets, size, rng, sequences))
    _check_overlap(parts)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else None
    if cols is None:
        raise ValueError("a synthetic granule needs at least one sounding")
    order = np.argsort(cols["unix"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    table = _Table(_f32(cols["lat"]), _f32(cols["lon"]), _f32(cols["vlat"]), _f32(cols["vlon"]), cols["unix"],
                   cols["mode"].astype(np.int8), cols["tid"].astype(str), cols["tname"].astype(str),
                   cols["seq"].astype(np.int32), cols["foot"].astype(np.int8), sequences)
    _spoil_coordinates(table, bad_coordinates)
    return table


def _capture_part(spec: CaptureSpec, mission: Mission, targets: Mapping[str, Target], size: tuple[float, float],
                  rng: np.random.Generator, sequences: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    target = targets.get(spec.target_id)
    if spec.center is not None:
        center = spec.center
    elif target is not None:
        center = (target.centroid_lat, target.centroid_lon)
    else:
        raise ValueError(f"capture {spec.target_id!r}: not in the {mission} target file, give center=(lat, lon)")
    name = spec.target_name or (target.name if target is not None else spec.target_id)
    jitter = rng.uniform(-0.05, 0.05, 2)
    center = (center[0] + float(jitter[0]), center[1] + float(jitter[1]))
    angle = spec.angle_deg + float(rng.uniform(-2, 2))
    max_strips = 4 if spec.mode == "target" else None
    n = spec.n_soundings
    lat, lon, vlat, vlon, frame, foot = _swath(n, center, size, angle, max_strips)
    code = MODE_SAM if spec.mode == "sam" else MODE_TARGET
    mode = np.full(n, code)
    tid, tname = np.full(n, spec.target_id, dtype=object), np.full(n, name, dtype=object)
    seq = np.full(n, len(sequences))
    sequences.append((spec.target_id, name))
    if spec.interruption:
        cut = slice(n // 2, n // 2 + min(spec.interruption, 2))
        mode[cut], tid[cut], tname[cut], seq[cut] = MODE_TRANSITION, "none", "none", -1
    if spec.unidentified:
        cut = slice(n // 3, n // 3 + spec.unidentified)
        tid[cut], tname[cut], seq[cut] = "none", "none", -1
    unix = _seconds(spec.start) + frame * FRAME_SECONDS
    return dict(lat=lat, lon=lon, vlat=vlat, vlon=vlon, unix=unix, mode=mode, tid=tid, tname=tname, seq=seq,
                foot=foot)


def _check_overlap(parts: list[dict[str, np.ndarray]]) -> None:
    spans = sorted((float(p["unix"].min()), float(p["unix"].max())) for p in parts if p["unix"].size)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        if start <= end:
            raise ValueError("synthetic captures/background overlap in time; move the capture start times apart")


def _spoil_coordinates(table: _Table, count: int) -> None:
    """Give ``count`` background soundings a fill latitude or an out-of-range longitude (readers drop them)."""
    background = np.flatnonzero(table.target_id == "none")[:: 97][:count]
    for i, j in enumerate(background):
        if i % 2 == 0:
            table.lat[j] = FILL
        else:
            table.lon[j] = 400.0


# --------------------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------------------
@dataclass
class _Var:
    dims: tuple[str, ...]
    data: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Layout:
    dims: dict[str, int | None]
    groups: dict[str, dict[str, _Var]]
    attrs: dict[str, Any]


def _science(table: _Table, key: str, dims: tuple[str, ...], fill_attr: str) -> _Var:
    values = ANALYTIC[key](table.lat, table.lon)
    attrs: dict[str, Any] = {"long_name": f"{key.rsplit('/', 1)[-1]} ({SYNTHETIC}: {ANALYTIC[key].__doc__})"}
    if key in _UNITS:
        attrs["units"] = _UNITS[key]
    if np.issubdtype(values.dtype, np.integer):
        return _Var(dims, values.astype(np.int8), attrs)
    data = values.astype(np.float32)
    if key in FILLED:
        data[fill_mask(table.lat, table.lon)] = FILL
    bad = ~(np.isfinite(table.lat) & (np.abs(table.lat) <= 90) & (np.abs(table.lon) <= 180))
    data[bad] = FILL
    attrs["missing_value"] = np.float32(FILL)
    if fill_attr == "_FillValue":
        attrs["_FillValue"] = np.float32(FILL)
    return _Var(dims, data, attrs)


def _f32var(dims: tuple[str, ...], data: np.ndarray, fill_attr: str, **attrs: Any) -> _Var:
    extra: dict[str, Any] = {"missing_value": np.float32(FILL)}
    if fill_attr == "_FillValue":
        extra["_FillValue"] = np.float32(FILL)
    return _Var(dims, np.asarray(data, np.float32), {**attrs, **extra})


def _global_attrs(spec: MissionSpec, day: dt.date, table: _Table) -> dict[str, Any]:
    start = dt.datetime.fromtimestamp(float(table.unix.min()), dt.UTC)
    end = dt.datetime.fromtimestamp(float(table.unix.max()), dt.UTC)
    sif = spec.naming.kind == "SIF"
    common = {
        "title": f"{SYNTHETIC} (layout of the {'SIF Lite' if sif else 'ACOS L2 Lite Output'})",
        "comment": f"{SYNTHETIC}: not a measurement; written by oco_l3.sample_data for tests and demos",
        "Sensor": spec.sensor,
        "Platform": spec.platform,
        "date_time_coverage": f"{start:%Y-%m-%dT%H:%M:%S}Z/{end:%Y-%m-%dT%H:%M:%S}Z",
    }
    if sif:
        across, along = FOOTPRINT_KM[spec.naming.platform]
        return {**common, "conventions": "CF-1.6", "product_version": spec.naming.build, "cdm_data": "point",
                "platform": spec.platform, "spatial_resolution": f"{along}km x {across}km at nadir",
                "InputCollectionLabel": "SYNTHETIC", "InputBuildId": "SYNTHETIC"}
    return {**common, "BuildId": "B11.0.SYNTHETIC", "CollectionLabel": f"SYNTHETIC_{spec.naming.build}",
            "filtering_state": "synthetic", "data_day": f"{day:%Y-%m-%d}"}


def _sounding_ids(unix: np.ndarray, foot: np.ndarray) -> np.ndarray:
    secs = np.floor(unix).astype("int64")
    stamp = secs.astype("datetime64[s]").astype(str)
    digits = np.strings.replace(np.strings.replace(np.strings.replace(stamp, "-", ""), "T", ""), ":", "")
    tenth = np.floor((unix - secs) * 10).astype(np.int64)
    return digits.astype(np.int64) * 100 + tenth * 10 + foot.astype(np.int64)


def _date_array(unix: np.ndarray) -> np.ndarray:
    t = np.round(unix * 1000).astype("int64").astype("datetime64[ms]")
    y = t.astype("datetime64[Y]")
    mo = t.astype("datetime64[M]")
    d = t.astype("datetime64[D]")
    ms = (t - d).astype(np.int64)
    return np.stack([y.astype(int) + 1970, (mo - y).astype(int) + 1, (d - mo).astype(int) + 1, ms // 3_600_000,
                     ms // 60_000 % 60, ms // 1000 % 60, ms % 1000], axis=1).astype(np.int16)


def _fp_layout(mission: Mission, day: dt.date, table: _Table, target_vars: bool) -> _Layout:
    n = table.lat.size
    s = ("sounding_id",)
    spec = mission_spec(mission)
    oco2 = spec.naming.platform == "oco2"
    dims: dict[str, int | None] = {"sounding_id": n, "levels": 20, "bands": 3, "vertices": 4, "epoch_dimension": 7}
    if oco2:
        dims["footprints"] = 8
    fa = "missing_value"
    root: dict[str, _Var] = {
        "sounding_id": _Var(s, _sounding_ids(table.unix, table.footprint)),
        "levels": _Var(("levels",), np.arange(20, dtype=np.int16)),
        "bands": _Var(("bands",), np.arange(1, 4, dtype=np.int16)),
        "vertices": _Var(("vertices",), np.arange(1, 5, dtype=np.int16)),
        "date": _Var(("sounding_id", "epoch_dimension"), _date_array(table.unix)),
        "latitude": _f32var(s, table.lat, fa, units="degrees_north", long_name="latitude"),
        "longitude": _f32var(s, table.lon, fa, units="degrees_east", long_name="longitude"),
        "vertex_latitude": _f32var(("sounding_id", "vertices"), table.vlat, fa, units="degrees_north"),
        "vertex_longitude": _f32var(("sounding_id", "vertices"), table.vlon, fa, units="degrees_east"),
        "time": _Var(s, table.unix.astype(np.float64),
                     {"units": "seconds since 1970-01-01 00:00:00", "long_name": "time"}),
        "file_index": _Var(s, np.ones(n, np.int8), {"missing_value": np.int8(-1)}),
        "xco2_qf_simple_bitflag": _Var(s, fp_quality_flag(table.lat, table.lon)),
        "pressure_levels": _f32var(("sounding_id", "levels"),
                                   np.broadcast_to(np.linspace(0.1, 1000, 20, dtype=np.float32), (n, 20)), fa,
                                   units="hPa"),
    }
    if oco2:
        root["footprints"] = _Var(("footprints",), np.arange(1, 9, dtype=np.int16))
    groups: dict[str, dict[str, _Var]] = {"": root, "Sounding": {}, "Retrieval": {}, "Meteorology": {},
                                          "Preprocessors": {}}
    for key in ANALYTIC_FP:
        group, _, name = key.rpartition("/")
        groups[group][name] = _science(table, key, s, fa)
    snd = groups["Sounding"]
    snd["operation_mode"] = _Var(s, spec.modes.product_code(table.mode).astype(np.int8),
                                 {"long_name": spec.modes.meanings})
    snd["footprint"] = _Var(s, table.footprint)
    snd["orbit"] = _Var(s, np.full(n, 12345, np.int32))
    if target_vars:
        snd["target_id"] = _Var(s, table.target_id.astype(object))
        snd["target_name"] = _Var(s, table.target_name.astype(object))
    return _Layout(dims, groups, _global_attrs(spec, day, table))


def _sif_layout(mission: Mission, day: dt.date, table: _Table, delta_time_units: str) -> _Layout:
    n = table.lat.size
    s = ("sounding_dim",)
    spec = mission_spec(mission)
    seqs = table.sequences or [("none", "none")]
    dims: dict[str, int | None] = {"sounding_dim": n, "vertex_dim": 4, "sequences_dim": len(seqs)}
    fa = "_FillValue"
    sif_modes = spec.modes.product_code(table.mode).astype(np.int8)
    root: dict[str, _Var] = {
        "Latitude": _f32var(s, table.lat, fa, units="degrees_north"),
        "Longitude": _f32var(s, table.lon, fa, units="degrees_east"),
        "Latitude_Corners": _f32var(("sounding_dim", "vertex_dim"), table.vlat, fa, units="degrees_north"),
        "Longitude_Corners": _f32var(("sounding_dim", "vertex_dim"), table.vlon, fa, units="degrees_east"),
        "Delta_Time": _Var(s, table.unix - SIF_EPOCH_OFFSET, {"units": delta_time_units, "long_name": "time"}),
    }
    groups: dict[str, dict[str, _Var]] = {"": root, "Metadata": {}, "Science": {}, "Cloud": {}, "Meteo": {},
                                          "Offset": {}, "Sequences": {}}
    for key in ANALYTIC_SIF:
        group, _, name = key.rpartition("/")
        groups[group][name] = _science(table, key, s, fa)
    groups["Metadata"] = {
        "MeasurementMode": _Var(s, sif_modes, {"comment": spec.modes.meanings}),
        "OrbitId": _Var(s, np.full(n, 12345, np.int32)),
        "SoundingId": _Var(s, _sounding_ids(table.unix, table.footprint)),
        "FootprintId": _Var(s, table.footprint),
    }
    groups["Sequences"] = {
        "SequencesIndex": _Var(s, table.sequence.astype(np.int32)),
        "SequencesId": _Var(("sequences_dim",), np.array([i for i, _ in seqs], dtype=object)),
        "SequencesName": _Var(("sequences_dim",), np.array([m for _, m in seqs], dtype=object)),
    }
    return _Layout(dims, groups, _global_attrs(spec, day, table))


@dataclass(frozen=True)
class Storage:
    """How a granule's numeric variables are stored in HDF5: filters and chunk shapes.

    ``compression`` ``None`` stores them contiguous and unfiltered. ``chunks`` maps a variable key (``name`` or
    ``Group/name``) to a chunk shape; any other variable gets netCDF-C's default chunk shape for its shape.
    """

    compression: Literal["zlib"] | None = "zlib"
    complevel: int = 4
    shuffle: bool = True
    chunks: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def options(self, key: str) -> dict[str, Any]:
        """The ``netCDF4.Dataset.createVariable`` keywords of variable ``key``."""
        if self.compression is None:
            return {"contiguous": True}
        opts: dict[str, Any] = {"compression": self.compression, "complevel": self.complevel,
                                "shuffle": self.shuffle}
        if key in self.chunks:
            opts["chunksizes"] = self.chunks[key]
        return opts


#: The Lite files' storage as far as it is known (module docstring): zlib level 4 + shuffle, default chunks.
LITE_STORAGE = Storage()
#: Contiguous, unfiltered storage (the layout a subsetter or an h5repack -l CONTI would leave).
CONTIGUOUS = Storage(compression=None)


def _write_layout(path: Path, layout: _Layout, storage: Storage) -> None:
    tmp = path.with_name(path.name + ".part")
    try:
        with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
            for name, size in layout.dims.items():
                nc.createDimension(name, size)
            nc.setncatts(layout.attrs)
            for group, variables in layout.groups.items():
                node = nc if group == "" else nc.createGroup(group)
                for name, var in variables.items():
                    _write_var(node, name, var, storage.options(f"{group}/{name}" if group else name))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _write_var(node: Any, name: str, var: _Var, options: Mapping[str, Any]) -> None:
    attrs = dict(var.attrs)
    fill = attrs.pop("_FillValue", False)
    if var.data.dtype == object:
        v = node.createVariable(name, str, var.dims)
        v[:] = var.data
    else:
        v = node.createVariable(name, var.data.dtype, var.dims, fill_value=fill, **options)
        v.set_auto_maskandscale(False)
        v[:] = var.data
    if attrs:
        v.setncatts(attrs)


# --------------------------------------------------------------------------------------------------------
# Public writers
# --------------------------------------------------------------------------------------------------------
def write_granule(
    path: str | os.PathLike[str],
    mission: Mission,
    day: dt.date,
    captures: Sequence[CaptureSpec],
    n_background: int = 1000,
    seed: int = 0,
    *,
    bad_coordinates: int = 0,
    oco2_target_vars: bool = False,
    delta_time_units: str = DEFAULT_DELTA_TIME_UNITS,
    compress: bool = True,
    storage: Storage | None = None,
) -> Path:
    """Write one SYNTHETIC granule of ``mission`` for ``day`` in the real Lite layout; returns its path.

    ``captures`` are laid out as described in the module docstring, ``n_background`` nadir/glint soundings
    with target "none" start at 00:00:30 (they must not overlap a capture in time). ``bad_coordinates``
    background soundings get a fill latitude or a longitude of 400 (readers drop them). Lite FP files of products
    whose captures go to the nearest target (OCO-2) carry no ``/Sounding/target_id``/``target_name`` unless
    ``oco2_target_vars``. ``delta_time_units`` sets the SIF
    ``Delta_Time`` units attribute (the value is always seconds since 1990-01-01). ``storage`` sets the chunking
    and filters (default :data:`LITE_STORAGE`; ``compress=False`` is :data:`CONTIGUOUS`).
    """
    path = Path(path)
    table = _build_table(mission, day, captures, n_background, seed, bad_coordinates)
    if _is_sif(mission):
        layout = _sif_layout(mission, day, table, delta_time_units)
    else:
        by_id = mission_spec(mission).targets == "id"
        layout = _fp_layout(mission, day, table, target_vars=by_id or oco2_target_vars)
    _write_layout(path, layout, storage or (LITE_STORAGE if compress else CONTIGUOUS))
    return path


def _at(day: dt.date, hour: int, minute: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute))


@dataclass(frozen=True)
class DayPlan:
    """The captures and background size of one synthetic day per mission."""

    captures: dict[Mission, tuple[CaptureSpec, ...]]
    n_background: dict[Mission, int]
    bad_coordinates: int = 0


def day_plan(day: dt.date, profile: str = "default") -> DayPlan:
    """The layout of :func:`write_sample_day` for ``profile``.

    * ``default``: OCO-3 FP and SIF: SAM fossil0005 (3,000 soundings, 03:10, 2-sounding interruption), SAM
      fossil0036 (3,200, 09:20, 1-sounding interruption), target-mode tccon105 (800, 14:00), SAM "Missing" (400,
      17:00), SAM "fossil9999" (not in the target file, 400, 19:00); 6,000 background soundings, 2 of them with
      bad coordinates. OCO-2 FP and SIF: target-mode capture over lamontOK (1,000, 18:30) + 6,000 background.
    * ``busy``: OCO-3/SIF: 60,000 background + SAMs fossil0002 (5,600), fossil0007 (10,000), fossil0018 (15,000).
    * ``two-captures``: OCO-3/SIF: 60,000 background + SAM fossil0005 (5,600) + SAM fossil0020 (1,200) = 66,800.
    OCO-2 is the default one in every profile. "OCO-3" here means every product whose captures include SAMs,
    "OCO-2" every target-mode-only product (:attr:`~oco_l3.missions.MissionSpec.capture_modes`).
    """
    oco2 = (CaptureSpec("lamontOK", "target", 1000, _at(day, 18, 30)),)
    if profile == "default":
        oco3: tuple[CaptureSpec, ...] = (
            CaptureSpec("fossil0005", "sam", 3000, _at(day, 3, 10), interruption=2),
            CaptureSpec("fossil0036", "sam", 3200, _at(day, 9, 20), interruption=1, unidentified=3),
            CaptureSpec("tccon105", "target", 800, _at(day, 14, 0), angle_deg=-20.0),
            CaptureSpec("Missing", "sam", 400, _at(day, 17, 0), center=(10.0, 20.0), target_name="Missing"),
            CaptureSpec("fossil9999", "sam", 400, _at(day, 19, 0), center=(-20.0, 30.0),
                        target_name="fossil_Nowhere_Synthetic"),
        )
        background, bad = 6000, 2
    elif profile == "busy":
        oco3 = (
            CaptureSpec("fossil0002", "sam", 5600, _at(day, 2, 0)),
            CaptureSpec("fossil0007", "sam", 10000, _at(day, 6, 0)),
            CaptureSpec("fossil0018", "sam", 15000, _at(day, 10, 0)),
        )
        background, bad = 60000, 0
    elif profile == "two-captures":
        oco3 = (
            CaptureSpec("fossil0005", "sam", 5600, _at(day, 3, 10)),
            CaptureSpec("fossil0020", "sam", 1200, _at(day, 8, 0)),
        )
        background, bad = 60000, 0
    else:
        raise ValueError(f"unknown sample profile {profile!r} (default, busy, two-captures)")
    sam = {key for key, spec in MISSIONS.items() if MODE_SAM in spec.capture_modes}
    return DayPlan(captures={key: oco3 if key in sam else oco2 for key in MISSIONS},
                   n_background={key: background if key in sam else 6000 for key in MISSIONS},
                   bad_coordinates=bad)


def sample_filename(mission: Mission, day: dt.date) -> str:
    """The (synthetic, deterministic) granule name of ``mission`` on ``day`` (the collection's build id; the
    production time 300 days later at 12:34, plus a few seconds per mission so that no two are alike)."""
    spec = mission_spec(mission)
    production = dt.datetime.combine(day, dt.time(12, 34, 7 * MISSION_KEYS.index(mission))) + dt.timedelta(days=300)
    return granule_filename(mission, day, spec.naming.build, production)


def write_sample_day(
    directory: str | os.PathLike[str],
    day: dt.date,
    missions: Sequence[Mission] = DEFAULT_MISSIONS,
    seed: int = 0,
    profile: str = "default",
) -> dict[Mission, Path]:
    """Write one SYNTHETIC day (one properly named granule per mission) into ``directory``; see :func:`day_plan`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    plan = day_plan(day, profile)
    paths: dict[Mission, Path] = {}
    for mission in missions:
        paths[mission] = write_granule(
            out / sample_filename(mission, day), mission, day, plan.captures[mission],
            plan.n_background[mission], seed=seed,
            bad_coordinates=plan.bad_coordinates if mission_spec(mission).targets == "id" else 0,
        )
    return paths


def write_sample_tree(
    root: str | os.PathLike[str],
    start: dt.date,
    end: dt.date,
    missions: Sequence[Mission] = DEFAULT_MISSIONS,
    seed: int = 0,
    profile: str = "default",
) -> dict[dt.date, dict[Mission, Path]]:
    """SYNTHETIC days ``start..end`` (inclusive) laid out as ``root/<mission>/<YYYY>/<granule>``."""
    days: dict[dt.date, dict[Mission, Path]] = {}
    day = start
    while day <= end:
        days[day] = {}
        for mission in missions:
            folder = Path(root) / mission / f"{day:%Y}"
            days[day].update(write_sample_day(folder, day, (mission,), seed + day.toordinal(), profile))
        day += dt.timedelta(days=1)
    return days


# --------------------------------------------------------------------------------------------------------
# Bad files for reliability tests
# --------------------------------------------------------------------------------------------------------
#: Corrupt variant -> the error :func:`oco_l3.readers.read_granule` raises (None: it reads, see the docs).
CORRUPT_EXPECTED: dict[str, type[OcoL3Error] | None] = {
    "zero_byte": GranuleUnreadable,
    "truncated": GranuleUnreadable,
    "not_hdf5": GranuleUnreadable,
    "netcdf3": GranuleUnreadable,
    "hdf5_not_netcdf": GranuleUnreadable,
    "missing_group": GranuleSchemaMismatch,
    "renamed_variable": GranuleSchemaMismatch,
    "wrong_dtype": GranuleSchemaMismatch,
    "wrong_shape": GranuleSchemaMismatch,
    "all_fill": None,  # reads; xco2 is all NaN
}


def write_corrupt_variants(directory: str | os.PathLike[str], day: dt.date = dt.date(2021, 12, 18)) -> dict[str, Path]:
    """Write SYNTHETIC broken OCO-3 Lite FP granules, one per :data:`CORRUPT_EXPECTED` key.

    Each lands in ``directory/<variant>/`` under a valid granule name, so name parsing succeeds and the reader
    has to find the problem in the content.
    """
    base = Path(directory)
    captures = (CaptureSpec("fossil0005", "sam", 160, _at(day, 3, 10)),)
    table = _build_table("oco3", day, captures, 80, 0, 0)
    out: dict[str, Path] = {}
    for variant in CORRUPT_EXPECTED:
        folder = base / variant
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / sample_filename("oco3", day)
        _write_variant(path, variant, table, day)
        out[variant] = path
    return out


def _write_variant(path: Path, variant: str, table: _Table, day: dt.date) -> None:
    if variant == "zero_byte":
        path.write_bytes(b"")
        return
    if variant == "not_hdf5":
        path.write_text("<html><body>503 Service Unavailable (SYNTHETIC)</body></html>\n")
        return
    if variant == "netcdf3":
        with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as nc:
            nc.createDimension("sounding_id", table.lat.size)
            nc.createVariable("latitude", "f4", ("sounding_id",))[:] = table.lat
            nc.title = SYNTHETIC
        return
    if variant == "hdf5_not_netcdf":
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=np.arange(10))
            f.attrs["title"] = SYNTHETIC
        return
    layout = _fp_layout("oco3", day, table, target_vars=True)
    n = table.lat.size
    if variant == "missing_group":
        del layout.groups["Sounding"]
    elif variant == "renamed_variable":
        layout.groups[""]["lat"] = layout.groups[""].pop("latitude")
    elif variant == "wrong_dtype":
        layout.groups["Sounding"]["operation_mode"].data = table.mode.astype(np.float32)
    elif variant == "wrong_shape":
        layout.dims["three"] = 3
        layout.groups[""]["vertex_latitude"] = _Var(("sounding_id", "three"), table.vlat[:, :3].astype(np.float32))
    elif variant == "all_fill":
        layout.groups[""]["xco2"].data = np.full(n, FILL, np.float32)
    _write_layout(path, layout, LITE_STORAGE)
    if variant == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
