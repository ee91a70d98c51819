"""Crash safety of ``oco-l3 run``: SIGKILL at many points during a multi-day run, on local disk and on S3 (moto).

Harness: the test process imports the package once, then forks one child per run (``fork`` keeps each child's
start-up at a few milliseconds on a loaded machine). The child is exactly ``oco-l3 run -i CONFIG``
(:func:`oco_l3.cli.main`) with one addition: every object-store operation (``ObjectStore.write/place/
rename_tree/delete/delete_many/remove_tree`` -- staging, manifest, apply, cleanup) counts, and at the chosen operation the child SIGKILLs
itself before the operation, after it, or -- for writes -- after writing only half of the bytes (a torn object).
Some runs are instead killed from outside by a timer at a random delay. After every kill, BEFORE anything recovers
the stores, a plain ``xr.open_zarr`` reads every store (:func:`plain_snapshot`, checked by :func:`check_plain`:
no store, or a committed state); then the stores are opened with recovery and checked, then the next run continues from whatever the kill left behind. The last run of each
chain completes and its stores must equal a reference run's stores.

The state table (:mod:`oco_l3.state`) is not used by ``oco-l3 run`` (only by the Prefect flows), so there is no
"done" flag to check here; see docs/guarantees.md.
"""

from __future__ import annotations

import datetime as dt
import faulthandler
import multiprocessing as mp
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import fsspec
import numpy as np
import pytest
import xarray as xr
import yaml

from oco_l3.sample_data import CaptureSpec, sample_filename, write_granule
from oco_l3.stores import open_store
from oco_l3.zarr_store import _objectstore

DAY0 = dt.date(2021, 12, 18)
GRID = {"latitude": 50, "longitude": 50, "method": "linear"}
KILLED = -signal.SIGKILL


# --- inputs --------------------------------------------------------------------------------------------------
def small_day(folder: Path, day: dt.date, seed: int = 0, mission: str = "oco3") -> Path:
    """A small SYNTHETIC OCO-3 granule: a SAM over fossil0005 and a target-mode capture over tccon105."""
    caps = (
        CaptureSpec("fossil0005", "sam", 240, dt.datetime.combine(day, dt.time(3, 10))),
        CaptureSpec("tccon105", "target", 160, dt.datetime.combine(day, dt.time(14, 0)), angle_deg=-20.0),
    )
    folder.mkdir(parents=True, exist_ok=True)
    return write_granule(folder / sample_filename(mission, day), mission, day, caps,  # type: ignore[arg-type]
                         n_background=160, seed=seed + day.toordinal())


def write_config(path: Path, files: list[Path | str], output: dict[str, Any], **extra: Any) -> Path:
    cfg = {"input": {"files": [str(f) for f in files]}, "output": output, "grid": dict(GRID), **extra}
    path.write_text(yaml.safe_dump(cfg))
    return path


# --- the child: oco-l3 run, with an optional kill at the n-th object-store operation --------------------------
@dataclass(frozen=True)
class Kill:
    op: int  # 1-based index of the object-store operation
    how: str  # "before" | "after" | "torn"


