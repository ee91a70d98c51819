"""SYNTHETIC sample data: where the soundings are (capture swaths, background track) and when, as one table."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from oco_l3.missions import mission_spec
from oco_l3.sample_data._fields import (
    FILL,
    FOOTPRINT_KM,
    FRAME_SECONDS,
    KM_PER_DEG,
    UNIX_EPOCH,
)
from oco_l3.soundings import (
    MODE_GLINT,
    MODE_NADIR,
    MODE_SAM,
    MODE_TARGET,
    MODE_TRANSITION,
    Mission,
)
from oco_l3.targets import Target, load_targets


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
