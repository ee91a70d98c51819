"""The catalogue of the global daily product: one collection per QF pass, the store item, one item per day.

Collection ``global-<naming>``; items ``<naming>`` (the store: datacube, whole time range, the globe) and, in a
sub-catalogue per year, ``<YYYY-mm-dd>`` (one day: the day as its time range, the footprint hulls of the day's
captures as a MultiPolygon, the captures and source granules as properties). Re-running a day replaces its item.
After each day commit the store's days that have no item (a crash between an earlier commit and its item) get one
from the store alone (the globe as geometry, ``oco_l3:repaired: true``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from oco_l3.missions import MISSIONS
from oco_l3.stac.catalogue import Catalogue, CollectionSession
from oco_l3.stac.describe import StoreDescription, describe_store
from oco_l3.stac.items import (
    CollectionSpec,
    ItemSpec,
    RasterAsset,
    RasterGrid,
    bbox_of,
    box_geometry,
    raster_item,
    store_item,
)

if TYPE_CHECKING:
    from oco_l3.config import RunConfig
    from oco_l3.global_product import GlobalCaptureProduct

GLOBE = (-180.0, -90.0, 180.0, 90.0)


def collection_spec(naming: str, qf: str) -> CollectionSpec:
    qf_text = "post-QF (good soundings only)" if qf == "post" else "pre-QF (all soundings)"
    specs = list(MISSIONS.values())
    sensors = sorted({s.sensor for s in specs})
    return CollectionSpec(
        id=f"global-{naming.removesuffix('.zarr')}",
        title=f"{'/'.join(sensors)} global daily, {'post' if qf == 'post' else 'pre'}-QF",
        description=(f"Every SAM and target-mode capture of a day from {', '.join(s.title for s in specs)} on one "
                     f"global grid, one slice per day at 00:00 UTC, {qf_text}; variables prefixed per mission. "
                     "Produced by oco-l3."),
        keywords=(*sensors, *sorted({s.quantity for s in specs}, reverse=True), "Level-3", "global"),
        platforms=tuple(sorted({s.platform_id for s in specs})),
    )


def _day_id(t: np.datetime64) -> str:
    return str(np.asarray(t, dtype="datetime64[D]"))


def _hulls(captures: Sequence[GlobalCaptureProduct], qf: str) -> dict[str, Any] | None:
    import shapely
    from shapely.geometry import mapping, shape

    parts = []
    for cap in captures:
        footprints = getattr(cap, "footprints", None)
        geometry = footprints.hull(good_only=qf == "post") if footprints is not None and cap.pieces(qf) else None  # type: ignore[arg-type]
        if geometry is not None:
            parts.append(shape(geometry))
    if not parts:
        return None
    union = shapely.union_all(parts)
    return dict(mapping(union))


def record_global_day(config: RunConfig, day: dt.date, captures: Sequence[GlobalCaptureProduct], qf: str,
                      store_path: str) -> None:
    """Bring the catalogue up to date with the day just committed to ``store_path`` (see the module docstring)."""
    from oco_l3.remote import output_filesystem

    naming = config.output.naming.post_qf if qf == "post" else config.output.naming.pre_qf
    fs, root = output_filesystem(config.output)
    cat = Catalogue(fs, root)
    spec = collection_spec(naming, qf)
    desc = describe_store(fs, store_path)
    with cat.session(spec) as s:
        _put_store_item(s, cat, naming, qf, desc)
        t = np.datetime64(day, "us")
        s.put_item((str(day.year),), day_item(spec, t, qf, [c for c in captures if c.pieces(qf)]))  # type: ignore[arg-type]
        _repair(s, spec, desc)
        s.extend(GLOBE, desc.times[0], desc.times[-1] + np.timedelta64(1, "D") - np.timedelta64(1, "us"))


def _put_store_item(s: CollectionSession, cat: Catalogue, naming: str, qf: str, desc: StoreDescription) -> None:
    item_id = naming.removesuffix(".zarr")
    key = Catalogue.item_key(s.spec.id, (), item_id)
    geometry = box_geometry(*GLOBE)
    props = {"oco_l3:days": int(desc.times.size), "oco_l3:quality_filtered": qf == "post",
             "oco_l3:interpolation_method": desc.attrs.get("interpolation_method")}
    item = ItemSpec(item_id, geometry, GLOBE, start=desc.times[0],
                    end=desc.times[-1] + np.timedelta64(1, "D") - np.timedelta64(1, "us"),
                    title=f"global daily store ({naming})", properties=props)
    s.put_item((), store_item(item, desc, cat.asset_href(desc.path, key), 4326))


def day_item(spec: CollectionSpec, t: np.datetime64, qf: str, captures: Sequence[GlobalCaptureProduct],
             repaired: bool = False, assets: Sequence[RasterAsset] = ()) -> dict[str, Any]:
    geometry = None if repaired else _hulls(captures, qf)
    props: dict[str, Any] = {"oco_l3:quality_filtered": qf == "post",
                             "oco_l3:footprint_geometry": "convex hulls of the captures" if geometry else "globe"}
    if repaired:
        props["oco_l3:repaired"] = True
    else:
        props["oco_l3:captures"] = [
            {"mission": c.mission, "target_id": c.target.id if c.target is not None else None, "mode": c.mode,
             "start_time": str(np.asarray(c.start_time, dtype="datetime64[s]")) + "Z", "soundings": c.n_soundings,
             "granule": c.granule} for c in sorted(captures, key=lambda c: c.start_time)]
        props["oco_l3:source_granules"] = sorted({c.granule for c in captures})
    geometry = geometry or box_geometry(*GLOBE)
    item = ItemSpec(_day_id(t), geometry, bbox_of(geometry), time=t, start=t,
                    end=t + np.timedelta64(1, "D") - np.timedelta64(1, "us"), properties=props,
                    title=f"{_day_id(t)} ({qf}-QF)")
    store = {"rel": "related", "href": f"../{spec.id.removeprefix('global-')}.json", "type": "application/geo+json",
             "title": "the Zarr store item holding this day as a time slice"}
    return raster_item(item, assets, [store])


def record_global_cogs(config: RunConfig, day: dt.date, captures: Sequence[GlobalCaptureProduct], qf: str,
                       canvas: Any, written: Sequence[str]) -> None:
    """Rewrite the day's item with its sparse COGs (``written``, from
    :func:`oco_l3.global_product.export_global_cogs`) as assets, keyed ``[Group.]<mission prefix>_<variable>``."""
    from oco_l3.global_product import global_cog_name
    from oco_l3.remote import output_filesystem

    if not written:
        return
    naming = config.output.naming.post_qf if qf == "post" else config.output.naming.pre_qf
    fs, root = output_filesystem(config.output)
    cat = Catalogue(fs, root)
    spec = collection_spec(naming, qf)
    t = np.datetime64(day, "us")
    key = Catalogue.item_key(spec.id, (str(day.year),), _day_id(t))
    by_name = {w.rstrip("/").rsplit("/", 1)[-1]: w for w in written}
    grid = canvas.grid
    assets = []
    for var in sorted(canvas.dtypes):
        path = by_name.get(global_cog_name(var, day, qf))  # type: ignore[arg-type]
        if path is None:
            continue
        dtype = str(canvas.dtypes[var])
        unit = str(canvas.attrs.get(var, {}).get("units", ""))
        assets.append(RasterAsset(var.replace("/", "."), cat.asset_href(path, key),
                                  RasterGrid(grid.shape, grid.transform(), "EPSG:4326"), dtype, canvas.fills[var],
                                  unit, title=f"{var} (sparse COG)"))
    with cat.session(spec) as s:
        s.put_item((str(day.year),), day_item(spec, t, qf, [c for c in captures if c.pieces(qf)], assets=assets))  # type: ignore[arg-type]


def _repair(s: CollectionSession, spec: CollectionSpec, desc: StoreDescription) -> None:
    qf = "post" if "post" in spec.id else "pre"
    for t in desc.times:
        folder = (_day_id(t)[:4],)
        if _day_id(t) in s.linked_items(folder):
            continue
        if s.item_exists(folder, _day_id(t)):
            s.ensure_linked(folder, _day_id(t))
        else:
            s.put_item(folder, day_item(spec, t, qf, (), repaired=True))
