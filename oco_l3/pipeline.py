"""The target-focused product, one step per function: read -> split -> grid -> commit -> export.

The unit of work is one granule, :func:`process_granule`: read and split it, then grid each capture, commit it to
its two stores (under each store's lock) and export its COGs and quick-look as soon as it is gridded, so at most
two captures are in memory; a small picklable :class:`GranuleResult` comes back. ``oco-l3 run`` loops over it
(:func:`process_day`); the Prefect flows run it as one task per granule over a whole day range. The stores on the
output filesystem are the hand-off between steps: gridded slices never leave the process that gridded them.
A bad capture is skipped with a one-line reason; a granule that cannot be read raises.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

import oco_l3
from oco_l3.captures import Capture, CaptureMode, split_captures
from oco_l3.config import DayInputs, InputItem, RunConfig, S3Object
from oco_l3.errors import (
    CaptureUnwritten,
    CaptureWriteBlocked,
    GranuleNameUnrecognised,
    OcoL3Error,
    PermanentError,
    classify,
    one_line,
)
from oco_l3.missions import mission_spec
from oco_l3.soundings import Mission, Soundings
from oco_l3.targets import Target, load_targets

if TYPE_CHECKING:
    from oco_l3.gridding import GriddedSlice
    from oco_l3.sounding_footprints import SoundingFootprints
    from oco_l3.sources import GranuleRef

log = logging.getLogger(__name__)

QF = Literal["pre", "post"]


# --- inputs ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GranuleInput:
    """One granule to process. ``mission``/``day`` are None when the file name follows no known convention."""

    mission: Mission | None
    location: InputItem
    day: dt.date | None

    @property
    def path(self) -> str:
        return self.location.path if isinstance(self.location, S3Object) else self.location

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class DayBatch:
    day: dt.date | None
    granules: tuple[GranuleInput, ...]


def granule_input(item: InputItem, mission: Mission | None = None) -> GranuleInput:
    """Mission and day from the file name (the products' naming conventions); unknown names keep None."""
    from oco_l3.readers.naming import parse_granule_name

    path = item.path if isinstance(item, S3Object) else item
    try:
        name = parse_granule_name(PurePosixPath(path).name)
    except GranuleNameUnrecognised:
        return GranuleInput(mission, item, None)
    return GranuleInput(mission or name.mission, item, name.day)


def batches_from_items(items: Sequence[DayInputs | InputItem]) -> list[DayBatch]:
    """Group ``input.files`` items into days: a per-day mapping is one day; plain items group by their day."""
    batches: list[DayBatch] = []
    by_day: dict[dt.date | None, list[GranuleInput]] = defaultdict(list)
    for item in items:
        if isinstance(item, DayInputs):
            granules = tuple(granule_input(loc, mission) for mission, loc in item.items())
            day = next((g.day for g in granules if g.day is not None), None)
            batches.append(DayBatch(day, granules))
        else:
            g = granule_input(item)
            by_day[g.day].append(g)
    batches.extend(DayBatch(day, tuple(gs)) for day, gs in by_day.items())
    return sorted(batches, key=lambda b: (b.day is None, b.day or dt.date.min))


def batches_from_files(config: RunConfig) -> list[DayBatch]:
    if config.input is None or config.input.files is None:
        return []
    return batches_from_items(config.input.files)


def granule_from_ref(ref: GranuleRef) -> GranuleInput:
    """The input for a discovered granule (a local path, an ``s3://`` object or a CMR ``https://`` URL), opened in
    place or staged by the process that reads it (:func:`oco_l3.remote.open_input`), so any worker can take it."""
    location: InputItem = S3Object(path=ref.url) if ref.url.startswith("s3://") else ref.url
    return GranuleInput(ref.mission, location, ref.day)


# --- grid --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaptureProduct:
    """One gridded capture: its pre-QF slice and (when it has good soundings) its post-QF slice."""

    mission: Mission
    target: Target
    mode: CaptureMode
    start_time: np.datetime64
    n_soundings: int
    n_good: int
    method: str
    granule: str
    pre: GriddedSlice
    post: GriddedSlice | None
    #: the soundings' footprints (quick-look outlines, STAC item geometry)
    footprints: SoundingFootprints | None = None

    @property
    def target_id(self) -> str:
        return self.target.id

    def slice(self, qf: QF) -> GriddedSlice | None:
        return self.pre if qf == "pre" else self.post


@dataclass(frozen=True)
class GranuleProducts:
    granule: GranuleInput
    captures: tuple[CaptureProduct, ...] = ()
    warnings: tuple[str, ...] = ()
    n_soundings: int = 0
    timings: Mapping[str, float] = field(default_factory=dict)


@lru_cache(maxsize=8)
def _targets(path: str | None, default: str) -> dict[str, Target]:
    return load_targets(path, default=default)


def targets_for(config: RunConfig, mission: Mission) -> dict[str, Target]:
    """The targets ``mission``'s captures go to: the config's file for its target list, else the bundled one."""
    return _targets(config.target_path(mission), mission_spec(mission).target_list.bundled)


@contextmanager
def _local_copy(granule: GranuleInput, staging: bool = False) -> Iterator[Any]:
    """What to read the granule from: a local path, an S3 object read in place, or (``staging``) its staged copy
    (oco_l3.remote.open_input)."""
    from oco_l3.remote import open_input

    with open_input(granule.location, staging=staging) as source:
        yield source


def input_staging(config: RunConfig) -> bool:
    """``input.staging`` of a run config (false when the config has no input section)."""
    return bool(config.input is not None and config.input.staging)


@dataclass(frozen=True)
class SplitGranule:
    """One granule read and split into captures: ``soundings`` are those of the captures only (they stay in memory
    until the captures are gridded), ``n_read`` the number the granule had."""

    granule: GranuleInput
    soundings: Soundings
    captures: tuple[Capture, ...]
    warnings: tuple[str, ...]
    timings: Mapping[str, float]
    n_read: int


def read_and_split(config: RunConfig, granule: GranuleInput) -> SplitGranule:
    """Read one granule (staged from S3 if needed) and split it into captures.

    Raises :class:`PermanentError` for a granule that can never be read, :class:`TransientError` when a remote
    read may succeed later.
    """
    from oco_l3.readers import read_granule, selection_from_config

    if granule.mission is None:
        raise GranuleNameUnrecognised(f"{granule.name}: file name follows no OCO Lite FP/SIF naming convention")
    t0 = time.perf_counter()
    with _local_copy(granule, input_staging(config)) as path:
        soundings = read_granule(path, selection_from_config(config, granule.mission), granule.mission)
    t1 = time.perf_counter()
    split = split_captures(soundings, targets_for(config, granule.mission))
    kept, captures = _captures_only(soundings, split.captures)
    timings = {"read": t1 - t0, "split": time.perf_counter() - t1}
    return SplitGranule(granule, kept, captures, split.skipped, timings, len(soundings))


def _captures_only(soundings: Soundings, captures: tuple[Capture, ...]) -> tuple[Soundings, tuple[Capture, ...]]:
    """The soundings of the captures and the captures indexing them: the others (most of a day: nadir, glint)
    need not be held while the captures are gridded and written."""
    if not captures:
        return soundings.take(np.zeros(0, dtype=np.intp)), captures
    used = np.unique(np.concatenate([c.index for c in captures]))
    if used.size == len(soundings):
        return soundings, captures
    return soundings.take(used), tuple(replace(c, index=np.searchsorted(used, c.index)) for c in captures)


def grid_one(config: RunConfig, split: SplitGranule, cap: Capture, parallel: bool = True) -> CaptureProduct:
    """Grid one capture of a split granule on its target grid, both QF passes (``parallel``: in two threads)."""
    from oco_l3.gridding import grid_capture
    from oco_l3.grids import target_grid
    from oco_l3.sounding_footprints import SoundingFootprints

    subset = split.soundings.take(cap.index)
    grid = target_grid(cap.target.bbox, config.grid.latitude, config.grid.longitude)
    gridded = grid_capture(subset, grid, config.grid.method, config.mask_scaling, parallel)
    return CaptureProduct(
        mission=cap.mission, target=cap.target, mode=cap.mode, start_time=cap.start_time,
        n_soundings=cap.n_soundings, n_good=int(subset.good.sum()), method=config.grid.method,
        granule=split.granule.name, pre=gridded.pre, post=gridded.post, footprints=SoundingFootprints.of(subset),
    )


# --- commit ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoreCommit:
    """All slices of one run that go into one target store (single writer)."""

    mission: Mission
    qf: QF
    target: Target
    slices: tuple[CaptureProduct, ...]

    @property
    def granules(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.granule for p in self.slices))


