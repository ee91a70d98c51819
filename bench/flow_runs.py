"""Benchmark: N busy SYNTHETIC days through the Prefect backfill flow and through `oco-l3 run`, in one run.

A real `prefect server start` on 127.0.0.1 is started first (and is up before anything is timed). Then, on the same
granules (one OCO-3 busy-day granule per day: 60,000 background soundings + SAMs of 5,600 / 10,000 / 15,000,
800 x 800 cubic, root + /Retrieval, Zarr only, like bench/run.py's day (b)):

* ``oco-l3 run --quicklooks DIR`` with ``max-workers: 2`` (days in two forked processes; a quick-look per capture,
  as the flows write): wall time and peak RSS of the largest process;
* ``oco-l3 backfill`` against the server, thread runner of width 1 (``OCO_L3_THREADS``, the default) and 2: the
  flow time and the peak RSS of the flow process (the only process: every granule is processed in it);
* the same backfill with ``--dask-address`` on a real ``dask scheduler`` and two ``dask worker`` processes (one
  thread each);
* the cost per day of a 3-day and a 30-day backfill (thread runner).

"Flow time" is the flow run's duration as Prefect records it (the flow run's start to its end, as the UI shows):
loading the config, searching and planning, every granule task, the state table and the artifacts; it leaves out
the process start and `import prefect` (about 4 s, paid once per flow run by a worker), which are printed apart as
the CLI's wall time. `oco-l3 run`'s time is its process wall time, imports included.

    .venv/bin/python bench/flow_runs.py [--days 12] [--long 30]     (also run by bench/run.py)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv/bin"
START = dt.date(2021, 6, 1)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "OCO_L3_"))}
    return env | {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"} | extra


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    url = f"http://127.0.0.1:{port}/api"
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=_env(PREFECT_HOME=str(home), PREFECT_UI_ENABLED="false"),
                            stdout=open(home / "server.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310 - loopback
                return proc, url
        except OSError:
            time.sleep(1)
    raise RuntimeError("prefect server did not start")


def start_dask(tmp: Path) -> tuple[list[subprocess.Popen[bytes]], str]:
    address = f"tcp://127.0.0.1:{_port()}"
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    common: dict[str, Any] = {"env": env, "cwd": tmp, "start_new_session": True, "stdout": subprocess.DEVNULL,
                              "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                               address.rsplit(":", 1)[1], "--no-dashboard"], **common)]
    procs += [subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(tmp / f"w{i}")],
                               **common) for i in range(2)]
    from distributed import Client

    deadline = time.monotonic() + 120
    while True:
        try:
            with Client(address, timeout=10) as client:
                client.wait_for_workers(2, timeout=60)
            return procs, address
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def write_days(folder: Path, days: int) -> None:
    from oco_l3.sample_data import write_sample_tree

    write_sample_tree(folder, START, START + dt.timedelta(days=days - 1), missions=("oco3",), profile="busy")


def config(tmp: Path, name: str, granules: Path, days: int, **extra: Any) -> Path:
    import yaml

    files = sorted(str(p) for p in granules.rglob("*.nc4"))[:days]
    body = {"output": {"local": str(tmp / f"out-{name}")}, "input": {"files": files},
            "grid": {"latitude": 800, "longitude": 800, "method": "cubic"},
            "exclude-groups": ["/Meteorology", "/Preprocessors", "/Sounding"],
            "search": {"source": "local", "local": str(granules), "missions": ["oco3"]}, **extra}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def timed(cmd: list[str], env: dict[str, str], tmp: Path, name: str) -> dict[str, Any]:
    """Wall time, peak RSS (GNU time: the largest process of the command) and the output's last lines."""
    rss = tmp / f"{name}.rss"
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-o", str(rss), "-f", "%M", *cmd], env=env, capture_output=True,
                          text=True, cwd=tmp)
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(int(rss.read_text().split()[-1]) / 1024),
            "returncode": proc.returncode, "tail": (proc.stdout + proc.stderr)[-600:]}


