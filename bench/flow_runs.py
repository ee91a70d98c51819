"""Benchmark: N busy SYNTHETIC days through the Prefect backfill flow and through `oco-l3 run`, in one run.

A real `prefect server start` on 127.0.0.1 is started first (and is up before anything is timed). Then, on the same
granules (one OCO-3 busy-day granule per day: 60,000 background soundings + SAMs of 5,600 / 10,000 / 15,000,
800 x 800 cubic, root + /Retrieval, Zarr only, like bench/run.py's day (b)):

* ``oco-l3 run --quicklooks DIR`` with ``max-workers: 2`` (days in two forked processes; a quick-look per capture,
  as the flows write);
* ``oco-l3 backfill`` against the server with the default thread runner (width 2, ``OCO_L3_THREADS``): each
  granule in a worker process of ``oco_l3.process_pool`` while its task's thread waits;
* the same in the flow's own process, width 1 (``OCO_L3_WORKER_PROCESS=0``, ``OCO_L3_THREADS=1``): how the flows
  ran before the worker processes, measured in the same run for comparison;
* the same backfill with ``--dask-address`` on a real ``dask scheduler`` and two plain ``dask worker`` processes
  (``--nthreads 1``, no extra environment);
* the cost per day of a 3-day and a ``--long``-day backfill (default runner).

Figures per run: "flow time" is the flow run's duration as Prefect records it (the flow run's start to its end,
as the UI shows: loading the config, searching and planning, every granule task, the state table, the artifacts);
it leaves out the process start and `import prefect` (about 4 s, paid once per flow run by a worker), which are in
the CLI's wall time, printed beside it. `oco-l3 run`'s time is its process wall time, imports included. "CPU" is
user + system seconds of every process of the command (the flow process and its worker processes; for Dask the
scheduler's and workers' own CPU is counted apart); "flow-process peak" is the peak RSS (VmHWM) of the flow's
own process; "worker peak" is the largest peak RSS of one worker process and "sum" the sum of their peaks (an
upper bound of what they held at once). The machine may be loaded by others: compare rows of one run, and read
CPU seconds beside wall seconds.

    .venv/bin/python bench/flow_runs.py [--days 12] [--long 30]     (also run by bench/run.py)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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


def start_dask(tmp: Path, **extra: str) -> tuple[list[subprocess.Popen[bytes]], str]:
    """A plain ``dask scheduler`` and two ``dask worker --nthreads 1`` processes (``extra``: their environment)."""
    address = f"tcp://127.0.0.1:{_port()}"
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ} | extra
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


def _hwm_kb(pid: int) -> int:
    """The peak resident size of a live process (VmHWM), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler:
    """Polls the peak RSS of a process and of every process below it (and of ``extra`` processes) until stopped."""

    def __init__(self, pid: int, extra: list[int] | None = None) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.extra = [psutil.Process(p) for p in extra or []]
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for extra in self.extra:
                with contextlib.suppress(psutil.Error):
                    procs += [extra, *extra.children(recursive=True)]
            for proc in procs:
                self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0), _hwm_kb(proc.pid))
            self._stop.wait(0.1)

    def stop(self) -> dict[int, int]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def _cpu_s(pids: list[int]) -> float:
    """User + system seconds of live processes and of the children they reaped."""
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
    return total


def timed(cmd: list[str], env: dict[str, str], tmp: Path, name: str, others: list[int] | None = None) -> dict[str, Any]:
    """Wall and CPU time, the command process's peak RSS, its worker processes' peaks (the processes below it,
    and below ``others``: Dask workers), and the output's last lines."""
    others = others or []
    cpu_others = _cpu_s(others)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sampler = Sampler(proc.pid, others)
    output = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    peaks = sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    workers = [kb for pid, kb in peaks.items() if pid != proc.pid and pid not in others]
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime + _cpu_s(others) - cpu_others, 1),
            "peak_rss_mb": round(max(peaks.get(proc.pid, 0), 0) / 1024),
            "largest_process_mb": round(usage.ru_maxrss / 1024),
            "worker_peak_mb": round(max(workers, default=0) / 1024), "worker_peak_sum_mb": round(sum(workers) / 1024),
            "workers": len(workers), "returncode": proc.returncode, "tail": output.decode(errors="replace")[-600:]}


