"""Low-level HDF5 access shared by the Lite FP and SIF readers (h5py; only the datasets asked for are read).

Every failure of the container becomes :class:`GranuleUnreadable`, every missing or ill-shaped required dataset
:class:`GranuleSchemaMismatch`; both name the file and the problem in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from oco_l3._h5index import Planner, RowsAfter
from oco_l3.errors import GranuleSchemaMismatch
from oco_l3.soundings import Variable

log = logging.getLogger(__name__)

#: Attributes carried from a science variable to the output.
KEPT_ATTRS = ("units", "long_name", "comment", "standard_name")
#: Attributes that mark missing values.
FILL_ATTRS = ("missing_value", "_FillValue")


@dataclass(frozen=True)
class Source:
    """An open granule: the h5py file, the name used in messages and, for a granule read in place, the
    :class:`~oco_l3._h5index.Planner` that fetches what the reader is about to read in a few concurrent batches
    (``None`` for a local file: the ``prefetch_*`` calls then do nothing)."""

    file: h5py.File
    name: str
    plan: Planner | None = None

    def mismatch(self, problem: str) -> GranuleSchemaMismatch:
        return GranuleSchemaMismatch(f"{self.name}: {problem}")

    def prefetch_headers(self, data: Callable[[str], bool] | None = None, rows_after: RowsAfter | None = None) -> None:
        """Fetch the object headers of every member of the root and of its groups, with the chunk indexes of their
        datasets (:meth:`~oco_l3._h5index.Planner.members`: each group walked as soon as its links are in), the
        chunks of the datasets ``data`` names and, meanwhile, the string rows ``rows_after`` names."""
        if self.plan is not None:
            self.plan.members([""], depth=1, data=data, rows_after=rows_after)

    def prefetch(self, keys: Iterable[str]) -> None:
        """Fetch the data of the datasets ``keys`` (missing ones are skipped)."""
        if self.plan is not None:
            self.plan.data([k for k in keys if get_dataset(self, k) is not None])

    def prefetch_rows(self, keys: Iterable[str], runs: Sequence[tuple[int, int]]) -> None:
        """Fetch what reading the row ``runs`` of the string datasets ``keys`` needs."""
        if self.plan is not None:
            self.plan.rows([k for k in keys if get_dataset(self, k) is not None], runs)


def split_key(key: str) -> tuple[str, str]:
    """``"Retrieval/psurf"`` -> ``("Retrieval", "psurf")``; ``"xco2"`` -> ``("", "xco2")``."""
    key = key.strip("/")
    group, _, name = key.rpartition("/")
    return group, name


def get_dataset(src: Source, key: str) -> h5py.Dataset | None:
    """The dataset at ``key`` or ``None`` when it (or its group) does not exist."""
    obj = src.file.get(key.strip("/"), default=None)
    return obj if isinstance(obj, h5py.Dataset) else None


def require(src: Source, key: str) -> h5py.Dataset:
    ds = get_dataset(src, key)
    if ds is None:
        group, _ = split_key(key)
        if group and not isinstance(src.file.get(group), h5py.Group):
            raise src.mismatch(f"missing group /{group}")
        raise src.mismatch(f"missing /{key.strip('/')}")
    return ds


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.size == 1:
            return _attr(value.reshape(()).item())
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def kept_attrs(ds: h5py.Dataset) -> dict[str, Any]:
    attrs = ds.attrs
    return {k: _attr(attrs[k]) for k in KEPT_ATTRS if k in attrs}


def fill_values(ds: h5py.Dataset) -> list[float]:
    """The numeric fill markers declared on ``ds`` (``missing_value`` and ``_FillValue``)."""
    out: list[float] = []
    attrs = ds.attrs
    for name in FILL_ATTRS:
        if name in attrs:
            raw = np.asarray(attrs[name]).ravel()
            if raw.size and np.issubdtype(raw.dtype, np.number):
                out.extend(float(v) for v in raw)
    return out


def read_float(src: Source, ds: h5py.Dataset, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float dataset of exactly ``shape`` with its fill values as NaN (the file's float width is kept)."""
    check_shape(src, ds, key, shape)
    if not (np.issubdtype(ds.dtype, np.floating) or np.issubdtype(ds.dtype, np.integer)):
        raise src.mismatch(f"/{key} has dtype {ds.dtype}, expected a number")
    values = ds[()]
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    return mask_fill(values, fill_values(ds))


