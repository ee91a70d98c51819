"""The global daily product: every SAM/target capture of a day, all missions, on one global grid per QF pass.

Layout. One Zarr v2 store per QF pass at ``<root>/<naming.pre_qf|post_qf>`` (consolidated, readable with
``xr.open_zarr``), one time slice per day at 00:00 UTC. Variables carry the mission prefix of the reference product
(``OCO3_global_``, ``OCO2_global_``, ``OCO3_SIF_global_``); a variable of a source group stays in a Zarr group of that
name with the prefixed variable name inside (``Retrieval/OCO3_global_psurf``), as the reference writes it (each
mission's :attr:`~oco_l3.missions.MissionSpec.global_prefix`). Each group carries its own
``time``/``latitude``/``longitude`` coordinates.

Per-cell layers (the missions whose spec has ``global_layers``: OCO-3 and OCO-3 SIF): ``<prefix>_target_id`` (int32, fill -1) is an index into the variable's
``target_ids`` attribute (the list of target ids; an id keeps its index for the life of the store, new ids are
appended), ``<prefix>_target_type`` (int8, fill -1; 1 fossil, 2 ecostress, 3 sif, 4 volcano, 5 tccon, 6 other, the
reference's codes) and ``<prefix>_operation_mode`` (int8, fill -1; normalised Lite FP codes, 2 target, 4 SAM, of the
nearest sounding).

Captures: every SAM and target-mode run of every granule, as the reference's global mode takes them
(:func:`global_captures`): runs split and merged like :mod:`oco_l3.captures`, additionally cut at time gaps over
60 s; ids outside the target file are kept (ad-hoc target, type from the id prefix), ``none``/``Missing`` give
target id -1 with type 6 (other).

Overlaps on one day: per cell and mission, the capture whose nearest sounding is later wins (ties: the capture that
starts later). The winner's values replace all of that mission's variables in the cell, missing ones included.

Masking, QF, fill and exactness rules are those of :mod:`oco_l3.gridding` (each capture is gridded alone in its own
window, see :mod:`oco_l3.global_grid`). A mission without input on a day has no data that day: its variables are
all-fill there (:attr:`GlobalDayResult.absent`). Re-running a day replaces the whole day.

Storage (:func:`global_layout`, written by the one store writer of :mod:`oco_l3.zarr_store`). Chunks are
``(1, chunking.latitude, chunking.longitude)``: one day per chunk, so a day's objects are exactly
``<var>/<day index>/...`` (``dimension_separator`` ``/``). Only chunks that hold data are written; replacing a day
deletes the old day's chunks (listed under ``<var>/<i>/`` only); inserting a day before the last moves the later
days' chunk objects by one index as raw bytes (cost grows with the days after the insertion point, not with the
grid). Zarr v2 or v3 (``output.format``).

COGs (``output.cog``, :func:`export_global_cogs`): after each QF store is committed, one sparse COG per variable
with data that day (:mod:`oco_l3.sparse_cog`, built from the canvas tiles, never the whole grid), named by
:func:`global_cog_name`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import fsspec
import numpy as np

from oco_l3.errors import GlobalDayBlocked, GranuleNameUnrecognised, OcoL3Error, classify, one_line
from oco_l3.global_grid import GlobalPiece, global_grid, grid_capture_global
from oco_l3.grids import GridSpec
from oco_l3.missions import DEFAULT_MISSIONS, MISSIONS, mission_spec
from oco_l3.pipeline import DayResult
from oco_l3.sounding_footprints import SoundingFootprints
from oco_l3.soundings import MODE_SAM, NO_TARGET, Mission, Soundings
from oco_l3.targets import BBox, Target
from oco_l3.zarr_store import Layout, Piece, Slab, TimeAxis, VarSlice, lat_lon, upsert
from oco_l3.zarr_store._txn import is_metadata_key
from oco_l3.zarr_store._writer import Writer

if TYPE_CHECKING:
    from oco_l3.config import RunConfig
    from oco_l3.pipeline import DayBatch, GranuleInput

log = logging.getLogger(__name__)

QF = Literal["pre", "post"]
#: The variable prefix per mission (``OCO3_global``, ...: each spec's ``global_prefix``).
PREFIX: Mapping[str, str] = {key: spec.global_prefix for key, spec in MISSIONS.items()}
#: Missions that get the per-cell target id / target type / operation mode layers.
LAYER_MISSIONS: tuple[Mission, ...] = tuple(key for key, spec in MISSIONS.items() if spec.global_layers)
TYPE_CODES: Mapping[str, int] = {"fossil": 1, "ecostress": 2, "sif": 3, "volcano": 4, "tccon": 5, "other": 6}
LAYER_FILL = -1
COORDS = ("time", "latitude", "longitude")
_DROP_ATTRS = {"_FillValue", "missing_value", "_ARRAY_DIMENSIONS", "dtype", "scale_factor", "add_offset"}
_NO_TIME = np.iinfo(np.int64).min
#: Consecutive same-mode, same-target soundings further apart than this belong to different captures (a SAM lasts
#: about two minutes, with a sounding every 1/3 s); without a cut, two OCO-2 target overpasses hours apart with no
#: sounding between them in the file would be one capture spanning the globe.
MAX_GAP_NS = 60 * 10**9


# --- names ---------------------------------------------------------------------------------------------------
def output_key(mission: str, key: str) -> str:
    """``xco2`` -> ``OCO3_global_xco2``; ``Retrieval/psurf`` -> ``Retrieval/OCO3_global_psurf``."""
    group, _, name = key.rpartition("/")
    out = f"{PREFIX[mission]}_{name}"
    return f"{group}/{out}" if group else out


def layer_keys(mission: str) -> dict[str, str]:
    """The per-cell layer keys of ``mission`` (empty for missions without layers)."""
    if mission not in LAYER_MISSIONS:
        return {}
    p = PREFIX[mission]
    return {"target_id": f"{p}_target_id", "target_type": f"{p}_target_type", "operation_mode": f"{p}_operation_mode"}


def _layer_attrs(mission: str) -> dict[str, dict[str, Any]]:
    name = mission_spec(mission).name
    keys = layer_keys(mission)
    return {
        keys["target_id"]: {
            "long_name": f"{name} target (or SAM) id of the capture in the cell",
            "comment": "value i is the target id target_ids[i]; -1 where there is no capture",
            "units": "1", "target_ids": [],
        },
        keys["target_type"]: {
            "long_name": f"{name} target type: 1=fossil, 2=ecostress, 3=sif, 4=volcano, 5=tccon, 6=other",
            "flag_values": list(TYPE_CODES.values()), "flag_meanings": " ".join(TYPE_CODES), "units": "1",
        },
        keys["operation_mode"]: {
            "long_name": f"{name} operation mode of the nearest sounding: 2=Target, 4=Snapshot Area Map",
            "flag_values": [2, 4], "flag_meanings": "target snapshot_area_map", "units": "1",
        },
    }


# --- one day on the canvas -----------------------------------------------------------------------------------
@dataclass
class DayCanvas:
    """One QF pass of one day: global chunk-shaped tiles, only where captures are (see the module docstring)."""

    grid: GridSpec
    chunks: tuple[int, int]
    tiles: dict[tuple[int, int], dict[str, np.ndarray]] = field(default_factory=dict)
    best: dict[tuple[str, int, int], np.ndarray] = field(default_factory=dict)
    fills: dict[str, float | int] = field(default_factory=dict)
    dtypes: dict[str, np.dtype] = field(default_factory=dict)
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    mission_keys: dict[str, set[str]] = field(default_factory=dict)
    target_ids: dict[str, list[str]] = field(default_factory=dict)

    def declare(self, key: str, dtype: np.dtype, fill: float | int, attrs: Mapping[str, Any]) -> None:
        if key not in self.dtypes:
            self.dtypes[key] = np.dtype(dtype)
            self.fills[key] = fill
            self.attrs[key] = {k: v for k, v in attrs.items() if k not in _DROP_ATTRS}

    def target_index(self, mission: str, target_id: str) -> int:
        ids = self.target_ids.setdefault(mission, [])
        if target_id not in ids:
            ids.append(target_id)
        return ids.index(target_id)

    def _tile(self, tr: int, tc: int, key: str) -> np.ndarray:
        tile = self.tiles.setdefault((tr, tc), {})
        if key not in tile:
            tile[key] = np.full(self.chunks, self.fills[key], dtype=self.dtypes[key])
        return tile[key]

    def paint(self, mission: str, piece: GlobalPiece, target: Target | None, target_index: int) -> None:
        """Place one capture piece: per cell, the later sounding wins (see the module docstring)."""
        values: dict[str, tuple[np.ndarray, float | int]] = {}
        for key, arr in piece.data.items():
            out = output_key(mission, key)
            fill: float | int = piece.fills.get(key, np.nan) if arr.dtype.kind in "iub" else np.nan
            self.declare(out, np.dtype(np.float32) if arr.dtype.kind == "f" else arr.dtype, fill,
                         piece.attrs.get(key, {}))
            values[out] = (_as_stored(arr, fill, self.dtypes[out], self.fills[out]), self.fills[out])
        layers = layer_keys(mission)
        if layers:
            shape = piece.time.shape
            values[layers["target_id"]] = (np.full(shape, target_index, np.int32), LAYER_FILL)
            code = TYPE_CODES.get(target.type if target is not None else "other", TYPE_CODES["other"])
            values[layers["target_type"]] = (np.full(shape, code, np.int8), LAYER_FILL)
            values[layers["operation_mode"]] = (piece.mode.astype(np.int8), LAYER_FILL)
            for key, attrs in _layer_attrs(mission).items():
                self.declare(key, values[key][0].dtype, LAYER_FILL, attrs)
        keys = self.mission_keys.setdefault(mission, set())
        keys.update(values)
        for (tr, tc), ps, ts in self._overlaps(piece.window):
            self._paint_tile(mission, keys, values, piece.time[ps], tr, tc, ps, ts)

    def _paint_tile(
        self, mission: str, keys: set[str], values: Mapping[str, tuple[np.ndarray, float | int]],
        t_new: np.ndarray, tr: int, tc: int, ps: tuple[slice, slice], ts: tuple[slice, slice],
    ) -> None:
        best = self.best.setdefault((mission, tr, tc), np.full(self.chunks, _NO_TIME, dtype=np.int64))
        win = (t_new != _NO_TIME) & (t_new >= best[ts])
        if not win.any():
            return
        best[ts][win] = t_new[win]
        tile = self.tiles.get((tr, tc), {})
        for key in keys:
            if key not in values and key not in tile:
                continue  # nothing to overwrite: the tile has no such array yet, so it is fill already
            target = self._tile(tr, tc, key)[ts]
            if key in values:
                target[win] = values[key][0][ps][win]
            else:
                target[win] = self.fills[key]

    def _overlaps(self, window: tuple[int, int, int, int]) -> Iterable[tuple[tuple[int, int], tuple[slice, slice], tuple[slice, slice]]]:
        r0, r1, c0, c1 = window
        ch, cw = self.chunks
        for tr in range(r0 // ch, (r1 - 1) // ch + 1):
            a0, a1 = max(r0, tr * ch), min(r1, (tr + 1) * ch)
            for tc in range(c0 // cw, (c1 - 1) // cw + 1):
                b0, b1 = max(c0, tc * cw), min(c1, (tc + 1) * cw)
                yield (tr, tc), (slice(a0 - r0, a1 - r0), slice(b0 - c0, b1 - c0)), (
                    slice(a0 - tr * ch, a1 - tr * ch), slice(b0 - tc * cw, b1 - tc * cw))


# --- the store -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GlobalCommit:
    store_path: str
    day: np.datetime64
    n_times: int
    chunks_written: int
    objects_written: int
    objects_deleted: int


def _as_stored(arr: np.ndarray, fill: float | int, dtype: np.dtype, to_fill: float | int) -> np.ndarray:
    """``arr`` (missing = ``fill``, NaN for floats) in ``dtype`` with missing = ``to_fill``."""
    if arr.dtype == dtype and (arr.dtype.kind == "f" or fill == to_fill):
        return arr
    missing = ~np.isfinite(arr) if arr.dtype.kind == "f" else arr == fill
    if dtype.kind == "f":
        out = arr.astype(dtype)
        out[missing] = np.nan
        return out
    out = np.where(missing, 0, arr).astype(dtype)
    out[missing] = to_fill
    return out


def global_layout(grid: GridSpec, chunks: tuple[int, int], zarr_format: int = 2) -> Layout:
    """One day per chunk ``(1, lat, lon)``, nested chunk keys (``<var>/<day>/<row>/<col>``, v3
    ``<var>/c/<day>/<row>/<col>``: a day's chunks are listed without probing the 10,000 chunks of a global
    variable), time in microseconds (00:00 UTC), EPSG:4326."""
    lat, lon = lat_lon(grid)
    time = TimeAxis(attrs={"standard_name": "time", "long_name": "day (00:00 UTC)", "axis": "T"})
    return Layout(lat, lon, (1, *chunks), time, separator="/", zarr_format=zarr_format, crs="EPSG:4326")


def day_slab(canvas: DayCanvas, day_us: int, keys: set[str]) -> Slab:
    """The canvas as the writer's value: one piece per tile that holds the variable (tiles are chunk-aligned)."""
    ch, cw = canvas.chunks
    variables = {}
    for key in sorted(keys | set(canvas.dtypes)):
        pieces = tuple(Piece((tr * ch, tc * cw), tile[key]) for (tr, tc), tile in sorted(canvas.tiles.items())
                       if key in tile)
        fill = canvas.fills[key]
        variables[key] = VarSlice(pieces, canvas.dtypes[key], fill, fill, canvas.attrs.get(key, {}))
    return Slab(day_us, variables)


