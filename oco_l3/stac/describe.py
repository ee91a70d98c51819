"""What a committed Zarr store holds, read from its consolidated metadata and 1-D coordinates (never its data).

:func:`describe_store` is the catalogue's only view of a store: the STAC store item (datacube dimensions,
variables, units, time range) and the repair of missing capture/day items are derived from it, so the catalogue
always follows what is committed. Reads the consolidated metadata (through the store package's Zarr-format seam, ``ZarrV3`` or ``ZarrV2``) and the 1-D
coordinate arrays (time, and the horizontal
axes): a few small objects, whatever the size of the store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np

from oco_l3.errors import StoreCorrupt
from oco_l3.zarr_store._codec import ZarrFormat, ZarrV2, ZarrV3, read_1d
from oco_l3.zarr_store._objectstore import ObjectStore

_UNITS = {"microseconds": np.timedelta64(1, "us"), "milliseconds": np.timedelta64(1, "ms"),
          "seconds": np.timedelta64(1, "s"), "minutes": np.timedelta64(1, "m"), "hours": np.timedelta64(1, "h"),
          "days": np.timedelta64(1, "D")}
_CF_TIME = re.compile(r"^\s*(\w+)\s+since\s+(\S+?)(?:[ T](\S+?))?\s*$")


@dataclass(frozen=True)
class ArrayInfo:
    """One array of the store: its Zarr path (``Group/name``), dims, dtype and CF attributes."""

    path: str
    dims: tuple[str, ...]
    dtype: str
    attrs: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class StoreDescription:
    """The committed content of one store (see the module docstring)."""

    path: str
    attrs: Mapping[str, Any]
    times: np.ndarray  # datetime64[us], ascending
    coords: Mapping[str, np.ndarray] = field(default_factory=dict)  # 1-D horizontal coordinates by name
    arrays: tuple[ArrayInfo, ...] = ()

    @property
    def data_arrays(self) -> tuple[ArrayInfo, ...]:
        """The arrays with a time axis (the data variables), coordinates excluded."""
        return tuple(a for a in self.arrays if "time" in a.dims and a.name not in ("time", *self.coords))

    def coordinate_attrs(self, name: str) -> Mapping[str, Any]:
        return next((a.attrs for a in self.arrays if a.path == name), {})


def decode_cf_times(values: np.ndarray, units: str) -> np.ndarray:
    """CF ``<unit> since <date>`` integer offsets as datetime64[us] (the units oco-l3's writers use)."""
    match = _CF_TIME.match(units or "")
    if not match or match.group(1) not in _UNITS:
        raise StoreCorrupt(f"time units {units!r} are not '<unit> since <date>'")
    start = match.group(2) + ("T" + match.group(3) if match.group(3) else "")
    epoch = np.datetime64(start.rstrip("Z"), "us")
    step = _UNITS[match.group(1)].astype("timedelta64[us]")
    return epoch + np.asarray(values).astype(np.int64) * step


def describe_store(fs: fsspec.AbstractFileSystem, path: str) -> StoreDescription:
    """Read the description of the committed store at ``path`` (raises :class:`StoreCorrupt` if unreadable)."""
    store = ObjectStore(fs, path)
    fmt: ZarrFormat = ZarrV3  # output.format: zarr3 stores, else Zarr v2
    raw = store.read(ZarrV3.consolidated)
    if raw is None:
        fmt, raw = ZarrV2, store.read(ZarrV2.consolidated)
    if raw is None:
        raise StoreCorrupt(f"store {path} has no consolidated metadata")
    try:
        meta = fmt.parse_consolidated(raw)
    except ValueError as exc:
        raise StoreCorrupt(f"store {path}: {exc}") from None
    arrays = tuple(_array(fmt, meta, p) for p in fmt.arrays(meta))
    by_path = {a.path: a for a in arrays}
    if "time" not in by_path:
        raise StoreCorrupt(f"store {path} has no time coordinate")
    times = decode_cf_times(_read(fmt, store, meta, "time"), str(by_path["time"].attrs.get("units", "")))
    horizontal = [n for n in ("latitude", "longitude", "y", "x") if n in by_path and len(by_path[n].dims) == 1]
    coords: dict[str, np.ndarray] = {n: _read(fmt, store, meta, n).astype(np.float64) for n in horizontal}
    return StoreDescription(path, fmt.attrs(meta, ""), np.sort(times), coords, arrays)


def _array(fmt: ZarrFormat, meta: Mapping[str, Any], path: str) -> ArrayInfo:
    return ArrayInfo(path, fmt.dims(meta, path), str(fmt.array_spec(meta, path).dtype), fmt.attrs(meta, path))


def _read(fmt: ZarrFormat, store: ObjectStore, meta: Mapping[str, Any], path: str) -> np.ndarray:
    try:
        return read_1d(fmt.array_spec(meta, path), path, store.read)
    except (KeyError, ValueError) as exc:
        raise StoreCorrupt(f"store {store.root}: {path} is unreadable ({exc})") from None
