"""Writers of the ICESat-2 gridded statistics: Zarr store (time, y, x), COG per statistic and day, PNG.

Zarr: the store path comes from the product (:mod:`oco_l3.icesat2.products`: ``<root>/icesat2-seaice/<slug>/<grid>.zarr``,
``<root>/icesat2-landice/<grid>.zarr``), Zarr v2, consolidated; variables ``n_segments``, ``mean_segment_length``,
``mean``, ``std`` on dims ``(time, y, x)``, CF ``grid_mapping = "crs"``, 2-D ``lat``/``lon``; sea-ice stores also carry
``time_bnds (time, nv)`` (``time:bounds``). Every variable whose first dimension is ``time`` is written per day.
The day dataset is turned into a store layout and one time slab (:func:`store_layout`, :func:`day_slab`) and
written by the one store writer (:func:`oco_l3.zarr_store.upsert`): every write (create, replace a day, append a
day, insert an earlier day in time order) is one crash-safe transaction under the store lock. Re-running a day
replaces it, so it is idempotent. Read the store with :func:`open_grid_store` (recovers first).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import numpy.typing as npt

from oco_l3.errors import StoreCorrupt
from oco_l3.icesat2.binning import STATISTICS
from oco_l3.icesat2.grids import PolarGrid
from oco_l3.icesat2.products import LANDICE_STATISTIC_ATTRS, provenance_conflict
from oco_l3.zarr_store import (
    Coordinate,
    Layout,
    Piece,
    Slab,
    StaticVariable,
    TimeAxis,
    VarSlice,
    open_store,
    recover_store,
    to_us,
    upsert,
)
from oco_l3.zarr_store._writer import Writer
from oco_l3.zarr_store.layout import encode_time

log = logging.getLogger(__name__)

TIME_UNITS = "days since 1970-01-01"
TIME_CALENDAR = "proleptic_gregorian"


def crs_attrs(grid: PolarGrid) -> dict[str, Any]:
    """CF grid-mapping attributes of the grid CRS (with ``crs_wkt``, ``spatial_ref`` and ``proj4text``)."""
    crs = grid.pyproj_crs
    attrs: dict[str, Any] = dict(crs.to_cf())
    attrs["spatial_ref"] = attrs.get("crs_wkt", crs.to_wkt())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attrs["proj4text"] = crs.to_proj4()
    if crs.to_epsg() is not None:
        attrs["srid"] = f"urn:ogc:def:crs:EPSG::{crs.to_epsg()}"
    attrs["GeoTransform"] = " ".join(repr(v) for v in (grid.x_min, grid.resolution, 0.0, grid.y_max, 0.0, -grid.resolution))
    return attrs


def day_dataset(
    grid: PolarGrid, day: np.datetime64, stats: dict[str, npt.NDArray[Any]], attrs: Mapping[str, Any],
    statistic_attrs: Mapping[str, Mapping[str, str]] | None = None, time_bounds: bool = False,
) -> Any:
    """One day of statistics as an ``xarray.Dataset`` with dims (time, y, x).

    ``statistic_attrs`` are the CF attributes of each statistic (default: the land-ice product's); with
    ``time_bounds`` the day's interval ``[day, day + 1)`` is ``time_bnds (time, nv)`` and ``time:bounds`` names it.
    """
    import xarray as xr

    per_stat = statistic_attrs or LANDICE_STATISTIC_ATTRS
    lon, lat = grid.lonlat()
    data_vars: dict[str, tuple[tuple[str, ...], npt.NDArray[Any], dict[str, str]] | tuple[tuple[str, ...], Any]] = {}
    for name in STATISTICS:
        arr = np.asarray(stats[name])[np.newaxis]
        data_vars[name] = (("time", "y", "x"), arr, {**per_stat[name], "grid_mapping": "crs"})
    start = np.asarray(day).astype("datetime64[D]").astype("datetime64[ns]")
    time_attrs = {"long_name": "UTC day", "axis": "T"}
    if time_bounds:
        time_attrs = {"standard_name": "time", **time_attrs, "bounds": "time_bnds"}
        data_vars["time_bnds"] = (("time", "nv"), np.array([[start, start + np.timedelta64(1, "D")]]))
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": ("time", np.array([start], dtype="datetime64[ns]"), time_attrs),
            "y": ("y", grid.y, {"standard_name": "projection_y_coordinate", "units": "m", "axis": "Y"}),
            "x": ("x", grid.x, {"standard_name": "projection_x_coordinate", "units": "m", "axis": "X"}),
            "lat": (("y", "x"), lat.astype(np.float32), {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": (("y", "x"), lon.astype(np.float32), {"standard_name": "longitude", "units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "grid": grid.name, **attrs},
    )
    ds["crs"] = xr.DataArray(np.int32(0), attrs=crs_attrs(grid))
    return ds


def _time_units(ds: Any) -> str:
    return str(ds["time"].encoding.get("units") or ds["time"].attrs.get("units") or TIME_UNITS)


def store_layout(ds: Any, grid: PolarGrid, zarr_format: int = 2) -> Layout:
    """The store layout of a day dataset: dims ``(time, y, x)``, one day per chunk of up to 1024 x 1024 cells,
    time in days; every variable without a time dimension (2-D lat/lon, the grid mapping) is written once. Zarr
    v2 or 3 (``zarr_format``; v3 groups also carry the GeoZarr attributes of the grid's CRS)."""
    y, x = (Coordinate(name, np.asarray(ds[name].values), dict(ds[name].attrs)) for name in ("y", "x"))
    t_attrs = {k: v for k, v in ds["time"].attrs.items() if k not in ("units", "calendar")}
    calendar = str(ds["time"].encoding.get("calendar") or TIME_CALENDAR)
    time = TimeAxis(_time_units(ds), calendar, attrs=t_attrs)
    statics = tuple(
        StaticVariable(str(name), tuple(str(d) for d in var.dims), np.asarray(var.values),
                       _var_attrs(ds, var), _fill(var))
        for name, var in {**ds.coords, **ds.data_vars}.items()
        if "time" not in var.dims and name not in ("y", "x"))
    return Layout(y, x, (1, min(grid.ny, 1024), min(grid.nx, 1024)), time, statics,
                  housekeeping=False, zarr_format=zarr_format,
                  crs=grid.pyproj_crs.to_wkt() if zarr_format == 3 else None)  # GeoZarr attributes: v3 only


def day_slab(ds: Any) -> Slab:
    """The day dataset as the writer's value: every variable with a time dimension (``time_bnds`` included)."""
    units = _time_units(ds)
    variables = {}
    for name, var in {**ds.coords, **ds.data_vars}.items():
        if var.dims[:1] != ("time",) or name == "time":
            continue
        values = np.asarray(var.values)[0]
        attrs = _var_attrs(ds, var)
        if values.dtype.kind == "M":  # CF times (time bounds): integers in the time axis' units
            values = encode_time(values.astype("datetime64[us]").astype(np.int64), units)
            attrs = {**attrs, "units": units, "calendar": str(ds["time"].encoding.get("calendar") or TIME_CALENDAR)}
        fill = _fill(var) if values.dtype.kind != "M" else None
        dims = tuple(str(d) for d in var.dims[1:])
        variables[str(name)] = VarSlice((Piece((0,) * values.ndim, values),), values.dtype, fill, fill, attrs,
                                        None if dims == ("y", "x") else dims)
    return Slab(to_us(ds["time"].values[0]), variables, dict(ds.attrs))


def _fill(var: Any) -> float | int | None:
    """NaN for floats (xarray's default), else the variable's declared _FillValue, else none."""
    declared = var.encoding.get("_FillValue", var.attrs.get("_FillValue"))
    if declared is not None:
        return declared
    return float("nan") if var.dtype.kind == "f" else None


def _var_attrs(ds: Any, var: Any) -> dict[str, Any]:
    """The variable's attributes plus CF ``coordinates`` naming the auxiliary coordinates it lies on (as xarray
    writes them, so lat/lon open as coordinates)."""
    attrs = {k: v for k, v in var.attrs.items() if k != "_FillValue"}
    aux = [str(n) for n, c in ds.coords.items() if n not in ds.dims and c.dims and set(c.dims) <= set(var.dims)]
    if aux and var.dims[:1] == ("time",):
        attrs["coordinates"] = " ".join(aux)
    return attrs


def _recover_swap(store: Path) -> None:
    """Undo a swap left by the former (pre-transaction) writer between its two renames (the store is missing, its
    old copy is present)."""
    if store.exists() or not store.parent.exists():
        return
    olds = sorted(store.parent.glob(f".{store.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds:
        log.warning("%s: restoring the store from an interrupted swap (%s)", store, olds[-1].name)
        os.replace(olds[-1], store)


def recover_grid_store(store: Path) -> tuple[int, int]:
    """Finish a committed transaction and discard an uncommitted one (under the store lock when there is work).
    Returns (replayed, discarded)."""
    _recover_swap(store)
    return recover_store(fsspec.filesystem("file"), str(store))


def open_grid_store(store: Path) -> Any:
    """The daily grid store as an ``xarray.Dataset`` (lazy), after recovery."""
    recover_grid_store(store)
    return open_store(fsspec.filesystem("file"), str(store))


def day_variables(ds: Any) -> list[str]:
    """The variables of a day dataset written per day: every one whose first dimension is ``time`` (not ``time``)."""
    return [str(n) for n, v in ds.variables.items() if v.dims[:1] == ("time",) and n != "time"]


def upsert_day(store: Path, ds: Any, grid: PolarGrid, provenance: tuple[str, ...] = (), zarr_format: int = 2) -> str:
    """Write one day into the store in one crash-safe transaction under the store lock: create the store, replace
    the day, append it, or insert it in time order (the one store writer, :func:`oco_l3.zarr_store.upsert`).
    Every variable whose first dimension is ``time`` is written.

    ``provenance`` names global attributes the store and the day must share (the product identity, beams and
    filters): a difference raises :class:`StoreCorrupt` and the store is left untouched.

    Returns the action (``created``, ``replaced``, ``appended``, ``inserted``).
    """
    store.parent.mkdir(parents=True, exist_ok=True)
    _recover_swap(store)
    slab = day_slab(ds)

    def slabs(writer: Writer) -> list[Slab]:
        if not writer.meta:
            return [slab]
        conflict = provenance_conflict(writer.fmt.attrs(writer.meta, ""), ds.attrs, provenance)
        if conflict:
            raise StoreCorrupt(f"{store}: {conflict}: one store holds one selection (use another output root "
                               "or remove the store to rebuild it)")
        # dataset attributes are those of the day that created the store (later days add none)
        return [Slab(slab.time, slab.variables, {})]

    result = upsert(fsspec.filesystem("file"), str(store), store_layout(ds, grid, zarr_format), slabs)
    return result.action


def write_cogs(
    cog_dir: Path, prefix: str, grid: PolarGrid, stats: dict[str, npt.NDArray[Any]]
) -> list[Path]:
    """One Cloud-Optimized GeoTIFF per statistic (float32 NaN nodata; int32 count with nodata 0 unset)."""
    import rasterio
    from rasterio.transform import Affine
    from rio_cogeo.cogeo import cog_translate, cog_validate
    from rio_cogeo.profiles import cog_profiles

    cog_dir.mkdir(parents=True, exist_ok=True)
    transform = Affine(*grid.affine())
    out = []
    for name in STATISTICS:
        arr = np.asarray(stats[name])
        nodata: float | None = float("nan") if arr.dtype.kind == "f" else None
        final = cog_dir / f"{prefix}_{name}.tif"
        with tempfile.TemporaryDirectory(dir=cog_dir, prefix=".cog-") as tmp:
            src = Path(tmp) / "src.tif"
            profile = {"driver": "GTiff", "height": grid.ny, "width": grid.nx, "count": 1,
                       "dtype": arr.dtype.name, "crs": grid.pyproj_crs.to_wkt(), "transform": transform,
                       "nodata": nodata}
            with rasterio.open(src, "w", **profile) as dst:
                dst.write(arr, 1)
                dst.set_band_description(1, name)
            staged = Path(tmp) / "cog.tif"
            cog_translate(src, staged, cog_profiles.get("deflate"), quiet=True, in_memory=True)
            valid, errors, _ = cog_validate(staged)
            if not valid:
                raise StoreCorrupt(f"{final.name}: produced an invalid COG: {'; '.join(errors)[:200]}")
            os.replace(staged, final)
        out.append(final)
    return out


def write_quicklook(path: Path, grid: PolarGrid, values: npt.NDArray[Any], title: str) -> Path:
    """A polar map of one statistic in the grid's projection: land and coastlines (Natural Earth, bundled),
    parallels and meridians, the cells with data on one colour scale; zoomed on the data (at least 2,000 km
    across). See :func:`oco_l3.quicklook.polar_quicklook_png`."""
    from oco_l3.quicklook import polar_quicklook_png

    return Path(polar_quicklook_png(np.asarray(values, dtype=np.float64), grid, str(path), title, units="m"))
