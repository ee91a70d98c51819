"""Runs of consecutive flat cell indices (what rasterising triangles onto a grid gives: one run per triangle and
row): expanded to every cell, painted into a map, or taken in blocks of about equal size."""

from __future__ import annotations

import numpy as np


def blocks(length: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Consecutive ranges ``[lo, hi)`` of runs whose lengths add up to about ``size`` (at least one run each)."""
    ends = np.searchsorted(np.cumsum(length), np.arange(size, int(length.sum()) + size, size), side="right")
    bounds = np.unique(np.concatenate([[0], np.minimum(ends, length.shape[0]), [length.shape[0]]]))
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def run_cells(start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Runs of consecutive flat indices (``start``, ``length``) -> every index, run after run (by repeats and one
    range: cheaper than gathers)."""
    offsets = np.cumsum(length) - length
    return np.repeat(start - offsets, length) + np.arange(int(length.sum()), dtype=np.int64)


def expand_runs(start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of consecutive flat indices -> ``(flat, run)``: every index, and the run it belongs to."""
    return run_cells(start, length), np.repeat(np.arange(length.shape[0]), length)


def paint_runs(owner: np.ndarray, row: np.ndarray, col0: np.ndarray, col1: np.ndarray, values: np.ndarray) -> None:
    """Write ``values[i]`` into the cells ``col0[i]..col1[i]`` of row ``row[i]`` of the map ``owner`` (2-D)."""
    length = col1 - col0 + 1
    owner.reshape(-1)[run_cells(row * owner.shape[1] + col0, length)] = np.repeat(values, length)