def flow_seconds(api: str, name: str) -> float:
    """The duration of the newest flow run of flow ``name`` as the server recorded it."""
    body = {"flows": {"name": {"any_": [name]}}, "sort": "EXPECTED_START_TIME_DESC", "limit": 1, "offset": 0}
    req = urllib.request.Request(f"{api}/flow_runs/filter", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - loopback
        run = json.loads(r.read())[0]
    start, end = (dt.datetime.fromisoformat(run[k]) for k in ("start_time", "end_time"))
    return round((end - start).total_seconds(), 2)


def backfill(api: str, cfg: Path, days: int, tmp: Path, name: str, *extra: str, threads: int = 1) -> dict[str, Any]:
    end = START + dt.timedelta(days=days - 1)
    out = timed([str(BIN / "oco-l3"), "backfill", "-i", str(cfg), "--start", str(START), "--end", str(end), *extra],
                _env(PREFECT_API_URL=api, PREFECT_HOME=str(tmp / "client-home"), OCO_L3_THREADS=str(threads)),
                tmp, name)
    out["flow_s"] = flow_seconds(api, "oco-backfill")
    out["per_day_s"] = round(out["flow_s"] / days, 3)
    return out


def run(days: int, long: int) -> dict[str, Any]:
    results: dict[str, Any] = {"days": days, "long": long}
    with tempfile.TemporaryDirectory(prefix="oco-l3-bench-flows-") as d:
        tmp = Path(d)
        (tmp / "home").mkdir()
        granules = tmp / "granules"
        write_days(granules, max(days, long))
        server, api = start_server(tmp / "home")
        dask: list[subprocess.Popen[bytes]] = []
        try:
            results["cli_run_2workers"] = timed([str(BIN / "oco-l3"), "run", "--quicklooks", str(tmp / "looks"), "-i",
                                                 str(config(tmp, "cli", granules, days, **{"max-workers": 2}))],
                                                _env(), tmp, "cli")
            results["flow_threads"] = backfill(api, config(tmp, "threads", granules, days), days, tmp, "threads")
            results["flow_threads_2"] = backfill(api, config(tmp, "threads2", granules, days), days, tmp, "threads2",
                                                 threads=2)
            dask, address = start_dask(tmp)
            results["flow_dask"] = backfill(api, config(tmp, "dask", granules, days), days, tmp, "dask",
                                            "--dask-address", address)
            stop(dask)
            dask = []
            results["backfill_3_days"] = backfill(api, config(tmp, "d3", granules, 3), 3, tmp, "d3")
            results[f"backfill_{long}_days"] = backfill(api, config(tmp, "dlong", granules, long), long, tmp, "dlong")
        finally:
            stop(dask + [server])
            shutil.rmtree(tmp / "home", ignore_errors=True)
    cli, fl = results["cli_run_2workers"], results["flow_threads"]
    results["flow_over_cli"] = round(fl["flow_s"] / cli["wall_s"], 2)
    results["dask_over_threads"] = round(results["flow_dask"]["flow_s"] / fl["flow_s"], 2)
    return results


def report(r: dict[str, Any], long: int) -> None:
    cli, th, dk = r["cli_run_2workers"], r["flow_threads"], r["flow_dask"]
    print(f"flows: {r['days']} busy days (one OCO-3 granule a day, 3 SAMs, 800 x 800 cubic, Zarr)")
    print(f"  oco-l3 run, max-workers 2: {cli['wall_s']:.1f} s wall, peak RSS {cli['peak_rss_mb']} MB")
    print(f"  backfill flow, thread runner (1, the default): flow {th['flow_s']:.1f} s (x{r['flow_over_cli']} of "
          f"oco-l3 run; CLI wall {th['wall_s']:.1f} s), flow-process peak RSS {th['peak_rss_mb']} MB")
    t2 = r["flow_threads_2"]
    print(f"  backfill flow, thread runner (2): flow {t2['flow_s']:.1f} s, flow-process peak RSS {t2['peak_rss_mb']} MB")
    print(f"  backfill flow, Dask (scheduler + 2 worker processes): flow {dk['flow_s']:.1f} s "
          f"(x{r['dask_over_threads']} of the thread runner), flow-process peak RSS {dk['peak_rss_mb']} MB (the "
          "workers' memory is their own)")
    lg = r[f"backfill_{long}_days"]
    print(f"  cost per day: 3-day backfill {r['backfill_3_days']['per_day_s']:.2f} s, {long}-day backfill "
          f"{lg['per_day_s']:.2f} s (flow time / days)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--long", type=int, default=30)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    results = run(args.days, args.long)
    report(results, args.long)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
