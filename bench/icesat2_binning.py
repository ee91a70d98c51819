"""Benchmark: 5.2 M sea-ice segments -> projection, cell index and the four ATL20-style statistics.

Run ``python bench/icesat2_binning.py [n]``. Prints the reference path (one ``project`` call on one thread, then
``cell_index``, then the statistics) and the production path (``cell_index_lonlat``: projection and cell index
fused per chunk on the worker threads, then the statistics), checks that both give the same cell indices, and
states the budget check (issue #7: 5.2 M segments projected and binned with all four statistics in under 1 s).
``main()`` returns the seconds of the production path (projection + cell index + binning) so ``bench/run.py``
can call it.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from oco_l3.icesat2.binning import bin_statistics
from oco_l3.icesat2.grids import PRESETS, default_workers

N_DEFAULT = 5_200_000
BUDGET_S = 1.0
REPEATS = 3


def main(n: int = N_DEFAULT, grid_name: str = "ease2-north-25km") -> float:
    rng = np.random.default_rng(42)
    lat = rng.uniform(60.0, 89.9, n)
    lon = rng.uniform(-180.0, 180.0, n)
    value = rng.gamma(2.0, 0.15, n)
    length = rng.uniform(15.0, 200.0, n)
    grid = PRESETS[grid_name]
    workers = default_workers()

    t0 = time.perf_counter()
    x, y = grid.project(lon, lat, workers=1)
    t1 = time.perf_counter()
    reference = grid.cell_index(x, y)
    t2 = time.perf_counter()
    bin_statistics(reference, value, length, grid.n_cells)
    t3 = time.perf_counter()
    print(f"icesat2 binning, reference (1 thread): {n:,} segments on {grid_name}: project {t1 - t0:.3f} s, "
          f"cell index {t2 - t1:.3f} s, 4 statistics {t3 - t2:.3f} s, total {t3 - t0:.3f} s")
    del x, y

    runs = []
    for _ in range(REPEATS):  # the machine is shared: the median of a few runs, the spread printed
        t0 = time.perf_counter()
        c0 = time.process_time()
        cell = grid.cell_index_lonlat(lon, lat, workers=workers)
        t1 = time.perf_counter()
        stats = bin_statistics(cell, value, length, grid.n_cells)
        t2 = time.perf_counter()
        runs.append((t2 - t0, t1 - t0, t2 - t1, time.process_time() - c0))
    total, project_index, statistics, cpu = sorted(runs)[len(runs) // 2]
    same = bool(np.array_equal(cell, reference))
    filled = int((stats.n_segments > 0).sum())
    print(f"icesat2 binning, production ({workers} threads, median of {REPEATS}): project+cell index "
          f"{project_index:.3f} s, 4 statistics {statistics:.3f} s, total {total:.3f} s (CPU {cpu:.3f} s; runs "
          f"{', '.join(f'{r[0]:.3f}' for r in runs)} s; {filled:,} cells filled; "
          f"cell indices {'identical to' if same else 'DIFFERENT FROM'} the reference)")
    verdict = "met" if total < BUDGET_S and same else "MISSED"
    print(f"icesat2 binning budget (< {BUDGET_S:.1f} s for {N_DEFAULT:,} segments incl. projection): {verdict}"
          + ("" if n == N_DEFAULT else f" (measured with {n:,} segments, not the budget size)"))
    return total


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else N_DEFAULT)
