"""Per-target Zarr stores: transactional, idempotent upsert of capture slices (Zarr format 2, consolidated).

One store holds one (mission, QF pass, target). Root variables live at the store root, ``Group/var`` keys in a Zarr
group ``Group``; every data variable has dims ``(time, latitude, longitude)`` and every group carries its own
``time``/``latitude``/``longitude`` coordinates, so ``xr.open_zarr(path, group="Retrieval")`` works alone.

Writes go through :mod:`oco_l3._txn` (overlay -> staged objects -> manifest = commit point -> apply), under a
per-store :class:`StoreLock`. Zarr's array API is not used for writing: the layout is fixed (Zarr v2, C order,
Blosc zstd, chunk keys ``t.y.x``), so metadata is written as JSON and every changed chunk is built whole in numpy
and compressed with numcodecs (:mod:`oco_l3._zchunks`, on a small thread pool). A write reads the consolidated
metadata and the time coordinate; a new store reads nothing else, an append reads only the last time chunk of
the spatial chunks it touches, and chunks that would be all fill are not written (absent chunks read as fill).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import logging
import os
import re
import socket
import threading
import time as _time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np

import oco_l3
from oco_l3 import _txn
from oco_l3 import _zchunks as _zc
from oco_l3._objectstore import ObjectStore, is_local
from oco_l3.errors import StoreCorrupt, StoreLocked
from oco_l3.grids import GridSpec
from oco_l3.targets import is_safe_id

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger(__name__)

DEFAULT_CHUNKING: Mapping[str, int] = {"latitude": 250, "longitude": 250, "time": 5}
TIME_UNITS = "microseconds since 1970-01-01T00:00:00"
TIME_COORD_CHUNK = 1024
COORDS = ("time", "latitude", "longitude")
DIMS = ["time", "latitude", "longitude"]
_SECRET_ATTR = re.compile(r"secret|passw|token|credential|access_?key|auth", re.IGNORECASE)
_DROP_VAR_ATTRS = {"_FillValue", "missing_value", "_ARRAY_DIMENSIONS", "dtype", "scale_factor", "add_offset"}

Window = tuple[int, int, int, int]


# --- values --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SliceData:
    """What one capture contributes to one store (one QF pass).

    ``data`` arrays are full ``grid.shape`` arrays, or ``window``-shaped when ``window=(r0, r1, c0, c1)`` is
    given (everything outside the window is missing). Floats use NaN for missing; integer keys need ``fills``.
    """

    time: np.datetime64
    grid: GridSpec
    data: Mapping[str, np.ndarray]
    fills: Mapping[str, int] = field(default_factory=dict)
    var_attrs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    window: Window | None = None

    def __post_init__(self) -> None:
        r0, r1, c0, c1 = self.window or (0, self.grid.n_lat, 0, self.grid.n_lon)
        if not (0 <= r0 <= r1 <= self.grid.n_lat and 0 <= c0 <= c1 <= self.grid.n_lon):
            raise ValueError(f"slice window {self.window} is outside the grid {self.grid.shape}")
        for key, values in self.data.items():
            _check_key(key)
            if values.shape != (r1 - r0, c1 - c0):
                raise ValueError(f"slice variable {key!r} has shape {values.shape}, expected {(r1 - r0, c1 - c0)}")
            if values.dtype.kind in "iub" and key not in self.fills:
                raise ValueError(f"integer slice variable {key!r} has no fill value")

    @property
    def bounds(self) -> Window:
        return self.window or (0, self.grid.n_lat, 0, self.grid.n_lon)

    def fill(self, key: str) -> float | int:
        return self.fills[key] if self.data[key].dtype.kind in "iub" else float("nan")


@dataclass(frozen=True)
class CommitResult:
    store_path: str
    times_written: tuple[np.datetime64, ...]
    n_times_total: int
    keys_written: int = 0
    keys_deleted: int = 0
    #: key -> size in bytes of every object this commit wrote (checked by :func:`read_back`).
    objects: Mapping[str, int] = field(default_factory=dict)


def _check_key(key: str) -> None:
    parts = key.split("/")
    if not 1 <= len(parts) <= 2 or not all(is_safe_id(p) for p in parts) or parts[-1] in COORDS:
        raise ValueError(f"variable key {key[:60]!r} is not 'name' or 'Group/name' with safe names")


def _chunks(chunking: Mapping[str, int] | Sequence[int] | None) -> dict[str, int]:
    """Accept ``{latitude, longitude, time}`` or a ``(lat, lon, time)`` tuple."""
    if chunking is None:
        return dict(DEFAULT_CHUNKING)
    if isinstance(chunking, Mapping):
        out = {k: int(chunking[k]) for k in ("latitude", "longitude", "time")}
    else:
        lat, lon, t = (int(v) for v in chunking)
        out = {"latitude": lat, "longitude": lon, "time": t}
    if min(out.values()) < 1:
        raise ValueError(f"chunk sizes must be positive, got {out}")
    return out


# --- locking -------------------------------------------------------------------------------------------------
_MEMORY_LOCK = threading.Lock()


class StoreLock:
    """Exclusive per-store writer lock (context manager).

    Local disk: ``fcntl.flock`` on ``<store>.lock`` beside the store (released by the kernel if the process dies).
    S3 (s3fs): a lock object ``<store>.lock`` created with a conditional put (``If-None-Match: *``) holding an
    owner id and a lease expiry. While the lock is held a heartbeat thread renews the lease every ``lease / 4``
    seconds, so a crashed writer's lock expires within ``lease`` (default 2 minutes) and is then broken by the next
    writer; a live writer's lease is broken only if its heartbeat stalls for three renewals.
    Other filesystems (e.g. ``memory``): the same lock object, created check-then-put under a process lock.
    Waits up to ``timeout`` seconds, then raises :class:`StoreLocked`.
    """

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        store_path: str,
        *,
        timeout: float = 600.0,
        lease: float = 120.0,
        poll: float = 0.05,
    ) -> None:
        self.fs = fs
        self.path = store_path.rstrip("/") + ".lock"
        self.timeout = timeout
        self.lease = lease
        self.poll = poll
        self._fd: int | None = None
        self._owner = uuid.uuid4().hex
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> None:
        deadline = _time.monotonic() + self.timeout
        delay = self.poll
        while not self._try_acquire():
            if _time.monotonic() >= deadline:
                raise StoreLocked(f"store {self.path[:-5]} is locked by another writer (waited {self.timeout:g} s)")
            _time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _try_acquire(self) -> bool:
        if is_local(self.fs):
            return self._try_local()
        if not self._try_object():
            return False
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._renew, name=f"lease {self.path}", daemon=True)
        self._heartbeat.start()
        return True

    def _renew(self) -> None:
        """Extend the lease while the lock is held (object stores only)."""
        while not self._stop.wait(self.lease / 4):
            try:
                held = json.loads(self.fs.cat_file(self.path))
                if held.get("owner") != self._owner:
                    log.warning("Store lock %s was taken over; stopping its heartbeat", self.path)
                    return
                self.fs.pipe_file(self.path, self._lock_body())
            except Exception as exc:  # noqa: BLE001 - a missed renewal is retried at the next beat
                log.warning("Could not renew store lock %s: %s", self.path, type(exc).__name__)

    def _try_local(self) -> bool:
        if self._fd is None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _lock_body(self) -> bytes:
        doc = {"owner": self._owner, "host": socket.gethostname(), "pid": os.getpid(),
               "expires": _time.time() + self.lease}
        return json.dumps(doc).encode()

    def _try_object(self) -> bool:
        try:
            self._create_object(self._lock_body())
            return True
        except FileExistsError:
            pass
        try:
            held = json.loads(self.fs.cat_file(self.path))
        except (FileNotFoundError, ValueError):
            return False
        if float(held.get("expires", 0)) < _time.time():
            log.warning("Breaking expired store lock %s (owner %s)", self.path, held.get("owner"))
            self.fs.rm_file(self.path)
        return False

    def _create_object(self, body: bytes) -> None:
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        if protocol in ("s3", "s3a"):
            self.fs.pipe_file(self.path, body, mode="create")
            return
        with _MEMORY_LOCK:
            if self.fs.exists(self.path):
                raise FileExistsError(self.path)
            self.fs.pipe_file(self.path, body)

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=30)
            self._heartbeat = None
        if is_local(self.fs):
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None
            return
        try:
            held = json.loads(self.fs.cat_file(self.path))
        except (FileNotFoundError, ValueError):
            return
        if held.get("owner") == self._owner:
            self.fs.rm_file(self.path)


# --- recovery and reading ------------------------------------------------------------------------------------
def recover_store(fs: fsspec.AbstractFileSystem, store_path: str, *, timeout: float = 600.0) -> tuple[int, int]:
    """Finish committed transactions and discard uncommitted ones. Returns (replayed, discarded)."""
    store = ObjectStore(fs, store_path)
    if not _txn.pending(store):
        return (0, 0)
    with StoreLock(fs, store_path, timeout=timeout):
        return _txn.recover(store)


def _zarr_source(fs: fsspec.AbstractFileSystem, store_path: str) -> Any:
    return store_path if is_local(fs) else fs.get_mapper(store_path)


def open_store(fs: fsspec.AbstractFileSystem, path: str, group: str | None = None) -> xr.Dataset:
    """The store (or one of its groups) as an xarray Dataset, after recovery."""
    import xarray as xr

    recover_store(fs, path)
    if not ObjectStore(fs, path).exists(".zmetadata"):
        raise StoreCorrupt(f"store {path} has no consolidated metadata (missing or not an oco-l3 store)")
    return xr.open_zarr(_zarr_source(fs, path), group=group, consolidated=True)


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
        meta = json.loads(store.read(".zmetadata") or b"")["metadata"]
        wanted = np.array([np.asarray(t).astype("datetime64[us]") for t in times], dtype="datetime64[us]")
        groups = sorted(k.split("/")[0] for k in meta if k.endswith("/.zgroup") and k.count("/") == 1)
        return all(_group_reads_back(store, meta, f"{g}/" if g else "", wanted, objects or {}) for g in ["", *groups])
    except Exception as exc:  # noqa: BLE001 -- any failure means "not readable"
        log.warning("Read-back of %s failed: %s", store_path, exc)
        return False


def _group_reads_back(store: ObjectStore, meta: Mapping[str, Any], prefix: str, wanted: np.ndarray,
                      objects: Mapping[str, int]) -> bool:
    spec = _zc.ArraySpec.from_zarray(meta[f"{prefix}time/.zarray"])
    stored = _decode_time(_zc.read_1d(spec, f"{prefix}time", store.read), meta.get(f"{prefix}time/.zattrs", {}))
    where = np.searchsorted(stored, wanted)
    if (where >= stored.size).any() or (stored[np.minimum(where, stored.size - 1)] != wanted).any():
        log.warning("Read-back of %s: a committed time is missing from %stime", store.root, prefix)
        return False
    for name in (k[len(prefix) : -len("/.zarray")] for k in meta if k.startswith(prefix) and k.endswith("/.zarray")):
        if "/" in name or name in COORDS:
            continue
        arr = _zc.ArraySpec.from_zarray(meta[f"{prefix}{name}/.zarray"])
        if arr.shape[0] != stored.size:
            log.warning("Read-back of %s: %s%s has %d times, the coordinate %d", store.root, prefix, name,
                        arr.shape[0], stored.size)
            return False
        for tc in sorted({int(i) // arr.chunks[0] for i in where}):
            head = arr.key(f"{prefix}{name}", (tc,))
            key = next((k for k in objects if k.startswith(head + arr.separator)), arr.key(f"{prefix}{name}", (tc, 0, 0)))
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


def _decode_time(values: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
    """The stored CF time coordinate (integer offsets + ``units``) as datetime64[us]."""
    units = str(attrs.get("units", "microseconds since 1970-01-01"))
    step, _, epoch = units.partition(" since ")
    unit = {"microseconds": "us", "milliseconds": "ms", "seconds": "s", "nanoseconds": "ns"}[step.strip()]
    base = np.datetime64(epoch.strip().replace(" ", "T").rstrip("Z"), "us")
    return (base + np.asarray(values).astype(np.int64).astype(f"timedelta64[{unit}]")).astype("datetime64[us]")


# --- the upsert ----------------------------------------------------------------------------------------------
def upsert_slices(
    fs: fsspec.AbstractFileSystem,
    store_path: str,
    slices: Sequence[SliceData],
    *,
    chunking: Mapping[str, int] | Sequence[int] | None = None,
    title: str = "",
    global_attrs: Mapping[str, Any] | None = None,
    lock_timeout: float = 600.0,
) -> CommitResult:
    """Insert or replace ``slices`` (by time) in the store at ``store_path``, atomically.

    A slice whose time exists replaces that slice (new data wins; variables it lacks become missing); new times
    land in time order. Appending writes only the last time chunk(s) of each variable; inserting before the end
    rewrites the variables from the insertion point on. Cost does not depend on the number of slices stored.
    """
    batch = _dedupe(slices)
    if not batch:
        raise ValueError("upsert_slices needs at least one slice")
    chunks = _chunks(chunking)
    with StoreLock(fs, store_path, timeout=lock_timeout):
        store = ObjectStore(fs, store_path)
        _txn.recover(store)
        overlay = _txn.Overlay(store)
        try:
            n_total = _Writer(overlay, store_path, batch, chunks).write(title, dict(global_attrs or {}))
            _txn.commit(store, overlay)
        except BaseException:
            overlay.discard()  # staged objects of a transaction that never reached its commit point
            raise
    written, deleted = overlay.committed
    log.info("Committed %d slice(s) to %s (%d times, %d objects written, %d deleted, %d read)",
             len(batch), store_path, n_total, written, deleted, overlay.reads)
    times = tuple(np.datetime64(_to_us(s.time), "us") for s in batch)
    return CommitResult(store_path, times, n_total, written, deleted, dict(overlay.committed_sizes))


def _dedupe(slices: Sequence[SliceData]) -> list[SliceData]:
    """Sorted by time; of two slices with one time the later in the sequence wins."""
    by_time = {_to_us(s.time): s for s in slices}
    batch = [by_time[t] for t in sorted(by_time)]
    if batch and any(s.grid != batch[0].grid for s in batch):
        raise ValueError("all slices of one upsert must share one grid")
    return batch


def _to_us(t: np.datetime64) -> int:
    return int(np.asarray(t).astype("datetime64[us]").astype(np.int64))


def _iso(us: int) -> str:
    return str(np.datetime64(us, "us").astype("datetime64[s]")) + "Z"


@dataclass(frozen=True)
class _TimePlan:
    """Where the batch lands: merged time axis, index per slice, first row whose content moves (``p``)."""

    old: np.ndarray
    merged: np.ndarray
    index: dict[int, int]
    p: int
    old_set: frozenset[int]

    @classmethod
    def build(cls, old: np.ndarray, new: list[int]) -> _TimePlan:
        merged = np.union1d(old, np.asarray(new, dtype=np.int64))
        old_set = frozenset(old.tolist())
        inserted = [t for t in new if t not in old_set]
        p = int(np.searchsorted(old, min(inserted))) if inserted else len(old)
        index = {t: int(np.searchsorted(merged, t)) for t in new}
        return cls(old, merged, index, p, old_set)

    @property
    def shifts(self) -> bool:
        """True when existing rows move (an insertion before the last stored time)."""
        return self.p < len(self.old)


class _Writer:
    """Builds one transaction: metadata as JSON documents, data as whole chunks encoded here (see
    :mod:`oco_l3._zchunks`). Only chunks whose content changes are built; a chunk is read (and decoded) only when
    some of its rows stay or move. Chunks that end up all fill are not written (and deleted if they may exist)."""

    def __init__(self, overlay: _txn.Overlay, store_path: str, batch: list[SliceData], chunks: dict[str, int]):
        self.overlay = overlay
        self.path = store_path
        self.batch = batch
        self.grid = batch[0].grid
        self.chunks = chunks
        self.meta = self._read_meta()

    # -- reading the existing store --
    def _read_meta(self) -> dict[str, Any]:
        raw = self.overlay.raw(".zmetadata")
        if raw is None:
            if self.overlay.raw(".zgroup") is not None:
                raise StoreCorrupt(f"store {self.path} has no consolidated metadata")
            return {}
        try:
            meta = dict(json.loads(raw)["metadata"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreCorrupt(f"store {self.path} has unreadable consolidated metadata: {exc}") from exc
        self.overlay.preload(meta)
        return meta

    def _spec(self, key: str) -> _zc.ArraySpec:
        try:
            return _zc.ArraySpec.from_zarray(self.meta[f"{key}/.zarray"])
        except (KeyError, ValueError, TypeError) as exc:
            raise StoreCorrupt(f"store {self.path}: array {key} has unusable metadata: {exc}") from exc

    def _read_1d(self, key: str) -> np.ndarray:
        try:
            return _zc.read_1d(self._spec(key), key, self.overlay.raw)
        except ValueError as exc:
            raise StoreCorrupt(f"store {self.path}: coordinate {key} does not decode: {exc}") from exc

    def _existing_arrays(self) -> set[str]:
        return {k[: -len("/.zarray")] for k in self.meta if k.endswith("/.zarray")}

    def _old_times(self) -> np.ndarray:
        if "time/.zarray" not in self.meta:
            return np.zeros(0, dtype=np.int64)
        times = self._read_1d("time").astype(np.int64)
        if times.size and np.any(np.diff(times) <= 0):
            raise StoreCorrupt(f"store {self.path} has a time axis that is not strictly increasing")
        return times

    def _check_grid(self) -> None:
        for name, want in (("latitude", self.grid.latitude), ("longitude", self.grid.longitude)):
            if f"{name}/.zarray" not in self.meta:
                raise StoreCorrupt(f"store {self.path} has no {name} coordinate")
            have = self._read_1d(name)
            if have.shape != want.shape or not np.allclose(have, want, rtol=0, atol=1e-9):
                raise StoreCorrupt(f"store {self.path} has a different {name} grid than the new slices")

    # -- writing --
    def write(self, title: str, global_attrs: dict[str, Any]) -> int:
        existing = self._existing_arrays()
        if existing:
            self._check_grid()
        plan = _TimePlan.build(self._old_times(), [_to_us(s.time) for s in self.batch])
        keys = sorted({k for s in self.batch for k in s.data} | {a for a in existing if a.split("/")[-1] not in COORDS})
        groups = sorted({k.split("/")[0] for k in keys if "/" in k})
        attrs = self._dataset_attrs(title, global_attrs, plan)
        for group in ["", *groups]:
            self._write_group(group, plan, existing, attrs)
        specs = {key: self._variable_metadata(key, plan, key in existing) for key in keys}
        jobs = (job for key in keys for job in self._variable_chunks(key, specs[key], plan, key in existing))
        _zc.encode_into(jobs, self.overlay.stage)  # chunk objects are staged as they are encoded
        self._consolidate(existing, ["", *groups])
        return len(plan.merged)

    def _put_json(self, key: str, doc: Any) -> None:
        self.overlay.put(key, _zc.dumps(doc))

    def _write_group(self, group: str, plan: _TimePlan, existing: set[str], attrs: dict[str, Any]) -> None:
        prefix = f"{group}/" if group else ""
        if f"{prefix}time" not in existing:
            self._put_json(f"{prefix}.zgroup", {"zarr_format": 2})
            self._put_json(f"{prefix}.zattrs", attrs)
            self._create_coords(prefix, plan)
            return
        self._put_json(f"{prefix}.zattrs", attrs)
        if len(plan.merged) != len(plan.old) or plan.shifts:
            doc = dict(self.meta[f"{prefix}time/.zarray"], shape=[len(plan.merged)])
            self._put_json(f"{prefix}time/.zarray", doc)
            spec = _zc.ArraySpec.from_zarray(doc)
            _zc.write_1d(spec, f"{prefix}time", plan.merged, plan.p // spec.chunks[0], self.overlay.put)

    def _create_coords(self, prefix: str, plan: _TimePlan) -> None:
        time_attrs: dict[str, Any] = {"_ARRAY_DIMENSIONS": ["time"], "units": TIME_UNITS, "calendar": "standard",
                                      "standard_name": "time", "long_name": "capture start time", "axis": "T"}
        doc = _zc.zarray((len(plan.merged),), (TIME_COORD_CHUNK,), np.dtype("<i8"), None)
        self._put_json(f"{prefix}time/.zarray", doc)
        self._put_json(f"{prefix}time/.zattrs", time_attrs)
        _zc.write_1d(_zc.ArraySpec.from_zarray(doc), f"{prefix}time", plan.merged, 0, self.overlay.put)
        for name, values, units, axis in (("latitude", self.grid.latitude, "degrees_north", "Y"),
                                          ("longitude", self.grid.longitude, "degrees_east", "X")):
            attrs: dict[str, Any] = {"_ARRAY_DIMENSIONS": [name], "units": units, "standard_name": name,
                                     "long_name": f"{name} of the cell centre", "axis": axis}
            doc = _zc.zarray(values.shape, values.shape, np.dtype("<f8"), None)
            self._put_json(f"{prefix}{name}/.zarray", doc)
            self._put_json(f"{prefix}{name}/.zattrs", attrs)
            _zc.write_1d(_zc.ArraySpec.from_zarray(doc), f"{prefix}{name}", values.astype("<f8"), 0, self.overlay.put)

    def _template(self, key: str) -> tuple[np.dtype, float | int, dict[str, Any]]:
        """dtype, fill and attributes of ``key`` from the last slice that has it."""
        src = next(s for s in reversed(self.batch) if key in s.data)
        dtype = np.dtype(np.float32) if src.data[key].dtype.kind == "f" else src.data[key].dtype
        attrs = {k: _zc.jsonable(v) for k, v in src.var_attrs.get(key, {}).items() if k not in _DROP_VAR_ATTRS}
        attrs["_ARRAY_DIMENSIONS"] = DIMS
        return dtype, src.fill(key), attrs

    def _variable_metadata(self, key: str, plan: _TimePlan, exists: bool) -> _zc.ArraySpec:
        """Write ``key``'s ``.zarray``/``.zattrs`` as far as they change; the array's spec after this commit."""
        shape = (len(plan.merged), self.grid.n_lat, self.grid.n_lon)
        if not exists:
            dtype, fill, attrs = self._template(key)
            chunks = (self.chunks["time"], min(self.chunks["latitude"], shape[1]),
                      min(self.chunks["longitude"], shape[2]))
            doc = _zc.zarray(shape, chunks, dtype, _zc.fill_json(dtype.type(fill).item()))
            self._put_json(f"{key}/.zarray", doc)
            self._put_json(f"{key}/.zattrs", attrs)
            return _zc.ArraySpec.from_zarray(doc)
        old = self.meta[f"{key}/.zarray"]
        spec = self._spec(key)
        if spec.shape[1:] != shape[1:] or len(spec.shape) != 3:
            raise StoreCorrupt(f"store {self.path}: array {key} has shape {spec.shape}, expected (*, {shape[1:]})")
        if spec.shape[0] != shape[0]:
            doc = dict(old, shape=list(shape))
            self._put_json(f"{key}/.zarray", doc)
            spec = _zc.ArraySpec.from_zarray(doc)
        if any(key in s.data for s in self.batch):
            _, _, new_attrs = self._template(key)
            if self.meta.get(f"{key}/.zattrs") != new_attrs:
                self._put_json(f"{key}/.zattrs", new_attrs)
        return spec

    def _variable_chunks(
        self, key: str, spec: _zc.ArraySpec, plan: _TimePlan, exists: bool
    ) -> Iterator[tuple[str, np.ndarray, _zc.ArraySpec]]:
        """Every chunk of ``key`` whose content changes, built whole (deletes chunks that become all fill)."""
        rows = _RowPlan.build(key, plan, self.batch, exists, spec)
        values: dict[int, np.ndarray] = {}
        fill = 0 if spec.fill is None else spec.fill  # zarr reads padding as 0 when an array has no fill

        def slice_values(j: int) -> np.ndarray:
            if j not in values:
                s = rows.new[j]
                values[j] = _coerce(s.data[key], spec.dtype, s.fill(key), fill)
            return values[j]

        ct, cy, cx = spec.chunks
        for (iy, ix), tcs in sorted(rows.touched(spec).items()):
            old_cache: dict[int, np.ndarray | None] = {}
            y0, x0 = iy * cy, ix * cx
            y1, x1 = min(y0 + cy, spec.shape[1]), min(x0 + cx, spec.shape[2])
            for tc in sorted(tcs):
                block = np.full(spec.chunks, fill, dtype=spec.dtype)
                nonempty = False
                own_absent = False
                for j in range(tc * ct, min((tc + 1) * ct, spec.shape[0])):
                    s = rows.new.get(j)
                    if s is not None:
                        if key not in s.data:
                            continue
                        r0, r1, c0, c1 = s.bounds
                        a0, a1, b0, b1 = max(r0, y0), min(r1, y1), max(c0, x0), min(c1, x1)
                        if a0 < a1 and b0 < b1:
                            piece = slice_values(j)[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0]
                            block[j - tc * ct, a0 - y0 : a1 - y0, b0 - x0 : b1 - x0] = piece
                            nonempty = nonempty or not spec.is_fill(piece)
                        continue
                    k = int(rows.src_old[j])
                    if k < 0:
                        continue
                    old = self._old_chunk(spec, key, (k // ct, iy, ix), old_cache)
                    if old is None:
                        own_absent = own_absent or k // ct == tc
                        continue
                    block[j - tc * ct] = old[k % ct]
                    nonempty = nonempty or not spec.is_fill(old[k % ct])
                chunk_key = spec.key(key, (tc, iy, ix))
                if nonempty:
                    yield chunk_key, block, spec
                elif tc * ct < rows.n_old and not own_absent:
                    self.overlay.drop(chunk_key)

    def _old_chunk(self, spec: _zc.ArraySpec, key: str, index: tuple[int, int, int],
                   cache: dict[int, np.ndarray | None]) -> np.ndarray | None:
        """The chunk as stored before this transaction (None when absent); keeps the last few decoded."""
        tc = index[0]
        if tc not in cache:
            raw = self.overlay.original(spec.key(key, index))
            try:
                cache[tc] = None if raw is None else spec.decode(raw)
            except (ValueError, RuntimeError) as exc:
                raise StoreCorrupt(f"store {self.path}: chunk {spec.key(key, index)} does not decode: {exc}") from exc
            while len(cache) > 3:
                del cache[min(cache)]
        return cache[tc]

    def _dataset_attrs(self, title: str, global_attrs: dict[str, Any], plan: _TimePlan) -> dict[str, Any]:
        old = json.loads(self.overlay.raw(".zattrs") or b"{}") if self.meta else {}
        attrs: dict[str, Any] = dict(old)
        attrs.update(global_attrs)
        sources = set(old.get("source_granules", []))
        for s in self.batch:
            extra = dict(s.attrs)
            for name in ("source_granules", "source_granule"):
                value = extra.pop(name, None)
                sources.update([value] if isinstance(value, str) else list(value or []))
            attrs.update(extra)
        now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        attrs.update({
            "Conventions": "CF-1.8",
            "title": title or attrs.get("title", ""),
            "source_granules": sorted(sources),
            "software_version": f"oco-l3 {oco_l3.__version__}",
            "date_created": old.get("date_created", now),
            "date_modified": now,
            "time_coverage_start": _iso(int(plan.merged[0])),
            "time_coverage_end": _iso(int(plan.merged[-1])),
        })
        return _clean_attrs(attrs, self.path)

    def _consolidate(self, existing: set[str], groups: list[str]) -> None:
        """Write ``.zmetadata`` at the root (whole hierarchy) and in each group (that group's subtree)."""
        keys = {k for k in self.meta} | {k for k in self.overlay.writes if _txn.is_metadata_key(k)}
        keys = {k for k in keys if not k.endswith(".zmetadata") and k not in self.overlay.deletes}
        docs = {k: json.loads(self.overlay.raw(k) or b"{}") for k in sorted(keys)}
        for group in groups:
            prefix = f"{group}/" if group else ""
            sub = {k[len(prefix) :]: v for k, v in docs.items() if k.startswith(prefix)}
            body = {"zarr_consolidated_format": 1, "metadata": sub}
            self.overlay.put(f"{prefix}.zmetadata", json.dumps(body, indent=1, allow_nan=True).encode())


#: How a time row of one variable changes: not at all, inside its slice window only, or everywhere.
_NONE, _WINDOW, _FULL = 0, 1, 2


@dataclass(frozen=True)
class _RowPlan:
    """Where every time row of one variable comes from after the commit.

    ``new[j]``: row ``j`` is a batch slice; otherwise ``src_old[j]`` is the row it held before (-1: none).
    ``n_old``: rows the array held before (0 for a new array: it has no objects yet).
    """

    new: dict[int, SliceData]
    src_old: np.ndarray
    n_old: int
    change: dict[int, int]

    @classmethod
    def build(cls, key: str, plan: _TimePlan, batch: list[SliceData], exists: bool,
              spec: _zc.ArraySpec) -> _RowPlan:
        n = spec.shape[0]
        n_old = len(plan.old) if exists else 0
        src_old = np.full(n, -1, dtype=np.int64)
        if n_old:
            src_old[np.searchsorted(plan.merged, plan.old)] = np.arange(n_old)
        new = {plan.index[_to_us(s.time)]: s for s in batch}
        change: dict[int, int] = {}
        for j, s in new.items():
            src_old[j] = -1
            if j < n_old:
                change[j] = _FULL  # replaced, or the old row there moved on
            elif key in s.data:
                change[j] = _WINDOW  # beyond the old end: the row is fill (padding or absent chunk) until now
        if exists and plan.shifts:
            for j in range(plan.p, n):
                if j not in new:
                    change[j] = _FULL  # an old row moved here
        return cls(new, src_old, n_old, change)

    def touched(self, spec: _zc.ArraySpec) -> dict[tuple[int, int], set[int]]:
        """(lat chunk, lon chunk) -> time chunks whose content changes there."""
        ct, cy, cx = spec.chunks
        ny, nx = spec.n_chunks(1), spec.n_chunks(2)
        out: dict[tuple[int, int], set[int]] = {}
        for j, how in self.change.items():
            if how == _FULL:
                spatial = [(iy, ix) for iy in range(ny) for ix in range(nx)]
            else:
                r0, r1, c0, c1 = self.new[j].bounds
                if r0 >= r1 or c0 >= c1:
                    continue
                spatial = [(iy, ix) for iy in range(r0 // cy, -(-r1 // cy)) for ix in range(c0 // cx, -(-c1 // cx))]
            for yx in spatial:
                out.setdefault(yx, set()).add(j // ct)
        return out


def _coerce(values: np.ndarray, dtype: np.dtype, src_fill: float | int, dst_fill: Any) -> np.ndarray:
    """Values in the store's dtype; the slice's missing marker becomes the store's fill."""
    if dtype.kind == "f":
        out = values.astype(dtype, copy=True)
        if values.dtype.kind in "iub":
            out[values == src_fill] = np.nan
        return out
    if values.dtype.kind == "f":
        missing = ~np.isfinite(values)
        out = np.where(missing, 0, values).astype(dtype)
        out[missing] = dst_fill
        return out
    out = values.astype(dtype, copy=True)
    out[values == src_fill] = dst_fill
    return out


def _full(values: np.ndarray, bounds: Window, shape: tuple[int, int], dtype: np.dtype, fill: Any) -> np.ndarray:
    r0, r1, c0, c1 = bounds
    if (r0, r1, c0, c1) == (0, shape[0], 0, shape[1]):
        return values
    out = np.full(shape, fill, dtype=dtype)
    out[r0:r1, c0:c1] = values
    return out


def _clean_attrs(attrs: dict[str, Any], path: str) -> dict[str, Any]:
    """JSON-safe attributes without anything that looks like a credential."""
    out = {}
    for key, value in attrs.items():
        if _SECRET_ATTR.search(str(key)):
            log.warning("Dropping attribute %r from %s: it looks like a credential", key, path)
            continue
        out[str(key)] = _zc.jsonable(value)
    return out
