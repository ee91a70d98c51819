"""Coastlines, borders and land for the quick-looks, from the bundled Natural Earth 1:50m file (no download).

``oco_l3/data/naturalearth/countries-50m.json`` is Natural Earth's Admin 0 countries as TopoJSON (see
``oco_l3/data/README.md``): shared arcs. An arc used by one country is coastline, an arc shared by two is a land
border. The artificial edges of the source polygons (the cut along the antimeridian, Antarctica's closing edge at
the pole) are dropped. Decoded once per process (about 0.05 s), only when a quick-look is drawn.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from itertools import chain
from typing import Any

import numpy as np

_FILE = ("naturalearth", "countries-50m.json")


@dataclass(frozen=True)
class Basemap:
    """Polylines ``(n, 2)`` lon/lat (degrees): ``coast``, ``borders``; ``land`` rings (closed polygons)."""

    coast: tuple[np.ndarray, ...]
    borders: tuple[np.ndarray, ...]
    land: tuple[np.ndarray, ...]

    def lines_in(self, kind: str, bbox: tuple[float, float, float, float], pad: float = 0.0) -> list[np.ndarray]:
        """The ``coast`` or ``borders`` lines with a point inside ``bbox`` (min_lon, min_lat, max_lon, max_lat)."""
        x0, y0, x1, y1 = bbox[0] - pad, bbox[1] - pad, bbox[2] + pad, bbox[3] + pad
        lines = self.coast if kind == "coast" else self.borders
        return [ln for ln in lines if _touches(ln, x0, y0, x1, y1)]


def _touches(line: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> bool:
    lo, hi = line.min(axis=0), line.max(axis=0)
    return bool(lo[0] <= x1 and hi[0] >= x0 and lo[1] <= y1 and hi[1] >= y0)


def _decode_arcs(topo: dict[str, Any]) -> list[np.ndarray]:
    """Every arc's positions: the delta-encoded quantized points of all arcs are summed in one pass."""
    scale = np.array(topo["transform"]["scale"], dtype=np.float64)
    translate = np.array(topo["transform"]["translate"], dtype=np.float64)
    arcs = topo["arcs"]
    lengths = np.fromiter((len(a) for a in arcs), dtype=np.int64, count=len(arcs))
    flat = np.fromiter(chain.from_iterable(chain.from_iterable(arcs)), dtype=np.float64, count=2 * int(lengths.sum()))
    total = np.cumsum(flat.reshape(-1, 2), axis=0)
    ends = np.cumsum(lengths)
    base = np.zeros((len(arcs), 2))
    base[1:] = total[ends[:-1] - 1]
    points = (total - np.repeat(base, lengths, axis=0)) * scale + translate
    return np.split(points, ends[:-1])


def _rings(geometry: dict[str, Any]) -> list[list[int]]:
    if geometry.get("type") == "Polygon":
        return list(geometry["arcs"])
    if geometry.get("type") == "MultiPolygon":
        return [ring for poly in geometry["arcs"] for ring in poly]
    return []


def _artificial(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Segments a -> b along the antimeridian or at the south pole (edges of the source polygons, not coasts)."""
    meridian = (np.abs(a[:, 0]) > 179.99) & (np.abs(b[:, 0]) > 179.99)
    pole = (a[:, 1] < -89.9) & (b[:, 1] < -89.9)
    return meridian | pole


def _split_real(arc: np.ndarray) -> list[np.ndarray]:
    """``arc`` without its artificial segments (pieces of two points or more)."""
    bad = _artificial(arc[:-1], arc[1:])
    if not bad.any():
        return [arc]
    pieces: list[np.ndarray] = []
    start = 0
    for i in np.flatnonzero(bad).tolist():
        if i + 1 - start >= 2:
            pieces.append(arc[start : i + 1])
        start = i + 1
    if len(arc) - start >= 2:
        pieces.append(arc[start:])
    return pieces


def _ring_coords(ring: list[int], arcs: list[np.ndarray]) -> np.ndarray:
    parts = [arcs[i] if i >= 0 else arcs[~i][::-1] for i in ring]
    return np.concatenate([p if k == 0 else p[1:] for k, p in enumerate(parts)])


@lru_cache(maxsize=1)
def basemap() -> Basemap:
    """The decoded Natural Earth basemap (cached)."""
    raw = (resources.files("oco_l3") / "data" / _FILE[0] / _FILE[1]).read_bytes()
    topo = json.loads(raw)
    arcs = _decode_arcs(topo)
    users: dict[int, set[int]] = defaultdict(set)
    for n, geometry in enumerate(topo["objects"]["countries"]["geometries"]):
        for ring in _rings(geometry):
            for i in ring:
                users[i if i >= 0 else ~i].add(n)
    coast: list[np.ndarray] = []
    borders: list[np.ndarray] = []
    for i, arc in enumerate(arcs):
        kind = borders if len(users.get(i, ())) > 1 else coast
        kind.extend(_split_real(arc))
    land = [_ring_coords(r, arcs) for g in topo["objects"]["land"]["geometries"] for r in _rings(g)]
    return Basemap(tuple(coast), tuple(borders), tuple(land))
