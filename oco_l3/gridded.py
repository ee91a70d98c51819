"""A granule read and split into captures, and each capture gridded on its target grid (both QF passes).

:func:`read_and_split` -> :class:`SplitGranule` (only the captures' soundings are kept); :func:`grid_one` ->
:class:`CaptureProduct` (the pre-QF slice and, when it has good soundings, the post-QF slice).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

from oco_l3.captures import Capture, CaptureMode, split_captures
from oco_l3.config import RunConfig
from oco_l3.errors import GranuleNameUnrecognised
from oco_l3.inputs import GranuleInput, input_staging, open_granule
from oco_l3.missions import mission_spec
from oco_l3.soundings import Mission, Soundings
from oco_l3.targets import Target, load_targets

if TYPE_CHECKING:
    from oco_l3.gridding import GriddedSlice
    from oco_l3.sounding_footprints import SoundingFootprints

QF = Literal["pre", "post"]


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
    with open_granule(granule, input_staging(config)) as path:
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