def _merged_ids(old_attrs: Mapping[str, Any], canvas: DayCanvas, key: str) -> list[str]:
    ids = [str(v) for v in old_attrs.get("target_ids", [])]
    mission = next(m for m in LAYER_MISSIONS if layer_keys(m)["target_id"] == key)
    return ids + [t for t in canvas.target_ids.get(mission, []) if t not in ids]


def commit_global_day(
    fs: fsspec.AbstractFileSystem,
    store_path: str,
    day: dt.date,
    canvas: DayCanvas,
    *,
    missions: Sequence[str] = DEFAULT_MISSIONS,
    attrs: Mapping[str, Any] | None = None,
    lock_timeout: float = 600.0,
    zarr_format: int = 2,
) -> GlobalCommit:
    """Insert or replace ``day`` (00:00 UTC) in the global store at ``store_path``, atomically.

    ``missions`` are the missions the product covers: their layer variables exist even when they have no data.
    Target ids already in the store keep their index; the canvas's indices are remapped (under the store lock,
    from the stored ``target_ids``) before writing.
    """
    day_us = int(np.datetime64(day, "us").astype(np.int64))
    keys = {k for m in missions for k in layer_keys(m).values()}
    for m in missions:
        for key, a in _layer_attrs(m).items() if m in LAYER_MISSIONS else ():
            canvas.declare(key, np.dtype(np.int32 if key.endswith("_target_id") else np.int8), LAYER_FILL, a)

    def slabs(writer: Writer) -> list[Slab]:
        _remap_target_ids(writer, canvas)
        return [day_slab(canvas, day_us, keys)]

    result = upsert(fs, store_path, global_layout(canvas.grid, canvas.chunks, zarr_format), slabs, attrs=attrs,
                    lock_timeout=lock_timeout)
    chunks = sum(1 for k in result.objects if not is_metadata_key(k) and k.count("/") >= 3)  # var/day/row/col
    log.info("Committed global day %s to %s (%d chunks, %d objects written, %d deleted)",
             day, store_path, chunks, result.keys_written, result.keys_deleted)
    return GlobalCommit(store_path, np.datetime64(day, "us"), result.n_times_total, chunks, result.keys_written,
                        result.keys_deleted)


