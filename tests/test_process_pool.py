"""oco_l3.process_pool: library calls in worker processes that never import Prefect, as if in the caller's process
(log records, exception types, environment), and the granule task of the flows on it: the worker's ``oco_l3``
records reach the Prefect API with the task run's id, and a transient error raised in the worker is retried by
the task (a real S3 endpoint behind a proxy refusing the first requests with ``ExpiredToken``)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oco_l3.errors import GranuleUnreadable, SourceUnavailable, WorkerProcessDied, classify
from oco_l3.process_pool import ProcessPool

log = logging.getLogger("oco_l3.test_worker")


# --- functions the worker runs (imported there by reference) ----------------------------------------------
def logs_and_returns(secret: str) -> dict[str, Any]:
    import threading

    log.info("in the worker %d with %s", os.getpid(), secret)
    thread = threading.Thread(target=log.warning, args=("from a helper thread",))
    thread.start()
    thread.join()
    return {"pid": os.getpid(), "prefect": "prefect" in sys.modules, "env": os.environ.get("OCO_L3_TEST_VALUE"),
            "blas": os.environ.get("OPENBLAS_NUM_THREADS"), "trim": os.environ.get("MALLOC_TRIM_THRESHOLD_")}


def raises(kind: str) -> None:
    if kind == "transient":
        raise SourceUnavailable("x.nc4: endpoint unreachable")
    raise GranuleUnreadable("x.nc4: not HDF5")


def dies() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPool]:
    p = ProcessPool(max_processes=1)
    try:
        yield p
    finally:
        p.close()


def test_a_call_runs_in_a_worker_without_prefect_and_its_records_come_back_here(
        pool: ProcessPool, monkeypatch: pytest.MonkeyPatch) -> None:
    from oco_l3.secrets import MASK

    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("oco_l3")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "level", logging.INFO)  # restored after the test
    monkeypatch.setenv("OCO_L3_TEST_VALUE", "set after the pool started")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as a dask nanny sets it
    try:
        out = pool.call(logs_and_returns, "AKIA-not-a-real-key-0001")
    finally:
        logger.removeHandler(handler)
    assert out["pid"] != os.getpid() and out["prefect"] is False
    assert out["env"] == "set after the pool started" and out["blas"] == "1" and out["trim"] is None
    mine = [r for r in seen if r.name == "oco_l3.test_worker"]
    assert [r.getMessage().split(" with ")[0] for r in mine] == [f"in the worker {out['pid']}", "from a helper thread"]
    assert all(r.process == out["pid"] for r in mine)
    assert "AKIA-not-a-real-key-0001" in mine[0].getMessage()  # not a registered secret: passed through as is
    from oco_l3.secrets import register_secret

    register_secret("AKIA-not-a-real-key-0001")  # known here (the caller) only: masked as its records arrive
    seen.clear()
    logger.addHandler(handler)
    try:
        pool.call(logs_and_returns, "AKIA-not-a-real-key-0001")
    finally:
        logger.removeHandler(handler)
    assert seen[0].getMessage().endswith(f"with {MASK}"), seen[0].getMessage()


def test_exceptions_keep_their_type_and_a_dead_worker_is_transient(pool: ProcessPool) -> None:
    with pytest.raises(SourceUnavailable, match="endpoint unreachable") as transient:
        pool.call(raises, "transient")
    assert any("worker process" in note and "raises" in note for note in transient.value.__notes__)
    with pytest.raises(GranuleUnreadable):
        pool.call(raises, "permanent")
    before = pool.processes
    with pytest.raises(WorkerProcessDied, match="ended \\(killed by SIGKILL") as died:
        pool.call(dies)
    assert classify(died.value).transient and not classify(GranuleUnreadable("g")).transient  # the flows' classifier
    assert pool.call(os.getpid) not in before  # a new process took the dead one's place
    alive = pool.processes
    with pytest.raises(Exception, match="pickle"):  # refused before anything is sent: the worker stays
        pool.call(lambda: 1)
    assert pool.processes == alive and pool.call(os.getpid) == alive[0]


# --- the granule task on the worker processes (Prefect test harness, moto S3 behind a refusing proxy) -------
@pytest.fixture
def refused_first(moto_s3: Any, s3_proxy: Any, tmp_path: Path) -> dict[str, Any]:
    import datetime as dt

    import yaml

    from oco_l3.sample_data import write_sample_day

    granule = write_sample_day(tmp_path / "in", dt.date(2021, 12, 18), missions=("oco2",))["oco2"]
    url = moto_s3.put(f"in/{granule.name}", granule.read_bytes())
    refusals: list[str] = []

    def gate(key_id: str, bucket: str, method: str) -> tuple[int, str] | None:
        if len(refusals) < 4:  # the first requests (a try makes two before it gives up): the token "expired"
            refusals.append(method)
            return 400, "ExpiredToken"
        return None

    s3_proxy.gate = gate
    config = tmp_path / "files.yaml"
    config.write_text(yaml.safe_dump({
        "input": {"files": [{"path": url, "accessKeyID": "AKIAPROXYTEST0001", "secretAccessKey": "not-a-secret-0001",
                             "endpoint": s3_proxy.endpoint}]},
        "output": {"local": str(tmp_path / "out")},
        "grid": {"latitude": 30, "longitude": 30, "method": "linear"},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
    }))
    return {"config": config, "refusals": refusals, "granule": granule.name}


@pytest.mark.services
def test_worker_records_reach_the_api_and_transient_errors_are_retried(refused_first: dict[str, Any],
                                                                        prefect_harness: None) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from flows.oco import oco_process_files
    from oco_l3.process_pool import shared_pool

    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logging.getLogger("oco_l3.pipeline").addHandler(handler)
    try:
        state = oco_process_files(str(refused_first["config"]), return_state=True)
    finally:
        logging.getLogger("oco_l3.pipeline").removeHandler(handler)
    totals = state.result()
    assert state.is_completed() and totals["done"] == 1 and totals["waiting"] == 0, totals
    assert len(refused_first["refusals"]) == 4
    done = [r for r in seen if "captures" in r.getMessage()]
    assert done and all(r.process != os.getpid() and r.process in shared_pool().processes for r in done)

    APILogHandler().flush()
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        tasks = [t for t in client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
                 if t.name == refused_first["granule"]]
        deadline = time.monotonic() + 30
        while True:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            library = [lg for lg in logs if lg.name == "oco_l3.pipeline" and "captures" in lg.message]
            if library or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert len(tasks) == 1 and tasks[0].run_count >= 2, [(t.name, t.run_count) for t in tasks]  # retried
    assert tasks[0].state is not None and tasks[0].state.is_completed()
    assert library and {lg.task_run_id for lg in library} == {tasks[0].id}, [(lg.name, lg.task_run_id) for lg in logs]
