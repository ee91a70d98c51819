"""The sounding footprints of one capture, kept beside its gridded slices for the catalogue and the quick-looks.

:class:`SoundingFootprints` holds the four-vertex polygons of every sounding of a capture (float32, ``(N, 4)``) and
the post-QF mask. It is small (15,000 soundings: 0.5 MB) and picklable. :meth:`SoundingFootprints.hull` gives the
GeoJSON geometry a STAC item carries: the convex hull of the footprints, optionally clipped to a box; a capture
across the antimeridian gets one polygon on each side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from oco_l3.soundings import Soundings
from oco_l3.targets import BBox


@dataclass(frozen=True, eq=False)
class SoundingFootprints:
    """Footprint vertices (degrees, ``(N, 4)`` float32) of the soundings of one capture and their post-QF mask."""

    vertex_latitude: np.ndarray
    vertex_longitude: np.ndarray
    good: np.ndarray

    @classmethod
    def of(cls, soundings: Soundings) -> SoundingFootprints:
        return cls(np.asarray(soundings.vertex_latitude, dtype=np.float32),
                   np.asarray(soundings.vertex_longitude, dtype=np.float32),
                   np.asarray(soundings.good, dtype=bool))

    def __len__(self) -> int:
        return int(self.good.size)

    def polygons(self, good_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(lat, lon)`` vertex arrays ``(M, 4)`` of the footprints with four finite vertices (all, or good)."""
        keep = np.isfinite(self.vertex_latitude).all(axis=1) & np.isfinite(self.vertex_longitude).all(axis=1)
        if good_only:
            keep &= self.good
        return self.vertex_latitude[keep], self.vertex_longitude[keep]

    def hull(self, good_only: bool = False, clip: BBox | None = None) -> dict[str, Any] | None:
        """The convex hull of the footprints as a GeoJSON Polygon/MultiPolygon (None when there is none)."""
        lat, lon = self.polygons(good_only)
        return hull_geometry(lat.ravel(), lon.ravel(), clip)


def hull_geometry(lat: np.ndarray, lon: np.ndarray, clip: BBox | None = None) -> dict[str, Any] | None:
    """Convex hull of points (degrees) as a GeoJSON geometry, clipped to ``clip``; points spanning more than 180
    degrees of longitude are taken as crossing the antimeridian and split into one part on each side."""
    import shapely
    from shapely import affinity
    from shapely.geometry import box, mapping

    ok = np.isfinite(lat) & np.isfinite(lon)
    if not ok.any():
        return None
    lat, lon = lat[ok].astype(np.float64), lon[ok].astype(np.float64)
    crosses = float(lon.max() - lon.min()) > 180.0
    if crosses:
        lon = np.where(lon < 0, lon + 360.0, lon)
    pts = _hull_candidates(np.column_stack([lon, lat]))
    hull = shapely.convex_hull(shapely.multipoints(pts))
    if crosses:
        east = hull.intersection(box(0.0, -90.0, 180.0, 90.0))
        west = affinity.translate(hull.intersection(box(180.0, -90.0, 360.0, 90.0)), xoff=-360.0)
        hull = shapely.union(east, west)
    if clip is not None:
        hull = hull.intersection(box(clip.min_lon, clip.min_lat, clip.max_lon, clip.max_lat))
    hull = _areal(hull)
    if hull is None:
        return None
    # RFC 7946: exterior rings counter-clockwise
    return dict(mapping(shapely.orient_polygons(shapely.set_precision(hull, 1e-6))))


def _hull_candidates(pts: np.ndarray, directions: int = 16) -> np.ndarray:
    """The points that may be vertices of the convex hull of ``pts`` (Akl-Toussaint): a point strictly inside the
    polygon of the extreme points in ``directions`` directions is inside the hull, so it is dropped. Exact; a
    capture's 60,000 footprint vertices shrink to a few hundred before the hull is built."""
    if len(pts) < 64:
        return pts
    angles = np.linspace(0.0, 2 * np.pi, directions, endpoint=False)
    extremes = np.unique(np.argmax(pts @ np.stack([np.cos(angles), np.sin(angles)]), axis=0))
    poly = pts[extremes]
    centre = poly.mean(axis=0)
    poly = poly[np.argsort(np.arctan2(poly[:, 1] - centre[1], poly[:, 0] - centre[0]))]  # counter-clockwise
    if len(poly) < 3:
        return pts
    inside = np.ones(len(pts), dtype=bool)
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        inside &= (b[0] - a[0]) * (pts[:, 1] - a[1]) - (b[1] - a[1]) * (pts[:, 0] - a[0]) > 1e-12
    return pts[~inside]


def _areal(geom: Any) -> Any:
    """``geom`` reduced to its polygons; a hull of one or two points (no area) is buffered to a small box."""
    import shapely
    from shapely.geometry import MultiPolygon, Polygon

    if geom.is_empty:
        return None
    if isinstance(geom, Polygon | MultiPolygon):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon)]
    if polys:
        return MultiPolygon(polys) if len(polys) > 1 else polys[0]
    return shapely.envelope(geom.buffer(1e-4))
