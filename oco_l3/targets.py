"""Target sites: the fixed boxes that captures are gridded onto.

A target file is JSON ``{id: {id, name, centroid_wkt, bbox{min_lon, min_lat, max_lon, max_lat}}}`` (the reference
system's format; a list of such entries is accepted too). Entries that are malformed or whose id is unsafe as a
file name are skipped with a warning naming the entry; the rest load.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from oco_l3.errors import TargetFileInvalid

log = logging.getLogger(__name__)

#: Target ids become file names: letters, digits and ``_ - . +`` only, no leading dot, at most 128 characters.
_SAFE_ID = re.compile(r"^[A-Za-z0-9_+\-][A-Za-z0-9_+.\-]{0,127}$")

TARGET_TYPES: tuple[str, ...] = ("other", "fossil", "ecostress", "sif", "volcano", "tccon")


@dataclass(frozen=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    def __post_init__(self) -> None:
        values = (self.min_lon, self.min_lat, self.max_lon, self.max_lat)
        if not all(isinstance(v, int | float) and v == v and abs(v) != float("inf") for v in values):
            raise ValueError(f"bbox values must be finite numbers, got {values}")
        if not (-180 <= self.min_lon < self.max_lon <= 180):
            raise ValueError(f"bbox longitudes must satisfy -180 <= min_lon < max_lon <= 180, got {values}")
        if not (-90 <= self.min_lat < self.max_lat <= 90):
            raise ValueError(f"bbox latitudes must satisfy -90 <= min_lat < max_lat <= 90, got {values}")

    def wkt(self) -> str:
        a, b, c, d = self.min_lon, self.min_lat, self.max_lon, self.max_lat
        return f"POLYGON (({a} {b}, {c} {b}, {c} {d}, {a} {d}, {a} {b}))"


@dataclass(frozen=True)
class Target:
    id: str
    name: str
    centroid_lon: float
    centroid_lat: float
    bbox: BBox

    @property
    def type(self) -> str:
        """Target type from the id prefix: fossil, ecostress, sif, volcano, tccon or other."""
        low = self.id.lower()
        return next((t for t in TARGET_TYPES[1:] if low.startswith(t)), "other")


def is_safe_id(value: str) -> bool:
    """True when ``value`` can be used as one path component (no ``/``, ``..``, NUL, control or shell chars)."""
    return bool(_SAFE_ID.fullmatch(value)) and ".." not in value


_POINT = re.compile(r"^\s*POINT\s*\(\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)\s*\)\s*$", re.IGNORECASE)


def _parse_entry(key: str, entry: Mapping[str, Any]) -> Target:
    tid = str(entry.get("id", key))
    if not is_safe_id(tid):
        raise ValueError(f"target id {tid[:60]!r} is not a safe name (letters, digits, _ - . + only)")
    box = entry["bbox"]
    bbox = BBox(float(box["min_lon"]), float(box["min_lat"]), float(box["max_lon"]), float(box["max_lat"]))
    match = _POINT.match(str(entry.get("centroid_wkt", "")))
    if match:
        lon, lat = float(match.group(1)), float(match.group(2))
    else:
        lon, lat = (bbox.min_lon + bbox.max_lon) / 2, (bbox.min_lat + bbox.max_lat) / 2
    name = str(entry.get("name", tid)).replace("\x00", "")[:256]
    return Target(id=tid, name=name, centroid_lon=lon, centroid_lat=lat, bbox=bbox)


def parse_targets(raw: Any, source: str = "<targets>") -> dict[str, Target]:
    """Targets from decoded JSON; malformed entries are skipped with a warning naming them."""
    if isinstance(raw, list):
        items = [(str(e.get("id", i)) if isinstance(e, Mapping) else str(i), e) for i, e in enumerate(raw)]
    elif isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items()]
    else:
        raise TargetFileInvalid(f"{source}: expected a JSON object or list of targets, got {type(raw).__name__}")
    targets: dict[str, Target] = {}
    for key, entry in items:
        try:
            if not isinstance(entry, Mapping):
                raise ValueError("entry is not an object")
            target = _parse_entry(key, entry)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: skipping target %r: %s", source, key[:60], exc)
            continue
        targets[target.id] = target
    return targets


def load_targets(path: str | Path | None = None, *, default: str = "targets.json") -> dict[str, Target]:
    """Load a target file; ``None`` loads the file bundled with the package (``default``)."""
    try:
        if path is None:
            text = resources.files("oco_l3.data").joinpath(default).read_text(encoding="utf-8")
            source = f"bundled {default}"
        else:
            text = Path(path).read_text(encoding="utf-8")
            source = str(path)
        raw = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TargetFileInvalid(f"{path}: cannot read target file: {exc}") from None
    return parse_targets(raw, source)