def _remap_target_ids(writer: Writer, canvas: DayCanvas) -> None:
    """Rewrite the canvas's target-id layers so indices follow the store's existing ``target_ids`` list."""
    for mission in LAYER_MISSIONS:
        key = layer_keys(mission)["target_id"]
        new = canvas.target_ids.get(mission, [])
        merged = _merged_ids(writer.var_attrs(key), canvas, key)
        if key in canvas.attrs:
            canvas.attrs[key] = {**canvas.attrs[key], "target_ids": merged}
        if not new:
            continue
        lookup = np.array([merged.index(t) for t in new], dtype=np.int32)
        if not np.array_equal(lookup, np.arange(len(new))):
            for tile in canvas.tiles.values():
                if key in tile:
                    arr = tile[key]
                    ok = arr != LAYER_FILL
                    arr[ok] = lookup[arr[ok]]
        canvas.target_ids[mission] = merged


# --- orchestration: grid granules, compose days, commit stores ----------------------------------------------
@dataclass(frozen=True)
class GlobalCaptureProduct:
    """One capture on the global grid (both QF passes as global pieces)."""

    mission: Mission
    target: Target | None  # None: no target id (``none``/``Missing``) or a nearest-target mission (OCO-2)
    mode: str
    start_time: np.datetime64
    n_soundings: int
    granule: str
    pre: tuple[GlobalPiece, ...]
    post: tuple[GlobalPiece, ...]
    #: the soundings' footprints (the STAC day item's geometry)
    footprints: SoundingFootprints | None = None

    def pieces(self, qf: QF) -> tuple[GlobalPiece, ...]:
        return self.pre if qf == "pre" else self.post


