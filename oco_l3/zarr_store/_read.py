"""Reading committed stores: recovery, opening with xarray, and the cheap read-back check after a commit."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np

from oco_l3.errors import StoreCorrupt
from oco_l3.zarr_store import _codec as _zc
from oco_l3.zarr_store import _txn
from oco_l3.zarr_store._codec import ZarrFormat, detect_format
from oco_l3.zarr_store._lock import StoreLock
from oco_l3.zarr_store._objectstore import ObjectStore, is_local
from oco_l3.zarr_store.layout import decode_time

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger(__name__)


def recover_store(fs: fsspec.AbstractFileSystem, store_path: str, *, timeout: float = 600.0) -> tuple[int, int]:
    """Finish committed transactions and discard uncommitted ones. Returns (replayed, discarded)."""
    store = ObjectStore(fs, store_path)
    if not _txn.pending(store):
        return (0, 0)
    with StoreLock(fs, store_path, timeout=timeout):
        return _txn.recover(store)


def zarr_source(fs: fsspec.AbstractFileSystem, store_path: str) -> Any:
    """What ``xr.open_zarr`` takes for a store on ``fs``."""
    return store_path if is_local(fs) else fs.get_mapper(store_path)


def open_store(fs: fsspec.AbstractFileSystem, path: str, group: str | None = None) -> xr.Dataset:
    """The store (or one of its groups) as an xarray Dataset, after recovery."""
    import xarray as xr

    recover_store(fs, path)
    if not is_local(fs):
        fs.invalidate_cache(path)  # s3fs's listing cache may predate the recovery
    if store_format(fs, path) is None:
        raise StoreCorrupt(f"store {path} has no consolidated metadata (missing or not an oco-l3 store)")
    return xr.open_zarr(zarr_source(fs, path), group=group, consolidated=True)


def store_format(fs: fsspec.AbstractFileSystem, path: str) -> ZarrFormat | None:
    """The Zarr format class of the committed store at ``path`` (None: no consolidated store there)."""
    return detect_format(ObjectStore(fs, path).exists)


def read_back(
    fs: fsspec.AbstractFileSystem,
    store_path: str,
    times: Sequence[np.datetime64],
    objects: Mapping[str, int] | None = None,
) -> bool:
    """True when the committed store holds ``times``: every time is in the time coordinate of the root and every
    group, every array's time axis matches it, one chunk of every variable at those times decodes, and every object
    of ``objects`` (key -> size, from :attr:`CommitResult.objects`) is in place with that size. Reads the
    consolidated metadata, the time coordinates and one chunk per variable and time chunk (one this commit wrote
    when there is one), never whole slices: the cost does not grow with the store."""
    try:
        recover_store(fs, store_path)
        if objects and not _objects_in_place(fs, store_path, objects):
            return False
        store = ObjectStore(fs, store_path)
        fmt = detect_format(store.exists)
        if fmt is None:
            raise StoreCorrupt(f"{store_path} has no consolidated metadata")
        meta = fmt.parse_consolidated(store.read(fmt.consolidated) or b"")
        wanted = np.array([np.asarray(t).astype("datetime64[us]").astype(np.int64) for t in times], dtype=np.int64)
        return all(_group_reads_back(fmt, store, meta, f"{g}/" if g else "", wanted, objects or {})
                   for g in ["", *fmt.groups(meta)])
    except Exception as exc:  # noqa: BLE001 -- any failure means "not readable"
        log.warning("Read-back of %s failed: %s", store_path, exc)
        return False


def _group_reads_back(fmt: ZarrFormat, store: ObjectStore, meta: Mapping[str, Any], prefix: str, wanted: np.ndarray,
                      objects: Mapping[str, int]) -> bool:
    spec = fmt.array_spec(meta, f"{prefix}time")
    units = str(fmt.attrs(meta, f"{prefix}time").get("units", ""))
    stored = decode_time(_zc.read_1d(spec, f"{prefix}time", store.read), units)
    where = np.searchsorted(stored, wanted)
    if (where >= stored.size).any() or (stored[np.minimum(where, stored.size - 1)] != wanted).any():
        log.warning("Read-back of %s: a committed time is missing from %stime", store.root, prefix)
        return False
    for name in fmt.arrays(meta):
        if not name.startswith(prefix) or "/" in name[len(prefix) :] or fmt.dims(meta, name)[:1] != ("time",) \
                or name[len(prefix) :] == "time":
            continue
        arr = fmt.array_spec(meta, name)
        if arr.shape[0] != stored.size:
            log.warning("Read-back of %s: %s has %d times, the coordinate %d", store.root, name, arr.shape[0],
                        stored.size)
            return False
        for tc in sorted({int(i) // arr.chunks[0] for i in where}):
            head = arr.key(name, (tc,))
            first = arr.key(name, (tc, *([0] * (len(arr.shape) - 1))))
            key = next((k for k in objects if k.startswith(head + arr.separator)), first)
            raw = store.read(key)
            if raw is not None:
                arr.decode(raw)  # raises when the chunk does not decode to a whole chunk
    return True


def _objects_in_place(fs: fsspec.AbstractFileSystem, store_path: str, objects: Mapping[str, int]) -> bool:
    root = store_path.rstrip("/")
    if is_local(fs):
        sizes = {}
        for key in objects:
            try:
                sizes[key] = os.stat(f"{root}/{key}").st_size
            except OSError:
                sizes[key] = -1
    else:  # one listing per folder instead of one request per object
        sizes = {key: -1 for key in objects}
        folders = {key.rpartition("/")[0] for key in objects}
        for folder in folders:
            path = f"{root}/{folder}" if folder else root
            try:
                listing = fs.ls(path, detail=True, refresh=True)
            except FileNotFoundError:
                continue
            for entry in listing:
                name = str(entry["name"]).split("://", 1)[-1].rstrip("/").rsplit("/", 1)[-1]
                key = f"{folder}/{name}" if folder else name
                if key in sizes and entry.get("type", "file") == "file":
                    sizes[key] = int(entry.get("size") or 0)
    for key, size in objects.items():
        if sizes[key] != size:
            log.warning("Read-back of %s: object %s has %d bytes, committed %d", store_path, key, sizes[key], size)
            return False
    return True
