"""End-to-end flow tests under ONE session-scoped Prefect test harness (issue 3 scenarios).

A local granule tree of SYNTHETIC days 2021-12-18..20 for OCO-3 SIF and OCO-2 (one target each, to keep it fast on a
busy 2-core machine): on the 18th OCO-3 SIF is in a (test) known gap, on the 19th OCO-2 has not arrived yet (the day
stays waiting), on the 20th the OCO-2 granule is corrupt (failed with the reason, the other days done). Then: a
second backfill reprocesses nothing; --reprocess reprocesses and every store still holds one slice per capture;
the daily flow picks up the late OCO-2 granule.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

D1, D2, D3 = (dt.date(2021, 12, 18) + dt.timedelta(days=i) for i in range(3))
MISSIONS = ("oco3_sif", "oco2")

pytestmark = pytest.mark.usefixtures("prefect_harness")


def write_config(tmp: Path, granules: Path, **extra: Any) -> Path:
    import yaml

    config = {
        "input": {"files": []},
        "output": {"local": str(tmp / "out")},
        "grid": {"latitude": 40, "longitude": 40, "method": "linear"},
        "search": {"source": "local", "local": str(granules), "missions": list(MISSIONS)},
        "target-file": str(target_file(tmp)),
        **extra,
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def target_file(tmp: Path) -> Path:
    """The bundled OCO-3 targets cut down to tccon105 (one SIF capture a day)."""
    from importlib import resources

    every = json.loads(resources.files("oco_l3").joinpath("data/targets.json").read_text())
    path = tmp / "targets.json"
    path.write_text(json.dumps({"tccon105": every["tccon105"]}))
    return path


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from oco_l3.sample_data import write_sample_tree

    tmp = tmp_path_factory.mktemp("flows")
    granules = tmp / "granules"
    days = write_sample_tree(granules, D1, D3, missions=MISSIONS)
    days[D1]["oco3_sif"].unlink()
    late = tmp / "late" / days[D2]["oco2"].name
    late.parent.mkdir()
    shutil.move(days[D2]["oco2"], late)
    days[D3]["oco2"].write_bytes(b"this is not a netCDF-4 file")
    gaps = tmp / "gaps.json"
    gaps.write_text(json.dumps([{"oco3_sif": {"start": str(D1), "stop": str(D1)}}]))
    config = write_config(tmp, granules, gaps=str(gaps))
    return {"tmp": tmp, "config": config, "late": late, "late_to": days[D2]["oco2"], "since": dt.datetime.now(dt.UTC)}


def status(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[tuple[str, str], dict[str, Any]]:
    from oco_l3.cli import main

    capsys.readouterr()
    assert main(["status", "-i", str(config), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["status"] for r in rows} <= {"waiting", "done", "failed", "gap"}
    return {(r["mission"], r["day"]): r for r in rows}


def store_times(out: Path) -> dict[str, list[Any]]:
    import xarray as xr

    times = {}
    for store in sorted(out.glob("*/pre_qf/*.zarr")):
        with xr.open_zarr(store, consolidated=True) as ds:
            times[str(store.relative_to(out))] = list(ds["time"].values)
    return times


def test_backfill_scenario_then_rerun_reprocess_and_daily(scenario: dict[str, Any],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from flows.oco import oco_backfill
    from oco_l3.cli import main

    config = scenario["config"]
    # 1. the CLI backfill: one corrupt granule -> exit code 1, the rest done
    assert main(["backfill", "-i", str(config), "--start", str(D1), "--end", str(D3)]) == 1
    rows = status(config, capsys)
    assert rows[("oco3_sif", str(D1))]["status"] == "gap"
    assert "known gap" in rows[("oco3_sif", str(D1))]["last_error"]
    assert rows[("oco2", str(D1))]["status"] == "done"
    assert {rows[(m, str(D2))]["status"] for m in MISSIONS} == {"waiting"}
    assert "waiting for oco2" in rows[("oco3_sif", str(D2))]["last_error"]
    assert rows[("oco2", str(D3))]["status"] == "failed"
    assert "GranuleUnreadable" in rows[("oco2", str(D3))]["last_error"]
    assert rows[("oco3_sif", str(D3))]["status"] == "done"
    done = [r for r in rows.values() if r["status"] == "done"]
    assert all(r["captures"] >= 1 and r["outputs"] for r in done)

    # 2. a second backfill reprocesses nothing, and says which failed day it skipped and why
    state = oco_backfill(config=str(config), start=D1, end=D3, return_state=True)
    again = state.result()
    assert state.is_completed() and again["granules"] == 0 and again["failed"] == 0
    assert [s for s in again["skipped"] if s.startswith(f"oco2 {D3}: skipped: failed earlier")]
    assert "GranuleUnreadable" in again["skipped"][0] and "GranuleUnreadable" in (state.message or "")
    before = store_times(scenario["tmp"] / "out")

    # 3. --reprocess processes every ready day again; stores still hold one slice per capture; the corrupt
    # granule turns the run red, its message naming the (mission, day) and the reason
    state = oco_backfill(config=str(config), start=D1, end=D3, reprocess=True, return_state=True)
    redo = state.result(raise_on_failure=False).totals
    assert state.is_failed() and f"oco2 {D3}: " in state.message and "GranuleUnreadable" in state.message
    assert redo["granules"] == 3 and redo["failed"] == 1
    after = store_times(scenario["tmp"] / "out")
    assert after == before and after
    assert all(len(set(t)) == len(t) and t == sorted(t) for t in after.values())
    rows = status(config, capsys)
    assert rows[("oco2", str(D1))]["attempts"] == 2
    captures = sum(r["captures"] for r in rows.values() if r["status"] == "done")
    assert sum(len(t) for t in after.values()) == captures

    # 4. the late OCO-2 granule arrives; the daily flow picks up the day
    shutil.move(scenario["late"], scenario["late_to"])
    capsys.readouterr()
    assert main(["daily", "-i", str(config), "--today", str(D3)]) == 0
    assert "1 days, 2 granules: 2 done, 0 failed" in capsys.readouterr().out
    rows = status(config, capsys)
    assert {rows[(m, str(D2))]["status"] for m in MISSIONS} == {"done"}
    assert rows[("oco2", str(D3))]["status"] == "failed"  # the same corrupt granule is not retried


def artifacts(key: str, since: dt.datetime) -> list[dict[str, Any]]:
    """The artifacts under ``key`` created since ``since``, newest first (other modules' flows share the server)."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    # The client's read_artifacts sends explicit nulls that this server/fastapi pair rejects: ask the API directly.
    body = {"artifacts": {"key": {"any_": [key]}}, "limit": 200, "offset": 0, "sort": "CREATED_DESC"}
    found = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30).json()
    return [a for a in found if dt.datetime.fromisoformat(a["created"]) >= since]


