"""Vectorised "drop-in-the-bucket" statistics on a linear cell index (numpy ``bincount``).

For the segments i falling in a cell, with segment length l_i and value h_i (ATL20 ATBD style, length-weighted):

* ``n_segments``          = N (count of segments with a valid value and a positive, finite length)
* ``mean_segment_length`` = (1/N) * sum(l_i)
* ``mean``                = sum(l_i * h_i) / sum(l_i)
* ``std``                 = sqrt( sum(l_i * (h_i - mean)^2) / sum(l_i) )   (weighted population std)

The std is computed in a second pass around the cell mean (numerically stable, no catastrophic cancellation).
Cells without segments hold N = 0 and NaN statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

STATISTICS = ("n_segments", "mean_segment_length", "mean", "std")


@dataclass(frozen=True)
class BinnedStats:
    """Flat (n_cells,) arrays of the four statistics."""

    n_segments: npt.NDArray[np.int32]
    mean_segment_length: npt.NDArray[np.float32]
    mean: npt.NDArray[np.float32]
    std: npt.NDArray[np.float32]

    def reshape(self, shape: tuple[int, int]) -> dict[str, npt.NDArray[np.generic]]:
        return {name: getattr(self, name).reshape(shape) for name in STATISTICS}


def bin_statistics(
    cell: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    length: npt.NDArray[np.float64],
    n_cells: int,
) -> BinnedStats:
    """Bin ``value`` weighted by ``length`` into ``n_cells`` cells; ``cell`` < 0 marks points off the grid."""
    v = np.asarray(value, dtype=np.float64)
    w = np.asarray(length, dtype=np.float64)
    c = np.asarray(cell, dtype=np.int64)
    keep = (c >= 0) & np.isfinite(v) & np.isfinite(w) & (w > 0)
    if not keep.all():
        c, v, w = c[keep], v[keep], w[keep]
    count = np.bincount(c, minlength=n_cells)
    wsum = np.bincount(c, weights=w, minlength=n_cells)
    whsum = np.bincount(c, weights=w * v, minlength=n_cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = whsum / wsum
        dev = v - mean[c]
        var = np.bincount(c, weights=w * dev * dev, minlength=n_cells) / wsum
        mean_len = wsum / count
    empty = count == 0
    mean[empty] = np.nan
    var[empty] = np.nan
    mean_len[empty] = np.nan
    return BinnedStats(
        n_segments=count.astype(np.int32),
        mean_segment_length=mean_len.astype(np.float32),
        mean=mean.astype(np.float32),
        std=np.sqrt(np.maximum(var, 0.0)).astype(np.float32),
    )


def day_keys(time: npt.NDArray[np.datetime64]) -> npt.NDArray[np.datetime64]:
    """UTC calendar day (``datetime64[D]``) of each time."""
    return np.asarray(time, dtype="datetime64[ns]").astype("datetime64[D]")
