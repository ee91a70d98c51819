"""Pure planning of one upsert: where every time lands, which rows of an array change, which chunks to build.

No I/O here: the writer (:mod:`._writer`) reads and writes; these values say what to read and write.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: How a time row of one array changes: not at all, inside its slice's pieces only, or everywhere.
NONE, WINDOW, FULL = 0, 1, 2

Box = tuple[tuple[int, ...], tuple[int, ...]]  # (origin, stop) over the inner dims


@dataclass(frozen=True, eq=False)
class TimePlan:
    """Where the batch lands: merged time axis, row per new time, first row whose content moves (``p``)."""

    old: np.ndarray
    merged: np.ndarray
    index: dict[int, int]
    p: int

    @classmethod
    def build(cls, old: np.ndarray, new: Sequence[int]) -> TimePlan:
        old = np.asarray(old, dtype=np.int64)
        merged = np.union1d(old, np.asarray(new, dtype=np.int64))
        old_set = set(old.tolist())
        inserted = [t for t in new if t not in old_set]
        p = int(np.searchsorted(old, min(inserted))) if inserted else len(old)
        index = {int(t): int(np.searchsorted(merged, t)) for t in new}
        return cls(old, merged, index, p)

    @property
    def shifts(self) -> bool:
        """True when existing rows move (an insertion before the last stored time)."""
        return self.p < len(self.old)

    @property
    def replaced(self) -> int:
        return len(self.index) - (len(self.merged) - len(self.old))

    @property
    def added(self) -> int:
        return len(self.merged) - len(self.old)

    def action(self) -> str:
        """``created``, ``replaced``, ``appended`` or ``inserted`` (the strongest of the batch)."""
        if not len(self.old):
            return "created"
        if self.shifts:
            return "inserted"
        return "appended" if self.added else "replaced"


@dataclass(frozen=True, eq=False)
class RowPlan:
    """Where every time row of one array comes from after the commit.

    ``new[j]``: row ``j`` is slab ``new[j]`` of the batch; otherwise ``src_old[j]`` is the row it held before
    (-1: none). ``n_old``: rows the array held before (0 for a new array). ``change[j]``: NONE/WINDOW/FULL.
    """

    new: dict[int, int]
    src_old: np.ndarray
    n_old: int
    change: dict[int, int]

    @classmethod
    def build(cls, plan: TimePlan, slab_times: Sequence[int], has_data: Sequence[bool], exists: bool) -> RowPlan:
        """``has_data[i]``: slab ``i`` has pieces for this array."""
        n = len(plan.merged)
        n_old = len(plan.old) if exists else 0
        src_old = np.full(n, -1, dtype=np.int64)
        if n_old:
            src_old[np.searchsorted(plan.merged, plan.old)] = np.arange(n_old)
        new = {plan.index[t]: i for i, t in enumerate(slab_times)}
        change: dict[int, int] = {}
        for j, i in new.items():
            src_old[j] = -1
            if j < n_old:
                change[j] = FULL  # replaced, or the old row there moved on
            elif has_data[i]:
                change[j] = WINDOW  # beyond the old end: the row is fill (padding or absent chunk) until now
        if exists and plan.shifts:
            for j in range(plan.p, n):
                if j not in new:
                    change[j] = FULL  # an old row moved here
        return cls(new, src_old, n_old, change)

    def visible(self, tc: int, ct: int) -> bool:
        """True when time chunk ``tc`` changes in a row that readers of the old metadata see."""
        return any(self.change.get(j, NONE) == FULL for j in range(tc * ct, min((tc + 1) * ct, self.n_old)))


def chunk_indices(box: Box, chunks: Sequence[int]) -> Iterable[tuple[int, ...]]:
    """Inner chunk indices a box overlaps (nothing for an empty box)."""
    origin, stop = box
    if any(s <= o for o, s in zip(origin, stop, strict=True)):
        return ()
    ranges = [range(o // c, -(-s // c)) for o, s, c in zip(origin, stop, chunks, strict=True)]
    return itertools.product(*ranges)


def touched(rows: RowPlan, time_chunk: int, inner_chunks: Sequence[int], grid: Sequence[int],
            boxes: Callable[[int], Sequence[Box]], existing: Callable[[int], set[tuple[int, ...]] | None],
            ) -> list[tuple[tuple[int, ...], list[int]]]:
    """Every (inner chunk, time chunks) whose content may change, sorted by inner chunk then time chunk.

    ``boxes(i)``: the piece boxes of slab ``i``; ``existing(tc)``: the inner chunks stored at old time chunk
    ``tc`` (None when unknown: then every inner chunk is considered for a row that changes everywhere).
    """
    out: dict[tuple[int, ...], set[int]] = {}

    def everything() -> Iterable[tuple[int, ...]]:
        return itertools.product(*(range(n) for n in grid))

    def add(idx: Iterable[tuple[int, ...]], tc: int) -> None:
        for i in idx:
            out.setdefault(tuple(i), set()).add(tc)

    for j, how in rows.change.items():
        tc = j // time_chunk
        if j in rows.new:
            for box in boxes(rows.new[j]):
                add(chunk_indices(box, inner_chunks), tc)
        if how != FULL:
            continue
        sources = {tc} if tc * time_chunk < rows.n_old else set()
        k = int(rows.src_old[j])
        if k >= 0:
            sources.add(k // time_chunk)
        for src in sources:
            known = existing(src)
            add(everything() if known is None else known, tc)
    return [(idx, sorted(tcs)) for idx, tcs in sorted(out.items())]
