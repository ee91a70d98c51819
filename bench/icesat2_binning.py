"""Benchmark: 5.2 M sea-ice segments -> projection, cell index and the four ATL20-style statistics.

Run ``python bench/icesat2_binning.py [n]``; prints the timings. ``main()`` returns the seconds of
(projection + cell index + binning) so ``bench/run.py`` can call it.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from oco_l3.icesat2.binning import bin_statistics
from oco_l3.icesat2.grids import PRESETS

N_DEFAULT = 5_200_000


def main(n: int = N_DEFAULT, grid_name: str = "ease2-north-25km") -> float:
    rng = np.random.default_rng(42)
    lat = rng.uniform(60.0, 89.9, n)
    lon = rng.uniform(-180.0, 180.0, n)
    value = rng.gamma(2.0, 0.15, n)
    length = rng.uniform(15.0, 200.0, n)
    grid = PRESETS[grid_name]
    t0 = time.perf_counter()
    x, y = grid.project(lon, lat)
    t1 = time.perf_counter()
    cell = grid.cell_index(x, y)
    t2 = time.perf_counter()
    stats = bin_statistics(cell, value, length, grid.n_cells)
    t3 = time.perf_counter()
    filled = int((stats.n_segments > 0).sum())
    print(f"icesat2 binning: {n:,} segments on {grid_name} ({filled:,} cells filled): "
          f"project {t1 - t0:.3f} s, cell index {t2 - t1:.3f} s, 4 statistics {t3 - t2:.3f} s, "
          f"index+stats {t3 - t1:.3f} s, total {t3 - t0:.3f} s")
    return t3 - t0


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else N_DEFAULT)