def plan_commits(config: RunConfig, products: Sequence[GranuleProducts]) -> list[StoreCommit]:
    """Group every capture slice by target store. Pure; one capture time appears once per store (last wins)."""
    groups: dict[tuple[Mission, QF, str], dict[np.datetime64, CaptureProduct]] = defaultdict(dict)
    targets: dict[str, Target] = {}
    for gp in products:
        for cap in gp.captures:
            targets[cap.target.id] = cap.target
            qf: QF
            for qf in ("pre", "post"):
                if _slice_to_write(config, cap, qf) is not None:
                    groups[(cap.mission, qf, cap.target.id)][cap.start_time] = cap
    return [
        StoreCommit(mission, qf, targets[tid], tuple(sorted(caps.values(), key=lambda c: c.start_time)))
        for (mission, qf, tid), caps in sorted(groups.items())
    ]


def _slice_to_write(config: RunConfig, cap: CaptureProduct, qf: QF) -> GriddedSlice | None:
    gslice = cap.slice(qf)
    if gslice is None:
        return None
    if config.output.drop_empty and _is_empty(gslice):
        return None
    return gslice


def _is_empty(gslice: GriddedSlice) -> bool:
    """No float science variable has a finite value (integer and quality layers alone do not make a slice worth
    writing)."""
    return gslice.empty or not gslice.has_values


