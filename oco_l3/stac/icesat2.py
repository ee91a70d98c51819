"""The catalogue of the ICESat-2 daily grids: one collection per product (its folder under the output root), a
sub-catalogue per grid holding the grid store's item, and one item per grid and day in a sub-catalogue per year.

Collection id: the store's folder relative to the root with ``/`` as ``-`` (``icesat2-seaice``); items ``<grid>``
(the store: datacube on ``(time, y, x)`` in the grid's CRS) and ``<grid>_<YYYY-mm-dd>`` (one day: the day as its
time range, the latitude band of the cells with data as geometry, the COG of every statistic with the projection
and raster extensions, the polar quick-look as an ``overview`` asset, the source granules). Days of the store
without an item (a crash between an earlier upsert and its item) are given one from the store alone.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oco_l3.icesat2.grids import PolarGrid
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

TITLES = {"icesat2-seaice": "ICESat-2 sea-ice heights/freeboard (ATL07/ATL10) daily grids",
          "icesat2-landice": "ICESat-2 land-ice heights (ATL06 h_li) daily grids"}


def collection_spec(root: Path, store: Path) -> CollectionSpec:
    rel = store.parent.relative_to(root).as_posix()
    cid = rel.replace("/", "-")
    product = rel.split("/")[0]
    title = TITLES.get(product, f"ICESat-2 {rel}") + (f" ({rel})" if "/" in rel else "")
    return CollectionSpec(
        id=cid, title=title,
        description=(f"{title}: length-weighted daily statistics per cell of a polar grid, one Zarr store per grid "
                     "and one COG per statistic and day. Produced by oco-l3 from NSIDC ICESat-2 granules."),
        keywords=("ICESat-2", "ATLAS", "Level-3", "polar"), platforms=("icesat-2",))


def _epsg(grid: PolarGrid) -> int | None:
    code = grid.pyproj_crs.to_epsg()
    return int(code) if code is not None else None


def _raster_grid(grid: PolarGrid) -> RasterGrid:
    code = _epsg(grid)
    return RasterGrid(grid.shape, grid.affine(), f"EPSG:{code}" if code else grid.pyproj_crs.to_wkt())


def _band(grid: PolarGrid, rows: np.ndarray | None) -> tuple[float, float, float, float]:
    """The lon/lat bbox of the grid cells ``rows`` (flat indices; None: every cell): a polar cap."""
    lon, lat = grid.lonlat()
    sel = lat.ravel() if rows is None else lat.ravel()[rows]
    if sel.size == 0:
        sel = lat.ravel()
    north = float(np.nanmean(sel)) > 0
    return (-180.0, float(np.nanmin(sel)), 180.0, 90.0) if north else (-180.0, -90.0, 180.0, float(np.nanmax(sel)))


def record_icesat2_day(root: Path, grid: PolarGrid, store: Path, day: str, stats: Mapping[str, np.ndarray],
                       cogs: Sequence[Path], quicklook: Path | None, inputs: Sequence[str]) -> None:
    """Bring the catalogue up to date with the day just upserted into ``store`` (see the module docstring)."""
    import fsspec

    fs = fsspec.filesystem("file")
    root = Path(root).resolve()
    store = Path(store).resolve()
    cat = Catalogue(fs, str(root))
    spec = collection_spec(root, store)
    desc = describe_store(fs, str(store))
    with cat.session(spec) as s:
        _put_store_item(s, cat, grid, desc)
        n = np.asarray(stats["n_segments"]).ravel()
        band = _band(grid, np.flatnonzero(n > 0))
        folder = (grid.name, day[:4])
        item_id = f"{grid.name}_{day}"
        key = Catalogue.item_key(spec.id, folder, item_id)
        assets = [_cog(cat, key, grid, p, stats, desc) for p in cogs]
        if quicklook is not None:
            assets.append(RasterAsset("quicklook", cat.asset_href(str(quicklook), key), _raster_grid(grid), "uint8",
                                      None, title="polar quick-look (mean)", media_type="image/png",
                                      roles=("overview",)))
        props = {"oco_l3:segments": int(n.sum()), "oco_l3:grid": grid.name,
                 "oco_l3:source_granules": sorted(posixpath.basename(str(i)) for i in inputs)}
        s.put_item(folder, _day_item(spec, grid, day, band, props, assets))
        _repair(s, spec, grid, desc)
        s.extend(_band(grid, None), desc.times[0], desc.times[-1] + np.timedelta64(1, "D") - np.timedelta64(1, "us"))


def _day_item(spec: CollectionSpec, grid: PolarGrid, day: str, band: tuple[float, float, float, float],
              props: dict[str, Any], assets: Sequence[RasterAsset]) -> dict[str, Any]:
    t = np.datetime64(day, "us")
    geometry = box_geometry(*band)
    item = ItemSpec(f"{grid.name}_{day}", geometry, bbox_of(geometry), time=t, start=t,
                    end=t + np.timedelta64(1, "D") - np.timedelta64(1, "us"),
                    title=f"{spec.id} {grid.name} {day}", properties={"platform": "icesat-2",
                                                                      "instruments": ["atlas"], **props})
    store = {"rel": "related", "href": f"../{grid.name}.json", "type": "application/geo+json",
             "title": "the Zarr store item holding this day as a time slice"}
    return raster_item(item, assets, [store])


def _cog(cat: Catalogue, key: str, grid: PolarGrid, path: Path, stats: Mapping[str, np.ndarray],
         desc: StoreDescription) -> RasterAsset:
    name = path.stem.rsplit("_", 1)[-1]
    stat = max((s for s in stats if path.stem.endswith(f"_{s}")), key=len, default=name)
    arr = np.asarray(stats[stat]) if stat in stats else None
    dtype = str(arr.dtype) if arr is not None else "float32"
    nodata: float | None = float("nan") if dtype.startswith("float") else None
    unit = str(next((a.attrs.get("units", "") for a in desc.arrays if a.path == stat), ""))
    return RasterAsset(stat, cat.asset_href(str(path), key), _raster_grid(grid), dtype, nodata, unit,
                       title=f"{stat} (COG)")


def _put_store_item(s: CollectionSession, cat: Catalogue, grid: PolarGrid, desc: StoreDescription) -> None:
    folder = (grid.name,)
    key = Catalogue.item_key(s.spec.id, folder, grid.name)
    geometry = box_geometry(*_band(grid, None))
    item = ItemSpec(grid.name, geometry, bbox_of(geometry), start=desc.times[0],
                    end=desc.times[-1] + np.timedelta64(1, "D") - np.timedelta64(1, "us"),
                    title=f"{s.spec.id} on {grid.name}: Zarr store",
                    properties={"platform": "icesat-2", "instruments": ["atlas"], "oco_l3:grid": grid.name,
                                "oco_l3:days": int(desc.times.size)})
    reference = _epsg(grid) or grid.pyproj_crs.to_wkt()
    s.put_item(folder, store_item(item, desc, cat.asset_href(desc.path, key), reference))


def _repair(s: CollectionSession, spec: CollectionSpec, grid: PolarGrid, desc: StoreDescription) -> None:
    for t in desc.times:
        day = str(np.asarray(t, dtype="datetime64[D]"))
        folder, item_id = (grid.name, day[:4]), f"{grid.name}_{day}"
        if item_id in s.linked_items(folder):
            continue
        if s.item_exists(folder, item_id):
            s.ensure_linked(folder, item_id)
        else:
            s.put_item(folder, _day_item(spec, grid, day, _band(grid, None), {"oco_l3:repaired": True}, ()))