def mask_fill(values: np.ndarray, fills: list[float]) -> np.ndarray:
    for fill in fills:
        if np.isfinite(fill):
            values[values == values.dtype.type(fill)] = np.nan
    return values


def read_int(src: Source, ds: h5py.Dataset, key: str, shape: tuple[int, ...]) -> np.ndarray:
    check_shape(src, ds, key, shape)
    if not np.issubdtype(ds.dtype, np.integer):
        raise src.mismatch(f"/{key} has dtype {ds.dtype}, expected an integer")
    return np.asarray(ds[()])


def check_shape(src: Source, ds: h5py.Dataset, key: str, shape: tuple[int, ...]) -> None:
    if tuple(ds.shape) != shape:
        raise src.mismatch(f"/{key} has shape {tuple(ds.shape)}, expected {shape}")


def read_vertices(src: Source, key: str, n: int) -> np.ndarray:
    """An ``(n, 4)`` corner array; a ``(4, n)`` layout (some writers) is transposed."""
    ds = require(src, key)
    if tuple(ds.shape) == (4, n) and n != 4:
        return read_float(src, ds, key, (4, n)).T.astype(np.float64)
    return read_float(src, ds, key, (n, 4)).astype(np.float64)


def _decode(raw: np.ndarray) -> np.ndarray:
    """UTF-8 bytes -> str, decoding each distinct value once (ids repeat a lot; this is 7x faster)."""
    if raw.size == 0:
        return raw.astype("U1")
    uniq, inverse = np.unique(raw, return_inverse=True)
    return np.asarray(np.strings.decode(uniq, "utf-8", "replace"))[inverse.reshape(raw.shape)]


def read_strings(src: Source, ds: h5py.Dataset, key: str, n: int | None = None) -> np.ndarray:
    """A 1-D unicode array from variable-length strings, fixed-length bytes or an ``(n, len)`` char array."""
    out = _strings(src, ds, key, np.asarray(ds[()]))
    out = out.reshape(-1) if out.ndim == 0 else out
    if out.ndim != 1 or (n is not None and out.shape[0] != n):
        raise src.mismatch(f"/{key} has shape {tuple(ds.shape)}, expected ({n},)")
    return out


def _strings(src: Source, ds: h5py.Dataset, key: str, raw: np.ndarray) -> np.ndarray:
    """Decoded strings of ``raw`` (read from ``ds``: variable-length, fixed-length bytes or a char array)."""
    if h5py.check_string_dtype(ds.dtype) is not None and ds.dtype.kind == "O":
        return _decode(raw.astype("S") if raw.size else np.zeros(raw.shape, dtype="S1"))
    if ds.dtype.kind == "S":
        if raw.ndim == 2:
            raw = np.ascontiguousarray(raw).view(f"S{raw.shape[1] * raw.dtype.itemsize}").reshape(raw.shape[0])
        return _decode(raw)
    if ds.dtype.kind == "U":
        return raw
    raise src.mismatch(f"/{key} has dtype {ds.dtype}, expected strings")


#: Runs of wanted rows this close together are read as one slice (fewer reads; the rows between are decoded too).
STRING_RUN_GAP = 256