def naming(config: RunConfig, qf: QF) -> str:
    return config.output.naming.pre_qf if qf == "pre" else config.output.naming.post_qf


def store_attrs(config: RunConfig, commit: StoreCommit) -> dict[str, Any]:
    spec = mission_spec(commit.mission)
    title = config.title.pre_qf if commit.qf == "pre" else config.title.post_qf
    return {
        "title": title,
        "target_id": commit.target.id,
        "target_name": commit.target.name,
        "target_type": commit.target.type,
        "target_bbox": commit.target.bbox.wkt(),
        "interpolation_method": config.grid.method,
        "mask_scaling": config.mask_scaling,
        "quality_flag_filtered": commit.qf == "post",
        "qf_state": f"post_qf ({spec.post_qf.describe()})" if commit.qf == "post" else "pre_qf (all soundings)",
        "platform": spec.platform,
        "sensor": spec.sensor,
        "institution": "oco-l3 (open-source Level-3 processor)",
        "source": spec.title,
        "software": f"oco-l3 {oco_l3.__version__}",
    }


def slice_data(cap: CaptureProduct, qf: QF) -> Any:
    """The store/COG writers' value for one pass of one capture (window-shaped, time = capture start)."""
    from oco_l3.stores import SliceData

    gslice = cap.slice(qf)
    if gslice is None:
        raise ValueError(f"capture {cap.target.id} at {cap.start_time} has no {qf}-QF slice")
    return SliceData(
        time=cap.start_time,
        grid=gslice.grid,
        data=gslice.data,
        fills=gslice.fills,
        var_attrs=gslice.attrs,
        attrs={"source_granules": [cap.granule], "capture_mode": cap.mode, "n_soundings": cap.n_soundings},
        window=gslice.window,
    )