def _install_killer(kill: Kill | None, counter_file: str | None) -> None:
    """Patch ObjectStore in this (child) process so operation ``kill.op`` ends the process with SIGKILL."""
    count = [0]
    store_cls = _objectstore.ObjectStore

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(name: str) -> None:
        original = getattr(store_cls, name)

        def op(self: Any, *args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            if counter_file:
                with open(counter_file, "w") as fh:
                    fh.write(str(count[0]))
            hit = kill is not None and count[0] == kill.op
            if hit and kill.how == "before":
                die()
            if hit and kill.how == "torn" and name == "write":
                key, data = args[0], args[1]
                if self.local:
                    target = self.path(key)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    if kwargs.get("atomic", True):  # an atomic write dies inside its temporary file
                        target = os.path.join(os.path.dirname(target), ".tmp-killed")
                    with open(target, "wb") as fh:
                        fh.write(data[: len(data) // 2])
                # an S3 put is atomic: a torn put is no put
                die()
            result = original(self, *args, **kwargs)
            if hit:
                die()
            return result

        setattr(store_cls, name, op)

    for name in ("write", "place", "rename_tree", "delete", "delete_many", "remove_tree"):
        wrap(name)


def _forget_parent_threads() -> None:
    """dask's threaded scheduler keeps its pool across fork, but not the pool's threads: drop it in the child."""
    import dask.threaded

    dask.threaded.default_pool = None
    dask.threaded.pools.clear()


def _child(config: str, kill: Kill | None, counter_file: str | None, log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    faulthandler.dump_traceback_later(240, exit=True, file=sys.stderr)  # a hang shows its stack in the log
    _forget_parent_threads()
    _install_killer(kill, counter_file)
    from oco_l3.cli import main

    try:
        rc = main(["run", "-i", config])
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        rc = 99
    os._exit(rc)


def run_cli(config: Path, *, kill: Kill | None = None, kill_after: float | None = None,
            counter_file: Path | None = None, log: Path | None = None, timeout: float = 300.0) -> int:
    """Run ``oco-l3 run -i config`` in a forked child; returns its exit code (-9 when killed)."""
    ctx = mp.get_context("fork")
    log = log or config.with_suffix(".log")
    proc = ctx.Process(target=_child, args=(str(config), kill, str(counter_file) if counter_file else None, str(log)))
    proc.start()
    proc.join(kill_after if kill_after is not None else timeout)
    if proc.exitcode is None:
        if kill_after is None:
            proc.kill()
            proc.join()
            raise AssertionError(f"oco-l3 run did not finish in {timeout} s: {log.read_text()[-2000:]}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    assert proc.exitcode is not None
    return proc.exitcode


# --- reading and checking stores -----------------------------------------------------------------------------
Snapshot = dict[str, dict[int, dict[str, np.ndarray]]]  # store (relative) -> time (us) -> "group/var" -> values


def store_paths(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    """Every ``*.zarr`` folder under ``<root>/<mission>/<naming>/``."""
    found = []
    for mission in _ls_dirs(fs, root):
        for naming in _ls_dirs(fs, mission):
            found += [p for p in _ls_dirs(fs, naming) if p.endswith(".zarr")]
    return sorted(found)


def _ls_dirs(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    try:
        entries = fs.ls(path, detail=True, refresh=True) if not _is_local(fs) else fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    return [e["name"] for e in entries if e["type"] == "directory"]


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return _objectstore.is_local(fs)


def _rel(root: str, path: str) -> str:
    return path.split("://", 1)[-1][len(root.split("://", 1)[-1]) :].lstrip("/")


def read_store(fs: fsspec.AbstractFileSystem, path: str) -> dict[int, dict[str, np.ndarray]] | None:
    """Open the store with :func:`open_store` (recovering it); None when nothing was ever committed to it."""
    try:
        root = open_store(fs, path)
    except Exception as exc:  # noqa: BLE001
        if "no consolidated metadata" not in str(exc):
            raise
        leftovers = [f for f in _files(fs, path)]
        assert not leftovers, f"{path}: no commit yet, but objects were left behind: {leftovers[:5]}"
        return None
    times = root["time"].values.astype("datetime64[us]").astype(np.int64)
    assert times.size == 0 or np.all(np.diff(times) > 0), f"{path}: time is not strictly increasing: {times}"
    groups = sorted({k.split("/")[0] for k in _metadata_keys(fs, path) if k.count("/") == 1 and k.endswith(".zgroup")})
    out: dict[int, dict[str, np.ndarray]] = {int(t): {} for t in times}
    for group in [None, *groups]:
        ds = root if group is None else open_store(fs, path, group)
        gtimes = ds["time"].values.astype("datetime64[us]").astype(np.int64)
        assert np.array_equal(gtimes, times), f"{path}: group {group} has a different time axis"
        for name in ds.data_vars:
            values = ds[name].values
            assert values.shape[0] == times.size
            key = f"{group}/{name}" if group else str(name)
            for i, t in enumerate(times):
                out[int(t)][key] = values[i]
    return out


def _metadata_keys(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    """The consolidated metadata keys of the store (Zarr v3 keys as ``<node>/zarr.json``, v2 as they are)."""
    import json

    if fs.exists(f"{path}/zarr.json"):
        with fs.open(f"{path}/zarr.json", "rb") as fh:
            nodes = json.load(fh)["consolidated_metadata"]["metadata"]
        return [f"{k}/{'.zgroup' if v['node_type'] == 'group' else 'zarr.json'}" for k, v in nodes.items()]
    with fs.open(f"{path}/.zmetadata", "rb") as fh:
        return list(json.load(fh)["metadata"])


def _files(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    try:
        return [f for f in fs.find(path) if not f.endswith(".lock")]
    except FileNotFoundError:
        return []


def snapshot(fs: fsspec.AbstractFileSystem, root: str) -> Snapshot:
    """Every store under ``root``, read in this process with dask's synchronous scheduler: a dask thread pool
    created here would be inherited, dead, by the forked children and hang their first dask computation."""
    fs.invalidate_cache()
    out: Snapshot = {}
    with dask.config.set(scheduler="synchronous"):
        for path in store_paths(fs, root):
            content = read_store(fs, path)
            if content is not None:
                out[_rel(root, path)] = content
    return out


def plain_snapshot(fs: fsspec.AbstractFileSystem, root: str, stores: list[str]) -> dict[str, Any]:
    """Every store of ``stores`` (relative to ``root``) as a PLAIN reader sees it: ``xr.open_zarr`` of the root
    and of every group, no recovery, no lock. Per store: its content, None (no store there), or the error text
    when the open failed in any other way. Read BEFORE anything recovers the stores."""
    from zarr.errors import GroupNotFoundError

    out: dict[str, Any] = {}
    fs.invalidate_cache()
    with dask.config.set(scheduler="synchronous"):
        for rel in stores:
            path = f"{root}/{rel}"
            try:
                out[rel] = _plain_read(fs, path)
            except (FileNotFoundError, GroupNotFoundError):
                out[rel] = None
            except Exception as exc:  # noqa: BLE001 - recorded, then asserted on
                out[rel] = f"{type(exc).__name__}: {exc}"
    return out


def _plain_read(fs: fsspec.AbstractFileSystem, path: str) -> dict[int, dict[str, np.ndarray]]:
    src = path if _is_local(fs) else fs.get_mapper(path)
    root = xr.open_zarr(src)  # exactly what a crawler or a scientist does
    times = root["time"].values.astype("datetime64[us]").astype(np.int64)
    out: dict[int, dict[str, np.ndarray]] = {int(t): {} for t in times}
    groups = sorted({k.split("/")[0] for k in _metadata_keys(fs, path) if k.count("/") == 1 and k.endswith(".zgroup")})
    for group in [None, *groups]:
        ds = root if group is None else xr.open_zarr(src, group=group)
        assert np.array_equal(ds["time"].values.astype("datetime64[us]").astype(np.int64), times), group
        for name in ds.data_vars:
            values = ds[name].values
            for i, t in enumerate(times):
                out[int(t)][f"{group}/{name}" if group else str(name)] = values[i]
    return out


def check_plain(fs: fsspec.AbstractFileSystem, root: str, plain: dict[str, Any], recovered: Snapshot,
                reference: Snapshot) -> dict[str, int]:
    """What a plain reader saw after a kill is a committed state: either what recovery gives, or the state before
    the one commit the kill interrupted (that commit's time missing, or no store at all if it was the store's
    first). Never an error, a torn or padded slice, or a store path without a committed store in it (local
    disk: the path does not exist until the store is complete). Returns counts for the report."""
    stats = {"same_as_recovered": 0, "before_last_commit": 0, "no_store": 0}
    for rel, seen in plain.items():
        assert not isinstance(seen, str), f"{rel}: a plain xr.open_zarr failed after a kill: {seen}"
        after = recovered.get(rel)
        if seen is None:
            assert after is None or len(after) == 1, f"{rel}: committed store invisible to plain readers"
            if _is_local(fs):
                assert not os.path.exists(f"{root}/{rel}"), f"{rel}: store path exists without a committed store"
            stats["no_store"] += 1
            continue
        assert after is not None, f"{rel}: plain readers see a store that recovery removed"
        check_against({rel: seen}, reference, {})
        if list(seen) == list(after):
            stats["same_as_recovered"] += 1
            continue
        missing = set(after) - set(seen)
        assert not set(seen) - set(after) and len(missing) == 1 and max(missing) == max(after), (
            f"{rel}: plain readers see times {sorted(seen)}, recovery gives {sorted(after)}")
        stats["before_last_commit"] += 1
    return stats


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def check_against(snap: Snapshot, reference: Snapshot, before: Snapshot) -> None:
    """Every stored capture equals the reference run's capture (never torn, never padded); nothing committed
    before the kill is gone."""
    for store, content in snap.items():
        assert store in reference, f"unexpected store {store}"
        ref = reference[store]
        for t, variables in content.items():
            assert t in ref, f"{store}: time {np.datetime64(t, 'us')} is not a capture time (padded/duplicated)"
            assert set(variables) == set(ref[t]), f"{store}: variables differ at {np.datetime64(t, 'us')}"
            for key, values in variables.items():
                assert _same(values, ref[t][key]), f"{store}: {key} at {np.datetime64(t, 'us')} is torn"
    for store, content in before.items():
        assert store in snap, f"{store} was committed before the kill and is gone"
        lost = set(content) - set(snap[store])
        assert not lost, f"{store}: committed captures lost by the kill: {sorted(lost)}"


def assert_equal_snapshots(snap: Snapshot, reference: Snapshot) -> None:
    assert set(snap) == set(reference), f"stores differ: {sorted(set(snap) ^ set(reference))}"
    for store in reference:
        assert list(snap[store]) == list(reference[store]), f"{store}: times differ (duplicates or missing)"
    check_against(snap, reference, {})


def no_transactions_left(fs: fsspec.AbstractFileSystem, root: str) -> None:
    """After recovery no transaction is pending (an empty ``.oco-l3-txn`` folder -- a kill between removing the
    last transaction and removing the folder -- is allowed: it holds nothing and the next commit removes it)."""
    for path in store_paths(fs, root):
        parent, _, name = path.rpartition("/")
        for txn in (f"{path}/.oco-l3-txn", f"{parent}/.{name}.oco-l3-txn"):
            left = _files(fs, txn)
            assert not left, f"{path}: transaction objects left after recovery: {left[:5]}"


# --- the chain -----------------------------------------------------------------------------------------------
@dataclass
class Chain:
    fs: fsspec.AbstractFileSystem
    root: str
    config: Path
    reference: Snapshot
    ops_fresh: int
    rng: random.Random
    kills: list[str] = field(default_factory=list)
    #: What plain readers saw at the kills (see check_plain).
    raw: dict[str, int] = field(default_factory=lambda: {"same_as_recovered": 0, "before_last_commit": 0,
                                                         "no_store": 0})
    completions: int = 0
    state: Snapshot = field(default_factory=dict)
    #: S3 only: a killed writer's lock object stays until its lease (2 min) ends, and open_store/the next run wait
    #: for it. The operator's recovery step (docs/guarantees.md): with no writer running, delete the lock objects.
    break_stale_locks: bool = False
    stale_locks: int = 0

    def wipe(self) -> None:
        if self.fs.exists(self.root):
            self.fs.rm(self.root, recursive=True)
        self.state = {}

    def step(self, kill: Kill | None = None, kill_after: float | None = None) -> tuple[int, int]:
        """One run; returns its exit code and the number of object-store operations it did."""
        counter = self.config.with_suffix(".ops")
        counter.write_text("0")
        rc = run_cli(self.config, kill=kill, kill_after=kill_after, counter_file=counter)
        if rc == KILLED:
            self.kills.append(f"op {kill.op} {kill.how}" if kill else f"timer {kill_after:.2f}s")
            if self.break_stale_locks:
                self.fs.invalidate_cache()
                locks = self.fs.glob(f"{self.root}/*/*/*.zarr.lock") + self.fs.glob(f"{self.root}/stac/*.lock")
                for lock in locks:
                    self.fs.rm_file(lock)
                    self.stale_locks += 1
            plain = plain_snapshot(self.fs, self.root, sorted(self.reference))
        else:
            assert rc == 0, f"oco-l3 run exited {rc}: {self.config.with_suffix('.log').read_text()[-3000:]}"
        snap = snapshot(self.fs, self.root)
        if rc == KILLED:
            for k, v in check_plain(self.fs, self.root, plain, snap, self.reference).items():
                self.raw[k] += v
        no_transactions_left(self.fs, self.root)
        check_against(snap, self.reference, self.state)
        if rc == 0:
            assert_equal_snapshots(snap, self.reference)
            self.completions += 1
        self.state = snap
        return rc, int(counter.read_text() or 0)


def reference_run(tmp: Path, files: list[Path], output: Callable[[str], dict[str, Any]],
                  fs: fsspec.AbstractFileSystem, root: str) -> tuple[Snapshot, int, float]:
    """One uninterrupted run: its stores, its number of object-store operations and its wall time."""
    config = write_config(tmp / "reference.yaml", files, output("reference"), **SMALL)
    counter = tmp / "reference.ops"
    t0 = time.monotonic()
    rc = run_cli(config, counter_file=counter)
    seconds = time.monotonic() - t0
    assert rc == 0, (tmp / "reference.log").read_text()[-3000:]
    ref_root = root.rsplit("/", 1)[0] + "/reference"
    reference = snapshot(fs, ref_root)
    assert len(reference) == 4 and all(len(v) == len(files) for v in reference.values()), {
        k: len(v) for k, v in reference.items()}
    return reference, int(counter.read_text()), seconds


#: Fewer groups: fewer objects per commit, so a kill lands in every phase of a commit often enough.
SMALL: dict[str, Any] = {"exclude-groups": ["Meteorology", "Preprocessors", "Sounding"]}


@pytest.fixture(scope="module")
def granules(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("granules")
    return [small_day(folder, DAY0 + dt.timedelta(days=i)) for i in range(3)]


def run_chain(chain: Chain, n_kills: int, n_timer_kills: int, run_seconds: float) -> None:
    """Episodes: from empty stores, kill a run at a random operation, re-run and kill again within what is left,
    until a run completes; then start again from empty stores. Some kills come from an outside timer."""
    timers = set(chain.rng.sample(range(n_kills), n_timer_kills))
    remaining = chain.ops_fresh
    scale = 1.0
    while len(chain.kills) < n_kills:
        if len(chain.kills) in timers and scale > 0.01:
            rc, ops = chain.step(kill_after=chain.rng.uniform(0.1, 0.8) * run_seconds * scale)
            if rc == KILLED:
                timers.discard(len(chain.kills) - 1)
            scale = 1.0 if rc == KILLED else scale / 2  # the run finished first: try again sooner
        else:
            kill = Kill(chain.rng.randint(1, max(1, remaining)), chain.rng.choice(["before", "after", "torn"]))
            rc, ops = chain.step(kill=kill)
        # what is left of the work, roughly (a resumed run also re-commits the days already done, cheaply)
        remaining = max(chain.ops_fresh // 5, remaining - ops) if rc == KILLED else chain.ops_fresh
        if rc == 0:
            chain.wipe()
    rc, _ = chain.step()  # the re-run after the last kill completes the work; stores equal the reference run
    assert rc == 0
    rc, _ = chain.step()  # and running once more changes nothing (no duplicates)
    assert rc == 0


#: Kills per chain on local disk by output.format: v3 goes through the same transaction code (only the metadata
#: documents and their apply order differ), so fewer kills keep the suite's time in check.
LOCAL_KILLS = {"zarr2": (22, 3), "zarr3": (10, 2)}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("fmt", sorted(LOCAL_KILLS))
def test_sigkill_local_disk(tmp_path: Path, granules: list[Path], fmt: str) -> None:
    fs = fsspec.filesystem("file")
    root = str(tmp_path / "out" / "run")
    reference, ops, seconds = reference_run(
        tmp_path, granules, lambda name: {"local": str(tmp_path / "out" / name), "format": fmt}, fs, root)
    assert ops > 50, ops
    print(f"reference run: {ops} object-store operations in {seconds:.1f} s")
    marker = "zarr.json" if fmt == "zarr3" else ".zmetadata"
    assert all(fs.exists(f"{p}/{marker}") for p in store_paths(fs, root.rsplit("/", 1)[0] + "/reference"))
    config = write_config(tmp_path / "run.yaml", granules, {"local": root, "format": fmt}, **SMALL)
    chain = Chain(fs, root, config, reference, ops, random.Random(int(os.environ.get("OCO_L3_CRASH_SEED", "8"))))
    n_kills, n_timers = LOCAL_KILLS[fmt]
    run_chain(chain, n_kills=n_kills, n_timer_kills=n_timers, run_seconds=seconds)
    assert len(chain.kills) >= n_kills - 2, chain.kills
    assert any(k.startswith("timer") for k in chain.kills), chain.kills
    assert chain.completions >= 2, chain.completions
    # plain xr.open_zarr before recovery, at every kill: a committed state (asserted in check_plain)
    assert sum(chain.raw.values()) == len(chain.kills) * len(reference), chain.raw
    print(f"local {fmt}: {len(chain.kills)} kills ({chain.kills}); plain xr.open_zarr before recovery: {chain.raw}")


#: Kills on the S3 test endpoint by output.format: (default, soak).
S3_KILLS = {"zarr2": (3, 20), "zarr3": (1, 4)}


@pytest.mark.timeout(1800)  # moto answers slowly under load; the harness itself bounds each run
@pytest.mark.parametrize("fmt", sorted(S3_KILLS))
def test_sigkill_s3(tmp_path: Path, granules: list[Path], moto_s3: Any, fmt: str) -> None:
    """The S3 test endpoint is slow: by default one day and 3 kills (v3: 1); the soak (OCO_L3_SOAK=1, set by
    .ci/run) does 2 days and 20 kills (v3: 4)."""
    from oco_l3.remote import s3_filesystem

    soak = os.environ.get("OCO_L3_SOAK") == "1"
    n_kills = S3_KILLS[fmt][1 if soak else 0]
    files = granules[:2] if soak else granules[:1]
    fs = s3_filesystem(key=None, secret=None, region="us-west-2", endpoint=moto_s3.endpoint)
    bucket = moto_s3.bucket
    root = f"s3://{bucket}/run"

    def output(name: str) -> dict[str, Any]:
        return {"s3": {"url": f"s3://{bucket}/{name}", "endpoint": moto_s3.endpoint}, "format": fmt}

    reference, ops, seconds = reference_run(tmp_path, files, output, fs, root)
    config = write_config(tmp_path / "run.yaml", files, output("run"), **SMALL)
    chain = Chain(fs, root, config, reference, ops, random.Random(int(os.environ.get("OCO_L3_CRASH_SEED", "8"))),
                  break_stale_locks=True)
    run_chain(chain, n_kills=n_kills, n_timer_kills=2 if soak else 1, run_seconds=seconds)
    assert len(chain.kills) >= n_kills, chain.kills
    print(f"s3 {fmt}: {len(chain.kills)} kills ({chain.kills}); stale locks removed: {chain.stale_locks}; "
          f"plain xr.open_zarr before recovery: {chain.raw}")
    assert sum(chain.raw.values()) == len(chain.kills) * len(reference), chain.raw
