"""Benchmark of the output extras: the STAC catalogue and the quick-looks (called by bench/run.py).

* the busy day (b) from the CLI, with the catalogue and with its updates switched off, runs interleaved (wall);
* the catalogue updates of that day: seconds spent in them (they run in the writer thread, beside the gridding);
* pystac's import (a fresh interpreter);
* one quick-look per capture of the busy day at 800 x 800: the former one-panel plot vs the two-panel plot with
  footprints and coastlines (best of 3, interleaved).

Prints a short report and, on its last line, the JSON of the figures.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

DAY = dt.date(2021, 12, 18)
RUN = ("import sys, time, oco_l3.stac as s\n"
       "if sys.argv[2] == 'off': s.updating = lambda *a: True\n"
       "from oco_l3.cli import main\n"
       "t = time.perf_counter(); rc = main(['run', '-i', sys.argv[1]]); print(time.perf_counter() - t)\n"
       "sys.exit(rc)\n")


def _cli(cfg: Path, mode: str) -> float:
    proc = subprocess.run([sys.executable, "-c", RUN, str(cfg), mode], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def busy_day(tmp: Path, granule: Path, runs: int) -> dict[str, Any]:
    out: dict[str, list[float]] = {"on": [], "off": []}
    for i in range(runs):
        for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
            cfg = tmp / f"busy-{mode}-{i}.yaml"
            cfg.write_text(yaml.safe_dump({"input": {"files": [str(granule)]},
                                           "output": {"local": str(tmp / f"out-{mode}-{i}")},
                                           "grid": {"latitude": 800, "longitude": 800, "method": "cubic"}}))
            out[mode].append(_cli(cfg, mode))
    return {f"busy_day_cli_{k}_s": sorted(v) for k, v in out.items()}


def catalogue_seconds(tmp: Path, granule: Path) -> dict[str, Any]:
    import oco_l3.stac as stac
    from oco_l3.config import parse_config
    from oco_l3.pipeline import batches_from_items, process_day

    spent: list[float] = []
    real = stac.updating

    def timed(what: str, fn: Any, *args: Any) -> bool:
        t0 = time.perf_counter()
        ok = real(what, fn, *args)
        spent.append(time.perf_counter() - t0)
        return ok

    stac.updating = timed  # type: ignore[assignment]
    config = parse_config({"input": {"files": [str(granule)]}, "output": {"local": str(tmp / "cat")},
                           "grid": {"latitude": 800, "longitude": 800, "method": "cubic"}})
    for batch in batches_from_items(config.input.files):
        process_day(config, batch)
    first = list(spent)
    spent.clear()
    for batch in batches_from_items(config.input.files):  # again: the updates of a catalogue that exists
        process_day(config, batch)
    stac.updating = real  # type: ignore[assignment]
    return {"catalogue_updates": len(first), "catalogue_first_run_s": sum(first),
            "catalogue_rerun_s": sum(spent), "catalogue_per_store_commit_s": sum(spent) / max(len(spent), 1)}


def pystac_import() -> float:
    code = "import time; t = time.perf_counter(); import oco_l3.stac.items, pystac.extensions.datacube; " \
           "print(time.perf_counter() - t)"
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(3))


def quicklooks(tmp: Path, granule: Path) -> list[dict[str, Any]]:
    from oco_l3.config import parse_config
    from oco_l3.pipeline import batches_from_items, grid_one, read_and_split
    from oco_l3.quicklook import capture_quicklook_png, quicklook_png

    config = parse_config({"input": {"files": [str(granule)]}, "output": {"local": str(tmp / "ql")},
                           "grid": {"latitude": 800, "longitude": 800, "method": "cubic"}})
    (batch,) = batches_from_items(config.input.files)
    split = read_and_split(config, batch.granules[0])
    rows = []
    for cap in split.captures:
        prod = grid_one(config, split, cap)
        pre, post = prod.pre.full("xco2"), prod.post.full("xco2") if prod.post is not None else None
        grid = prod.pre.grid
        quicklook_png(pre, grid, str(tmp / "warm.png"), "warm")  # imports, fonts, basemap once
        capture_quicklook_png(pre, post, grid, str(tmp / "warm2.png"), "warm", footprints=prod.footprints)
        old, new = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            quicklook_png(pre, grid, str(tmp / "old.png"), "one panel")
            old.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            capture_quicklook_png(pre, post, grid, str(tmp / "new.png"), "two panels", footprints=prod.footprints)
            new.append(time.perf_counter() - t0)
        rows.append({"target": cap.target.id, "soundings": cap.n_soundings, "one_panel_s": min(old),
                     "two_panels_footprints_coast_s": min(new)})
    return rows


def main() -> None:
    from oco_l3.allocator import keep_freed_memory
    from oco_l3.sample_data import write_sample_day

    keep_freed_memory()  # this process grids (the catalogue and quick-look cases), as oco-l3 run does

    with tempfile.TemporaryDirectory(prefix="oco-l3-bench-outputs-") as d:
        tmp = Path(d)
        granule = write_sample_day(tmp / "in", DAY, missions=("oco3",), profile="busy")["oco3"]
        results: dict[str, Any] = {"pystac_import_s": pystac_import()}
        results.update(busy_day(tmp, granule, 3))
        results.update(catalogue_seconds(tmp, granule))
        results["quicklooks"] = quicklooks(tmp, granule)
    on, off = results["busy_day_cli_on_s"], results["busy_day_cli_off_s"]
    print(f"busy day (b), CLI, runs interleaved: with the STAC catalogue {', '.join(f'{v:.2f}' for v in on)} s; "
          f"without {', '.join(f'{v:.2f}' for v in off)} s")
    print(f"catalogue updates of that day: {results['catalogue_updates']} (one per store commit), "
          f"{results['catalogue_first_run_s']:.3f} s in all on the first run, {results['catalogue_rerun_s']:.3f} s "
          f"on a re-run (in the writer thread); pystac import {results['pystac_import_s']:.3f} s")
    for q in results["quicklooks"]:
        print(f"quick-look {q['target']} ({q['soundings']} soundings, 800 x 800): one panel "
              f"{q['one_panel_s']:.3f} s, pre/post + footprints + coastlines {q['two_panels_footprints_coast_s']:.3f} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
