"""Soak (only with OCO_L3_SOAK=1, which .ci/run sets): a backfill-like month of SYNTHETIC days through
``oco-l3 run``, with SIGKILLs along the way, bad granules mixed in and an overlapping second run. The counts show
nothing lost and nothing duplicated.

The backfill *flow* (flows/) is tested in tests/test_flows.py; this soak drives the CLI, the same library path the
flow's tasks call, without a Prefect server. The queue-consumer soak belongs to the remote-I/O tests.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from pathlib import Path

import fsspec
import numpy as np
import pytest

from tests.test_crash_safety import (
    DAY0,
    KILLED,
    SMALL,
    Kill,
    check_against,
    no_transactions_left,
    run_cli,
    small_day,
    snapshot,
    write_config,
)

pytestmark = pytest.mark.skipif(os.environ.get("OCO_L3_SOAK") != "1", reason="soak: set OCO_L3_SOAK=1")

LOCAL = fsspec.filesystem("file")
N_DAYS = 30


def expected_times(days: list[dt.date]) -> set[int]:
    """The capture start times of small_day (fossil0005 03:10, tccon105 14:00) as microseconds."""
    out = set()
    for d in days:
        for t in (dt.time(3, 10), dt.time(14, 0)):
            out.add(int(np.datetime64(dt.datetime.combine(d, t), "us").astype(np.int64)))
    return out


def test_month_backfill_with_kills_bad_inputs_and_overlap(tmp_path: Path) -> None:
    t0 = time.monotonic()
    days = [DAY0 + dt.timedelta(days=i) for i in range(N_DAYS)]
    granules = [small_day(tmp_path / "in" / f"{d:%Y}", d) for d in days]
    bad = []
    for i, d in enumerate(days[::10]):  # three unreadable files with valid names, on days that also have good data
        p = tmp_path / "bad" / str(i) / granules[days.index(d)].name.replace("123400s", "000001s")
        p.parent.mkdir(parents=True)
        p.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(512))
        bad.append(p)
    out = str(tmp_path / "out")
    first = write_config(tmp_path / "first.yaml", granules[:20] + bad, {"local": out}, **SMALL)
    second = write_config(tmp_path / "second.yaml", granules[14:], {"local": out}, **SMALL)

    rng = random.Random(8)
    state: dict = {}
    kills = 0
    for _ in range(6):  # kill the first backfill repeatedly, each time resuming from what the kill left
        rc = run_cli(first, kill=Kill(rng.randint(1, 4000), rng.choice(["before", "after", "torn"])))
        snap = snapshot(LOCAL, out)
        no_transactions_left(LOCAL, out)
        for store, content in snap.items():
            assert set(content) <= expected_times(days[:20]), store
            times = sorted(content)
            assert times == list(content), f"{store}: time not increasing"
        for store, content in state.items():
            assert set(content) <= set(snap.get(store, {})), f"{store}: a kill lost committed captures"
        state = snap
        kills += rc == KILLED
        if rc != KILLED:
            assert rc == 1  # completed; the three bad files fail with one line each
            break
    assert run_cli(first) == 1  # (re-)run to completion: only the bad files fail
    assert run_cli(second) == 0  # overlapping backfill of days 15..30
    final = snapshot(LOCAL, out)
    check_against(final, final, state)  # nothing committed before was lost
    assert len(final) == 4
    want = expected_times(days)
    for store, content in final.items():
        target = store.split("/")[-1].removesuffix(".zarr")
        mine = {t for t in want if (np.datetime64(t, "us").astype(object).hour == 3) == (target == "fossil0005")}
        assert set(content) == mine, f"{store}: {len(content)} captures, want {len(mine)}"  # none lost, none doubled
        assert len(content) == N_DAYS
        qf = store.split("/")[1]
        for t, variables in content.items():
            if qf == "pre_qf":
                assert np.isfinite(variables["xco2"]).any(), f"{store} {np.datetime64(t, 'us')}: empty slice"
    print(f"soak: {N_DAYS} days, {kills} kills, {sum(len(c) for c in final.values())} slices in "
          f"{len(final)} stores, {time.monotonic() - t0:.0f} s")