def test_run_artifacts_table_summary_and_quicklook_paths(scenario: dict[str, Any]) -> None:
    summaries = artifacts("oco-l3-backfill", scenario["since"])
    assert summaries, "the backfill runs publish a markdown summary"
    text = "\n".join(str(a["data"]) for a in summaries)
    assert "## Failed" in text and "GranuleUnreadable" in text and "## Quick-looks" in text
    assert "base64" not in text, "quick-looks are listed by path, never stored in Prefect's database"
    assert any(line.startswith("- `") and line.endswith(".png`") and Path(line[3:-1]).is_file()
               for line in text.splitlines())
    tables = artifacts("oco-l3-backfill-days", scenario["since"])
    assert tables and all(a["type"] == "table" for a in tables)
    rows = json.loads(tables[-1]["data"])  # the first run's table: every (mission, day) it saw
    by_key = {(r["mission"], r["day"]): r for r in rows}
    assert by_key[("oco2", str(D3))]["status"] == "failed" and "GranuleUnreadable" in by_key[("oco2", str(D3))]["reason"]
    assert by_key[("oco2", str(D1))]["status"] == "done"
    assert by_key[("oco2", str(D2))]["status"] == "waiting" and by_key[("oco2", str(D2))]["reason"]
    progress = artifacts("oco-l3-backfill-progress", scenario["since"])
    assert progress and progress[-1]["type"] == "progress" and float(progress[-1]["data"]) == 100.0


def test_transient_errors_retry_permanent_do_not() -> None:
    from prefect import flow, task

    from oco_l3.errors import GranuleUnreadable, SourceUnavailable
    from tasks._policy import retry_transient

    calls = {"transient": 0, "permanent": 0}

    @task(retries=3, retry_delay_seconds=0, retry_condition_fn=retry_transient)
    def flaky(kind: str) -> str:
        calls[kind] += 1
        if kind == "transient" and calls[kind] < 3:
            raise SourceUnavailable("cmr: ConnectionError")
        if kind == "permanent":
            raise GranuleUnreadable("x.nc4: not HDF5")
        return "ok"

    @flow
    def run() -> tuple[Any, Any]:
        return flaky("transient"), flaky.submit("permanent").result(raise_on_failure=False)

    ok, exc = run()
    assert ok == "ok" and calls["transient"] == 3
    assert isinstance(exc, GranuleUnreadable) and calls["permanent"] == 1


def test_global_product_backfill_records_every_granule(tmp_path: Path) -> None:
    import yaml

    from flows.oco import oco_backfill
    from oco_l3.sample_data import write_sample_tree
    from oco_l3.state import open_state, status_rows

    write_sample_tree(tmp_path / "granules", D1, D1, missions=("oco2",))
    config = tmp_path / "global.yaml"
    config.write_text(yaml.safe_dump({
        "output": {"local": str(tmp_path / "out"), "global": True},
        "grid": {"latitude": 90, "longitude": 180, "method": "nearest"},
        "search": {"source": "local", "local": str(tmp_path / "granules"), "missions": ["oco2"]},
    }))
    totals = oco_backfill(config=str(config), start=D1, end=D1)
    assert totals["done"] == 1 and totals["failed"] == 0
    state = open_state(f"sqlite:///{tmp_path / 'out' / 'oco-l3-state.db'}")
    rows = status_rows(state)
    state.close()
    assert [(r["mission"], r["status"]) for r in rows] == [("oco2", "done")]
    assert len(rows[0]["outputs"]) == 2 and all(Path(p).is_dir() for p in rows[0]["outputs"])  # pre- and post-QF
    assert oco_backfill(config=str(config), start=D1, end=D1)["granules"] == 0