@dataclass(frozen=True)
class GlobalGranuleProducts:
    granule: GranuleInput
    captures: tuple[GlobalCaptureProduct, ...] = ()
    warnings: tuple[str, ...] = ()
    n_soundings: int = 0
    first_time: np.datetime64 | None = None
    timings: Mapping[str, float] = field(default_factory=dict)


def product_grid(config: RunConfig) -> GridSpec:
    """The global grid of ``config`` (``grid.latitude x grid.longitude`` cells over the globe)."""
    return global_grid(config.grid.latitude, config.grid.longitude)


def product_chunks(config: RunConfig) -> tuple[int, int]:
    grid = product_grid(config)
    return (min(config.chunking.latitude, grid.n_lat), min(config.chunking.longitude, grid.n_lon))


def grid_granule_global(config: RunConfig, granule: GranuleInput) -> GlobalGranuleProducts:
    """Read one granule, split it into captures and grid each onto the global grid (both QF passes).

    Raises :class:`~oco_l3.errors.PermanentError` / :class:`~oco_l3.errors.TransientError` like
    :func:`oco_l3.pipeline.grid_granule`; a capture that cannot be gridded is skipped with a warning.
    """
    from oco_l3.gridded import targets_for
    from oco_l3.inputs import input_staging, open_granule
    from oco_l3.readers import read_granule, selection_from_config

    if granule.mission is None:
        raise GranuleNameUnrecognised(f"{granule.name}: file name follows no OCO Lite FP/SIF naming convention")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with open_granule(granule, input_staging(config)) as path:
        soundings = read_granule(path, selection_from_config(config, granule.mission), granule.mission)
    timings["read"] = time.perf_counter() - t0
    grid = product_grid(config)
    warnings: list[str] = []
    products = []
    t0 = time.perf_counter()
    for cap in global_captures(soundings, targets_for(config, granule.mission)):
        subset = soundings.take(cap.index)
        name = cap.target.id if cap.target is not None else "no target"
        try:
            gc = grid_capture_global(subset, grid, config.grid.method, config.mask_scaling)
        except OcoL3Error as exc:
            warnings.append(f"{granule.name}: skipped capture {name} at {cap.start_time}: {one_line(exc)}")
            log.warning("%s", warnings[-1])
            continue
        products.append(GlobalCaptureProduct(granule.mission, cap.target, cap.mode, cap.start_time,
                                             int(cap.index.size), granule.name, gc.pre, gc.post,
                                             SoundingFootprints.of(subset)))
    timings["grid"] = time.perf_counter() - t0
    first = soundings.time.min() if len(soundings) else None
    return GlobalGranuleProducts(granule, tuple(products), tuple(warnings), len(soundings), first, timings)


