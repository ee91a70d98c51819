"""Canopy product: ATL08 land segments inside a polygon with the requested variables -> GeoParquet (+ CSV).

Output ``<root>/icesat2-canopy/<granule>.parquet`` in EPSG:4326 with columns ``granule``, ``beam``,
``beam_type``, ``latitude``, ``longitude``, ``delta_time``, ``time`` (UTC) and one column per variable
(``canopy/h_canopy`` -> ``h_canopy``; fills are NaN). Segments with missing lat/lon are dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from oco_l3.icesat2.config import CanopyConfig
from oco_l3.icesat2.readers import read_beams
from oco_l3.icesat2.tables import column_name, inside

log = logging.getLogger(__name__)

PRODUCT = "icesat2-canopy"


def subset_granule(path: str | Path, cfg: CanopyConfig, area: Any) -> tuple[Any, int]:
    """The land segments of one ATL08 granule inside ``area`` as a GeoDataFrame; and the segments read."""
    import geopandas as gpd
    import pandas as pd

    beams = read_beams(path, "ATL08", cfg.beams, cfg.variables)
    frames = []
    for seg in beams:
        keep = np.isfinite(seg.latitude) & np.isfinite(seg.longitude)
        keep &= inside(area, np.nan_to_num(seg.longitude), np.nan_to_num(seg.latitude))
        sub = seg.take(keep)
        cols: dict[str, Any] = {"granule": sub.granule, "beam": sub.beam, "beam_type": sub.beam_type,
                                "latitude": sub.latitude, "longitude": sub.longitude,
                                "delta_time": sub.delta_time, "time": sub.time}
        taken = set(cols)
        for var in cfg.variables:
            name = column_name(var, taken)
            taken.add(name)
            values = sub.variables[var]
            if values.dtype.kind != "f" and var in sub.fills:
                values = np.where(values == sub.fills[var], np.nan, values.astype(np.float64))
            cols[name] = values
        frames.append(pd.DataFrame(cols))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        {c: pd.Series(dtype=float) for c in ("latitude", "longitude")})
    gdf = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["longitude"], df["latitude"]), crs="EPSG:4326")
    return gdf, sum(b.n for b in beams)
