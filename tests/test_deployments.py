"""prefect.yaml against a real `prefect server start` on 127.0.0.1: `prefect deploy --all` succeeds, the deployments
carry their schedule, concurrency limit and parameters, and the backfill deployment runs on a process worker with
its state on a real PostgreSQL (the docker-compose topology, without Docker)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from deployments import DEPLOYMENTS, WORK_POOL

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")
DAY = dt.date(2021, 12, 18)


def _env(api_url: str, home: Path, project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=api_url, PREFECT_HOME=str(home), DO_NOT_TRACK="1", OCO_L3_PROJECT_DIR=str(project),
               PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5", OCO_L3_RETRY_BASE_SECONDS="0")
    return env


def prefect(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PREFECT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def copy_project(project: Path) -> Path:
    """What a worker needs of the project (prefect.yaml, flows, tasks, deployments), copied to ``project``."""
    project.mkdir()
    shutil.copy(ROOT / "prefect.yaml", project)
    for folder in ("flows", "tasks", "deployments"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
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


def test_deploy_all_registers_the_deployments(deployed: dict[str, Any]) -> None:
    found = {d["name"]: d for d in api(deployed, "/deployments/filter", {"limit": 50, "offset": 0})}
    assert set(DEPLOYMENTS) <= set(found)
    daily, backfill = found["oco-daily"], found["oco-backfill"]
    assert [s["schedule"]["cron"] for s in daily["schedules"]] == ["30 6 * * *"]
    assert daily["global_concurrency_limit"]["limit"] == 1 and backfill["global_concurrency_limit"]["limit"] == 1
    assert daily["work_pool_name"] == backfill["work_pool_name"] == WORK_POOL
    assert set(backfill["parameter_openapi_schema"]["properties"]) == {"config", "start", "end", "reprocess"}
    assert backfill["parameters"]["config"] == "deployments/oco-l3.yaml"
    listen = found["oco-listen"]
    assert listen["parameters"]["secret_env"] == {"OCO_L3_RABBITMQ_PASSWORD": "rabbitmq-password"}
    assert set(listen["parameter_openapi_schema"]["properties"]) >= {"config_path", "secret_env"}
    steps = daily["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
    assert steps["directory"] == str(deployed["project"])


def test_backfill_deployment_runs_on_a_process_worker_with_postgres_state(deployed: dict[str, Any],
                                                                          postgres_db: str) -> None:
    from oco_l3.sample_data import write_sample_tree
    from oco_l3.state import open_state, status_rows

    tmp: Path = deployed["tmp"]
    write_sample_tree(tmp / "granules", DAY, DAY, missions=("oco2",))
    config = tmp / "run.yaml"
    config.write_text(yaml.safe_dump({
        "output": {"local": str(tmp / "out")},
        "grid": {"latitude": 30, "longitude": 30, "method": "linear"},
        "search": {"source": "local", "local": str(tmp / "granules"), "missions": ["oco2"]},
        "state": {"url": "${OCO_L3_TEST_STATE_URL}"},
    }))
    env = {**deployed["env"], "OCO_L3_TEST_STATE_URL": postgres_db}
    run = prefect(["deployment", "run", "oco-backfill/oco-backfill", "--param", f"config={config}",
                   "--param", f"start={DAY}", "--param", f"end={DAY}"], env, deployed["project"])
    assert run.returncode == 0, run.stdout + run.stderr
    worker = prefect(["worker", "start", "--pool", WORK_POOL, "--run-once"], env, deployed["project"], timeout=400)
    runs = api(deployed, "/flow_runs/filter", {"limit": 10, "offset": 0})
    states = [r["state"]["type"] for r in runs if r["deployment_id"]]
    assert states == ["COMPLETED"], worker.stdout[-3000:] + worker.stderr[-3000:]
    state = open_state(postgres_db)
    rows = status_rows(state)
    state.close()
    assert [(r["mission"], r["day"], r["status"]) for r in rows] == [("oco2", str(DAY), "done")]
    assert rows[0]["captures"] >= 1