@dataclass(frozen=True)
class GlobalCaptureRef:
    """One SAM/target-mode capture for the global product (``target`` None when it has no usable id)."""

    target: Target | None
    mode: str
    start_time: np.datetime64
    index: np.ndarray


def global_captures(soundings: Soundings, targets: Mapping[str, Target]) -> list[GlobalCaptureRef]:
    """Every SAM and target-mode capture of the granule, as the reference's global mode takes them.

    Runs are split (also at time gaps), given their soundings without a target id and merged across short
    interruptions exactly as in :mod:`oco_l3.captures`, but no capture is skipped for its target: an id missing
    from the target file becomes an ad-hoc target (its type from the id prefix), ``none``/``Missing`` ids give no
    target (target-id layer -1, type ``other``). Captures of nearest-target missions (OCO-2 FP and SIF) carry no
    target (the files have no usable ids; they have no target layers).
    """
    from oco_l3.captures import absorb_unidentified, find_runs, group_runs, time_segments

    spec = mission_spec(soundings.mission)
    capture_modes, by_id = set(spec.capture_modes), spec.targets == "id"
    ids = soundings.target_id.tolist()
    segments = time_segments(soundings.time).tolist()
    keys: list[tuple[int, str, int] | None] = []
    for m, t, seg in zip(soundings.mode.tolist(), ids, segments, strict=True):
        keys.append((int(m), str(t) if by_id else "", seg) if m in capture_modes else None)
    out = []
    for (mode, tid, _), parts in group_runs(absorb_unidentified(find_runs(keys))):
        index = np.concatenate([np.arange(r.start, r.stop) for r in parts])
        for piece in _split_at_gaps(index, soundings.time):
            out.append(GlobalCaptureRef(_adhoc_target(tid, targets), "sam" if mode == MODE_SAM else "target",
                                        soundings.time[piece[0]], piece))
    return out


def _split_at_gaps(index: np.ndarray, times: np.ndarray) -> list[np.ndarray]:
    """``index`` cut where consecutive soundings are more than :data:`MAX_GAP` apart (separate overpasses)."""
    t = times[index].astype("datetime64[ns]").astype(np.int64)
    cuts = np.flatnonzero(np.abs(np.diff(t)) > MAX_GAP_NS) + 1
    return [part for part in np.split(index, cuts) if part.size]


