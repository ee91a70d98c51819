"""The one write path: lock, recover, build the transaction with the writer, commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np

from oco_l3.zarr_store import _txn
from oco_l3.zarr_store._lock import StoreLock
from oco_l3.zarr_store._objectstore import ObjectStore
from oco_l3.zarr_store._writer import Writer
from oco_l3.zarr_store.layout import Layout, Slab

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitResult:
    store_path: str
    times_written: tuple[np.datetime64, ...]
    n_times_total: int
    keys_written: int = 0
    keys_deleted: int = 0
    #: key -> size in bytes of every object this commit wrote (checked by :func:`read_back`).
    objects: Mapping[str, int] = field(default_factory=dict)
    #: ``created``, ``replaced``, ``appended`` or ``inserted`` (an insert before the last stored time).
    action: str = ""


#: Slabs, or a function of the writer (its view of the store as locked: ``var_attrs(key)``) that returns them.
SlabSource = Sequence[Slab] | Callable[[Writer], Sequence[Slab]]


def upsert(
    fs: fsspec.AbstractFileSystem,
    store_path: str,
    layout: Layout,
    slabs: SlabSource,
    *,
    attrs: Mapping[str, Any] | None = None,
    lock_timeout: float = 600.0,
) -> CommitResult:
    """Insert or replace ``slabs`` (by time) in the store at ``store_path``, atomically, under the store lock.

    A slab whose time exists replaces that time step (variables it lacks become missing there); new times land
    in time order. ``attrs`` are dataset attributes (``source_granules`` accumulate). Raises
    :class:`~oco_l3.errors.StoreLocked` (transient) when the lock cannot be had and
    :class:`~oco_l3.errors.StoreCorrupt` when the store is not one this package can write.
    """
    with StoreLock(fs, store_path, timeout=lock_timeout) as lock:
        store = ObjectStore(fs, store_path)
        _txn.recover(store)
        overlay = _txn.Overlay(store)
        try:
            writer = Writer(overlay, store_path, layout)
            batch = dedupe(slabs(writer) if callable(slabs) else slabs)
            if not batch:
                raise ValueError(f"{store_path}: an upsert needs at least one time slice")
            summary = writer.write(batch, attrs or {})
            _txn.commit(store, overlay, guard=lock.check)
        except BaseException:
            overlay.discard()  # staged objects of a transaction that never reached its commit point
            raise
    written, deleted = overlay.committed
    log.info("Committed %d time step(s) to %s (%s; %d times, %d objects written, %d deleted, %d read)",
             len(batch), store_path, summary.action, summary.n_times, written, deleted, overlay.reads)
    times = tuple(np.datetime64(t, "us") for t in summary.times)
    return CommitResult(store_path, times, summary.n_times, written, deleted, dict(overlay.committed_sizes),
                        summary.action)


def dedupe(slabs: Sequence[Slab]) -> list[Slab]:
    """Sorted by time; of two slabs with one time the later in the sequence wins."""
    by_time = {s.time: s for s in slabs}
    return [by_time[t] for t in sorted(by_time)]
