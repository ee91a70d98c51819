"""Writers of the ICESat-2 gridded statistics: Zarr store (time, y, x), COG per statistic and day, PNG.

Zarr: the store path comes from the product (:mod:`oco_l3.icesat2.products`: ``<root>/icesat2-seaice/<slug>/<grid>.zarr``,
``<root>/icesat2-landice/<grid>.zarr``), Zarr v2, consolidated; variables ``n_segments``, ``mean_segment_length``,
``mean``, ``std`` on dims ``(time, y, x)``, CF ``grid_mapping = "crs"``, 2-D ``lat``/``lon``; sea-ice stores also carry
``time_bnds (time, nv)`` (``time:bounds``). Every variable whose first dimension is ``time`` is written per day.
Every write (create, replace a day, append a day, insert an earlier day in time order) is one crash-safe
transaction (:mod:`oco_l3._txn`) under the store lock (:class:`oco_l3.stores.StoreLock`): the changed chunks
(:mod:`oco_l3._zchunks`) and metadata are staged, the manifest is the commit point, recovery replays or discards.
Re-running a day replaces it, so it is idempotent. Read the store with :func:`open_grid_store` (recovers first).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oco_l3 import _txn
from oco_l3 import _zchunks as _zc
from oco_l3._objectstore import ObjectStore
from oco_l3.errors import StoreCorrupt
from oco_l3.icesat2.binning import STATISTICS
from oco_l3.icesat2.grids import PolarGrid
from oco_l3.icesat2.products import LANDICE_STATISTIC_ATTRS, provenance_conflict

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


def _encoding(grid: PolarGrid, ds: Any) -> dict[str, dict[str, Any]]:
    cy, cx = min(grid.ny, 1024), min(grid.nx, 1024)
    enc: dict[str, dict[str, Any]] = {name: {"chunks": (1, cy, cx)} for name in STATISTICS}
    enc["time"] = {"units": TIME_UNITS, "calendar": TIME_CALENDAR, "dtype": "int64"}
    if "time_bnds" in ds.variables:
        enc["time_bnds"] = {**enc["time"], "chunks": (1, 2)}
    return enc


def _local_fs() -> Any:
    import fsspec

    return fsspec.filesystem("file")


def _render(ds: Any, grid: PolarGrid) -> dict[str, bytes]:
    """Every object of a store holding exactly ``ds`` (rendered by xarray into a scratch folder, then read back)."""
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="oco-l3-icesat2-") as tmp:
        target = Path(tmp) / "s.zarr"
        ds.to_zarr(target, mode="w", encoding=_encoding(grid, ds), zarr_format=2, consolidated=True)
        for path in sorted(target.rglob("*")):
            if path.is_file():
                out[path.relative_to(target).as_posix()] = path.read_bytes()
    return out


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
    from oco_l3.stores import recover_store

    _recover_swap(store)
    return recover_store(_local_fs(), str(store))


def open_grid_store(store: Path) -> Any:
    """The daily grid store as an ``xarray.Dataset`` (lazy), after recovery."""
    import xarray as xr

    recover_grid_store(store)
    if not (store / ".zmetadata").is_file():
        raise StoreCorrupt(f"{store}: no consolidated metadata (missing or not an oco-l3 store)")
    return xr.open_zarr(store, consolidated=True, zarr_format=2)


def _is_blank(store: Path) -> bool:
    """True when ``store`` does not exist or holds nothing but hidden entries (an emptied, never-committed store)."""
    return not store.exists() or all(p.name.startswith(".") for p in store.iterdir())


class _DayWriter:
    """Puts the chunks and metadata of one day's upsert into a transaction overlay (nothing touches the store)."""

    def __init__(self, overlay: _txn.Overlay, store: Path, zmeta: dict[str, Any]) -> None:
        self.overlay = overlay
        self.store = store
        self.zmeta = zmeta
        self.meta: dict[str, Any] = zmeta.get("metadata", {})
        overlay.preload(self.meta)

    def doc(self, key: str) -> dict[str, Any]:
        doc = self.meta.get(key)
        if not isinstance(doc, dict):
            raise StoreCorrupt(f"{self.store}: {key} missing from the consolidated metadata")
        return doc

    def spec(self, name: str) -> _zc.ArraySpec:
        try:
            return _zc.ArraySpec.from_zarray(self.doc(f"{name}/.zarray"))
        except (KeyError, ValueError) as exc:
            raise StoreCorrupt(f"{self.store}: {name}/.zarray is not usable ({exc})") from None

    def times(self) -> tuple[npt.NDArray[np.datetime64], dict[str, Any]]:
        """The stored days (datetime64[ns]) and the time attributes."""
        from xarray.coding.times import decode_cf_datetime

        attrs = self.doc("time/.zattrs")
        raw = _zc.read_1d(self.spec("time"), "time", self.overlay.raw)
        try:
            days = decode_cf_datetime(raw, attrs["units"], attrs.get("calendar"))
        except (KeyError, ValueError) as exc:
            raise StoreCorrupt(f"{self.store}: time coordinate cannot be decoded ({exc})") from None
        return np.asarray(days, dtype="datetime64[ns]"), attrs

    def check(self, grid: PolarGrid, ds: Any, provenance: tuple[str, ...] = ()) -> None:
        ny, nx = self.spec("y").shape[0], self.spec("x").shape[0]
        if (ny, nx) != (grid.ny, grid.nx):
            raise StoreCorrupt(f"{self.store}: grid {ny}x{nx} does not match {grid.name} {grid.ny}x{grid.nx}")
        for name in day_variables(ds):
            spec = self.spec(name)
            if spec.chunks[0] != 1 or spec.shape[1:] != ds[name].shape[1:]:
                raise StoreCorrupt(f"{self.store}: {name} has shape {spec.shape} chunks {spec.chunks}, "
                                   f"expected (time, {', '.join(map(str, ds[name].shape[1:]))}) in chunks of one day")
        conflict = provenance_conflict(self.meta.get(".zattrs", {}), ds.attrs, provenance)
        if conflict:
            raise StoreCorrupt(f"{self.store}: {conflict}: one store holds one selection (use another output root "
                               "or remove the store to rebuild it)")

    def put_doc(self, key: str, doc: dict[str, Any]) -> None:
        self.meta[key] = doc
        self.overlay.put(key, _zc.dumps(doc))

    def resize(self, name: str, n_time: int) -> _zc.ArraySpec:
        doc = dict(self.doc(f"{name}/.zarray"))
        doc["shape"] = [n_time, *doc["shape"][1:]]
        self.put_doc(f"{name}/.zarray", doc)
        return _zc.ArraySpec.from_zarray(doc)

    def write_day(self, spec: _zc.ArraySpec, name: str, index: int, values: npt.NDArray[Any]) -> None:
        """Every chunk of day ``index`` of ``name``; chunks holding only the fill value are deleted (as zarr does)."""
        pad = 0 if spec.fill is None else spec.fill
        values = np.asarray(values, dtype=spec.dtype)
        for inner in _inner_chunks(spec):
            part = values[tuple(slice(j * c, (j + 1) * c) for j, c in zip(inner, spec.chunks[1:], strict=True))]
            block = np.full((1, *spec.chunks[1:]), pad, dtype=spec.dtype)
            block[0][tuple(slice(0, n) for n in part.shape)] = part
            key = spec.key(name, (index, *inner))
            if spec.is_fill(block):
                self.overlay.drop(key)
            else:
                self.overlay.put(key, spec.encode(block))

    def shift_days(self, spec: _zc.ArraySpec, name: str, first: int, n_old: int) -> None:
        """Move the chunks of days ``first..n_old-1`` one day later (raw bytes, last day first)."""
        for k in range(n_old - 1, first - 1, -1):
            for inner in _inner_chunks(spec):
                raw = self.overlay.raw(spec.key(name, (k, *inner)))
                dst = spec.key(name, (k + 1, *inner))
                if raw is None:
                    self.overlay.drop(dst)
                else:
                    self.overlay.put(dst, raw)

    def day_values(self, name: str, ds: Any) -> npt.NDArray[Any]:
        """The day's values of ``name`` as stored: datetimes (``time_bnds``) encoded with the array's own units."""
        values = np.asarray(ds[name].values[0])
        if values.dtype.kind != "M":
            return values
        from xarray.coding.times import encode_cf_datetime

        attrs = self.doc(f"{name}/.zattrs")
        encoded, _, _ = encode_cf_datetime(values, attrs.get("units", TIME_UNITS), attrs.get("calendar"),
                                           dtype=self.spec(name).dtype)
        return np.asarray(encoded)

    def write_times(self, days: npt.NDArray[np.datetime64], attrs: dict[str, Any], first: int) -> None:
        from xarray.coding.times import encode_cf_datetime

        spec = self.resize("time", days.size)
        encoded, _, _ = encode_cf_datetime(days, attrs["units"], attrs.get("calendar"), dtype=spec.dtype)
        _zc.write_1d(spec, "time", np.asarray(encoded, dtype=spec.dtype), first // spec.chunks[0], self.overlay.put)

    def consolidate(self) -> None:
        self.overlay.put(".zmetadata", _zc.dumps({**self.zmeta, "metadata": self.meta}))


def day_variables(ds: Any) -> list[str]:
    """The variables of a day dataset written per day: every one whose first dimension is ``time`` (not ``time``)."""
    return [str(n) for n, v in ds.variables.items() if v.dims[:1] == ("time",) and n != "time"]


def _inner_chunks(spec: _zc.ArraySpec) -> Iterator[tuple[int, ...]]:
    """Chunk indices over every axis but the first (time)."""
    return itertools.product(*(range(spec.n_chunks(axis)) for axis in range(1, len(spec.shape))))


def _upsert(overlay: _txn.Overlay, store: Path, zmeta: dict[str, Any], ds: Any, grid: PolarGrid,
            provenance: tuple[str, ...] = ()) -> str:
    """Stage one day's change into ``overlay``; returns the action."""
    w = _DayWriter(overlay, store, zmeta)
    w.check(grid, ds, provenance)
    day = np.datetime64(ds["time"].values[0], "ns")
    times, time_attrs = w.times()
    hits = np.flatnonzero(times == day)
    names = day_variables(ds)
    if hits.size:
        i = int(hits[0])
        for name in names:
            w.write_day(w.spec(name), name, i, w.day_values(name, ds))
        return "replaced"
    n = times.size
    i = int(np.searchsorted(times, day))
    for name in names:
        old = w.spec(name)
        values = w.day_values(name, ds)
        spec = w.resize(name, n + 1)
        if i < n:
            w.shift_days(old, name, i, n)
        w.write_day(spec, name, i, values)
    w.write_times(np.insert(times, i, day), time_attrs, i)
    w.consolidate()
    return "appended" if i == n else "inserted"


def upsert_day(store: Path, ds: Any, grid: PolarGrid, provenance: tuple[str, ...] = ()) -> str:
    """Write one day into the store in one crash-safe transaction under the store lock: create the store, replace
    the day, append it, or insert it in time order. Every variable whose first dimension is ``time`` is written.

    ``provenance`` names global attributes the store and the day must share (the product identity, beams and
    filters): a difference raises :class:`StoreCorrupt` and the store is left untouched.

    Returns the action (``created``, ``replaced``, ``appended``, ``inserted``).
    """
    from oco_l3.stores import StoreLock

    store.parent.mkdir(parents=True, exist_ok=True)
    fs = _local_fs()
    with StoreLock(fs, str(store)):
        _recover_swap(store)
        objects = ObjectStore(fs, str(store))
        _txn.recover(objects)
        overlay = _txn.Overlay(objects)
        raw = objects.read(".zmetadata")
        if raw is None:
            if not _is_blank(store):
                raise StoreCorrupt(f"{store}: exists without consolidated metadata (not an oco-l3 store)")
            for key, data in _render(ds, grid).items():
                overlay.put(key, data)
            action = "created"
        else:
            try:
                zmeta = json.loads(raw)
            except ValueError:
                raise StoreCorrupt(f"{store}: consolidated metadata is not JSON") from None
            if not isinstance(zmeta, dict) or not isinstance(zmeta.get("metadata"), dict):
                raise StoreCorrupt(f"{store}: consolidated metadata has no 'metadata' mapping")
            action = _upsert(overlay, store, zmeta, ds, grid, provenance)
        try:
            _txn.commit(objects, overlay)
        except BaseException:
            overlay.discard()
            raise
    return action


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