def _adhoc_target(tid: str, targets: Mapping[str, Target]) -> Target | None:
    if tid in targets:
        return targets[tid]
    clean = "".join(ch for ch in tid.strip() if ch.isprintable())[:128]
    if not clean or clean in NO_TARGET:
        return None
    return Target(clean, clean, 0.0, 0.0, BBox(-180.0, -90.0, 180.0, 90.0))


def compose_day(grid: GridSpec, chunks: tuple[int, int], captures: Iterable[GlobalCaptureProduct], qf: QF) -> DayCanvas:
    """All captures of one day and QF pass on one canvas, in start-time order (later soundings win per cell)."""
    canvas = DayCanvas(grid, chunks)
    for cap in sorted(captures, key=lambda c: (c.start_time, c.mission, c.target.id if c.target else "")):
        pieces = cap.pieces(qf)
        if not pieces:
            continue
        index = LAYER_FILL
        if cap.mission in LAYER_MISSIONS and cap.target is not None:
            index = canvas.target_index(cap.mission, cap.target.id)
        for piece in pieces:
            canvas.paint(cap.mission, piece, cap.target, index)
    return canvas


def expected_missions(config: RunConfig) -> tuple[Mission, ...]:
    """The missions the global product covers: ``search.missions`` when configured, else the default missions."""
    search = getattr(config, "search", None)
    return tuple(search.missions) if search is not None else DEFAULT_MISSIONS


def global_store_path(config: RunConfig, root: str, qf: QF) -> str:
    from oco_l3.paths import safe_join

    name = config.output.naming.pre_qf if qf == "pre" else config.output.naming.post_qf
    return safe_join(root, name)


def global_attrs(config: RunConfig, qf: QF) -> dict[str, Any]:
    grid = product_grid(config)
    title = config.title.pre_qf if qf == "pre" else config.title.post_qf
    return {
        "title": title,
        "product": "global daily (all SAM and target captures of "
                   f"{', '.join(mission_spec(m).name for m in expected_missions(config))})",
        "interpolation_method": config.grid.method,
        "mask_scaling": config.mask_scaling,
        "quality_flag_filtered": qf == "post",
        "qf_state": "post_qf (xco2_quality_flag == 0 / SIF Quality_Flag in {0,1})" if qf == "post"
        else "pre_qf (all soundings)",
        "grid_resolution_degrees": [grid.dlat, grid.dlon],
        "overlap_rule": "per cell and mission the capture with the later nearest sounding wins",
        "institution": "oco-l3 (open-source Level-3 processor)",
    }


def commit_global(config: RunConfig, day: dt.date, captures: Sequence[GlobalCaptureProduct], qf: QF,
                  canvas: DayCanvas | None = None) -> GlobalCommit:
    """Compose (unless ``canvas`` is given) and commit one QF store for one day (single writer per store)."""
    from oco_l3.remote import output_filesystem

    fs, root = output_filesystem(config.output)
    if canvas is None:
        canvas = compose_day(product_grid(config), product_chunks(config), captures, qf)
    path = global_store_path(config, root, qf)
    done = commit_global_day(fs, path, day, canvas, missions=expected_missions(config),
                             attrs=global_attrs(config, qf), zarr_format=config.output.zarr_format)
    from oco_l3 import stac
    from oco_l3.stac.global_day import record_global_day

    stac.updating(path, record_global_day, config, day, captures, qf, path)
    return done


# --- COG export ----------------------------------------------------------------------------------------------
def global_cog_name(key: str, day: dt.date, qf: QF) -> str:
    """The COG name of output variable ``key`` in the reference's COG naming style with ``global`` in the target
    id's place: ``{oco3-co2|oco2-co2|oco3-sif}_global_{YYYY-mm-dd}T000000Z_{filtered|unfiltered}_{[Group.]var}.tif``
    (``var`` without the mission prefix: ``Retrieval/OCO3_global_psurf`` -> ``oco3-co2_global_..._Retrieval.psurf``;
    layers keep their names: ``OCO3_global_target_id`` -> ``..._target_id``)."""
    from oco_l3.paths import cog_name

    group, _, name = key.rpartition("/")
    mission = next(m for m, p in sorted(PREFIX.items(), key=lambda kv: -len(kv[1])) if name.startswith(f"{p}_"))
    var = name[len(PREFIX[mission]) + 1 :]
    return cog_name(mission, "global", np.datetime64(day, "s"), qf == "post", f"{group}/{var}" if group else var)


