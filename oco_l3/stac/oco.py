"""The catalogue of the target-focused OCO product: one collection per mission and QF pass, a sub-catalogue per
target holding the target's store item and one item per capture.

Collection ``<mission>-<naming>`` (``oco3-pre_qf``); folder ``<target_id>``; items ``<target_id>`` (the store:
datacube, whole time range, the target box) and ``<target_id>_<YYYY-mm-ddTHHMMSSZ>`` (one capture: its time, the
convex hull of its footprints clipped to the target box, its source granule, and -- once exported -- its COGs with
the projection and raster extensions).

:func:`record_store_commit` runs right after a store commit has been read back; it re-derives the store item from
the committed store, (re)writes the items of the committed captures, and repairs: every capture time in the store
that has no item (a crash between an earlier commit and its item) gets one, from the store alone (target box
geometry, ``oco_l3:repaired: true``), unless an item file is already there, which is then only linked.
:func:`record_cogs` runs after the COG export and rewrites the capture items with their COGs as assets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from oco_l3.missions import mission_spec
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
    from oco_l3.pipeline import CaptureProduct, GranuleProducts, StoreCommit
    from oco_l3.targets import Target

log = logging.getLogger(__name__)

def mission_title(mission: str) -> str:
    """``OCO-3 XCO2 (L2 Lite FP)``: sensor, quantity and source product of the mission's spec."""
    spec = mission_spec(mission)
    return f"{spec.sensor} {spec.quantity} ({spec.title.removeprefix(spec.sensor).strip()})"


def collection_id(mission: str, naming: str) -> str:
    return f"{mission}-{naming.removesuffix('.zarr')}"


def collection_spec(mission: str, naming: str, qf: str) -> CollectionSpec:
    spec = mission_spec(mission)
    qf_text = (f"post-QF (good soundings only: {spec.post_qf.describe()})" if qf == "post"
               else "pre-QF (all soundings)")
    return CollectionSpec(
        id=collection_id(mission, naming),
        title=f"{mission_title(mission)} target-focused, {'post' if qf == 'post' else 'pre'}-QF",
        description=(f"{mission_title(mission)} Snapshot Area Map and target-mode captures gridded onto each "
                     f"target's fixed box, {qf_text}. One Zarr store per target (one time slice per capture) "
                     "and one Cloud-Optimized GeoTIFF per variable and capture. Produced by oco-l3."),
        keywords=(spec.sensor, spec.quantity, "Level-3", "target-focused"),
        platforms=(spec.platform_id,),
    )


def capture_id(target_id: str, time: np.datetime64) -> str:
    text = str(np.asarray(time, dtype="datetime64[s]"))
    return f"{target_id}_{text.replace(':', '')}Z"


def _target_props(mission: str, target: Target, qf: str) -> dict[str, Any]:
    spec = mission_spec(mission)
    return {"platform": spec.platform_id, "instruments": [spec.sensor.lower()], "mission": mission,
            "oco_l3:target_id": target.id, "oco_l3:target_name": target.name, "oco_l3:target_type": target.type,
            "oco_l3:quality_filtered": qf == "post"}


# --- after a store commit ---------------------------------------------------------------------------------------
def record_store_commit(config: RunConfig, commit: StoreCommit, store_path: str) -> None:
    """Bring the catalogue up to date with the committed store (see the module docstring)."""
    from oco_l3.pipeline import naming, output_filesystem

    fs, root = output_filesystem(config)
    cat = Catalogue(fs, root)
    spec = collection_spec(commit.mission, naming(config, commit.qf), commit.qf)
    desc = describe_store(fs, store_path)
    target = commit.target
    folder = (target.id,)
    with cat.session(spec) as s:
        _put_store_item(s, cat, commit.mission, commit.qf, target, desc)
        for cap in commit.slices:
            s.put_item(folder, capture_item(cat, spec.id, commit.qf, cap, ()), keep_assets=True)
        _repair(s, commit.mission, commit.qf, target, desc)
        box = target.bbox
        s.extend((box.min_lon, box.min_lat, box.max_lon, box.max_lat),
                 desc.times[0] if desc.times.size else None, desc.times[-1] if desc.times.size else None)


def _put_store_item(s: CollectionSession, cat: Catalogue, mission: str, qf: str, target: Target,
                    desc: StoreDescription) -> None:
    folder = (target.id,)
    key = Catalogue.item_key(s.spec.id, folder, target.id)
    box = target.bbox
    geometry = box_geometry(box.min_lon, box.min_lat, box.max_lon, box.max_lat)
    props = {**_target_props(mission, target, qf), "oco_l3:captures": int(desc.times.size),
             "oco_l3:interpolation_method": desc.attrs.get("interpolation_method")}
    spec = ItemSpec(target.id, geometry, bbox_of(geometry), start=desc.times[0], end=desc.times[-1],
                    title=f"{target.id} {target.name}: Zarr store", properties=props)
    s.put_item(folder, store_item(spec, desc, cat.asset_href(desc.path, key), 4326))


