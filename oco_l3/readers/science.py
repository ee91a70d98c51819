"""Selection of science variables and the final clean-up shared by the FP and SIF readers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import h5py
import numpy as np

from oco_l3.readers._hdf import (
    Source,
    get_dataset,
    is_science_dataset,
    iter_datasets,
    split_key,
    subgroups,
    to_variable,
)
from oco_l3.readers.selection import Selection
from oco_l3.soundings import Soundings, Variable

log = logging.getLogger(__name__)


def read_science(src: Source, picked: list[tuple[str, str, h5py.Dataset]], n: int) -> tuple[Variable, ...]:
    """The science variables :func:`pick_science` chose, read."""
    return tuple(to_variable(src, g, name, ds, n) for g, name, ds in picked)


def science_keys(picked: list[tuple[str, str, h5py.Dataset]]) -> list[str]:
    return [f"{g}/{name}" if g else name for g, name, _ in picked]


def pick_science(src: Source, selection: Selection, n: int,
                 bookkeeping: frozenset[str]) -> list[tuple[str, str, h5py.Dataset]]:
    """The selected per-sounding science datasets ``(group, name, dataset)`` (headers only: nothing is read)."""
    if selection.variables is None:
        groups = ["", *subgroups(src)]
        picked = [
            (g, name, ds)
            for g, name, ds in iter_datasets(src, [g for g in groups if g not in selection.exclude_groups])
            if selection.wants(g, name) and (f"{g}/{name}" if g else name) not in bookkeeping
            and is_science_dataset(ds, n)
        ]
    else:
        picked = []
        for key in selection.variables:
            group, name = split_key(key)
            if not selection.wants(group, name) or key in bookkeeping:
                continue
            ds = get_dataset(src, key)
            if ds is None:
                log.warning("%s: selected variable /%s is not in the granule; skipped", src.name, key)
            elif not is_science_dataset(ds, n):
                log.warning("%s: selected variable /%s is not a per-sounding number %s; skipped",
                            src.name, key, tuple(ds.shape))
            else:
                picked.append((group, name, ds))
    return picked


def will_read(src: Source, selection: Selection, bookkeeping: frozenset[str],
              required: Iterable[str]) -> Callable[[str], bool]:
    """Whether a read of ``src`` with ``selection`` takes dataset ``key``, from its header alone (before the reader
    lists anything): a ``required`` key, or one :func:`pick_science` would pick (any length: the sounding count is not
    known yet). A granule read in place fetches these datasets' chunks while its headers are walked."""
    needed = frozenset(required)

    def wanted(key: str) -> bool:
        if key in needed:
            return True
        group, name = split_key(key)
        if "/" in group or key in bookkeeping or name.startswith("_nc4") or not selection.wants(group, name):
            return False
        if selection.variables is not None and key not in selection.variables:
            return False
        ds = src.file.get(key)
        return isinstance(ds, h5py.Dataset) and ds.ndim == 1 and is_science_dataset(ds, int(ds.shape[0]))

    return wanted


def drop_bad_geolocation(soundings: Soundings) -> Soundings:
    """Remove soundings whose centre, corners or time are missing or out of range, with one warning."""
    lat, lon = soundings.latitude, soundings.longitude
    vlat, vlon = soundings.vertex_latitude, soundings.vertex_longitude
    with np.errstate(invalid="ignore"):
        ok = (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
        ok &= np.all(np.abs(vlat) <= 90, axis=1) & np.all(np.abs(vlon) <= 180, axis=1)
    ok &= ~np.isnat(soundings.time)
    bad = int(ok.size - np.count_nonzero(ok))
    if bad == 0:
        return soundings
    log.warning("%s: dropped %d of %d soundings with missing or out-of-range coordinates or time",
                soundings.source, bad, ok.size)
    return soundings.take(np.flatnonzero(ok))


def seconds_to_datetime64(seconds: np.ndarray, epoch: np.datetime64) -> np.ndarray:
    """Float seconds since ``epoch`` -> ``datetime64[ns]`` (rounded to the microsecond; NaN -> NaT)."""
    finite = np.isfinite(seconds)
    micros = np.zeros(seconds.shape, dtype=np.int64)
    micros[finite] = np.round(seconds[finite].astype(np.float64) * 1e6).astype(np.int64)
    out = epoch.astype("datetime64[ns]") + (micros * 1000).astype("timedelta64[ns]")
    if not finite.all():
        out[~finite] = np.datetime64("NaT")
    return out
