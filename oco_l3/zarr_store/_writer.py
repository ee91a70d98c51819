"""The one store writer: inserts or replaces time slabs in a Zarr store through a transaction overlay.

Metadata is written as JSON documents (:class:`._codec.ZarrV2` or :class:`._codec.ZarrV3`, by the layout's
``zarr_format``); every changed chunk is built whole in numpy and
encoded here (:mod:`._codec`, on a small thread pool) and staged while it is encoded. Only chunks whose content
changes are built; an old chunk is read (and decoded) only when some of its rows stay or move; with one time step
per chunk a moved row is copied as raw bytes, never decoded. Chunks that end up all fill are not written (and
deleted where they may exist: absent chunks read as fill). A new store reads nothing, an append reads the
consolidated metadata, the coordinates and only the last time chunk of the chunks it touches: the cost does not
grow with the number of time steps stored. Arrays with a nested key separator (``/``) list the chunks of one time
step instead of probing every chunk (the global grid has 10,000 per variable).

Time is kept as integer microseconds since 1970 inside; stored times use the units in each store's own metadata.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import oco_l3
from oco_l3.errors import StoreCorrupt
from oco_l3.zarr_store import _codec as _zc
from oco_l3.zarr_store import _plan, geozarr
from oco_l3.zarr_store._codec import FORMATS, ArraySpec, resized_doc, zarr_format
from oco_l3.zarr_store._txn import Overlay, is_metadata_key
from oco_l3.zarr_store.layout import Layout, Slab, VarSlice, decode_time, encode_time

log = logging.getLogger(__name__)

_SECRET_ATTR = re.compile(r"secret|passw|token|credential|access_?key|auth", re.IGNORECASE)
#: Attributes that describe an encoding, not the data: never copied from a source variable.
DROP_VAR_ATTRS = frozenset({"_FillValue", "missing_value", "_ARRAY_DIMENSIONS", "dtype", "scale_factor",
                            "add_offset"})
#: Dataset attributes that accumulate over commits (a sorted set) instead of being replaced.
ACCUMULATE = ("source_granules",)


@dataclass(frozen=True)
class WriteSummary:
    n_times: int
    action: str
    times: tuple[int, ...]


class Writer:
    """Builds one transaction in ``overlay`` for the store at ``path`` (the caller holds the lock)."""

    def __init__(self, overlay: Overlay, path: str, layout: Layout) -> None:
        self.overlay = overlay
        self.path = path
        self.layout = layout
        self.fmt = zarr_format(layout.zarr_format)
        self.meta = self._read_meta()
        self._listed: dict[tuple[str, int], set[tuple[int, ...]]] = {}

    # --- the existing store ------------------------------------------------------------------------------------
    def _read_meta(self) -> dict[str, Any]:
        raw = self.overlay.raw(self.fmt.consolidated)
        if raw is None:
            self._check_blank()
            self.overlay.creating = True
            return {}
        try:
            meta = self.fmt.parse_consolidated(raw)
        except ValueError as exc:
            raise StoreCorrupt(f"store {self.path} has {exc}") from exc
        self.overlay.preload(meta, self.fmt.live_keys(meta))
        return meta

    def _check_blank(self) -> None:
        """A store without consolidated metadata must be nothing yet (never a foreign folder or a broken store)."""
        if self.overlay.raw(self.fmt.marker) is not None:
            raise StoreCorrupt(f"store {self.path} has no consolidated metadata")
        for version, other in FORMATS.items():
            if other is not self.fmt and self.overlay.raw(other.consolidated) is not None:
                raise StoreCorrupt(f"store {self.path} is Zarr format {version}, not {self.fmt.version} as configured "
                                   f"(output.format): write to another output root or naming, or rebuild the store")
        foreign = [n for n in self.overlay.store.list_dir("") if not n.startswith(".")]
        if foreign:
            raise StoreCorrupt(f"{self.path}: exists without consolidated metadata (not an oco-l3 store)")

    def var_attrs(self, key: str) -> dict[str, Any]:
        """Attributes of array ``key`` as stored (empty when it does not exist)."""
        return self.fmt.attrs(self.meta, key)

    def _spec(self, key: str) -> ArraySpec:
        try:
            return self.fmt.array_spec(self.meta, key)
        except (KeyError, ValueError, TypeError) as exc:
            raise StoreCorrupt(f"store {self.path}: array {key} has unusable metadata: {exc}") from exc

    def _read_1d(self, key: str) -> np.ndarray:
        try:
            return _zc.read_1d(self._spec(key), key, self.overlay.raw)
        except ValueError as exc:
            raise StoreCorrupt(f"store {self.path}: coordinate {key} does not decode: {exc}") from exc

    def _time_arrays(self) -> set[str]:
        """Existing arrays along time (data variables; not the coordinates)."""
        coords = self.layout.coordinate_names
        return {a for a in self.fmt.arrays(self.meta) if a.rsplit("/", 1)[-1] not in coords
                and self.fmt.dims(self.meta, a)[:1] == ("time",)}

    def _old_times(self) -> np.ndarray:
        if not self.fmt.has_array(self.meta, "time"):
            return np.zeros(0, dtype=np.int64)
        units = str(self.fmt.attrs(self.meta, "time").get("units", ""))
        try:
            times = decode_time(self._read_1d("time"), units)
        except ValueError as exc:
            raise StoreCorrupt(f"store {self.path}: time coordinate cannot be decoded ({exc})") from None
        if times.size and np.any(np.diff(times) <= 0):
            raise StoreCorrupt(f"store {self.path} has a time axis that is not strictly increasing")
        return times

    def _check_grid(self) -> None:
        for coord in (self.layout.y, self.layout.x):
            if not self.fmt.has_array(self.meta, coord.name):
                raise StoreCorrupt(f"store {self.path} has no {coord.name} coordinate")
            have = self._read_1d(coord.name)
            want = np.asarray(coord.values)
            if have.shape != want.shape or not np.allclose(have, want, rtol=0, atol=1e-9):
                raise StoreCorrupt(f"store {self.path}: its {coord.name} grid ({have.size} cells) does not match "
                                   f"the new slices' ({want.size} cells)")

    # --- the commit --------------------------------------------------------------------------------------------
    def write(self, slabs: Sequence[Slab], attrs: Mapping[str, Any]) -> WriteSummary:
        existing = self._time_arrays()
        if self.meta:
            self._check_grid()
        plan = _plan.TimePlan.build(self._old_times(), [s.time for s in slabs])
        keys = sorted({k for s in slabs for k in s.variables} | existing)
        for key in keys:
            _check_key(key, self.layout)
        groups = sorted({k.split("/")[0] for k in keys if "/" in k})
        doc = self._dataset_attrs(attrs, slabs, plan)
        if self.fmt.version == 3:
            doc.update(geozarr.group_attrs(self.layout))
        for group in ["", *groups]:
            self._write_group(group, plan, doc)
        self._write_statics()
        specs = {key: self._array(key, plan, slabs, key in existing) for key in keys}
        jobs = (job for key in keys for job in self._chunks(key, specs[key], plan, slabs, key in existing))
        _zc.encode_into(jobs, self.overlay.stage)  # chunk objects are staged as they are encoded
        self._consolidate(["", *groups])
        return WriteSummary(len(plan.merged), plan.action(), tuple(plan.index))

    def _put_doc(self, key: str, doc: Any) -> None:
        self.overlay.put(key, _zc.dumps(doc))

    def _put_docs(self, docs: Mapping[str, Any]) -> None:
        for key, doc in docs.items():
            self._put_doc(key, doc)

    def _current(self, key: str) -> dict[str, Any]:
        """A metadata document as this transaction sees it now."""
        return dict(json.loads(self.overlay.raw(key) or b"{}"))

    # --- coordinates, groups and attributes ------------------------------------------------------------------
    def _write_group(self, group: str, plan: _plan.TimePlan, attrs: dict[str, Any]) -> None:
        prefix = f"{group}/" if group else ""
        fresh = not self.fmt.has_array(self.meta, f"{prefix}time")
        docs = self.fmt.group_docs(prefix, attrs)
        self.overlay.group_keys.update(docs)
        self._put_docs(docs)
        if fresh:
            self._create_coords(prefix, plan)
            return
        if len(plan.merged) == len(plan.old) and not plan.shifts:
            return
        spec = self._spec(f"{prefix}time").resized(len(plan.merged))
        key = self.fmt.array_key(f"{prefix}time")
        self._put_doc(key, resized_doc(self.meta[key], len(plan.merged)))
        units = str(self.fmt.attrs(self.meta, f"{prefix}time").get("units", ""))
        first = plan.p // spec.chunks[0]
        if plan.shifts:  # rows the old time axis shows change: applied after the hidden objects
            self.overlay.visible.update(spec.key(f"{prefix}time", (k,)) for k in range(first, spec.n_chunks(0))
                                        if k * spec.chunks[0] < len(plan.old))
        _zc.write_1d(spec, f"{prefix}time", self._encode_times(plan.merged, units), first, self.overlay.put)

    def _encode_times(self, us: np.ndarray, units: str) -> np.ndarray:
        try:
            return encode_time(us, units).astype("<i8")
        except ValueError as exc:
            raise StoreCorrupt(f"store {self.path}: {exc}") from None

    def _create_coords(self, prefix: str, plan: _plan.TimePlan) -> None:
        t = self.layout.time
        spec = self.fmt.spec((len(plan.merged),), (t.chunk,), np.dtype("<i8"), None, self.layout.codec)
        time_attrs = {**t.attrs, "units": t.units, "calendar": t.calendar}
        self._put_docs(self.fmt.array_docs(f"{prefix}time", spec, ["time"], time_attrs))
        _zc.write_1d(spec, f"{prefix}time", self._encode_times(plan.merged, t.units), 0, self.overlay.put)
        for coord in (self.layout.y, self.layout.x):
            values = np.asarray(coord.values, dtype="<f8")
            spec = self.fmt.spec(values.shape, values.shape, values.dtype, None, self.layout.codec)
            self._put_docs(self.fmt.array_docs(f"{prefix}{coord.name}", spec, [coord.name], dict(coord.attrs)))
            _zc.write_1d(spec, f"{prefix}{coord.name}", values, 0, self.overlay.put)

    def _write_statics(self) -> None:
        for var in self.layout.statics:
            if self.fmt.has_array(self.meta, var.name):
                continue
            values = np.asarray(var.values)
            spatial = var.dims == (self.layout.y.name, self.layout.x.name)
            chunks = tuple(min(c, n) for c, n in zip(self.layout.chunks[1:], values.shape, strict=True)) \
                if spatial else values.shape
            spec = self.fmt.spec(values.shape, chunks, values.dtype, _scalar(var.fill, values.dtype),
                                 self.layout.codec, self.layout.separator)
            self._put_docs(self.fmt.array_docs(var.name, spec, var.dims, _clean_attrs(dict(var.attrs), self.path)))
            for index in np.ndindex(*spec.chunk_grid()):
                block = np.full(spec.chunks, spec.pad, dtype=spec.dtype)
                region = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in
                               zip(index, spec.chunks, spec.shape, strict=True))
                part = values[region]
                block[tuple(slice(0, s) for s in part.shape)] = part
                self.overlay.put(spec.key(var.name, index), spec.encode(block))

    def _dataset_attrs(self, attrs: Mapping[str, Any], slabs: Sequence[Slab], plan: _plan.TimePlan) -> dict[str, Any]:
        old = self.fmt.attrs(self.meta, "")
        doc: dict[str, Any] = dict(old)
        accumulated = {name: set(old.get(name, [])) for name in ACCUMULATE}
        for extra in [attrs, *(s.attrs for s in slabs)]:
            extra = dict(extra)
            for name in ACCUMULATE:
                value = extra.pop(name, None)
                accumulated[name].update([value] if isinstance(value, str) else list(value or []))
            doc.update(extra)
        for name, values in accumulated.items():
            if values:
                doc[name] = sorted(values)
        if self.layout.housekeeping:
            now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            doc.update({
                "Conventions": doc.get("Conventions", "CF-1.8"),
                "title": doc.get("title", ""),
                "software_version": f"oco-l3 {oco_l3.__version__}",
                "date_created": old.get("date_created", now),
                "date_modified": now,
                "time_coverage_start": _iso(int(plan.merged[0])),
                "time_coverage_end": _iso(int(plan.merged[-1])),
            })
        return _clean_attrs(doc, self.path)

    def _consolidate(self, groups: list[str]) -> None:
        """The consolidated metadata of the root (whole hierarchy) and of each group (its subtree)."""
        keys = {k for k in self.meta} | {k for k in self.overlay.writes if is_metadata_key(k)}
        keys = {k for k in keys if not self.fmt.is_consolidated_key(k) and k not in self.overlay.deletes}
        docs = {k: json.loads(self.overlay.raw(k) or b"{}") for k in sorted(keys)}
        for group in groups:
            key, body = self.fmt.consolidate(docs, f"{group}/" if group else "")
            self.overlay.put(key, body)

    # --- arrays ------------------------------------------------------------------------------------------------
    def _template(self, key: str, slabs: Sequence[Slab]) -> VarSlice:
        """The variable as the last slab that has it describes it."""
        return next(s.variables[key] for s in reversed(slabs) if key in s.variables)

    def _inner(self, var: VarSlice) -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]:
        """Inner dims, shape and chunks of a new array."""
        if var.dims is None or var.dims == (self.layout.y.name, self.layout.x.name):
            shape: tuple[int, ...] = self.layout.shape
            return (self.layout.y.name, self.layout.x.name), shape, tuple(
                min(c, n) for c, n in zip(self.layout.chunks[1:], shape, strict=True))
        if not var.pieces or any(var.pieces[0].origin):
            raise ValueError(f"a variable with dims {var.dims} needs one whole piece")
        shape = tuple(int(n) for n in var.pieces[0].values.shape)
        return var.dims, shape, shape

    def _array(self, key: str, plan: _plan.TimePlan, slabs: Sequence[Slab], exists: bool) -> ArraySpec:
        """Write ``key``'s metadata as far as it changes; the array's spec after this commit."""
        n = len(plan.merged)
        has = [s.variables[key] for s in slabs if key in s.variables]
        if not exists:
            var = has[-1]
            dims, shape, chunks = self._inner(var)
            spec = self.fmt.spec((n, *shape), (self.layout.chunks[0], *chunks), var.dtype,
                                 _scalar(var.fill, var.dtype), self.layout.codec, self.layout.separator)
            attrs = _clean_attrs({k: v for k, v in var.attrs.items() if k not in DROP_VAR_ATTRS}, self.path)
            self._put_docs(self.fmt.array_docs(key, spec, ("time", *dims), attrs))
            return spec
        spec = self._spec(key)
        dims = self.fmt.dims(self.meta, key)
        if dims[1:] == (self.layout.y.name, self.layout.x.name) and spec.shape[1:] != self.layout.shape:
            raise StoreCorrupt(f"store {self.path}: array {key} has shape {spec.shape}, expected "
                               f"(*, {self.layout.shape})")
        if spec.shape[0] != n:
            spec = spec.resized(n)
            akey = self.fmt.array_key(key)
            self._put_doc(akey, resized_doc(self.meta[akey], n))
        if has:
            old = self.fmt.attrs(self.meta, key)
            new = {k: v for k, v in has[-1].attrs.items() if k not in DROP_VAR_ATTRS}
            merged = _clean_attrs({**old, **new}, self.path)
            if merged != old:
                self._put_docs(self.fmt.attrs_docs(self._current, key, merged, dims))
        return spec

    def _existence(self, key: str, spec: ArraySpec, n_old: int) -> Callable[[int], set[tuple[int, ...]] | None]:
        """Which inner chunks exist at old time chunk ``tc``: listed for nested arrays, unknown (None) else."""

        def existing(tc: int) -> set[tuple[int, ...]] | None:
            if tc * spec.chunks[0] >= n_old:
                return set()
            if spec.separator != "/":
                return None
            if (key, tc) not in self._listed:
                found = set()
                for rel in self.overlay.store.walk_files(spec.key(key, (tc,))):
                    parts = rel.split("/")
                    if len(parts) == len(spec.shape) - 1 and all(p.isdigit() for p in parts):
                        found.add(tuple(int(p) for p in parts))
                self._listed[(key, tc)] = found
            return self._listed[(key, tc)]

        return existing

    def _chunks(self, key: str, spec: ArraySpec, plan: _plan.TimePlan, slabs: Sequence[Slab],
                exists: bool) -> Iterator[tuple[str, np.ndarray, ArraySpec]]:
        """Every chunk of ``key`` whose content changes, built whole (chunks that become all fill are deleted)."""
        rows = _plan.RowPlan.build(plan, [s.time for s in slabs],
                                   [bool(s.variables.get(key) and s.variables[key].pieces) for s in slabs], exists)
        if not rows.change:
            return
        ct = spec.chunks[0]
        existing = self._existence(key, spec, rows.n_old)

        def boxes(i: int) -> list[_plan.Box]:
            var = slabs[i].variables.get(key)
            return [(p.origin, p.stop) for p in var.pieces] if var is not None else []

        chunk = _ChunkBuilder(self, key, spec, rows, slabs, existing)
        grid = spec.chunk_grid()[1:]
        for idx, tcs in _plan.touched(rows, ct, spec.chunks[1:], grid, boxes, existing):
            for tc in tcs:
                job = chunk.build(tc, idx)
                if job is not None:
                    yield job


class _ChunkBuilder:
    """Builds the chunks of one array; keeps the last few decoded old chunks of one inner chunk."""

    def __init__(self, writer: Writer, key: str, spec: ArraySpec, rows: _plan.RowPlan, slabs: Sequence[Slab],
                 existing: Callable[[int], set[tuple[int, ...]] | None]) -> None:
        self.w = writer
        self.overlay = writer.overlay
        self.key = key
        self.spec = spec
        self.rows = rows
        self.slabs = slabs
        self.existing = existing
        self._values: dict[tuple[int, int], np.ndarray] = {}
        self._old: dict[tuple[int, tuple[int, ...]], np.ndarray | None] = {}

    def _may_exist(self, tc: int, idx: tuple[int, ...]) -> bool:
        known = self.existing(tc)
        if known is not None:
            return idx in known
        return not self.overlay.known_absent(self.spec.key(self.key, (tc, *idx)))

    def _piece_values(self, i: int, n: int) -> np.ndarray:
        """Piece ``n`` of slab ``i`` in the store's dtype, missing values as the store's fill (cached)."""
        if (i, n) not in self._values:
            var = self.slabs[i].variables[self.key]
            self._values[(i, n)] = coerce(var.pieces[n].values, self.spec.dtype, var.missing, self.spec.pad)
        return self._values[(i, n)]

    def _old_chunk(self, tc: int, idx: tuple[int, ...]) -> np.ndarray | None:
        """The chunk as stored before this transaction (None when absent)."""
        if (tc, idx) not in self._old:
            key = self.spec.key(self.key, (tc, *idx))
            raw = None if not self._may_exist(tc, idx) else self.overlay.original(key)
            try:
                self._old[(tc, idx)] = None if raw is None else self.spec.decode(raw)
            except (ValueError, RuntimeError) as exc:
                raise StoreCorrupt(f"store {self.w.path}: chunk {key} does not decode: {exc}") from exc
            while len(self._old) > 3:
                del self._old[next(iter(self._old))]
        return self._old[(tc, idx)]

    def build(self, tc: int, idx: tuple[int, ...]) -> tuple[str, np.ndarray, ArraySpec] | None:
        spec, rows = self.spec, self.rows
        ct = spec.chunks[0]
        key = spec.key(self.key, (tc, *idx))
        if rows.visible(tc, ct):
            self.overlay.visible.add(key)
        if ct == 1 and tc not in rows.new and rows.src_old[tc] >= 0:
            self._copy(tc, idx, int(rows.src_old[tc]), key)
            return None
        lo = tuple(i * c for i, c in zip(idx, spec.chunks[1:], strict=True))
        hi = tuple(min(a + c, n) for a, c, n in zip(lo, spec.chunks[1:], spec.shape[1:], strict=True))
        block = np.full(spec.chunks, spec.pad, dtype=spec.dtype)
        nonempty = False
        for j in range(tc * ct, min((tc + 1) * ct, spec.shape[0])):
            i = rows.new.get(j)
            if i is not None:
                var = self.slabs[i].variables.get(self.key)
                for n, piece in enumerate(var.pieces if var is not None else ()):
                    a = tuple(max(o, x) for o, x in zip(piece.origin, lo, strict=True))
                    b = tuple(min(s, x) for s, x in zip(piece.stop, hi, strict=True))
                    if any(e <= s for s, e in zip(a, b, strict=True)):
                        continue
                    part = self._piece_values(i, n)[tuple(slice(s - o, e - o) for s, e, o in
                                                          zip(a, b, piece.origin, strict=True))]
                    where: tuple[Any, ...] = (j - tc * ct, *(slice(s - x, e - x) for s, e, x in zip(a, b, lo, strict=True)))
                    block[where] = part
                    nonempty = nonempty or not spec.is_fill(part)
                continue
            k = int(rows.src_old[j])
            if k < 0:
                continue
            old = self._old_chunk(k // ct, idx)
            if old is None:
                continue
            block[j - tc * ct] = old[k % ct]
            nonempty = nonempty or not spec.is_fill(old[k % ct])
        if nonempty:
            return key, block, spec
        if tc * ct < rows.n_old and self._may_exist(tc, idx):
            self.overlay.drop(key)
        return None

    def _copy(self, tc: int, idx: tuple[int, ...], k: int, key: str) -> None:
        """One time step per chunk: old row ``k`` moves to row ``tc`` as raw bytes (no decode, no encode)."""
        raw = self.overlay.original(self.spec.key(self.key, (k, *idx))) if self._may_exist(k, idx) else None
        if raw is not None:
            self.overlay.stage(key, raw)
        elif tc * self.spec.chunks[0] < self.rows.n_old and self._may_exist(tc, idx):
            self.overlay.drop(key)


def coerce(values: np.ndarray, dtype: np.dtype, src_missing: float | int | None, dst_fill: Any) -> np.ndarray:
    """Values in the store's dtype; the slice's missing marker becomes the store's fill."""
    if dtype.kind == "f":
        out = values.astype(dtype, copy=values.dtype != dtype)
        if values.dtype.kind in "iub" and src_missing is not None:
            out = out.copy() if out is values else out
            out[values == src_missing] = np.nan
        return out
    if values.dtype.kind == "f":
        missing = ~np.isfinite(values)
        out = np.where(missing, 0, values).astype(dtype)
        out[missing] = dst_fill
        return out
    if values.dtype == dtype and (src_missing is None or src_missing == dst_fill):
        return values
    out = values.astype(dtype, copy=True)
    if src_missing is not None:
        out[values == src_missing] = dst_fill
    return out


def _check_key(key: str, layout: Layout) -> None:
    from oco_l3.targets import is_safe_id

    parts = key.split("/")
    if not 1 <= len(parts) <= 2 or not all(is_safe_id(p) for p in parts) or parts[-1] in layout.coordinate_names:
        raise ValueError(f"variable key {key[:60]!r} is not 'name' or 'Group/name' with safe names")


def _scalar(fill: Any, dtype: np.dtype) -> Any:
    """A fill value as a Python scalar of ``dtype`` (None stays None)."""
    if fill is None:
        return None
    return np.dtype(dtype).type(fill).item()


def _iso(us: int) -> str:
    return str(np.datetime64(us, "us").astype("datetime64[s]")) + "Z"


def _clean_attrs(attrs: Mapping[str, Any], path: str) -> dict[str, Any]:
    """JSON-safe attributes without anything that looks like a credential."""
    out = {}
    for key, value in attrs.items():
        if _SECRET_ATTR.search(str(key)):
            log.warning("Dropping attribute %r from %s: it looks like a credential", key, path)
            continue
        out[str(key)] = _zc.jsonable(value)
    return out