def output_filesystem(config: RunConfig) -> tuple[Any, str]:
    from oco_l3.remote import output_filesystem as _ofs

    return _ofs(config.output)


def store_path(config: RunConfig, root: str, commit: StoreCommit) -> str:
    from oco_l3.paths import target_store_path

    return target_store_path(root, commit.mission, naming(config, commit.qf), commit.target.id)


def commit_store(config: RunConfig, commit: StoreCommit) -> Any:
    """Upsert the commit's slices into its store (crash-safe, idempotent) and read them back."""
    from oco_l3.stores import read_back, upsert_slices

    fs, root = output_filesystem(config)
    path = store_path(config, root, commit)
    c = config.chunking
    result = upsert_slices(
        fs, path, [slice_data(cap, commit.qf) for cap in commit.slices],
        chunking=(c.latitude, c.longitude, c.time), title=store_attrs(config, commit)["title"],
        global_attrs=store_attrs(config, commit), zarr_format=config.output.zarr_format,
    )
    if not read_back(fs, path, [cap.start_time for cap in commit.slices], result.objects):
        raise PermanentError(f"{path}: committed slices did not read back")
    from oco_l3 import stac
    from oco_l3.stac.oco import record_store_commit

    stac.updating(path, record_store_commit, config, commit, path)
    return result


# --- export ------------------------------------------------------------------------------------------------
def cog_filesystem(config: RunConfig) -> tuple[Any, str] | None:
    if config.output.cog is None:
        return None
    from oco_l3.remote import output_filesystem as _ofs

    return _ofs(config.output.cog.output)


def export_cogs(config: RunConfig, products: GranuleProducts) -> list[str]:
    """One COG per variable, capture and QF pass (no-op without ``output.cog``)."""
    target = cog_filesystem(config)
    if target is None or config.output.cog is None:
        return []
    from oco_l3.cog import write_slice_cogs

    fs, root = target
    written: list[str] = []
    for cap in products.captures:
        qf: QF
        for qf in ("pre", "post"):
            if _slice_to_write(config, cap, qf) is None:
                continue
            written += write_slice_cogs(
                slice_data(cap, qf), cap.mission, cap.target.id, qf == "post", root,
                options=config.output.cog.options, fs=fs,
            )
    from oco_l3 import stac
    from oco_l3.stac.oco import record_cogs

    stac.updating(f"the COGs of {products.granule.name}", record_cogs, config, products, written)
    return written


def quicklook_variable(cap: CaptureProduct) -> str | None:
    """The capture's headline variable (the first of its mission's key variables it has), else its first one."""
    keys = list(cap.pre.data)
    preferred = mission_spec(cap.mission).key_variables
    return next((k for k in preferred if k in cap.pre.data), keys[0] if keys else None)


def write_quicklooks(config: RunConfig, products: GranuleProducts, directory: str) -> list[str]:
    """A PNG per capture (main variable, pre- and post-QF side by side, footprints, coastlines) in a local
    directory."""
    from oco_l3.quicklook import capture_quicklook_png

    os.makedirs(directory, exist_ok=True)
    written = []
    for cap in products.captures:
        key = quicklook_variable(cap)
        if key is None:
            continue
        stamp = np.datetime_as_string(cap.start_time, unit="s").replace(":", "")
        name = f"{mission_spec(cap.mission).cog_prefix}_{cap.target.id}_{stamp}Z_{key.replace('/', '.')}.png"
        path = os.path.join(directory, name)
        title = f"{cap.mission} {cap.target.id} {cap.target.name} {stamp}Z {key}"
        units = str(cap.pre.attrs.get(key, {}).get("units", ""))
        post = cap.post.full(key) if cap.post is not None and key in cap.post.data else None
        written.append(capture_quicklook_png(cap.pre.full(key), post, cap.pre.grid, path, title, units=units,
                                             footprints=cap.footprints))
    return written


