"""Benchmark: one SYNTHETIC day of the global product at full resolution (36000 x 18000, linear).

Writes one granule per mission (OCO-3 FP, OCO-3 SIF: 12 SAMs of 5,600 soundings + 3 target-mode captures each,
60,000 background soundings; OCO-2: 3 target-mode captures), then runs ``run_global`` on it in a child process
(so peak RSS is the product's own) and prints one line plus a JSON document: wall time of ``run_global``, peak
RSS of the child, captures, chunks written, and with COGs (the default; ``--no-cog`` to leave them out) the number
and bytes of the sparse COGs (one per variable with data and QF pass). ``--format zarr3`` writes Zarr v3 stores.
Budget (design.md, issue 15): <= 60 s, <= 4 GB with the COGs.

    .venv/bin/python bench/global_day.py [--keep DIR] [--lat 18000 --lon 36000] [--no-cog] [--format zarr3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY = dt.date(2022, 3, 14)
SAM_TARGETS = ("fossil0002", "fossil0005", "fossil0007", "fossil0018", "fossil0020", "fossil0036",
               "volcano0023", "volcano0009", "ecostress_nz_kop", "fossil0100", "fossil0150", "fossil0200")
TARGET_MODE = ("tccon105", "fossil0050", "fossil0080")
OCO2_TARGETS = ("lamontOK", "darwinAu", "bremenDe")


def write_day(directory: Path) -> list[str]:
    from oco_l3.sample_data import CaptureSpec, sample_filename, write_granule
    from oco_l3.targets import load_targets

    known = load_targets()
    at = lambda i: dt.datetime.combine(DAY, dt.time(1, 0)) + dt.timedelta(minutes=80 * i)  # noqa: E731
    sams = [t for t in SAM_TARGETS if t in known]
    caps = [CaptureSpec(t, "sam", 5600, at(i)) for i, t in enumerate(sams)]
    caps += [CaptureSpec(t, "target", 800, at(len(caps) + i) + dt.timedelta(minutes=40))
             for i, t in enumerate(t for t in TARGET_MODE if t in known)]
    caps.sort(key=lambda c: c.start)
    oco2 = [CaptureSpec(t, "target", 1000, dt.datetime.combine(DAY, dt.time(4 + 6 * i, 0)))
            for i, t in enumerate(OCO2_TARGETS)]
    paths = []
    for mission, plan, background in (("oco3", caps, 60000), ("oco3_sif", caps, 60000), ("oco2", oco2, 6000)):
        paths.append(str(write_granule(directory / sample_filename(mission, DAY), mission, DAY, plan, background)))  # type: ignore[arg-type]
    return paths


def child(files: list[str], out: str, n_lat: int, n_lon: int, method: str, cog: bool, fmt: str) -> None:
    from oco_l3.allocator import keep_freed_memory
    from oco_l3.config import parse_config
    from oco_l3.global_product import run_global

    keep_freed_memory()  # this process grids, as oco-l3 run does

    output: dict = {"local": out, "global": True, "format": fmt,
                    "naming": {"pre_qf": "global_pre_qf.zarr", "post_qf": "global_post_qf.zarr"}}
    if cog:
        output["cog"] = {"output": {"local": str(Path(out).parent / "cog")}}
    config = parse_config({
        "input": {"files": files},
        "output": output,
        "grid": {"latitude": n_lat, "longitude": n_lon, "method": method},
    })
    t0 = time.perf_counter()
    results = run_global(config)
    wall = time.perf_counter() - t0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    chunk_files = sum(len(f) for d in Path(out).iterdir() for _, _, f in os.walk(d)) if Path(out).exists() else 0
    cogs = [Path(p) for r in results for p in r.cogs]
    doc = {
        "bench": "global_day", "grid": [n_lat, n_lon], "method": method, "wall_s": round(wall, 2),
        "peak_rss_mb": round(rss_kb / 1024, 1), "captures": sum(r.counts["captures"] for r in results),
        "format": fmt, "cogs": len(cogs), "cog_mb": round(sum(p.stat().st_size for p in cogs) / 1e6, 2),
        "largest_cog_mb": round(max((p.stat().st_size for p in cogs), default=0) / 1e6, 2),
        "errors": [e for r in results for e in r.errors], "objects_in_stores": chunk_files,
        "timings": {k: round(v, 2) for r in results for k, v in r.timings.items()},
        "budget": {"wall_s": 60, "peak_rss_mb": 4096},
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "load_average": os.getloadavg(),
    }
    print(json.dumps(doc))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="write inputs and outputs here instead of a temporary folder")
    parser.add_argument("--lat", type=int, default=18000)
    parser.add_argument("--lon", type=int, default=36000)
    parser.add_argument("--method", choices=["linear", "cubic", "nearest"], default="linear")
    parser.add_argument("--no-cog", action="store_true", help="leave the global COGs out")
    parser.add_argument("--format", choices=["zarr2", "zarr3"], default="zarr2")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        out, *files = args.child
        child(files, out, args.lat, args.lon, args.method, not args.no_cog, args.format)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep or tmp)
        (base / "in").mkdir(parents=True, exist_ok=True)
        files = write_day(base / "in")
        out = str(base / "out")
        # One BLAS thread: OpenBLAS threads on tiny LAPACK calls (Delaunay.transform) cost up to 50x on a busy
        # 2-core machine. The CLI should set this too (see the report / README).
        env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get("OPENBLAS_NUM_THREADS", "1"))
        proc = subprocess.run([sys.executable, __file__, "--lat", str(args.lat), "--lon", str(args.lon),
                               "--method", args.method, "--format", args.format,
                               *(["--no-cog"] if args.no_cog else []), "--child", out, *files],
                              capture_output=True, text=True, check=False, env=env)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        doc = json.loads(proc.stdout.strip().splitlines()[-1])
        ok = doc["wall_s"] <= 60 and doc["peak_rss_mb"] <= 4096 and not doc["errors"]
        print(f"global day {doc['grid'][0]}x{doc['grid'][1]} {doc['method']}: {doc['wall_s']} s, "
              f"{doc['peak_rss_mb']} MB peak RSS, {doc['captures']} captures, "
              f"{doc['objects_in_stores']} objects, {doc['cogs']} COGs of {doc['cog_mb']} MB "
              f"(largest {doc['largest_cog_mb']} MB) -> {'OK' if ok else 'OVER BUDGET'}")
        print(json.dumps(doc, indent=1))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