def canvas_raster(canvas: DayCanvas, key: str) -> Any:
    """Variable ``key`` of the canvas as a north-up sparse raster (its tiles, never the whole grid)."""
    from oco_l3.sparse_cog import SparseRaster, pieces_from_tiles

    grid = canvas.grid
    ch, cw = canvas.chunks
    tiles = []
    for (tr, tc), arrays in sorted(canvas.tiles.items()):
        if key in arrays:  # clip chunk-shaped tiles to the grid
            tiles.append((tr * ch, tc * cw, arrays[key][: grid.n_lat - tr * ch, : grid.n_lon - tc * cw]))
    attrs = canvas.attrs.get(key, {})
    meta: dict[str, str] = {k: str(attrs[k]) for k in ("units", "long_name", "flag_meanings") if k in attrs}
    if "target_ids" in attrs:
        import json

        meta["target_ids"] = json.dumps(list(attrs["target_ids"]))
    return SparseRaster(grid.n_lat, grid.n_lon, grid.transform(), canvas.dtypes[key], canvas.fills[key],
                        pieces_from_tiles(tiles, grid.n_lat), metadata=meta)


def _has_data(canvas: DayCanvas, key: str) -> bool:
    fill = canvas.fills[key]
    for arrays in canvas.tiles.values():
        values = arrays.get(key)
        if values is None:
            continue
        if values.dtype.kind == "f" and np.isfinite(values).any():
            return True
        if values.dtype.kind != "f" and (values != fill).any():
            return True
    return False


def export_global_cogs(config: RunConfig, day: dt.date, canvas: DayCanvas, qf: QF) -> list[str]:
    """One sparse COG per variable of the day's canvas that holds data, for one QF pass (no-op without
    ``output.cog``); returns the paths. Variables without data that day (an absent mission) get no COG."""
    if config.output.cog is None:
        return []
    from oco_l3.cog import write_sparse_cog
    from oco_l3.remote import output_filesystem

    fs, root = output_filesystem(config.output.cog.output)
    written = []
    for key in sorted(canvas.dtypes):
        if _has_data(canvas, key):
            written.append(write_sparse_cog(canvas_raster(canvas, key), root, global_cog_name(key, day, qf),
                                            options=config.output.cog.options, fs=fs))
    log.info("Wrote %d global COGs for %s (%s-QF)", len(written), day, qf)
    return written


def _export_and_catalogue(config: RunConfig, day: dt.date, captures: Sequence[GlobalCaptureProduct],
                          canvas: DayCanvas, qf: QF) -> list[str]:
    """The day's COGs, then the day's catalogue item with them as assets (a catalogue failure is logged only)."""
    written = export_global_cogs(config, day, canvas, qf)
    if written:
        from oco_l3 import stac
        from oco_l3.stac.global_day import record_global_cogs

        stac.updating(f"the global COGs of {day}", record_global_cogs, config, day, captures, qf, canvas, written)
    return written


@dataclass(frozen=True)
class GlobalDayResult(DayResult):
    """One day of the global product: a :class:`~oco_l3.pipeline.DayResult` that also says which expected missions
    had no readable granule (``absent``: all-fill in the stores that day)."""

    absent: tuple[Mission, ...] = ()
    missions: tuple[Mission, ...] = ()
    n_captures: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return {**super().counts, "captures": self.n_captures, "absent_missions": len(self.absent)}


def _day_of(batch: DayBatch, products: Sequence[GlobalGranuleProducts]) -> dt.date | None:
    if batch.day is not None:
        return batch.day
    firsts = [p.first_time for p in products if p.first_time is not None]
    if not firsts:
        return None
    return dt.date.fromisoformat(str(min(firsts).astype("datetime64[D]")))