# --- one day -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputOutcome:
    granule: GranuleInput
    ok: bool
    message: str
    captures: int = 0
    targets: tuple[str, ...] = ()
    #: The failure may go away on retry (network, throttling, a busy store lock): :func:`oco_l3.errors.classify`.
    transient: bool = False


@dataclass(frozen=True)
class DayResult:
    day: dt.date | None
    outcomes: tuple[InputOutcome, ...]
    stores: tuple[str, ...] = ()
    cogs: tuple[str, ...] = ()
    quicklooks: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def errors(self) -> list[str]:
        return [o.message for o in self.outcomes if not o.ok]

    @property
    def counts(self) -> dict[str, int]:
        return {
            "granules": len(self.outcomes),
            "failed": sum(not o.ok for o in self.outcomes),
            "captures": sum(o.captures for o in self.outcomes),
            "targets": len({t for o in self.outcomes for t in o.targets}),
            "stores": len(self.stores),
            "cogs": len(self.cogs),
        }


@dataclass(frozen=True)
class CaptureWritten:
    """What gridding and writing one capture did (small and picklable: it comes back from a worker process)."""

    target_id: str
    stores: tuple[str, ...] = ()
    cogs: tuple[str, ...] = ()
    quicklooks: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None
    transient: bool = False


def grid_and_write(config: RunConfig, split: SplitGranule, cap: Capture, quicklook_dir: str | None) -> CaptureWritten:
    """Grid one capture, commit its two stores, export its COGs and quick-look. Never raises for one capture."""
    gridded = _grid_capture(config, split, cap)
    if isinstance(gridded, CaptureWritten):
        return gridded
    return _write_capture(config, split, gridded, quicklook_dir)


def _grid_capture(config: RunConfig, split: SplitGranule, cap: Capture, parallel: bool = True
                  ) -> _Gridded | CaptureWritten:
    """The gridded capture, or the record of its skipping."""
    t0 = time.perf_counter()
    try:
        product = grid_one(config, split, cap, parallel)
    except OcoL3Error as exc:
        msg = f"{split.granule.name}: skipped capture {cap.target.id} at {cap.start_time}: {one_line(exc)}"
        log.warning("%s", msg)
        return CaptureWritten(cap.target.id, skipped=msg)
    return _Gridded(product, time.perf_counter() - t0)


@dataclass(frozen=True)
class _Gridded:
    product: CaptureProduct
    seconds: float


def _write_capture(config: RunConfig, split: SplitGranule, gridded: _Gridded, quicklook_dir: str | None,
                   side_by_side: bool = False) -> CaptureWritten:
    """Commit the two stores of a gridded capture (``side_by_side``: in two threads, for when nothing else
    runs), export its COGs and quick-look. Never raises."""
    product = gridded.product
    timings = {"grid": gridded.seconds}
    stores: list[str] = []
    cogs: list[str] = []
    quicklooks: list[str] = []
    try:
        t0 = time.perf_counter()
        gp = GranuleProducts(split.granule, (product,))
        stores += _commit_stores(config, plan_commits(config, [gp]), side_by_side)
        timings["commit"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cogs += export_cogs(config, gp)
        if quicklook_dir:
            quicklooks += write_quicklooks(config, gp, quicklook_dir)
        timings["export"] = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - recorded against the granule; its other captures go on
        log.debug("commit/export failed", exc_info=True)
        verdict = classify(exc)
        msg = f"{split.granule.name}: writing {product.mission}/{product.target.id} failed: {verdict.reason}"
        return CaptureWritten(product.target.id, tuple(stores), tuple(cogs), tuple(quicklooks), timings,
                              error=msg, transient=verdict.transient)
    return CaptureWritten(product.target.id, tuple(stores), tuple(cogs), tuple(quicklooks), timings)


def _commit_stores(config: RunConfig, commits: Sequence[StoreCommit], side_by_side: bool) -> list[str]:
    """Commit the stores (different stores: independent) one after the other or in two threads; the first error
    is raised after every commit has ended."""
    if not side_by_side or len(commits) < 2:
        return [str(commit_store(config, c).store_path) for c in commits]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="oco-l3-commit") as pool:
        futures = [pool.submit(contextvars.copy_context().run, commit_store, config, c) for c in commits]
    return [str(f.result().store_path) for f in futures]


