"""Concurrent ``oco-l3 run`` processes writing overlapping days into the same stores (per-store lock + transactions).

Both runs finish cleanly (a writer waits for the other's store lock), every store holds one slice per capture with
exactly the values of a sequential run, and time stays strictly increasing even when the later day commits first.
A writer that cannot get the lock in time fails with one clear line (StoreLocked) and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest

from oco_l3.errors import StoreLocked
from oco_l3.stores import StoreLock, upsert_slices
from tests.test_crash_safety import (
    DAY0,
    SMALL,
    _child,
    assert_equal_snapshots,
    run_cli,
    small_day,
    snapshot,
    write_config,
)

LOCAL = fsspec.filesystem("file")


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("granules")
    return [small_day(folder, DAY0 + dt.timedelta(days=i)) for i in range(4)]


def test_two_runs_with_overlapping_days(tmp_path: Path, days: list[Path]) -> None:
    ref_cfg = write_config(tmp_path / "ref.yaml", days, {"local": str(tmp_path / "ref")}, **SMALL)
    assert run_cli(ref_cfg) == 0
    reference = snapshot(LOCAL, str(tmp_path / "ref"))
    assert len(reference) == 4 and all(len(v) == 4 for v in reference.values())

    out = str(tmp_path / "out")
    # A: days 1-3 in order; B: days 4, 3, 2 in its own config order (the CLI sorts by day: 2, 3, 4)
    cfg_a = write_config(tmp_path / "a.yaml", days[:3], {"local": out}, **SMALL)
    cfg_b = write_config(tmp_path / "b.yaml", days[1:][::-1], {"local": out}, **SMALL)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_child, args=(str(c), None, None, str(c.with_suffix(".log")))) for c in (cfg_a, cfg_b)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    codes = [p.exitcode for p in procs]
    assert codes == [0, 0], [c.with_suffix(".log").read_text()[-2000:] for c in (cfg_a, cfg_b)]
    print(f"two concurrent runs finished in {time.monotonic() - t0:.1f} s")
    assert_equal_snapshots(snapshot(LOCAL, out), reference)  # one slice per capture, reference values


def test_second_writer_times_out_clearly_and_changes_nothing(tmp_path: Path) -> None:
    from oco_l3.grids import GridSpec
    from oco_l3.stores import SliceData
    from oco_l3.targets import BBox

    grid = GridSpec(BBox(0.0, 0.0, 1.0, 1.0), 4, 4)
    path = str(tmp_path / "s.zarr")
    t = np.datetime64("2021-12-18T03:10:00", "us")
    upsert_slices(LOCAL, path, [SliceData(t, grid, {"xco2": np.full((4, 4), 410.0, np.float32)})])
    files = {p: p.read_bytes() for p in Path(path).rglob("*") if p.is_file()}
    holder_ready, release = mp.get_context("fork").Event(), mp.get_context("fork").Event()

    def hold() -> None:
        with StoreLock(LOCAL, path):
            holder_ready.set()
            release.wait(60)

    holder = mp.get_context("fork").Process(target=hold)
    holder.start()
    try:
        assert holder_ready.wait(60)
        with pytest.raises(StoreLocked) as err:
            upsert_slices(LOCAL, path, [SliceData(t + np.timedelta64(1, "D"), grid,
                                                  {"xco2": np.full((4, 4), 1.0, np.float32)})], lock_timeout=0.3)
        assert "locked by another writer" in str(err.value) and "\n" not in str(err.value)
    finally:
        release.set()
        holder.join(30)
    assert {p: p.read_bytes() for p in Path(path).rglob("*") if p.is_file()} == files


@pytest.mark.skipif(__import__("os").environ.get("OCO_L3_SOAK") != "1", reason="slow on moto: runs with OCO_L3_SOAK=1")
def test_two_runs_on_s3_same_day(tmp_path: Path, days: list[Path], moto_s3: object) -> None:
    """On S3 the lock is an object created with a conditional put: two runs of the same day still give one slice
    per capture."""
    from oco_l3.remote import s3_filesystem

    endpoint, bucket = moto_s3.endpoint, moto_s3.bucket  # type: ignore[attr-defined]
    fs = s3_filesystem(key=None, secret=None, region="us-west-2", endpoint=endpoint)
    ref_cfg = write_config(tmp_path / "ref.yaml", days[:1], {"local": str(tmp_path / "ref")}, **SMALL)
    assert run_cli(ref_cfg) == 0
    reference = snapshot(LOCAL, str(tmp_path / "ref"))
    output = {"s3": {"url": f"s3://{bucket}/out", "endpoint": endpoint}}
    cfgs = [write_config(tmp_path / f"{n}.yaml", days[:1], output, **SMALL) for n in ("a", "b")]
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_child, args=(str(c), None, None, str(c.with_suffix(".log")))) for c in cfgs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0], [c.with_suffix(".log").read_text()[-2000:] for c in cfgs]
    assert_equal_snapshots(snapshot(fs, f"s3://{bucket}/out"), reference)
    assert not fs.glob(f"s3://{bucket}/out/*/*/*.lock")  # both released their locks


# --- the S3 lock: two (three) writers racing on the moto S3 server -------------------------------------------
def _lock_worker(endpoint: str, path: str, seed: int, rounds: int, lease: float, out: str) -> None:
    """Acquire and release the lock ``rounds`` times; sometimes stall past the lease without renewing (a frozen
    writer). Writes one line per round: the interval (CLOCK_MONOTONIC, shared by all processes of the machine)
    during which this writer believed it held the lock."""
    import json
    import os
    import random

    from oco_l3.remote import s3_filesystem

    fs = s3_filesystem(key=None, secret=None, region="us-west-2", endpoint=endpoint)
    rng = random.Random(seed)
    lines = []
    for _ in range(rounds):
        lock = StoreLock(fs, path, lease=lease, timeout=60, poll=0.01)
        lock.acquire()
        start = time.monotonic()
        assert lock.held
        if rng.random() < 0.3:  # stall: the heartbeat stops, the writer sleeps past its lease
            lock._stop.set()
            if lock._heartbeat is not None:
                lock._heartbeat.join()
            time.sleep(lease + lock.grace + rng.uniform(0.05, 0.3))
            belief_end = lock._deadline
            assert not lock.held  # its lease ran out: it must not act as the holder any more
            if lock.renew():  # nobody broke it meanwhile: it is the holder again
                time.sleep(rng.uniform(0, 0.02))
                belief_end = time.monotonic()
                kind = "stalled-kept"
            else:
                kind = "stalled-lost"
            lock.release()  # a lost lock: must not delete the new holder's lease
        else:
            time.sleep(rng.uniform(0, 0.03))
            try:
                lock.check()
                kind = "normal"
            except StoreLocked:  # starved past its lease (a loaded machine): it must stop, and does
                kind = "normal-lost"
            # It believed itself the holder until now at the latest, never past its lease.
            belief_end = min(time.monotonic(), lock._deadline)
            lock.release()
        lines.append(json.dumps({"pid": os.getpid(), "start": start, "end": belief_end, "kind": kind}))
    with open(out, "a") as fh:
        fh.write("\n".join(lines) + "\n")
    os._exit(0)


def test_s3_lock_is_never_held_twice(tmp_path: Path, moto_s3: object) -> None:
    """Three processes race for one S3 lock (conditional writes on the moto server) with short leases; some holders
    stall past their lease and are broken by the others. At no instant do two of them believe they hold it."""
    import json

    endpoint, bucket = moto_s3.endpoint, moto_s3.bucket  # type: ignore[attr-defined]
    path = f"s3://{bucket}/race/store.zarr"
    out = tmp_path / "intervals.jsonl"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_lock_worker, args=(endpoint, path, seed, 8, 1.0, str(out))) for seed in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    rounds = [json.loads(line) for line in out.read_text().splitlines() if line]
    assert len(rounds) == 24
    rounds.sort(key=lambda r: r["start"])
    for a, b in zip(rounds, rounds[1:], strict=False):
        assert a["end"] <= b["start"], f"two holders at once: {a} and {b}"
    kinds = {r["kind"] for r in rounds}
    assert "stalled-lost" in kinds, kinds  # some leases really were broken by another writer
    assert not moto_s3.list_keys("race/"), "the last holder released its lock"  # type: ignore[attr-defined]


def test_s3_lock_conditional_requests(moto_s3: object) -> None:
    """Taking needs If-None-Match, renewing and releasing need the holder's etag: a writer whose lease was broken
    can neither renew nor delete the new holder's lock."""
    from oco_l3.remote import s3_filesystem

    fs = s3_filesystem(key=None, secret=None, region="us-west-2", endpoint=moto_s3.endpoint)  # type: ignore[attr-defined]
    path = f"s3://{moto_s3.bucket}/cond/store.zarr"  # type: ignore[attr-defined]
    first = StoreLock(fs, path, lease=2.0, grace=0.1, timeout=5)
    first.acquire()
    first._stop.set()  # frozen: no heartbeat
    with pytest.raises(StoreLocked):
        StoreLock(fs, path, lease=2.0, grace=0.1, timeout=0.2).acquire()  # not expired yet
    time.sleep(2.3)
    second = StoreLock(fs, path, lease=5, timeout=5)
    second.acquire()  # breaks the expired lease with If-Match
    assert second.held and not first.held
    assert not first.renew()  # If-Match on the old etag fails
    with pytest.raises(StoreLocked, match="lost its lock"):
        first.check()
    first.release()  # If-Match delete fails: the new holder's lock stays
    assert fs.exists(path + ".lock")
    second.release()
    assert not fs.exists(path + ".lock")
