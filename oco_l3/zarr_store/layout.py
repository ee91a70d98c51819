"""Plain values that configure the one writer: the store layout and what one time slice holds.

:class:`Layout` says how a product's stores look (dims and coordinates, chunking, compressor, time encoding,
time-independent variables); it is built once per product and store (``target_layout`` in :mod:`.slices`,
``global_layout`` in :mod:`oco_l3.global_product`, the ICESat-2 layout from its day dataset). :class:`Slab` is
what one time step contributes to a store: per variable, zero or more rectangular :class:`Piece` s (everything
outside them is missing). The writer takes both and nothing else.

An existing store keeps the encoding in its own metadata (codec, separator, chunking, time units): the layout
only decides how NEW arrays and stores are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numcodecs.abc import Codec

from oco_l3.zarr_store._codec import COMPRESSOR

#: Time units of the OCO stores (CF). ICESat-2 daily grids use ``days since 1970-01-01``.
MICROSECONDS = "microseconds since 1970-01-01T00:00:00"
_UNIT_US = {"microseconds": 1, "milliseconds": 1_000, "seconds": 1_000_000, "minutes": 60_000_000,
            "hours": 3_600_000_000, "days": 86_400_000_000}


@dataclass(frozen=True)
class TimeAxis:
    """The CF time coordinate: units (``<unit> since <epoch>``), calendar, chunk length and attributes."""

    units: str = MICROSECONDS
    calendar: str = "standard"
    chunk: int = 1024
    attrs: Mapping[str, Any] = field(default_factory=lambda: {"standard_name": "time", "axis": "T"})

    def encode(self, us: np.ndarray) -> np.ndarray:
        """Microseconds since 1970 -> integer offsets in ``units``; ValueError when a time is not a whole unit."""
        return encode_time(us, self.units)


@dataclass(frozen=True, eq=False)
class Coordinate:
    """A 1-D spatial coordinate (cell centres) with its attributes."""

    name: str
    values: np.ndarray
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class StaticVariable:
    """A time-independent variable written with the store (2-D lat/lon, a CF grid mapping); never rewritten."""

    name: str
    dims: tuple[str, ...]
    values: np.ndarray
    attrs: Mapping[str, Any] = field(default_factory=dict)
    fill: float | int | None = None


@dataclass(frozen=True, eq=False)
class Layout:
    """How a product's stores look. ``chunks`` is ``(time, y, x)``; ``y``/``x`` are the spatial coordinates (every
    data variable has dims ``(time, y.name, x.name)`` unless its slice says otherwise); variables ``Group/name``
    live in Zarr group ``Group``, which carries its own copies of the coordinates. ``separator`` is the chunk key
    separator of new arrays (``.`` flat, ``/`` nested: a nested array can list one time step's chunks cheaply).
    ``zarr_format`` selects the metadata documents of a NEW store (2 or 3; an existing store must have the same
    format). ``crs`` (anything :class:`pyproj.CRS` takes; the y/x coordinates are in it) gives Zarr v3 groups the
    GeoZarr ``proj:``/``spatial:`` attributes (:mod:`.geozarr`). With ``housekeeping`` the dataset attributes get
    ``Conventions``, ``title``, ``software_version``, ``date_created``/``date_modified`` and
    ``time_coverage_start/end``."""

    y: Coordinate
    x: Coordinate
    chunks: tuple[int, int, int]
    time: TimeAxis = field(default_factory=TimeAxis)
    statics: tuple[StaticVariable, ...] = ()
    codec: Codec = field(default_factory=lambda: COMPRESSOR)
    separator: str = "."
    zarr_format: int = 2
    crs: str | None = None
    #: Add the CF housekeeping attributes (off: the dataset attributes are exactly the slabs' and the caller's).
    housekeeping: bool = True

    def __post_init__(self) -> None:
        if min(self.chunks) < 1:
            raise ValueError(f"chunk sizes must be positive, got {self.chunks}")
        if self.zarr_format not in (2, 3):
            raise ValueError(f"zarr_format {self.zarr_format} is not written by this version (2 or 3)")

    @property
    def dims(self) -> tuple[str, str, str]:
        return ("time", self.y.name, self.x.name)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.y.values.size), int(self.x.values.size))

    @property
    def coordinate_names(self) -> frozenset[str]:
        return frozenset(("time", self.y.name, self.x.name))


@dataclass(frozen=True, eq=False)
class Piece:
    """Values of one variable in a box starting at ``origin`` (one index per inner dim) of one time step."""

    origin: tuple[int, ...]
    values: np.ndarray

    @property
    def stop(self) -> tuple[int, ...]:
        return tuple(o + n for o, n in zip(self.origin, self.values.shape, strict=True))


@dataclass(frozen=True, eq=False)
class VarSlice:
    """One variable in one time step: its pieces (none: missing everywhere), the value marking missing data in
    them (``missing``: NaN for floats, the integer fill for integers), the stored dtype and fill of a NEW array
    (``fill`` None: no fill value), attributes, and the inner dims when they are not the layout's ``(y, x)``."""

    pieces: tuple[Piece, ...]
    dtype: np.dtype
    missing: float | int | None
    fill: float | int | None
    attrs: Mapping[str, Any] = field(default_factory=dict)
    dims: tuple[str, ...] | None = None


@dataclass(frozen=True, eq=False)
class Slab:
    """What one time step contributes to one store. ``time`` in microseconds since 1970; ``attrs`` are dataset
    attributes (``source_granules`` accumulate across commits, other keys replace)."""

    time: int
    variables: Mapping[str, VarSlice]
    attrs: Mapping[str, Any] = field(default_factory=dict)


def to_us(t: Any) -> int:
    """A datetime64 (any unit) as integer microseconds since 1970."""
    return int(np.asarray(t).astype("datetime64[us]").astype(np.int64))


def _units(units: str) -> tuple[int, int]:
    """``<unit> since <epoch>`` -> (microseconds per unit, epoch in microseconds)."""
    step, _, epoch = str(units).partition(" since ")
    scale = _UNIT_US.get(step.strip().lower())
    if scale is None or not epoch.strip():
        raise ValueError(f"unsupported time units {units!r}")
    text = epoch.strip().replace(" ", "T").rstrip("Z")
    if "+" in text[10:]:
        text = text[: 10 + text[10:].index("+")]
    return scale, to_us(np.datetime64(text, "us"))


def encode_time(us: np.ndarray, units: str) -> np.ndarray:
    scale, base = _units(units)
    offset = np.asarray(us, dtype=np.int64) - base
    if np.any(offset % scale):
        raise ValueError(f"a time is not a whole number of {units!r}")
    return offset // scale


def decode_time(values: np.ndarray, units: str) -> np.ndarray:
    """Stored integer offsets -> microseconds since 1970 (int64)."""
    scale, base = _units(units)
    return np.asarray(values).astype(np.int64) * scale + base