def _pipelined_captures(config: RunConfig, split: SplitGranule, quicklook_dir: str | None) -> list[CaptureWritten]:
    """Every capture in this process, the writing of one overlapping the gridding of the next (a writer thread:
    both are NumPy, Blosc and file work that mostly release the GIL). At most two captures are in memory, the one
    being written and the one being gridded; captures go largest first, so the overlap is with a smaller one."""
    from concurrent.futures import Future, ThreadPoolExecutor

    order = _largest_first(split)
    done: dict[int, CaptureWritten] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="oco-l3-write") as writer:
        writing: tuple[int, Future[CaptureWritten]] | None = None
        for i in order:
            # Beside a write, one gridding thread: the writer keeps the other core busy, and two passes at once
            # would only add their temporaries to the memory peak.
            gridded = _grid_capture(config, split, split.captures[i], parallel=writing is None)
            if writing is not None:
                done[writing[0]] = writing[1].result()
                writing = None
            if isinstance(gridded, CaptureWritten):
                done[i] = gridded
            else:  # the last capture is written alone: its two stores side by side
                writing = (i, writer.submit(contextvars.copy_context().run, _write_capture, config, split, gridded,
                                            quicklook_dir, i == order[-1]))
            del gridded
        if writing is not None:
            done[writing[0]] = writing[1].result()
    return [done[i] for i in range(len(split.captures))]


def _largest_first(split: SplitGranule) -> list[int]:
    """Capture indices, largest capture first: the last one to finish (or to be written alone) is a small one."""
    return sorted(range(len(split.captures)), key=lambda i: -split.captures[i].n_soundings)


#: The granule forked capture workers read from: set just before the worker pool forks, so the soundings are
#: shared copy-on-write instead of being pickled to every worker.
_FORKED_SPLIT: SplitGranule | None = None


def _forked_capture(config: RunConfig, i: int, quicklook_dir: str | None) -> CaptureWritten:
    assert _FORKED_SPLIT is not None
    return grid_and_write(config, _FORKED_SPLIT, _FORKED_SPLIT.captures[i], quicklook_dir)


def _write_captures(config: RunConfig, split: SplitGranule, quicklook_dir: str | None,
                    workers: int) -> list[CaptureWritten]:
    """Every capture of the granule, in ``workers`` forked processes when more than one (captures are independent;
    two captures of one target serialise on the store lock)."""
    n = len(split.captures)
    if workers <= 1 or n <= 1:
        return _pipelined_captures(config, split, quicklook_dir)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _FORKED_SPLIT
    _FORKED_SPLIT = split
    order = _largest_first(split)
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(min(workers, n), mp_context=ctx) as pool:
            done = dict(zip(order, pool.map(_forked_capture, [config] * n, order, [quicklook_dir] * n), strict=True))
    finally:
        _FORKED_SPLIT = None
    return [done[i] for i in range(n)]


@dataclass(frozen=True)
class GranuleResult:
    """What processing one granule did (small and picklable: it comes back from a worker process or machine)."""

    granule: str
    captures: int = 0
    targets: tuple[str, ...] = ()
    stores: tuple[str, ...] = ()
    cogs: tuple[str, ...] = ()
    quicklooks: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def message(self) -> str:
        skipped = len(self.warnings)
        return f"{self.granule}: {self.captures} captures ({', '.join(self.targets) or 'none'}), {skipped} skipped"