def _post(api: str, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(f"{api}/{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - loopback
        return json.loads(r.read())


def newest_flow_run(api: str, name: str) -> dict[str, Any]:
    body = {"flows": {"name": {"any_": [name]}}, "sort": "EXPECTED_START_TIME_DESC", "limit": 1, "offset": 0}
    return dict(_post(api, "flow_runs/filter", body)[0])


def flow_seconds(run: dict[str, Any]) -> float:
    """A flow run's duration as the server recorded it."""
    start, end = (dt.datetime.fromisoformat(run[k]) for k in ("start_time", "end_time"))
    return round((end - start).total_seconds(), 2)


def task_start_gaps(api: str, run: dict[str, Any], width: int = 2) -> list[float]:
    """How long each granule task's slot stood idle before it: the task's start (its ``Running`` state) minus the
    end of the task whose slot it took (the latest end before it), for every granule task after the first
    ``width``. In the thread runner the slot's thread starts the next task at once; in a Dask worker the Prefect
    task engine first rebuilds its context (settings, API client) from what the flow sent."""
    body = {"flow_runs": {"id": {"any_": [run["id"]]}}, "limit": 200, "offset": 0}
    tasks = [t for t in _post(api, "task_runs/filter", body) if t["start_time"] and t["end_time"]
             and t["task_key"].startswith("process_granule")]
    spans = sorted((dt.datetime.fromisoformat(t["start_time"]), dt.datetime.fromisoformat(t["end_time"]))
                   for t in tasks)
    gaps = []
    for i, (start, _) in enumerate(spans[width:], width):
        ends = [e for s, e in spans[:i] if e <= start]
        if ends:
            gaps.append(round((start - max(ends)).total_seconds(), 3))
    return gaps


def backfill(api: str, cfg: Path, days: int, tmp: Path, name: str, *extra: str, others: list[int] | None = None,
             **env: str) -> dict[str, Any]:
    end = START + dt.timedelta(days=days - 1)
    out = timed([str(BIN / "oco-l3"), "backfill", "-i", str(cfg), "--start", str(START), "--end", str(end), *extra],
                _env(PREFECT_API_URL=api, PREFECT_HOME=str(tmp / "client-home"), **env), tmp, name, others)
    run = newest_flow_run(api, "oco-backfill")
    out["flow_s"] = flow_seconds(run)
    out["per_day_s"] = round(out["flow_s"] / days, 3)
    gaps = sorted(task_start_gaps(api, run))
    out["task_start_gap_median_s"] = gaps[len(gaps) // 2] if gaps else None
    return out


#: The N-day cases, in the order of the first repeat (later repeats rotate it, so no case always runs first).
CASES = ("cli_run_2workers", "flow_threads", "flow_in_process", "flow_dask")


def _case(case: str, api: str, tmp: Path, granules: Path, days: int, dask: tuple[list[int], str], i: int
          ) -> dict[str, Any]:
    name = f"{case}-{i}"
    if case == "cli_run_2workers":
        cfg = config(tmp, name, granules, days, **{"max-workers": 2})
        return timed([str(BIN / "oco-l3"), "run", "--quicklooks", str(tmp / f"looks-{i}"), "-i", str(cfg)], _env(),
                     tmp, name)
    cfg = config(tmp, name, granules, days)
    if case == "flow_in_process":  # how the flows ran before the worker processes
        return backfill(api, cfg, days, tmp, name, OCO_L3_WORKER_PROCESS="0", OCO_L3_THREADS="1")
    if case == "flow_dask":
        return backfill(api, cfg, days, tmp, name, "--dask-address", dask[1], others=dask[0])
    return backfill(api, cfg, days, tmp, name)


def run(days: int, long: int, repeat: int = 1, dask_in_process: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {"days": days, "long": long, "repeat": repeat, **{c: [] for c in CASES}}
    with tempfile.TemporaryDirectory(prefix="oco-l3-bench-flows-") as d:
        tmp = Path(d)
        (tmp / "home").mkdir()
        granules = tmp / "granules"
        write_days(granules, max(days, long))
        server, api = start_server(tmp / "home")
        dask: list[subprocess.Popen[bytes]] = []
        try:
            if dask_in_process:  # the granules in the Dask workers' own processes (OCO_L3_WORKER_PROCESS=0 there)
                dask, address = start_dask(tmp, OCO_L3_WORKER_PROCESS="0")
                results["flow_dask_in_process"] = [backfill(api, config(tmp, f"dip{i}", granules, days), days, tmp,
                                                            f"dip{i}", "--dask-address", address,
                                                            others=[p.pid for p in dask]) for i in range(repeat)]
                stop(dask)
            dask, address = start_dask(tmp)
            # Operators' Dask workers are long-lived: the first task a fresh worker runs imports Prefect and our
            # tasks and starts its granule worker process (as a Prefect process worker does before each flow run,
            # outside the flow time). Measured apart, on 2 days; the timed Dask cases then use warm workers.
            results["dask_first_run"] = backfill(api, config(tmp, "dfirst", granules, 2), 2, tmp, "dfirst",
                                                 "--dask-address", address, others=[p.pid for p in dask])
            _clean(tmp, "dfirst")
            for i in range(repeat):
                for case in CASES[i % len(CASES):] + CASES[:i % len(CASES)]:
                    results[case].append(_case(case, api, tmp, granules, days, ([p.pid for p in dask], address), i))
                    _clean(tmp, f"{case}-{i}")
            stop(dask)
            dask = []
            results["backfill_3_days"] = backfill(api, config(tmp, "d3", granules, 3), 3, tmp, "d3")
            results[f"backfill_{long}_days"] = backfill(api, config(tmp, "dlong", granules, long), long, tmp, "dlong")
        finally:
            stop(dask + [server])
            shutil.rmtree(tmp / "home", ignore_errors=True)
    results["flow_over_cli"] = [round(f["flow_s"] / c["wall_s"], 2)
                                for f, c in zip(results["flow_threads"], results["cli_run_2workers"], strict=True)]
    results["dask_over_threads"] = [round(k["flow_s"] / f["flow_s"], 2)
                                    for k, f in zip(results["flow_dask"], results["flow_threads"], strict=True)]
    return results


def _clean(tmp: Path, name: str) -> None:
    """Each case's outputs, removed once measured (keeps the temporary folder small between cases)."""
    shutil.rmtree(tmp / f"out-{name}", ignore_errors=True)


def _mem(r: dict[str, Any]) -> str:
    return (f"flow-process peak {r['peak_rss_mb']} MB; {r['workers']} worker processes, largest peak "
            f"{r['worker_peak_mb']} MB, sum of peaks {r['worker_peak_sum_mb']} MB")


def report(r: dict[str, Any], long: int) -> None:
    print(f"flows: {r['days']} busy days (one OCO-3 granule a day, 3 SAMs, 800 x 800 cubic, Zarr), "
          f"{r.get('repeat', 1)} interleaved repeat(s)")
    for i in range(len(r["cli_run_2workers"])):
        cli, th, ip, dk = (r[c][i] for c in CASES)
        print(f" run {i + 1}:")
        print(f"  oco-l3 run, max-workers 2: {cli['wall_s']:.1f} s wall, {cli['cpu_s']:.0f} s CPU; largest process "
              f"{cli['largest_process_mb']} MB, {cli['workers']} worker processes, sum of peaks "
              f"{cli['worker_peak_sum_mb'] + cli['peak_rss_mb']} MB")
        print(f"  backfill flow, default (thread runner 2 + worker processes): flow {th['flow_s']:.1f} s "
              f"(x{r['flow_over_cli'][i]} of oco-l3 run; CLI wall {th['wall_s']:.1f} s, {th['cpu_s']:.0f} s CPU); "
              f"{_mem(th)}")
        print(f"  backfill flow, in the flow's process, width 1 (before): flow {ip['flow_s']:.1f} s "
              f"(x{ip['flow_s'] / cli['wall_s']:.2f}; {ip['cpu_s']:.0f} s CPU); flow-process peak {ip['peak_rss_mb']} MB")
        print(f"  backfill flow, Dask (scheduler + 2 plain worker processes, 1 thread each, warm): flow "
              f"{dk['flow_s']:.1f} s (x{r['dask_over_threads'][i]} of the default; {dk['cpu_s']:.0f} s CPU incl. "
              f"scheduler and workers); flow-process peak {dk['peak_rss_mb']} MB; Dask worker + worker processes: "
              f"largest peak {dk['worker_peak_mb']} MB")
        print(f"  median idle time of a slot between two granule tasks: thread runner {th['task_start_gap_median_s']} s,"
              f" Dask {dk['task_start_gap_median_s']} s")
    if "dask_first_run" in r:
        first = r["dask_first_run"]
        print(f"  first flow run on freshly started Dask workers (2 days; each worker imports Prefect and our tasks "
              f"and starts its worker process once): flow {first['flow_s']:.1f} s")
    for i, dip in enumerate(r.get("flow_dask_in_process", [])):
        print(f"  Dask, granules in the Dask workers' own processes (before), run {i + 1}: flow {dip['flow_s']:.1f} s, "
              f"{dip['cpu_s']:.0f} s CPU incl. scheduler and workers")
    lg, d3 = r[f"backfill_{long}_days"], r["backfill_3_days"]
    print(f"  cost per day: 3-day backfill {d3['per_day_s']:.2f} s, {long}-day backfill {lg['per_day_s']:.2f} s "
          f"(flow time / days; CPU {d3['cpu_s'] / 3:.1f} s vs {lg['cpu_s'] / long:.1f} s per day; flow-process peak "
          f"{d3['peak_rss_mb']} vs {lg['peak_rss_mb']} MB)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--long", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=1, help="repeats of the N-day cases, interleaved")
    parser.add_argument("--dask-in-process", action="store_true",
                        help="also: Dask workers processing granules in their own process (as before)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    results = run(args.days, args.long, args.repeat, args.dask_in_process)
    report(results, args.long)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
