"""Shared helpers of the table products (land ice, canopy): polygons, GeoParquet/CSV writing."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oco_l3.errors import ConfigInvalid


def load_polygon(path: str | Path) -> Any:
    """A (multi)polygon from a GeoJSON file (geometry, Feature or FeatureCollection, unioned), lon/lat."""
    import shapely
    from shapely.geometry import shape

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigInvalid(f"{path}: cannot read polygon GeoJSON ({type(exc).__name__})") from None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        geoms = [f.get("geometry") for f in doc.get("features", [])]
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        geoms = [doc.get("geometry")]
    else:
        geoms = [doc]
    try:
        shapes = [shape(g) for g in geoms if g]
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise ConfigInvalid(f"{path}: not a GeoJSON geometry ({type(exc).__name__})") from None
    polys = [s for s in shapes if s.geom_type in ("Polygon", "MultiPolygon") and not s.is_empty]
    if not polys:
        raise ConfigInvalid(f"{path}: no polygon in the GeoJSON")
    geom = shapely.union_all(polys)
    shapely.prepare(geom)
    return geom


def inside(geom: Any, lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Vectorised point-in-polygon (boundary counts as inside)."""
    import shapely

    return np.asarray(shapely.intersects_xy(geom, lon, lat))


def column_name(variable: str, taken: set[str]) -> str:
    """``canopy/h_canopy`` -> ``h_canopy`` (the full path with ``/`` -> ``.`` if the short name is taken)."""
    short = variable.rsplit("/", 1)[-1]
    return variable.replace("/", ".") if short in taken else short


def write_table(gdf: Any, path: Path, csv: bool) -> list[Path]:
    """Write a GeoDataFrame as GeoParquet (and CSV with WKT geometry) atomically; returns the paths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    gdf.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    out.append(path)
    if csv:
        csv_path = path.with_suffix(".csv")
        tmp = csv_path.with_name(f".{csv_path.name}.{uuid.uuid4().hex}")
        frame = gdf.drop(columns="geometry").assign(geometry_wkt=gdf.geometry.to_wkt())
        frame.to_csv(tmp, index=False)
        os.replace(tmp, csv_path)
        out.append(csv_path)
    return out
