"""Soak of the backfill *flow* (only with OCO_L3_SOAK=1, which .ci/run sets): a month of SYNTHETIC days through
`oco-l3 backfill` (Prefect, local granule tree, SQLite state), some granules corrupt, then an overlapping second
backfill and a --reprocess of a week. The state table and the stores show nothing lost and nothing duplicated."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
import yaml

pytestmark = [
    pytest.mark.skipif(os.environ.get("OCO_L3_SOAK") != "1", reason="soak: set OCO_L3_SOAK=1"),
    pytest.mark.usefixtures("prefect_harness"),
]

START = dt.date(2022, 2, 1)
N_DAYS = 28
CORRUPT = {START + dt.timedelta(days=i) for i in (5, 17)}


def status(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    from oco_l3.cli import main

    capsys.readouterr()
    assert main(["status", "-i", str(config), "--json"]) == 0
    return {r["day"]: r for r in json.loads(capsys.readouterr().out)}


@pytest.mark.timeout(1200)
def test_month_of_days_through_the_backfill_flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from oco_l3.cli import main
    from oco_l3.sample_data import write_sample_tree

    end = START + dt.timedelta(days=N_DAYS - 1)
    days = write_sample_tree(tmp_path / "granules", START, end, missions=("oco2",))
    for day in CORRUPT:
        days[day]["oco2"].write_bytes(b"truncated")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "output": {"local": str(tmp_path / "out")},
        "grid": {"latitude": 30, "longitude": 30, "method": "linear"},
        "search": {"source": "local", "local": str(tmp_path / "granules"), "missions": ["oco2"]},
    }))
    args = ["backfill", "-i", str(config), "--start", str(START), "--end", str(end)]
    assert main(args) != 0  # two granules are corrupt
    rows = status(config, capsys)
    assert len(rows) == N_DAYS
    assert {d for d, r in rows.items() if r["status"] == "failed"} == {str(d) for d in CORRUPT}
    assert all(r["status"] == "done" for d, r in rows.items() if dt.date.fromisoformat(d) not in CORRUPT)

    store = tmp_path / "out" / "oco2" / "pre_qf" / "lamontOK.zarr"
    times = xr.open_zarr(store).time.values
    assert len(times) == len(set(times.tolist())) == N_DAYS - len(CORRUPT)  # one slice per captured day

    # An overlapping backfill processes nothing new; a --reprocess of a week replaces slices, never adds any.
    main(["backfill", "-i", str(config), "--start", str(START + dt.timedelta(days=10)), "--end", str(end)])
    week_end = START + dt.timedelta(days=6)
    main(["backfill", "-i", str(config), "--start", str(START), "--end", str(week_end), "--reprocess"])
    after = status(config, capsys)
    assert {d: r["status"] for d, r in after.items()} == {d: r["status"] for d, r in rows.items()}
    assert all(after[str(START + dt.timedelta(days=i))]["attempts"] >= 2 for i in range(7)
               if START + dt.timedelta(days=i) not in CORRUPT)
    assert all(after[d]["attempts"] == 1 for d in after if dt.date.fromisoformat(d) > week_end
               and dt.date.fromisoformat(d) not in CORRUPT)
    again = xr.open_zarr(store).time.values
    assert (again == times).all() and bool((again[1:] > again[:-1]).all())