def test_a_day_another_run_holds_is_left_to_it_until_its_lease_ends(tmp_path: Path) -> None:
    from flows.oco import oco_backfill
    from oco_l3 import state as st
    from oco_l3.sample_data import write_sample_tree

    write_sample_tree(tmp_path / "granules", D1, D1, missions=("oco2",))
    config = write_config(tmp_path, tmp_path / "granules", search={
        "source": "local", "local": str(tmp_path / "granules"), "missions": ["oco2"]})
    state = st.open_state(f"sqlite:///{tmp_path / 'out' / 'oco-l3-state.db'}")
    try:
        assert st.claim(state, [f"oco2/{D1}"], "another-run", 7, lease_s=60) == {}
        held = oco_backfill(config=str(config), start=D1, end=D1)
        assert held["granules"] == 0 and held["skipped"] == [
            f"oco2 {D1}: busy: being processed by run 7 (lease until {held['skipped'][0].split('until ')[1]}"]
        assert st.status_rows(state) == []  # not attempted by this run
        st.release_claims(state, "another-run")  # (or its lease ends)
        assert oco_backfill(config=str(config), start=D1, end=D1)["done"] == 1
    finally:
        state.close()


def test_daily_retries_a_waiting_day_whatever_its_age(tmp_path: Path) -> None:
    from flows.oco import oco_daily
    from oco_l3 import state as st
    from oco_l3.sample_data import write_sample_tree
    from oco_l3.sources import GranuleRef

    old, recent = D1, D1 + dt.timedelta(days=700)
    write_sample_tree(tmp_path / "granules", old, old, missions=("oco2",))  # the late granule is there now
    config = write_config(tmp_path, tmp_path / "granules", search={
        "source": "local", "local": str(tmp_path / "granules"), "missions": ["oco2"]})
    state = st.open_state(f"sqlite:///{tmp_path / 'out' / 'oco-l3-state.db'}")
    try:
        st.mark_waiting(state, GranuleRef("oco2", old, "x", name="x"), "no granule yet")
        st.mark_done(state, GranuleRef("oco2", recent, "y", name="y"), captures=1, targets=1, outputs=[])
        since = dt.datetime.now(dt.UTC)
        totals = oco_daily(config=str(config), today=recent + dt.timedelta(days=2))
        rows = {r["day"]: r for r in st.status_rows(state)}
    finally:
        state.close()
    assert totals["done"] == 1 and rows[str(old)]["status"] == "done"
    summary = artifacts("oco-l3-daily", since)[0]["data"]
    assert f"waiting days retried (1): {old}" in summary and f"new days: {recent + dt.timedelta(days=1)}" in summary


def test_no_per_task_completed_lines_but_failures_pass() -> None:
    import logging

    import tasks  # noqa: F401 - installs the filter

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("prefect.task_runs")
    logger.addHandler(handler)
    level = logger.level
    try:
        logger.setLevel(logging.INFO)
        logger.info("Finished in state Completed()")
        logger.error("Finished in state Failed('x.nc4: GranuleUnreadable')")
        logger.warning("Finished in state Completed() is only dropped at INFO")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert seen == ["Finished in state Failed('x.nc4: GranuleUnreadable')",
                    "Finished in state Completed() is only dropped at INFO"]


def test_cli_environment_turns_off_the_temporary_servers_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.cli import _quiet_prefect

    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    _quiet_prefect()  # the ephemeral server's telemetry service ignores DO_NOT_TRACK and fails offline
    import os

    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_a_run_whose_only_problems_are_transient_ends_waiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from flows.oco import oco_backfill
    from oco_l3 import pipeline
    from oco_l3.cli import main
    from oco_l3.errors import SourceUnavailable
    from oco_l3.sample_data import write_sample_tree

    write_sample_tree(tmp_path / "granules", D1, D1, missions=("oco2",))
    config = write_config(tmp_path, tmp_path / "granules", search={
        "source": "local", "local": str(tmp_path / "granules"), "missions": ["oco2"]})
    calls: list[str] = []

    def outage(config: Any, granule: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(granule.name)
        raise SourceUnavailable(f"{granule.name}: S3 endpoint unreachable")

    monkeypatch.setenv("OCO_L3_WORKER_PROCESS", "0")  # the replaced function runs in the task's own process
    monkeypatch.setattr(pipeline, "process_granule", outage)
    state = oco_backfill(config=str(config), start=D1, end=D1, return_state=True)
    assert state.is_completed() and state.name == "Waiting", state
    assert f"oco2 {D1}: " in (state.message or "") and "S3 endpoint unreachable" in (state.message or "")
    assert len(calls) == 5  # the first try and 4 retries (transient errors only)
    capsys.readouterr()
    assert main(["backfill", "-i", str(config), "--start", str(D1), "--end", str(D1)]) == 1  # still not done
    assert "0 done, 0 failed, 1 waiting" in capsys.readouterr().out
