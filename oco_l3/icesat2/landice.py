"""Land-ice product: ATL06 track reduction to GeoParquet, plus daily grid statistics of ``h_li``.

Per granule and beam: the selected ``land_ice_segments`` variables, filtered by ``atl06_quality_summary == 0``
and ``|h_li| < h_li_max`` (default 10 km) and by a bbox or polygon, with an ``ascending`` flag (latitude
increasing along track, from the local latitude gradient in time order), GPS seconds, UTC time, decimal year,
and x/y in the chosen CRS (default EPSG:3413 north / EPSG:3031 south by the median latitude of the granule).
Output: ``<root>/icesat2-landice/<granule>.parquet`` (one row per segment, ``beam`` column) and the daily
statistics of ``h_li`` in ``<root>/icesat2-landice/<grid>.zarr`` (ATL06 segments are weighted equally: each
counts with its nominal 40 m length).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oco_l3.icesat2.config import LandIceConfig
from oco_l3.icesat2.daily import GridSamples
from oco_l3.icesat2.readers import BeamSegments, read_beams
from oco_l3.icesat2.tables import column_name, inside
from oco_l3.icesat2.time import decimal_year

log = logging.getLogger(__name__)

PRODUCT = "icesat2-landice"
QUALITY = "atl06_quality_summary"
ATL06_SEGMENT_LENGTH = 40.0


def ascending_flag(latitude: npt.NDArray[np.float64], delta_time: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """True where latitude increases along track (gradient over time order; one segment -> False)."""
    if latitude.size < 2:
        return np.zeros(latitude.shape, dtype=bool)
    order = np.argsort(delta_time, kind="stable")
    grad = np.gradient(latitude[order])
    out = np.empty(latitude.shape, dtype=bool)
    out[order] = grad > 0
    return out


def default_crs(latitude: npt.NDArray[np.float64]) -> str:
    lat = latitude[np.isfinite(latitude)]
    return "EPSG:3031" if lat.size and float(np.median(lat)) < 0 else "EPSG:3413"


def filter_beam(seg: BeamSegments, cfg: LandIceConfig, area: Any) -> npt.NDArray[np.bool_]:
    h = seg.variables["h_li"]
    keep = seg.valid("h_li") & (np.abs(np.nan_to_num(h, nan=np.inf)) < cfg.h_li_max)
    keep &= seg.valid(QUALITY) & (seg.variables[QUALITY] == 0)
    keep &= np.isfinite(seg.latitude) & np.isfinite(seg.longitude)
    if cfg.bbox is not None:
        x0, y0, x1, y1 = cfg.bbox
        keep &= (seg.longitude >= x0) & (seg.longitude <= x1) & (seg.latitude >= y0) & (seg.latitude <= y1)
    if area is not None:
        keep &= inside(area, seg.longitude, seg.latitude)
    return np.asarray(keep)


def reduce_granule(path: str | Path, cfg: LandIceConfig, area: Any = None) -> tuple[Any, int]:
    """The filtered, annotated segments of one ATL06 granule as a GeoDataFrame; and the segments read."""
    import geopandas as gpd
    import pandas as pd
    import pyproj

    variables = list(dict.fromkeys(["h_li", QUALITY, *cfg.variables]))
    beams = read_beams(path, "ATL06", cfg.beams, variables)
    n_read = sum(b.n for b in beams)
    frames = []
    for seg in beams:
        asc = ascending_flag(seg.latitude, seg.delta_time)
        keep = filter_beam(seg, cfg, area)
        sub = seg.take(keep)
        cols: dict[str, Any] = {
            "granule": sub.granule, "beam": sub.beam, "beam_type": sub.beam_type, "spot": sub.spot,
            "rgt": sub.rgt, "cycle": sub.cycle, "latitude": sub.latitude, "longitude": sub.longitude,
            "delta_time": sub.delta_time, "gps_seconds": sub.gps_seconds, "time": sub.time,
            "decimal_year": decimal_year(sub.time), "ascending": asc[keep],
        }
        taken = set(cols)
        for var in cfg.variables:
            name = column_name(var, taken)
            taken.add(name)
            cols[name] = sub.variables[var]
        frames.append(pd.DataFrame(cols))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        {c: pd.Series(dtype=float) for c in ("latitude", "longitude")})
    crs = cfg.crs or default_crs(df["latitude"].to_numpy(dtype=np.float64))
    tr = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = tr.transform(df["longitude"].to_numpy(dtype=np.float64), df["latitude"].to_numpy(dtype=np.float64))
    df["x"], df["y"] = x, y
    gdf = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(x, y), crs=crs)
    return gdf, n_read


def landice_samples(path: str, gdf: Any) -> GridSamples:
    """The reduced segments as grid samples of ``h_li`` (each weighted by the nominal 40 m segment length)."""
    return GridSamples(path, np.asarray(gdf["time"].values, "datetime64[ns]"),
                       gdf["longitude"].to_numpy(dtype=np.float64), gdf["latitude"].to_numpy(dtype=np.float64),
                       gdf["h_li"].to_numpy(dtype=np.float64), np.full(len(gdf), ATL06_SEGMENT_LENGTH))
