"""prefect.yaml against a real `prefect server start` on 127.0.0.1 (its scheduler running), as an operator runs it:
`prefect deploy --all` from a folder holding only prefect.yaml and the deployed run configs (the flows come from
the installed package), the scheduler creates the scheduled runs with no error in the server log, and deployment
runs execute on a real process worker: with state on a real PostgreSQL; on a real `dask scheduler` with two
`dask worker` processes (job variable OCO_L3_DASK_ADDRESS), writing the same stores as the thread runner, with the
library's log records reaching the API; and two deployments started at once on the same outputs never process the
same (mission, day) (the claims in the state table)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from deployments import DEPLOYMENTS, ICESAT2_DEPLOYMENTS, SCHEDULED, WORK_POOL

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")
DAY = dt.date(2021, 12, 18)
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _env(api_url: str, home: Path, project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=api_url, PREFECT_HOME=str(home), DO_NOT_TRACK="1", OCO_L3_PROJECT_DIR=str(project),
               PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5", OCO_L3_RETRY_BASE_SECONDS="0")
    return env


def prefect(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PREFECT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def copy_project(project: Path) -> Path:
    """What an operator's deploy folder holds: prefect.yaml and the deployed run configs (no code: the flows and
    tasks are imported from the installed package)."""
    project.mkdir()
    shutil.copy(ROOT / "prefect.yaml", project)
    shutil.copytree(ROOT / "deployments", project / "deployments", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return project


@pytest.fixture(scope="module")
def deployed(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("deploy")
    project = copy_project(tmp / "project")
    env = _env(prefect_server, tmp / "home", project)
    pool = prefect(["work-pool", "create", WORK_POOL, "--type", "process"], env, project)
    assert pool.returncode == 0, pool.stdout + pool.stderr
    result = prefect(["--no-prompt", "deploy", "--all"], env, project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"api": prefect_server, "env": env, "project": project, "tmp": tmp, "output": result.stdout}


def api(deployed: dict[str, Any], path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{deployed['api']}{path}"
    response = httpx.post(url, json=body, timeout=30) if body is not None else httpx.get(url, timeout=30)
    response.raise_for_status()
    return response.json()


def deployments(deployed: dict[str, Any]) -> dict[str, Any]:
    return {d["name"]: d for d in api(deployed, "/deployments/filter", {"limit": 50, "offset": 0})}


def create_run(deployed: dict[str, Any], name: str, parameters: dict[str, Any],
               env: dict[str, str] | None = None) -> str:
    deployment = deployments(deployed)[name]
    body: dict[str, Any] = {"parameters": parameters, "state": {"type": "SCHEDULED"}}
    if env is not None:
        body["job_variables"] = {"env": {**deployment["job_variables"].get("env", {}), **env}}
    return str(api(deployed, f"/deployments/{deployment['id']}/create_flow_run", body)["id"])


def run_worker(deployed: dict[str, Any], env: dict[str, str], run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """A process worker (`--run-once`: it starts every due run, concurrently, and waits for them); the runs."""
    worker = prefect(["worker", "start", "--pool", WORK_POOL, "--run-once", "--limit", str(len(run_ids))], env,
                     deployed["project"], timeout=500)
    runs = {i: api(deployed, f"/flow_runs/{i}") for i in run_ids}
    assert all(r["state"]["type"] in TERMINAL for r in runs.values()), worker.stdout[-3000:] + worker.stderr[-3000:]
    return runs


def sample_config(tmp: Path, name: str, days: int = 1, missions: tuple[str, ...] = ("oco2",), cells: int = 30,
                  state: str = "sqlite") -> Path:
    from oco_l3.sample_data import write_sample_tree

    granules = tmp / f"granules-{name}"
    write_sample_tree(granules, DAY, DAY + dt.timedelta(days=days - 1), missions=missions)
    config = tmp / f"{name}.yaml"
    config.write_text(yaml.safe_dump({
        "output": {"local": str(tmp / f"out-{name}")},
        "grid": {"latitude": cells, "longitude": cells, "method": "cubic"},
        "search": {"source": "local", "local": str(granules), "missions": list(missions)},
        "state": {"url": "${OCO_L3_TEST_STATE_URL}" if state == "postgres" else f"sqlite:///{tmp / f'{name}.db'}"},
    }))
    return config


def rows_of(state_url: str) -> list[dict[str, Any]]:
    from oco_l3.state import open_state, status_rows

    state = open_state(state_url)
    try:
        return status_rows(state)
    finally:
        state.close()


def test_deploy_all_registers_the_oco_deployments_only(deployed: dict[str, Any]) -> None:
    found = deployments(deployed)
    assert set(DEPLOYMENTS) <= set(found)
    assert not set(ICESAT2_DEPLOYMENTS) & set(found), "prefect deploy --all must not add ICESat-2 deployments"
    daily, backfill = found["oco-daily"], found["oco-backfill"]
    assert [s["schedule"]["cron"] for s in daily["schedules"]] == ["30 6 * * *"]
    assert daily["global_concurrency_limit"]["limit"] == 1 and backfill["global_concurrency_limit"]["limit"] == 1
    assert daily["work_pool_name"] == backfill["work_pool_name"] == WORK_POOL
    assert daily["entrypoint"] == "flows.oco:oco_daily", "a module path: Dask workers import it by that name"
    properties = backfill["parameter_openapi_schema"]["properties"]
    assert set(properties) == {"config", "start", "end", "reprocess"}
    assert all(p.get("description") for p in properties.values()), "the UI form explains every parameter"
    assert backfill["parameters"]["config"] == "deployments/oco-l3.yaml"
    listen = found["oco-listen"]
    assert listen["parameters"]["secret_env"] == {"OCO_L3_RABBITMQ_PASSWORD": "rabbitmq-password"}
    assert {"config", "secret_env"} <= set(listen["parameter_openapi_schema"]["properties"])
    steps = daily["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
    assert steps["directory"] == str(deployed["project"])


def test_scheduler_creates_the_scheduled_runs_without_errors(deployed: dict[str, Any], prefect_server_log: Path) -> None:
    found = deployments(deployed)
    ids = {name: found[name]["id"] for name in DEPLOYMENTS}
    body = {"flow_runs": {"deployment_id": {"any_": list(ids.values())}, "state": {"type": {"any_": ["SCHEDULED"]}}},
            "limit": 200, "offset": 0}
    deadline = time.monotonic() + 90
    while True:
        scheduled = [r for r in api(deployed, "/flow_runs/filter", body) if r["auto_scheduled"]]
        by_deployment = {name: [r for r in scheduled if r["deployment_id"] == i] for name, i in ids.items()}
        if all(by_deployment[name] for name in SCHEDULED) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert all(by_deployment[name] for name in SCHEDULED), "the scheduler created no run for the daily deployment"
    assert not any(by_deployment[name] for name in DEPLOYMENTS if name not in SCHEDULED)
    first = min(dt.datetime.fromisoformat(r["next_scheduled_start_time"]) for r in by_deployment["oco-daily"])
    assert (first.hour, first.minute) == (6, 30)
    log = prefect_server_log.read_text(errors="replace")
    assert "Traceback" not in log and " ERROR " not in log and "InvalidRequestError" not in log, log[-3000:]


def test_backfill_deployment_runs_on_a_process_worker_with_postgres_state(deployed: dict[str, Any],
                                                                          postgres_db: str) -> None:
    config = sample_config(deployed["tmp"], "pg", state="postgres")
    env = {**deployed["env"], "OCO_L3_TEST_STATE_URL": postgres_db}
    run_id = create_run(deployed, "oco-backfill", {"config": str(config), "start": str(DAY), "end": str(DAY)})
    runs = run_worker(deployed, env, [run_id])
    assert runs[run_id]["state"]["type"] == "COMPLETED", runs[run_id]["state"]
    rows = rows_of(postgres_db)
    assert [(r["mission"], r["day"], r["status"]) for r in rows] == [("oco2", str(DAY), "done")]
    assert rows[0]["captures"] >= 1


def test_bad_date_fails_the_run_with_one_line(deployed: dict[str, Any]) -> None:
    config = sample_config(deployed["tmp"], "baddate")
    run_id = create_run(deployed, "oco-backfill", {"config": str(config), "start": "2020-13-05", "end": str(DAY)})
    run = run_worker(deployed, deployed["env"], [run_id])[run_id]
    message = run["state"]["message"]
    assert run["state"]["type"] == "FAILED" and "start: not a date YYYY-MM-DD: '2020-13-05'" in message, message


def store_values(out: Path) -> dict[str, Any]:
    import xarray as xr

    found = {}
    for store in sorted(out.glob("*/*/*.zarr")):
        with xr.open_zarr(store, consolidated=True) as ds:
            found[str(store.relative_to(out))] = ds.load()
    return found


def test_backfill_on_dask_workers_matches_the_thread_runner(deployed: dict[str, Any], dask_cluster: str) -> None:
    import xarray as xr

    tmp: Path = deployed["tmp"]
    configs = {k: sample_config(tmp, k, days=2, missions=("oco2", "oco3_sif")) for k in ("threads", "dask")}
    params = {"start": str(DAY), "end": str(DAY + dt.timedelta(days=1))}
    threads = create_run(deployed, "oco-backfill", {"config": str(configs["threads"]), **params})
    runs = run_worker(deployed, deployed["env"], [threads])  # one at a time: the deployment's concurrency limit
    dask = create_run(deployed, "oco-backfill", {"config": str(configs["dask"]), **params},
                      env={"OCO_L3_DASK_ADDRESS": dask_cluster})
    runs |= run_worker(deployed, deployed["env"], [dask])
    assert runs[dask]["state"]["type"] == "COMPLETED", runs[dask]["state"]
    assert runs[threads]["state"]["type"] == "COMPLETED", runs[threads]["state"]
    a, b = store_values(tmp / "out-threads"), store_values(tmp / "out-dask")
    assert a and set(a) == set(b)
    for name in a:
        xr.testing.assert_equal(a[name], b[name])
    # the library's own log records reach the API from the Dask worker processes, tagged with their task run
    body = {"logs": {"flow_run_id": {"any_": [dask]}}, "limit": 200, "offset": 0}
    logs = api(deployed, "/logs/filter", body)
    library = [lg for lg in logs if lg["name"].startswith("oco_l3") and lg["task_run_id"]]
    assert any("captures" in lg["message"] for lg in library), [lg["name"] for lg in logs]
    tasks = api(deployed, "/task_runs/filter", {"flow_runs": {"id": {"any_": [dask]}}, "limit": 50, "offset": 0})
    names = {t["name"] for t in tasks}
    assert {n for n in names if n.endswith(".nc4")}, names  # task runs are named by their granule


def _why(deployed: dict[str, Any], runs: dict[str, dict[str, Any]]) -> str:
    """Each run's final state and, for a run that did not complete, its error log lines."""
    lines = []
    for run_id, run in runs.items():
        lines.append(f"{run['name']}: {run['state']['type']}: {run['state']['message']}")
        if run["state"]["type"] != "COMPLETED":
            body = {"logs": {"flow_run_id": {"any_": [run_id]}, "level": {"ge_": 30}}, "limit": 50, "offset": 0}
            lines += [f"  {lg['name']}: {lg['message'][:2000]}" for lg in api(deployed, "/logs/filter", body)]
    return "\n".join(lines)


