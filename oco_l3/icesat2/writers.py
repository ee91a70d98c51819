"""Writers of the ICESat-2 gridded statistics: Zarr store (time, y, x), COG per statistic and day, PNG.

Zarr: ``<root>/<product>/<grid>.zarr`` (Zarr v2, consolidated), variables ``n_segments``,
``mean_segment_length``, ``mean``, ``std`` on dims ``(time, y, x)``, CF ``grid_mapping = "crs"``, 2-D ``lat``/``lon``.
A day already in the store is replaced in place (region write), a new day is appended, so re-running a day is
idempotent. The first creation is atomic (written to a temporary folder, then renamed).
TODO: move the day upsert onto :mod:`oco_l3.stores` (transactional, crash-safe) once it lands; today a crash in
the middle of a region write can leave a partially written day.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oco_l3.errors import StoreCorrupt
from oco_l3.icesat2.binning import STATISTICS
from oco_l3.icesat2.grids import PolarGrid

log = logging.getLogger(__name__)

_ATTRS: dict[str, dict[str, str]] = {
    "n_segments": {"long_name": "number of segments in the cell", "units": "1"},
    "mean_segment_length": {"long_name": "mean segment length", "units": "m"},
    "mean": {"long_name": "segment-length-weighted mean", "units": "m"},
    "std": {"long_name": "segment-length-weighted standard deviation", "units": "m"},
}


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
    grid: PolarGrid, day: np.datetime64, stats: dict[str, npt.NDArray[Any]], attrs: dict[str, Any]
) -> Any:
    """One day of statistics as an ``xarray.Dataset`` with dims (time, y, x)."""
    import xarray as xr

    lon, lat = grid.lonlat()
    data_vars = {}
    for name in STATISTICS:
        arr = np.asarray(stats[name])[np.newaxis]
        data_vars[name] = (("time", "y", "x"), arr, {**_ATTRS[name], "grid_mapping": "crs"})
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": ("time", np.array([day], dtype="datetime64[ns]"), {"long_name": "UTC day", "axis": "T"}),
            "y": ("y", grid.y, {"standard_name": "projection_y_coordinate", "units": "m", "axis": "Y"}),
            "x": ("x", grid.x, {"standard_name": "projection_x_coordinate", "units": "m", "axis": "X"}),
            "lat": (("y", "x"), lat.astype(np.float32), {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": (("y", "x"), lon.astype(np.float32), {"standard_name": "longitude", "units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "grid": grid.name, **attrs},
    )
    ds["crs"] = xr.DataArray(np.int32(0), attrs=crs_attrs(grid))
    ds["mean"].attrs["cell_methods"] = "area: mean (weighted by segment length)"
    return ds


def _encoding(grid: PolarGrid) -> dict[str, dict[str, Any]]:
    cy, cx = min(grid.ny, 1024), min(grid.nx, 1024)
    enc: dict[str, dict[str, Any]] = {name: {"chunks": (1, cy, cx)} for name in STATISTICS}
    enc["time"] = {"units": "days since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"}
    return enc


def _write_whole(store: Path, ds: Any, grid: PolarGrid) -> None:
    """Write ``ds`` as the whole store: into a temporary sibling, then swap it in by renames."""
    store.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{store.name}.new-", dir=store.parent))
    try:
        ds.to_zarr(tmp / "s.zarr", mode="w", encoding=_encoding(grid), zarr_format=2, consolidated=True)
        if not store.exists():
            os.replace(tmp / "s.zarr", store)
            return
        old = store.with_name(f".{store.name}.old-{uuid.uuid4().hex}")
        os.replace(store, old)  # a crash here leaves only the .old copy: _recover_swap() restores it
        os.replace(tmp / "s.zarr", store)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _recover_swap(store: Path) -> None:
    """Undo a swap interrupted between its two renames (the store is missing, its old copy is present)."""
    if store.exists() or not store.parent.exists():
        return
    olds = sorted(store.parent.glob(f".{store.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds:
        log.warning("%s: restoring the store from an interrupted swap (%s)", store, olds[-1].name)
        os.replace(olds[-1], store)


def upsert_day(store: Path, ds: Any, grid: PolarGrid) -> str:
    """Write one day into the store: create it, replace the day, append it, or insert it in time order.

    Returns the action (``created``, ``replaced``, ``appended``, ``inserted``).
    """
    import xarray as xr

    day = ds["time"].values[0]
    _recover_swap(store)
    if not store.exists():
        _write_whole(store, ds, grid)
        return "created"
    try:
        existing = xr.open_zarr(store, consolidated=True, zarr_format=2)
    except Exception as exc:  # noqa: BLE001 -- any failure to open means the store is unusable
        raise StoreCorrupt(f"{store}: cannot open existing store ({type(exc).__name__})") from None
    with existing:
        if existing.sizes.get("y") != grid.ny or existing.sizes.get("x") != grid.nx:
            raise StoreCorrupt(f"{store}: grid {existing.sizes.get('y')}x{existing.sizes.get('x')} "
                               f"does not match {grid.name} {grid.ny}x{grid.nx}")
        times = existing["time"].values
    data = ds[list(STATISTICS)].drop_vars(["lat", "lon", "x", "y"])
    hits = np.flatnonzero(times == day)
    if hits.size:
        i = int(hits[0])
        data.drop_vars("time").to_zarr(store, region={"time": slice(i, i + 1)}, zarr_format=2, consolidated=True)
        return "replaced"
    if times.size and day < times.max():  # keep time sorted: rebuild the (small, daily) store with the new day
        with xr.open_zarr(store, consolidated=True, zarr_format=2) as old:
            merged = xr.concat([old.load(), ds], dim="time", data_vars="minimal", coords="minimal",
                               compat="override", join="override").sortby("time")
        for name in merged.variables:
            merged[name].encoding = {}
        _write_whole(store, merged, grid)
        return "inserted"
    data.to_zarr(store, append_dim="time", zarr_format=2, consolidated=True)
    return "appended"


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
    """A PNG of one statistic in the grid's polar projection (plain x/y image, km axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.ma.masked_invalid(np.asarray(values, dtype=np.float64))
    rows, cols = np.nonzero(~data.mask)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    try:
        extent = (grid.x_min / 1e3, grid.x_max / 1e3, grid.y_min / 1e3, grid.y_max / 1e3)
        im = ax.imshow(data, extent=extent, origin="upper", cmap="viridis", interpolation="nearest")
        if rows.size:  # zoom on the data with a margin of 20 cells
            pad = 20
            r0, r1 = max(rows.min() - pad, 0), min(rows.max() + pad, grid.ny - 1)
            c0, c1 = max(cols.min() - pad, 0), min(cols.max() + pad, grid.nx - 1)
            ax.set_xlim(grid.x[c0] / 1e3, grid.x[c1] / 1e3)
            ax.set_ylim(grid.y[r1] / 1e3, grid.y[r0] / 1e3)
        ax.set_xlabel(f"x (km, {grid.crs})")
        ax.set_ylabel("y (km)")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8, label="m")
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.png")
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
    return path