def row_runs(wanted: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` runs of the rows where ``wanted`` is true, runs at most :data:`STRING_RUN_GAP` apart
    joined."""
    rows = np.flatnonzero(wanted)
    if rows.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(rows) > STRING_RUN_GAP) + 1
    return [(int(run[0]), int(run[-1]) + 1) for run in np.split(rows, cuts)]


def read_strings_where(src: Source, ds: h5py.Dataset, key: str, wanted: np.ndarray, fill: str) -> np.ndarray:
    """Like :func:`read_strings` for ``len(wanted)`` rows, but only the rows where ``wanted`` is true are read
    (in slices of nearby rows); the others are ``fill``. Variable-length strings live in the file's global heap,
    one object per row: reading only the rows a product uses skips most of a granule's bytes when it is read in
    place."""
    n = int(wanted.shape[0])
    if tuple(ds.shape[:1]) != (n,) or ds.ndim > 2 or (ds.ndim == 2 and ds.dtype.kind != "S"):
        raise src.mismatch(f"/{key} has shape {tuple(ds.shape)}, expected ({n},)")
    rows = np.flatnonzero(wanted)
    runs = row_runs(wanted)
    src.prefetch_rows([key], runs)
    parts = [(start, _strings(src, ds, key, np.asarray(ds[start:stop]))) for start, stop in runs]
    width = max([len(fill), 1, *(int(values.dtype.itemsize // 4) for _, values in parts)])
    out = np.full(n, fill, dtype=f"U{width}")
    for start, values in parts:
        out[start:start + values.shape[0]] = values
    keep = np.zeros(n, dtype=bool)
    keep[rows] = True
    out[~keep] = fill
    return out


def normalise_ids(ids: np.ndarray) -> np.ndarray:
    """Strip blanks; empty ids become ``"none"``."""
    ids = np.strings.strip(ids)
    return np.where(ids == "", "none", ids) if np.any(ids == "") else ids


def default_int_fill(dtype: np.dtype) -> int:
    """The fill used for integer variables that declare none: the dtype's minimum (signed) or maximum."""
    info = np.iinfo(dtype)
    return int(info.min) if info.min < 0 else int(info.max)


def int_fill(ds: h5py.Dataset) -> int:
    """The declared fill of an integer dataset when its dtype can hold it, else :func:`default_int_fill`."""
    info = np.iinfo(ds.dtype)
    for fill in fill_values(ds):
        if np.isfinite(fill) and float(fill).is_integer() and info.min <= fill <= info.max:
            return int(fill)
    return default_int_fill(ds.dtype)


def is_science_dataset(ds: h5py.Dataset, n: int) -> bool:
    """A per-sounding numeric 1-D dataset that is not a netCDF dimension scale."""
    if ds.shape != (n,) or ds.dtype.kind not in "biuf":
        return False
    return not h5py.h5ds.is_scale(ds.id)


def iter_datasets(src: Source, groups: list[str]) -> Iterator[tuple[str, str, h5py.Dataset]]:
    """``(group, name, dataset)`` for the datasets directly under the root (``""``) and each named group."""
    for group in groups:
        node = src.file if group == "" else src.file.get(group)
        if not isinstance(node, h5py.Group):
            continue
        for name, obj in node.items():
            if isinstance(obj, h5py.Dataset) and not name.startswith("_nc4"):
                yield group, name, obj


def to_variable(src: Source, group: str, name: str, ds: h5py.Dataset, n: int) -> Variable:
    """One science variable: floats with NaN for fill, integers kept with their fill."""
    key = f"{group}/{name}" if group else name
    attrs = kept_attrs(ds)
    if ds.dtype.kind == "f":
        return Variable(group, name, read_float(src, ds, key, (n,)), attrs)
    if ds.dtype.kind == "b":
        return Variable(group, name, np.asarray(ds[()]), attrs, fill=None)
    return Variable(group, name, read_int(src, ds, key, (n,)), attrs, fill=int_fill(ds))


def subgroups(src: Source) -> list[str]:
    return [name for name, obj in src.file.items() if isinstance(obj, h5py.Group)]


def global_attrs(src: Source) -> Mapping[str, Any]:
    return {k: _attr(v) for k, v in src.file.attrs.items()}
