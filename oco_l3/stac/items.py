"""STAC objects as pure values: pystac builds each Item and Collection with its extensions, and returns the JSON.

Nothing here reads or writes: the builders take plain values (a :class:`~oco_l3.stac.describe.StoreDescription`,
:class:`RasterAsset` values, geometries) and return the object's JSON ``dict`` without links (the catalogue writer,
:mod:`oco_l3.stac.catalogue`, owns the links). Extensions: datacube (store items), projection and raster (COG
assets). Hrefs are given by the caller, already relative or absolute.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import oco_l3
from oco_l3.stac.describe import StoreDescription

SOFTWARE = f"oco-l3 {oco_l3.__version__}"
ZARR_MEDIA_TYPE = "application/vnd+zarr"
#: ``processing:software`` (the software version) is a field of the processing extension.
PROCESSING_EXTENSION = "https://stac-extensions.github.io/processing/v1.0.0/schema.json"
LICENSE = "other"  # NASA data: no restrictions on use; the products inherit the L2 data policy


@dataclass(frozen=True)
class RasterGrid:
    """Where a raster lies: ``shape`` (rows, cols), ``transform`` (affine a, b, c, d, e, f of the north-up
    raster), ``crs`` (``EPSG:n`` code, or WKT2 when there is no code) and ``bbox`` in that CRS."""

    shape: tuple[int, int]
    transform: tuple[float, float, float, float, float, float]
    crs: str

    @property
    def native_bbox(self) -> list[float]:
        a, _, c, _, e, f = self.transform
        rows, cols = self.shape
        return [c, f + e * rows, c + a * cols, f]


@dataclass(frozen=True)
class RasterAsset:
    """One COG (or PNG) to list as an asset."""

    key: str
    href: str
    grid: RasterGrid
    dtype: str
    nodata: float | int | None
    unit: str = ""
    title: str = ""
    media_type: str = "image/tiff; application=geotiff; profile=cloud-optimized"
    roles: tuple[str, ...] = ("data",)


@dataclass(frozen=True)
class ItemSpec:
    """What every item carries besides its assets."""

    item_id: str
    geometry: Mapping[str, Any]
    bbox: tuple[float, float, float, float]
    time: np.datetime64 | None = None  # one instant (a capture, a day)
    start: np.datetime64 | None = None  # or a range (a store)
    end: np.datetime64 | None = None
    title: str = ""
    properties: Mapping[str, Any] = field(default_factory=dict)


def utc(t: np.datetime64) -> dt.datetime:
    """A numpy time (naive UTC) as an aware :class:`datetime.datetime` (microseconds)."""
    us = int(np.asarray(t, dtype="datetime64[us]").astype(np.int64))
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)


def iso(t: np.datetime64) -> str:
    return utc(t).isoformat().replace("+00:00", "Z")


def bbox_of(geometry: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """The lon/lat bbox of a GeoJSON Polygon/MultiPolygon."""
    coords = geometry["coordinates"]
    rings = coords if geometry["type"] == "Polygon" else [r for poly in coords for r in poly]
    pts = np.array([p for ring in rings for p in ring], dtype=np.float64)
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def box_geometry(min_lon: float, min_lat: float, max_lon: float, max_lat: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[min_lon, min_lat], [max_lon, min_lat], [max_lon, max_lat],
                                                [min_lon, max_lat], [min_lon, min_lat]]]}


def _item(spec: ItemSpec) -> Any:
    import pystac

    props: dict[str, Any] = {"processing:software": {"oco-l3": oco_l3.__version__}, **dict(spec.properties)}
    if spec.title:
        props["title"] = spec.title
    when = utc(spec.time) if spec.time is not None else None
    if spec.start is not None and spec.end is not None:
        props["start_datetime"], props["end_datetime"] = iso(spec.start), iso(spec.end)
    return pystac.Item(spec.item_id, dict(spec.geometry), list(spec.bbox), when, props,
                       stac_extensions=[PROCESSING_EXTENSION])


def _json(obj: Any) -> dict[str, Any]:
    doc: dict[str, Any] = obj.to_dict(include_self_link=False, transform_hrefs=False)
    doc["links"] = []
    return doc


# --- store items (datacube) ------------------------------------------------------------------------------------
def _dimension(desc: StoreDescription, name: str, reference: int | str | None) -> dict[str, Any]:
    values = desc.coords[name]
    step = float(values[1] - values[0]) if values.size > 1 else None
    axis = "y" if name in ("latitude", "y") else "x"
    dim: dict[str, Any] = {"type": "spatial", "axis": axis,
                           "extent": [float(values.min()), float(values.max())]}
    if step is not None and math.isfinite(step):
        dim["step"] = step
    if reference is not None:
        dim["reference_system"] = reference
    attrs = desc.coordinate_attrs(name)
    if attrs.get("long_name") or attrs.get("standard_name"):
        dim["description"] = str(attrs.get("long_name") or attrs.get("standard_name"))
    return dim


def _variable(desc: StoreDescription, path: str) -> dict[str, Any]:
    info = next(a for a in desc.arrays if a.path == path)
    var: dict[str, Any] = {"dimensions": list(info.dims),
                           "type": "data" if "time" in info.dims else "auxiliary"}
    if info.attrs.get("units") not in (None, ""):
        var["unit"] = str(info.attrs["units"])
    if info.attrs.get("long_name"):
        var["description"] = str(info.attrs["long_name"])
    return var


def datacube_fields(desc: StoreDescription, reference: int | str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``cube:dimensions`` and ``cube:variables`` of the store (variables keyed by their Zarr path)."""
    dims: dict[str, Any] = {"time": {"type": "temporal", "extent": [iso(desc.times[0]), iso(desc.times[-1])]
                                     if desc.times.size else [None, None]}}
    for name in desc.coords:
        dims[name] = _dimension(desc, name, reference)
    shown = {a.path for a in desc.data_arrays}
    shown |= {a.path for a in desc.arrays if a.dims and set(a.dims) <= set(desc.coords)
              and a.name not in ("time", *desc.coords)}
    variables = {path: _variable(desc, path) for path in sorted(shown)}
    return dims, variables