def capture_item(cat: Catalogue, cid: str, qf: str, cap: CaptureProduct, cogs: Sequence[tuple[str, str]]
                 ) -> dict[str, Any]:
    """The item of one capture in one QF pass, with ``cogs`` ((variable key, path or URL) pairs) as assets."""
    target = cap.target
    box = target.bbox
    footprints = getattr(cap, "footprints", None)
    geometry = footprints.hull(good_only=qf == "post", clip=box) if footprints is not None else None
    geometry = geometry or box_geometry(box.min_lon, box.min_lat, box.max_lon, box.max_lat)
    item_id = capture_id(target.id, cap.start_time)
    gslice = cap.slice(qf)  # type: ignore[arg-type]
    props = {**_target_props(cap.mission, target, qf), "oco_l3:capture_mode": cap.mode,
             "oco_l3:source_granules": [cap.granule], "oco_l3:interpolation_method": cap.method,
             "oco_l3:soundings": cap.n_good if qf == "post" else cap.n_soundings,
             "oco_l3:footprint_geometry": "convex hull" if footprints is not None else "target box"}
    spec = ItemSpec(item_id, geometry, bbox_of(geometry), time=cap.start_time, properties=props,
                    title=f"{target.id} {target.name} {item_id.split('_')[-1]} ({qf}-QF)")
    key = Catalogue.item_key(cid, (target.id,), item_id)
    assets = [_cog_asset(cat, key, var, path, gslice) for var, path in cogs] if gslice is not None else []
    store_link = {"rel": "related", "href": f"./{target.id}.json", "type": "application/geo+json",
                  "title": "the Zarr store item holding this capture as a time slice"}
    return raster_item(spec, assets, [store_link])


def _cog_asset(cat: Catalogue, key: str, data_key: str, path: str, gslice: Any) -> RasterAsset:
    var = data_key.replace("/", ".")  # as in the COG name: [Group.]variable
    grid = gslice.grid
    values = gslice.data.get(data_key)
    dtype = "float32" if values is None or values.dtype.kind == "f" else str(values.dtype)
    nodata = float("nan") if dtype == "float32" else gslice.fills.get(data_key)
    unit = str(gslice.attrs.get(data_key, {}).get("units", ""))
    return RasterAsset(var, cat.asset_href(path, key),
                       RasterGrid(grid.shape, grid.transform(), "EPSG:4326"), dtype, nodata, unit,
                       title=f"{data_key} (COG)")


def _repair(s: CollectionSession, mission: str, qf: str, target: Target, desc: StoreDescription) -> None:
    """Items for the store's capture times that have none (see the module docstring)."""
    folder = (target.id,)
    linked = s.linked_items(folder)
    box = target.bbox
    geometry = box_geometry(box.min_lon, box.min_lat, box.max_lon, box.max_lat)
    for t in desc.times:
        item_id = capture_id(target.id, t)
        if item_id in linked:
            continue
        if s.item_exists(folder, item_id):
            s.ensure_linked(folder, item_id)
            continue
        log.warning("Catalogue: capture %s of %s had no item (interrupted run?); writing it from the store",
                    item_id, desc.path)
        props = {**_target_props(mission, target, qf), "oco_l3:repaired": True,
                 "oco_l3:footprint_geometry": "target box"}
        spec = ItemSpec(item_id, geometry, bbox_of(geometry), time=t, properties=props,
                        title=f"{target.id} {target.name} {item_id.split('_')[-1]} ({qf}-QF)")
        link = {"rel": "related", "href": f"./{target.id}.json", "type": "application/geo+json",
                "title": "the Zarr store item holding this capture as a time slice"}
        s.put_item(folder, raster_item(spec, (), [link]))


# --- after the COG export ---------------------------------------------------------------------------------------
def record_cogs(config: RunConfig, products: GranuleProducts, written: Sequence[str]) -> None:
    """Rewrite the items of the exported captures with their COGs as assets."""
    from oco_l3.paths import cog_name
    from oco_l3.target_stores import naming, output_filesystem, slice_to_write

    if not written:
        return
    fs, root = output_filesystem(config)
    cat = Catalogue(fs, root)
    by_name = {w.rstrip("/").rsplit("/", 1)[-1]: w for w in written}
    qfs: tuple[Any, ...] = ("pre", "post")
    for qf in qfs:
        groups: dict[str, list[tuple[CaptureProduct, list[tuple[str, str]]]]] = {}
        for cap in products.captures:
            gslice = slice_to_write(config, cap, qf)
            if gslice is None:
                continue
            names = {k: cog_name(cap.mission, cap.target.id, cap.start_time, qf == "post", k) for k in sorted(gslice.data)}
            cogs = [(k, by_name[n]) for k, n in names.items() if n in by_name]
            groups.setdefault(cap.mission, []).append((cap, cogs))
        for mission, caps in groups.items():
            spec = collection_spec(mission, naming(config, qf), qf)
            with cat.session(spec) as s:
                for cap, cogs in caps:
                    s.put_item((cap.target.id,), capture_item(cat, spec.id, qf, cap, cogs))