def test_two_deployments_at_once_never_process_the_same_day(deployed: dict[str, Any]) -> None:
    tmp: Path = deployed["tmp"]
    config = sample_config(tmp, "twice", days=6, missions=("oco2", "oco3_sif"), cells=200)
    end = DAY + dt.timedelta(days=5)
    backfill = create_run(deployed, "oco-backfill", {"config": str(config), "start": str(DAY), "end": str(end)})
    daily = create_run(deployed, "oco-daily", {"config": str(config), "today": str(end), "lookback_days": 5})
    runs = run_worker(deployed, deployed["env"], [backfill, daily])
    assert {r["state"]["type"] for r in runs.values()} == {"COMPLETED"}, _why(deployed, runs)
    rows = rows_of(f"sqlite:///{tmp / 'twice.db'}")
    assert len(rows) == 12 and {r["status"] for r in rows} == {"done"}
    assert [r for r in rows if r["attempts"] != 1] == [], "a (mission, day) was processed by both runs"
    messages = [r["state"]["message"] for r in runs.values()]
    done = [int(m.split(" granules")[0].rsplit(" ", 1)[1]) for m in messages]
    assert sum(done) == 12, messages  # between them every granule once


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def rendered(url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The DOM of a page of the Prefect UI as headless Chromium renders it (the UI is a single-page app: the text
    exists only after its scripts have fetched the API); optionally a screenshot beside it."""
    assert CHROMIUM
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1400,1100", "--virtual-time-budget=20000"]
    if screenshot is not None:
        subprocess.run([*flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    return subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (scripts/install-services.sh installs it)")
def test_operator_sees_the_failure_summary_and_quicklooks_in_the_browser(deployed: dict[str, Any]) -> None:
    """The flow run page and its artifacts, rendered by a real browser against the real server's UI: the run is
    red, the failed (mission, day) and its reason are on the summary and in the day table, the quick-looks are
    listed. Screenshots are left in the test's folder for a human to look at."""
    import re

    from oco_l3.sample_data import write_sample_tree

    tmp: Path = deployed["tmp"] / "browser"
    tmp.mkdir()
    days = write_sample_tree(tmp / "granules", DAY, DAY + dt.timedelta(days=1), missions=("oco2",))
    bad = days[DAY + dt.timedelta(days=1)]["oco2"]
    bad.write_bytes(b"this is not a netCDF-4 file")
    config = tmp / "browser.yaml"
    config.write_text(yaml.safe_dump({
        "output": {"local": str(tmp / "out")}, "grid": {"latitude": 30, "longitude": 30, "method": "linear"},
        "search": {"source": "local", "local": str(tmp / "granules"), "missions": ["oco2"]},
        "state": {"url": f"sqlite:///{tmp / 'state.db'}"}}))
    run_id = create_run(deployed, "oco-backfill", {"config": str(config), "start": str(DAY),
                                                   "end": str(DAY + dt.timedelta(days=1))})
    run = run_worker(deployed, deployed["env"], [run_id])[run_id]
    assert run["state"]["type"] == "FAILED", run["state"]
    ui = deployed["api"].removesuffix("/api")
    page = rendered(f"{ui}/runs/flow-run/{run_id}", tmp / "chrome", tmp / "flow-run.png")
    assert run["name"] in page and "Failed" in page, page[-2000:]
    assert f"{bad.name}: GranuleUnreadable" in page  # the error log line, on the run's Logs tab
    artifacts = api(deployed, "/artifacts/filter", {"flow_runs": {"id": {"any_": [run_id]}}})
    by_type = {a["type"]: a["id"] for a in artifacts}
    summary = rendered(f"{ui}/artifacts/artifact/{by_type['markdown']}", tmp / "chrome", tmp / "summary.png")
    text = re.sub(r"<[^>]+>", " ", summary)
    assert "Failed (1)" in text and f"oco2 {DAY + dt.timedelta(days=1)}" in text, text[-3000:]
    assert "Quick-looks (" in text and ".png" in text
    table = re.sub(r"<[^>]+>", " ", rendered(f"{ui}/artifacts/artifact/{by_type['table']}", tmp / "chrome",
                                              tmp / "days.png"))
    assert re.search(rf"oco2\s+{DAY + dt.timedelta(days=1)}\s+failed\s+{re.escape(bad.name)}", table), table[-3000:]
    assert re.search(rf"oco2\s+{DAY}\s+done", table)
