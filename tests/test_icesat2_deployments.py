"""The ICESat-2 deployments: prefect.yaml entries against the flows and the deployed run config (no services),
then on a real `prefect server start` on 127.0.0.1 like tests/test_deployments.py: `prefect deploy --all`
registers them, and icesat2-process-files runs on a process worker on the real sample granules."""

from __future__ import annotations

import inspect
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments import (
    DEPLOYMENTS,
    ICESAT2_DEPLOYMENTS,
    ICESAT2_PREFECT_FILE,
    ICESAT2_RUN_CONFIG,
    RUN_CONFIG_ENV,
    WORK_POOL,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "icesat2"
ATL07_B = DATA / "processed_ATL07-01_20190225115500_09020201_003_02.h5"


def _spec() -> dict[str, Any]:
    return {d["name"]: d for d in yaml.safe_load((ROOT / ICESAT2_PREFECT_FILE).read_text())["deployments"]}


def test_icesat2_entries_match_the_flows() -> None:
    spec = _spec()
    assert set(ICESAT2_DEPLOYMENTS) == set(spec) and not set(ICESAT2_DEPLOYMENTS) & set(DEPLOYMENTS)
    oco = {d["name"] for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    assert not oco & set(ICESAT2_DEPLOYMENTS), "`prefect deploy --all` must not add the ICESat-2 schedule"
    for name in ICESAT2_DEPLOYMENTS:
        d = spec[name]
        path, func = d["entrypoint"].split(":")
        assert path == "flows.icesat2"
        flow = getattr(import_module(path), func)
        assert set(d["parameters"]) <= set(inspect.signature(flow.fn).parameters), name
        assert d["parameters"]["config"] == ICESAT2_RUN_CONFIG
        assert d["work_pool"]["name"] == WORK_POOL and d["concurrency_limit"] == 1
    backfill = spec["icesat2-seaice-backfill"]
    assert backfill["entrypoint"].endswith(":icesat2_backfill")
    assert set(backfill["parameters"]) == {"config", "start", "end"}
    daily = spec["icesat2-seaice-daily"]
    assert daily["entrypoint"].endswith(":icesat2_daily") and daily["schedules"][0]["cron"].count(" ") == 4


def test_deployed_icesat2_run_config_parses_with_the_worker_environment(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    from oco_l3.icesat2.config import SeaIceConfig
    from oco_l3.icesat2.run import load_icesat2_config

    for key in RUN_CONFIG_ENV:
        monkeypatch.setenv(key, str(tmp_path / key.lower()))
    monkeypatch.setenv("OCO_L3_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    cfg = load_icesat2_config(ROOT / ICESAT2_RUN_CONFIG)
    assert isinstance(cfg, SeaIceConfig) and cfg.product == "icesat2-seaice"
    assert cfg.output_root == tmp_path / "oco_l3_output"  # ${OCO_L3_OUTPUT} resolved from the environment
    assert cfg.state is not None and cfg.state.url == f"sqlite:///{tmp_path / 'state.db'}"
    # both polar regions: the ATL20 grid of each segment's hemisphere, and a search not boxed to one of them
    assert cfg.search is not None and cfg.search.short_name == "ATL10" and cfg.grid is None
    assert cfg.search.bbox is None
    assert cfg.input.files == []


def test_icesat2_config_needs_files_or_search(tmp_path: Path) -> None:
    from oco_l3.errors import ConfigInvalid
    from oco_l3.icesat2.config import parse_icesat2_config

    with pytest.raises(ConfigInvalid, match="no search: section"):
        parse_icesat2_config({"product": "icesat2-seaice", "output": {"local": str(tmp_path)}})


@pytest.mark.services
def test_icesat2_deployments_register_and_process_files_runs_on_a_worker(prefect_server: str,
                                                                          tmp_path: Path) -> None:
    from tests.test_deployments import _env, copy_project, prefect

    project = copy_project(tmp_path / "project")
    env = _env(prefect_server, tmp_path / "home", project)
    # The server is shared by the session: leave it as found (tests/test_deployments.py creates the pool itself
    # and counts the flow runs of deployments).
    created = prefect(["work-pool", "create", WORK_POOL, "--type", "process"], env, project).returncode == 0
    try:
        _deploy_and_run(prefect_server, env, project, tmp_path)
    finally:
        import httpx

        runs = httpx.post(f"{prefect_server}/flow_runs/filter", json={"limit": 50, "offset": 0}, timeout=30).json()
        for r in runs:
            if r["name"] and r["deployment_id"] in _ids(prefect_server):
                httpx.delete(f"{prefect_server}/flow_runs/{r['id']}", timeout=30)
        if created:
            prefect(["--no-prompt", "work-pool", "delete", WORK_POOL], env, project)


def _ids(api: str) -> set[str]:
    import httpx

    found = httpx.post(f"{api}/deployments/filter", json={"limit": 50, "offset": 0}, timeout=30).json()
    return {d["id"] for d in found if d["name"] in ICESAT2_DEPLOYMENTS}


def _deploy_and_run(prefect_server: str, env: dict[str, str], project: Path, tmp_path: Path) -> None:
    from oco_l3.state import open_state, status_rows
    from tests.test_deployments import prefect

    deploy = prefect(["--no-prompt", "deploy", "--all", "--prefect-file", ICESAT2_PREFECT_FILE], env, project)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    import httpx

    found = {d["name"]: d for d in httpx.post(f"{prefect_server}/deployments/filter",
                                              json={"limit": 50, "offset": 0}, timeout=30).json()}
    assert set(ICESAT2_DEPLOYMENTS) <= set(found)
    backfill = found["icesat2-seaice-backfill"]
    assert set(backfill["parameter_openapi_schema"]["properties"]) == {"config", "start", "end"}
    assert backfill["parameters"] == {"config": ICESAT2_RUN_CONFIG, "start": "2019-02-01", "end": "2019-02-28"}
    assert backfill["work_pool_name"] == WORK_POOL and backfill["global_concurrency_limit"]["limit"] == 1
    assert [s["schedule"]["cron"] for s in found["icesat2-seaice-daily"]["schedules"]] == ["0 7 * * *"]

    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = tmp_path / "seaice.yaml"
    config.write_text(yaml.safe_dump({
        "product": "icesat2-seaice", "input": {"files": [str(ATL07_B)]}, "beams": "all", "filters": "none",
        "grid": "nsidc-ps-north-25km", "output": {"local": str(tmp_path / "out"), "cog": False, "quicklook": False},
        "state": {"url": state_url}}))
    run = prefect(["deployment", "run", "icesat2-process-files/icesat2-process-files", "--param",
                   f"config={config}"], env, project)
    assert run.returncode == 0, run.stdout + run.stderr
    worker = prefect(["worker", "start", "--pool", WORK_POOL, "--run-once"], env, project, timeout=400)
    runs = httpx.post(f"{prefect_server}/flow_runs/filter", json={"limit": 50, "offset": 0}, timeout=30).json()
    mine = [r for r in runs if r["deployment_id"] == found["icesat2-process-files"]["id"]]
    assert [r["state"]["type"] for r in mine] == ["COMPLETED"], worker.stdout[-3000:] + worker.stderr[-3000:]
    assert (tmp_path / "out" / "icesat2-seaice" / "atl07-height" / "nsidc-ps-north-25km.zarr").is_dir()
    state = open_state(state_url)
    rows = status_rows(state)
    state.close()
    assert [(r["mission"], r["day"], r["status"]) for r in rows] == [("icesat2-seaice", "2019-02-25", "done")]
    assert rows[0]["captures"] > 0
