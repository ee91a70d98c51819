"""Split a granule's soundings into captures: runs of SAM or target-mode soundings over one target.

Rules (issue 2):

* A capture is a run of consecutive soundings in one of the product's capture modes
  (:attr:`~oco_l3.missions.MissionSpec.capture_modes`: SAM (normalised code 4) and target mode (2); OCO-2 target mode
  only) with one target id. The run ends where the mode or the target id changes.
* Soundings without a target id (``none``, ``Missing``, empty: :data:`~oco_l3.soundings.NO_TARGET`) in SAM or target
  mode belong to the run of one target they touch (issue 13): a run of them between two runs of the same mode and
  the same target (no time gap) joins the two into one capture, whatever its length; one at the start or the end of
  a target's run (next to another mode, a time gap or the file's edge) joins that run. Between runs of two
  *different* targets they belong to neither and are skipped as target ``none``. A run with no target id at all
  is skipped.
* A run interrupted by one or two soundings of another mode, after which the same mode and target resume, is one
  capture; the interrupting soundings are not part of it.
* Captures whose target is ``none``/``Missing`` or absent from the target file are skipped with a warning naming the
  target.
* Products whose captures go to the nearest target (:attr:`~oco_l3.missions.MissionSpec.targets` ``nearest``:
  OCO-2 FP and SIF, whose files carry no usable target id): a capture goes to the target whose centroid is nearest
  to the capture's centroid, and is skipped when none of its soundings lies inside that target's bbox.
* A time gap of more than :data:`MAX_GAP` between consecutive soundings also ends a run (two overpasses of one
  target on one day are two captures even when no other sounding lies between them in the file).
* The capture's time is the time of its first sounding (before any quality filtering), so the pre-QF and post-QF
  slices of one capture share one time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from oco_l3.missions import mission_spec
from oco_l3.soundings import MODE_SAM, NO_TARGET, Mission, Soundings
from oco_l3.targets import Target

log = logging.getLogger(__name__)

CaptureMode = Literal["sam", "target"]
#: The longest interruption (in soundings of another mode) that does not split a capture.
MAX_INTERRUPTION = 2
#: The longest time between consecutive soundings of one capture.
MAX_GAP = np.timedelta64(60, "s")

Key = tuple[int, str, int]  # (mode, target id, segment between time gaps)
AnyKey = tuple[Any, ...]  # find_runs/group_runs work on any key whose first item is the mode


@dataclass(frozen=True)
class Capture:
    mission: Mission
    target: Target
    mode: CaptureMode
    start_time: np.datetime64
    index: np.ndarray

    @property
    def n_soundings(self) -> int:
        return int(self.index.size)


@dataclass(frozen=True)
class Run:
    """A maximal run of consecutive soundings with one (mode, target) key; ``key`` None for other modes."""

    key: AnyKey | None
    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class SplitResult:
    captures: tuple[Capture, ...]
    skipped: tuple[str, ...]


def time_segments(time: np.ndarray) -> np.ndarray:
    """A segment number per sounding that increases after every time gap longer than :data:`MAX_GAP`."""
    if time.size == 0:
        return np.zeros(0, dtype=np.int64)
    gaps = np.diff(time.astype("datetime64[ns]")) > MAX_GAP
    return np.concatenate([[0], np.cumsum(gaps)])


def capture_runs(soundings: Soundings) -> list[Run]:
    """Maximal runs of soundings with one key ``(mode, target id, time segment)`` -- the product's capture modes
    (target id ``""`` for products whose captures go to the nearest target) -- and runs of the other modes (key
    None)."""
    n = len(soundings)
    if n == 0:
        return []
    mode = np.asarray(soundings.mode)
    spec = mission_spec(soundings.mission)
    by_id = spec.targets == "id"
    capture = np.isin(mode, spec.capture_modes)
    tid = np.asarray(soundings.target_id)
    seg = time_segments(soundings.time)
    kind = np.where(capture, mode, -1)  # every other mode is one key (None)
    change = kind[1:] != kind[:-1]
    same_kind = capture[1:] & ~change
    if by_id:
        change |= same_kind & (tid[1:] != tid[:-1])
    change |= same_kind & (seg[1:] != seg[:-1])
    starts = np.concatenate([[0], np.flatnonzero(change) + 1])
    stops = np.append(starts[1:], n)
    return [
        Run((int(mode[i]), str(tid[i]) if by_id else "", int(seg[i])) if capture[i] else None, int(i), int(j))
        for i, j in zip(starts, stops, strict=True)
    ]


def _unidentified(key: AnyKey | None) -> bool:
    """A SAM/target-mode key without a target id (the keys of nearest-target products, which never have one, count
    too)."""
    return key is not None and str(key[1]).strip() in NO_TARGET


def _owner(runs: Sequence[Run], j: int, key: AnyKey) -> AnyKey | None:
    """The key of ``runs[j]`` when it is a run of one identified target in the mode (and the time segment, for keys
    that carry one) of ``key``."""
    if not 0 <= j < len(runs):
        return None
    other = runs[j].key
    if other is None or _unidentified(other) or other[0] != key[0] or other[2:] != key[2:]:
        return None
    return other


def absorb_unidentified(runs: Sequence[Run]) -> list[Run]:
    """Runs of soundings without a target id given to the target run they belong to (see the module docstring),
    then consecutive runs of one key merged."""
    keys: list[AnyKey | None] = [r.key for r in runs]
    for i, run in enumerate(runs):
        if run.key is None or not _unidentified(run.key):
            continue
        before, after = _owner(runs, i - 1, run.key), _owner(runs, i + 1, run.key)
        if before is not None and after is not None and before != after:
            continue  # between two different targets: neither's
        owner = before if before is not None else after
        if owner is not None:
            keys[i] = owner
    merged: list[Run] = []
    for run, key in zip(runs, keys, strict=True):
        if merged and merged[-1].key == key and merged[-1].stop == run.start:
            merged[-1] = Run(key, merged[-1].start, run.stop)
        else:
            merged.append(Run(key, run.start, run.stop))
    return merged


def find_runs(keys: Sequence[AnyKey | None]) -> list[Run]:
    """Maximal runs of equal keys, in order."""
    runs: list[Run] = []
    start = 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            runs.append(Run(keys[start], start, i))
            start = i
    return runs


def _is_interruption(run: Run, key: AnyKey) -> bool:
    """A short run of another *mode* (not just another target in the same mode)."""
    return run.length <= MAX_INTERRUPTION and (run.key is None or run.key[0] != key[0])


def group_runs(runs: list[Run]) -> list[tuple[AnyKey, list[Run]]]:
    """Runs of one key joined across interruptions of one or two soundings of another mode."""
    groups: list[tuple[AnyKey, list[Run]]] = []
    for i, run in enumerate(runs):
        if run.key is None:
            continue
        if i >= 2 and _is_interruption(runs[i - 1], run.key):
            # The interruption may be a (short) SAM/target run of its own, so the run it interrupts is one of the
            # last two groups.
            resumed = next((g for g in reversed(groups[-2:]) if g[0] == run.key and g[1][-1] is runs[i - 2]), None)
            if resumed is not None:
                resumed[1].append(run)
                continue
        groups.append((run.key, [run]))
    return groups


def _indices(parts: list[Run]) -> np.ndarray:
    return np.concatenate([np.arange(r.start, r.stop) for r in parts])


def _nearest_target(soundings: Soundings, index: np.ndarray, targets: Mapping[str, Target]) -> Target | None:
    if not targets:
        return None
    lat = float(np.nanmean(soundings.latitude[index]))
    lon = float(np.nanmean(soundings.longitude[index]))
    cands = list(targets.values())
    tlat = np.radians([t.centroid_lat for t in cands])
    tlon = np.radians([t.centroid_lon for t in cands])
    la, lo = np.radians(lat), np.radians(lon)
    # haversine distance (unit sphere)
    h = np.sin((tlat - la) / 2) ** 2 + np.cos(la) * np.cos(tlat) * np.sin((tlon - lo) / 2) ** 2
    return cands[int(np.argmin(h))]


def _inside_bbox(soundings: Soundings, index: np.ndarray, target: Target) -> bool:
    b = target.bbox
    lat, lon = soundings.latitude[index], soundings.longitude[index]
    return bool(np.any((lat >= b.min_lat) & (lat <= b.max_lat) & (lon >= b.min_lon) & (lon <= b.max_lon)))


def _resolve_target(
    soundings: Soundings, key: AnyKey, index: np.ndarray, targets: Mapping[str, Target]
) -> tuple[Target | None, str]:
    """The capture's target, or None with the reason it is skipped."""
    tid = key[1]
    spec = mission_spec(soundings.mission)
    if spec.targets == "nearest":
        target = _nearest_target(soundings, index, targets)
        if target is None:
            return None, f"no {spec.name} targets loaded"
        if not _inside_bbox(soundings, index, target):
            return None, f"nearest target {target.id!r} bbox does not contain any of its soundings"
        return target, ""
    if tid.strip() in NO_TARGET:
        return None, f"target {tid!r} is not a target"
    if tid not in targets:
        return None, f"target {tid[:80]!r} is not in the target file"
    return targets[tid], ""


def split_captures(soundings: Soundings, targets: Mapping[str, Target]) -> SplitResult:
    """Captures of one granule's soundings (which must be in acquisition order), and the skip reasons."""
    captures: list[Capture] = []
    skipped: list[str] = []
    for key, parts in group_runs(absorb_unidentified(capture_runs(soundings))):
        index = _indices(parts)
        mode: CaptureMode = "sam" if key[0] == MODE_SAM else "target"
        target, reason = _resolve_target(soundings, key, index, targets)
        start = soundings.time[index[0]]
        if target is None:
            msg = f"{soundings.source or soundings.mission}: skipped {mode} capture at {start}: {reason}"
            log.warning("%s", msg)
            skipped.append(msg)
            continue
        captures.append(Capture(soundings.mission, target, mode, start, index))
    return SplitResult(tuple(captures), tuple(skipped))