def process_granule(config: RunConfig, granule: GranuleInput, quicklook_dir: str | None = None,
                    capture_workers: int = 1) -> GranuleResult:
    """Read and split one granule, then grid each capture, commit it to its two stores and export its COGs and
    quick-look as soon as it is gridded (``capture_workers`` > 1: in that many forked processes).

    Raises :class:`PermanentError` for a granule that can never be read, :class:`TransientError` when a read may
    succeed later; after every capture was tried, :class:`CaptureWriteBlocked` (retry) or :class:`CaptureUnwritten`
    when a capture could not be written (the others were). A capture that cannot be gridded is skipped with a
    warning. Re-running a granule replaces its slices (the upsert is keyed by capture time).
    """
    t0 = time.perf_counter()
    split = read_and_split(config, granule)
    written = _write_captures(config, split, quicklook_dir, capture_workers)
    errors = [w for w in written if w.error]
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        permanent = [w for w in errors if not w.transient]
        raise (CaptureUnwritten(f"{permanent[0].error}{more}") if permanent
               else CaptureWriteBlocked(f"{errors[0].error}{more}"))
    timings = dict(split.timings)
    for w in written:
        for k, v in w.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    done = [w for w in written if not w.skipped]
    result = GranuleResult(
        granule.name, len(done), tuple(dict.fromkeys(w.target_id for w in done)),
        tuple(dict.fromkeys(s for w in written for s in w.stores)), tuple(c for w in written for c in w.cogs),
        tuple(q for w in written for q in w.quicklooks), split.warnings + tuple(str(w.skipped) for w in written
                                                                               if w.skipped),
        timings, time.perf_counter() - t0)
    log.info("%s in %.2f s", result.message, result.seconds)
    return result


def process_day(config: RunConfig, batch: DayBatch, quicklook_dir: str | None = None,
                capture_workers: int = 1) -> DayResult:
    """:func:`process_granule` for every granule of the day, one after the other (memory stays at two captures'
    slices per process); each granule's outcome is one line and a failed granule never stops the others."""
    results: dict[GranuleInput, GranuleResult] = {}
    failed: dict[GranuleInput, tuple[str, bool]] = {}
    for g in batch.granules:
        try:
            results[g] = process_granule(config, g, quicklook_dir, capture_workers)
        except Exception as exc:  # noqa: BLE001 - an unreadable granule must not stop the others
            log.debug("error on %s", g.name, exc_info=True)
            failed[g] = (granule_failure(g.name, exc), classify(exc).transient)
    outcomes = tuple(_outcome(g, results.get(g), failed.get(g)) for g in batch.granules)
    timings: dict[str, float] = {}
    for r in results.values():
        for k, v in r.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    rs = [results[g] for g in batch.granules if g in results]
    return DayResult(batch.day, outcomes, tuple(dict.fromkeys(s for r in rs for s in r.stores)),
                     tuple(c for r in rs for c in r.cogs), tuple(q for r in rs for q in r.quicklooks),
                     tuple(w for r in rs for w in r.warnings), timings)


def granule_failure(name: str, exc: BaseException) -> str:
    """The one-line reason a granule failed, starting with its name (:func:`oco_l3.errors.classify`'s reason:
    ``unexpected`` for a non-oco_l3 error)."""
    if isinstance(exc, CaptureUnwritten | CaptureWriteBlocked):  # already "<granule>: writing ... failed: ..."
        return str(exc).strip().splitlines()[0]
    return f"{name}: {classify(exc).reason}"


def _outcome(g: GranuleInput, result: GranuleResult | None, failure: tuple[str, bool] | None) -> InputOutcome:
    if result is None:
        message, transient = failure or (f"{g.name}: not processed", True)
        return InputOutcome(g, False, message, transient=transient)
    return InputOutcome(g, True, result.message, result.captures, result.targets)