def store_item(spec: ItemSpec, desc: StoreDescription, href: str, reference: int | str | None) -> dict[str, Any]:
    """The item of one Zarr store: its whole time range, a datacube description and the store as an asset."""
    import pystac
    from pystac.extensions.datacube import DatacubeExtension, Dimension, Variable

    item = _item(spec)
    title = str(desc.attrs.get("title", "")) or spec.title
    item.add_asset("zarr", pystac.Asset(href, title=f"Zarr store ({title})" if title else "Zarr store",
                                        media_type=ZARR_MEDIA_TYPE, roles=["data"],
                                        extra_fields={"description": "Zarr v2, consolidated metadata"}))
    dims, variables = datacube_fields(desc, reference)
    cube = DatacubeExtension.ext(item, add_if_missing=True)
    cube.apply({k: Dimension.from_dict(v) for k, v in dims.items()},
               {k: Variable.from_dict(v) for k, v in variables.items()})
    return _json(item)


# --- raster items (captures, days) -------------------------------------------------------------------------------
def _raster_data_type(dtype: str) -> str:
    return {"bool": "uint8"}.get(dtype, dtype)


def _add_raster(item: Any, asset: RasterAsset) -> None:
    import pystac
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import RasterBand, RasterExtension

    a = pystac.Asset(asset.href, title=asset.title or asset.key, media_type=asset.media_type,
                     roles=list(asset.roles))
    item.add_asset(asset.key, a)
    proj = ProjectionExtension.ext(a, add_if_missing=True)
    code = asset.grid.crs if asset.grid.crs.upper().startswith("EPSG:") else None
    proj.apply(code=code, wkt2=None if code else asset.grid.crs, shape=list(asset.grid.shape),
               transform=list(asset.grid.transform), bbox=asset.grid.native_bbox)
    if "data" in asset.roles:
        nodata: Any = asset.nodata
        if isinstance(nodata, float) and math.isnan(nodata):
            nodata = "nan"
        band = RasterBand.create(nodata=nodata, data_type=_raster_data_type(asset.dtype),  # type: ignore[arg-type]
                                 unit=asset.unit or None)
        RasterExtension.ext(a, add_if_missing=True).apply([band])


def raster_item(spec: ItemSpec, assets: Sequence[RasterAsset] = (), links: Sequence[Mapping[str, Any]] = ()
                ) -> dict[str, Any]:
    """The item of one capture (or day): its time, footprint and the COGs (projection + raster extensions)."""
    item = _item(spec)
    for asset in assets:
        _add_raster(item, asset)
    doc = _json(item)
    doc["links"] = [dict(link) for link in links]
    return doc


# --- collections and catalogues ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CollectionSpec:
    """One product collection: ``id`` is also its folder under ``<root>/stac/``."""

    id: str
    title: str
    description: str
    keywords: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()


def collection(spec: CollectionSpec, bbox: Sequence[float], start: np.datetime64 | None,
               end: np.datetime64 | None) -> dict[str, Any]:
    import pystac

    extent = pystac.Extent(pystac.SpatialExtent([list(bbox)]),
                           pystac.TemporalExtent([[utc(start) if start is not None else None,
                                                   utc(end) if end is not None else None]]))
    providers = [pystac.Provider("oco-l3", roles=[pystac.ProviderRole.PROCESSOR]),
                 pystac.Provider("NASA", roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR],
                                 url="https://www.earthdata.nasa.gov")]
    summaries = pystac.Summaries({"platform": list(spec.platforms)} if spec.platforms else {})
    coll = pystac.Collection(spec.id, spec.description, extent, title=spec.title, license=LICENSE,
                             keywords=list(spec.keywords), providers=providers, summaries=summaries)
    return _json(coll)


def catalog(catalog_id: str, title: str, description: str) -> dict[str, Any]:
    import pystac

    return _json(pystac.Catalog(catalog_id, description, title=title))