def process_global_day(config: RunConfig, batch: DayBatch) -> GlobalDayResult:
    """Grid every granule of the day onto the global grid and commit both QF stores.

    A granule that fails permanently (corrupt, wrong schema; :func:`oco_l3.errors.classify`) is recorded and its
    mission has no data that day (reported in ``absent``); the day is still written. A failure a retry may cure
    (a granule's read or a commit) raises :class:`GlobalDayBlocked` at once and leaves the stored day untouched, so
    a good day is never overwritten by a partial one and the orchestration's retries can fire. A day where no
    granule could be read, or whose date is unknown, is not written and every granule is recorded as failed.
    """
    from oco_l3.pipeline import InputOutcome

    timings: dict[str, float] = {}
    products: list[GlobalGranuleProducts] = []
    failed: dict[Any, str] = {}
    for g in batch.granules:
        try:
            gp = grid_granule_global(config, g)
        except Exception as exc:  # noqa: BLE001 - classified: transient stops the day, permanent is recorded
            verdict = _blocking_or_recorded(exc, f"global day {batch.day or '(unknown)'} not written: {g.name}")
            log.debug("error on %s", g.name, exc_info=True)
            failed[g] = f"{g.name}: {verdict}"
            continue
        products.append(gp)
        for k, v in gp.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    missions = expected_missions(config)
    present = {gp.granule.mission for gp in products}
    absent = tuple(m for m in missions if m not in present)
    day = _day_of(batch, products)
    captures = [c for gp in products for c in gp.captures]
    stores: list[str] = []
    cogs: list[str] = []
    if day is None or not products:
        reason = "the day of the global product is unknown" if day is None else \
            "global day not written: no granule could be read"
        for g in batch.granules:
            failed.setdefault(g, f"{g.name}: {reason}")
    else:
        qfs: tuple[QF, QF] = ("pre", "post")
        for qf in qfs:
            t0 = time.perf_counter()
            canvas = compose_day(product_grid(config), product_chunks(config), captures, qf)
            try:
                stores.append(commit_global(config, day, captures, qf, canvas).store_path)
            except Exception as exc:  # noqa: BLE001 - classified: transient raises, permanent is recorded
                verdict = _blocking_or_recorded(exc, f"global day {day}: {qf}-QF commit failed")
                log.debug("global commit failed", exc_info=True)
                for g in batch.granules:
                    failed.setdefault(g, f"{g.name}: global {qf}-QF commit failed: {verdict}")
                continue
            finally:
                timings["commit"] = timings.get("commit", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            try:  # after the store commit, as for the target product: a failed export never touches the store
                cogs += _export_and_catalogue(config, day, captures, canvas, qf)
            except Exception as exc:  # noqa: BLE001 - classified: transient raises (day redone), permanent recorded
                verdict = _blocking_or_recorded(exc, f"global day {day}: {qf}-QF COG export failed")
                log.debug("global COG export failed", exc_info=True)
                for g in batch.granules:
                    failed.setdefault(g, f"{g.name}: global {qf}-QF COG export failed: {verdict}")
            finally:
                timings["cog"] = timings.get("cog", 0.0) + time.perf_counter() - t0
            del canvas  # before the next pass composes its own: one canvas in memory at a time
    outcomes = []
    for g in batch.granules:
        if g in failed:
            outcomes.append(InputOutcome(g, False, failed[g]))
            continue
        gp = next(p for p in products if p.granule == g)
        targets = tuple(dict.fromkeys(c.target.id for c in gp.captures if c.target is not None))
        outcomes.append(InputOutcome(g, True, f"{g.name}: {len(gp.captures)} captures on the global grid",
                                     len(gp.captures), targets))
    warnings = tuple(w for gp in products for w in gp.warnings)
    return GlobalDayResult(day, tuple(outcomes), tuple(stores), tuple(cogs), warnings=warnings, timings=timings,
                           absent=absent, missions=missions, n_captures=len(captures))


def _blocking_or_recorded(exc: BaseException, where: str) -> str:
    """The permanent failure's one-line reason; a transient one raises :class:`GlobalDayBlocked` naming ``where``."""
    verdict = classify(exc)
    if verdict.transient:
        raise GlobalDayBlocked(f"{where}: {verdict.reason} (retry)") from exc
    return verdict.reason


def run_global_day(config: RunConfig, batch: DayBatch) -> GlobalDayResult:
    """:func:`process_global_day` for callers without retries of their own (``oco-l3 run``, the queue listener):
    a blocked day becomes a result whose every granule failed with the reason, marked transient."""
    from oco_l3.pipeline import InputOutcome

    try:
        return process_global_day(config, batch)
    except Exception as exc:  # noqa: BLE001 - one day's problem must not stop the other days
        verdict = classify(exc)
        log.debug("global day failed", exc_info=True)
        outcomes = tuple(InputOutcome(g, False, f"{g.name}: {verdict.reason}", transient=verdict.transient)
                         for g in batch.granules)
        return GlobalDayResult(batch.day, outcomes, missions=expected_missions(config))


def run_global(config: RunConfig) -> list[GlobalDayResult]:
    """The global product for every day of ``input.files`` (the CLI's ``output.global: true`` path)."""
    from oco_l3.pipeline import batches_from_files

    return [run_global_day(config, batch) for batch in batches_from_files(config)]
