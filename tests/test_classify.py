"""One error classifier by type (issue 14 item 3): oco_l3.errors.classify, and the global day's transient errors
reaching its task's retries in the flow (before, process_global_day caught everything and the retries never fired,
and the flow guessed 'transient' from the message text)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from oco_l3.errors import (
    CaptureWriteBlocked,
    GranuleUnreadable,
    OcoL3Error,
    SourceUnavailable,
    StoreLocked,
    WorkerProcessDied,
    classify,
)

DAY = dt.date(2021, 12, 18)


@pytest.mark.parametrize(("exc", "kind", "reason"), [
    (SourceUnavailable("s3://b/k: ConnectTimeoutError"), "transient", "SourceUnavailable: s3://b/k"),
    (StoreLocked("busy"), "transient", "StoreLocked: busy"),
    (CaptureWriteBlocked("g: writing failed: StoreLocked"), "transient", "CaptureWriteBlocked"),
    (WorkerProcessDied("process_granule: worker process 12 ended (killed by SIGKILL)"), "transient",
     "WorkerProcessDied: process_granule"),
    # the text names a transient class: the type decides, never the message
    (GranuleUnreadable("g.nc4: SourceUnavailable: TimeoutError"), "permanent", "GranuleUnreadable: g.nc4"),
    (OcoL3Error("base class"), "permanent", "OcoL3Error"),
    (KeyError("SourceThrottled"), "permanent", "unexpected KeyError"),
    (ConnectionResetError("peer reset"), "transient", "unexpected ConnectionResetError: peer reset"),
    (TimeoutError(), "transient", "unexpected TimeoutError"),
])
def test_classify_by_type(exc: BaseException, kind: str, reason: str) -> None:
    verdict = classify(exc)
    assert verdict.kind == kind and verdict.transient == (kind == "transient")
    assert verdict.reason.startswith(reason) and "\n" not in verdict.reason


def test_task_retry_condition_is_the_classifier() -> None:
    from tasks._policy import is_transient

    assert is_transient(SourceUnavailable("x")) and is_transient(ConnectionError("x"))
    assert not is_transient(GranuleUnreadable("x: SourceUnavailable")) and not is_transient(ValueError("x"))
    assert not is_transient(None)


# --- the global day in the flow: transient retried, permanent not -------------------------------------------------
def _global_config(tmp: Path) -> Path:
    from oco_l3.sample_data import write_sample_tree

    granules = tmp / "granules"
    write_sample_tree(granules, DAY, DAY, missions=("oco2",))
    path = tmp / "global.yaml"
    path.write_text(yaml.safe_dump({
        "output": {"local": str(tmp / "out"), "global": True},
        "grid": {"latitude": 180, "longitude": 360, "method": "nearest"},
        "search": {"source": "local", "local": str(granules), "missions": ["oco2"]}}))
    return path


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(("error", "status", "calls"), [
    (SourceUnavailable("oco2 granule: connection reset"), "done", 3),  # fails twice, the third try succeeds
    (GranuleUnreadable("oco2 granule: not HDF5 (its body reads SourceUnavailable: 503)"), "failed", 1),
])
def test_global_day_transient_errors_are_retried_by_the_flow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, status: str, calls: int) -> None:
    import oco_l3.global_product as gp
    from flows.oco import oco_backfill
    from oco_l3 import state as st
    from oco_l3.config import load_oco_config

    config = _global_config(tmp_path)
    real = gp.grid_granule_global
    seen: list[Any] = []

    def flaky(cfg: Any, granule: Any) -> Any:
        seen.append(granule.name)
        if len(seen) < 3:
            raise error
        return real(cfg, granule)

    monkeypatch.setattr(gp, "grid_granule_global", flaky)
    monkeypatch.setenv("OCO_L3_WORKER_PROCESS", "0")  # the replaced function runs in the task's own process
    flow_state = oco_backfill(config=str(config), start=DAY, end=DAY, return_state=True)
    assert len(seen) == calls
    state = st.open_state(st.default_state_url(load_oco_config(config)))
    try:
        (row,) = st.status_rows(state)
    finally:
        state.close()
    assert (row["mission"], row["status"]) == ("oco2", status)
    if status == "done":
        assert flow_state.is_completed() and (tmp_path / "out" / "pre_qf" / ".zmetadata").is_file()
    else:
        assert flow_state.is_failed() and "GranuleUnreadable" in row["last_error"]
