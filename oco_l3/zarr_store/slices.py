"""The target-focused product's stores: capture slices on a target grid (``<root>/<mission>/<naming>/<id>.zarr``).

One store holds one (mission, QF pass, target). Root variables live at the store root, ``Group/var`` keys in a Zarr
group ``Group``; every data variable has dims ``(time, latitude, longitude)`` and every group carries its own
``time``/``latitude``/``longitude`` coordinates, so ``xr.open_zarr(path, group="Retrieval")`` works alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np

from oco_l3.grids import GridSpec
from oco_l3.targets import is_safe_id
from oco_l3.zarr_store._upsert import CommitResult, upsert
from oco_l3.zarr_store.layout import Coordinate, Layout, Piece, Slab, TimeAxis, VarSlice, to_us

DEFAULT_CHUNKING: Mapping[str, int] = {"latitude": 250, "longitude": 250, "time": 5}
COORDS = ("time", "latitude", "longitude")

Window = tuple[int, int, int, int]


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

    def slab(self) -> Slab:
        """This slice as the writer's value: one piece per variable (floats stored as float32)."""
        r0, _, c0, _ = self.bounds
        variables = {}
        for key, values in self.data.items():
            dtype = np.dtype(np.float32) if values.dtype.kind == "f" else values.dtype
            fill = self.fill(key)
            variables[key] = VarSlice((Piece((r0, c0), values),), dtype, fill, fill, self.var_attrs.get(key, {}))
        return Slab(to_us(self.time), variables, self.attrs)


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


def lat_lon(grid: GridSpec) -> tuple[Coordinate, Coordinate]:
    """The CF latitude/longitude cell-centre coordinates of an OCO grid (target or global)."""
    return tuple(  # type: ignore[return-value]
        Coordinate(name, np.asarray(values, dtype="<f8"),
                   {"units": units, "standard_name": name, "long_name": f"{name} of the cell centre", "axis": axis})
        for name, values, units, axis in (("latitude", grid.latitude, "degrees_north", "Y"),
                                          ("longitude", grid.longitude, "degrees_east", "X")))


def target_layout(grid: GridSpec, chunking: Mapping[str, int] | Sequence[int] | None = None,
                  zarr_format: int = 2) -> Layout:
    """Zarr v2 (or 3), chunks ``(time, latitude, longitude)`` (default 5 / 250 / 250), flat chunk keys, time in
    microseconds since 1970 (the capture's first sounding), EPSG:4326."""
    c = _chunks(chunking)
    lat, lon = lat_lon(grid)
    time = TimeAxis(attrs={"standard_name": "time", "long_name": "capture start time", "axis": "T"})
    return Layout(lat, lon, (c["time"], c["latitude"], c["longitude"]), time, zarr_format=zarr_format,
                  crs="EPSG:4326")


def upsert_slices(
    fs: fsspec.AbstractFileSystem,
    store_path: str,
    slices: Sequence[SliceData],
    *,
    chunking: Mapping[str, int] | Sequence[int] | None = None,
    title: str = "",
    global_attrs: Mapping[str, Any] | None = None,
    lock_timeout: float = 600.0,
    zarr_format: int = 2,
) -> CommitResult:
    """Insert or replace ``slices`` (by time) in the store at ``store_path``, atomically.

    A slice whose time exists replaces that slice (new data wins; variables it lacks become missing); new times
    land in time order. Appending writes only the last time chunk(s) of each variable; inserting before the end
    rewrites the variables from the insertion point on. Cost does not depend on the number of slices stored.
    """
    if not slices:
        raise ValueError("upsert_slices needs at least one slice")
    grid = slices[0].grid
    if any(s.grid != grid for s in slices):
        raise ValueError("all slices of one upsert must share one grid")
    attrs = dict(global_attrs or {})
    if title:
        attrs["title"] = title
    return upsert(fs, store_path, target_layout(grid, chunking, zarr_format), [s.slab() for s in slices],
                  attrs=attrs, lock_timeout=lock_timeout)
