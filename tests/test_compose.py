"""docker-compose.yml, the Dockerfile and prefect.yaml checked against what the code expects (Docker cannot run
here; tests/test_deployments.py runs the same topology with a real Prefect server and PostgreSQL)."""

from __future__ import annotations

import inspect
import re
from importlib import import_module
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from deployments import DEPLOYMENTS, RUN_CONFIG, RUN_CONFIG_ENV, WORK_POOL

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def expand(value: str) -> str:
    """Compose's ``${NAME:-default}`` with the defaults (what runs without an .env file)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "prefect-server", "worker", "deploy"}
    assert services["postgres"]["image"] == "postgres:15"
    assert services["prefect-server"]["image"] == f"prefecthq/prefect:{version('prefect')}-python3.11"
    assert services["worker"]["build"] == "." and (ROOT / "Dockerfile").is_file()
    assert services["deploy"]["image"] == services["worker"]["image"]
    assert services["prefect-server"]["ports"] == ["4200:4200"]
    assert "ports" not in services["postgres"], "the database stays on the compose network"


def test_server_uses_postgres(compose: dict[str, Any]) -> None:
    server_env = compose["services"]["prefect-server"]["environment"]
    url = sa.engine.make_url(expand(server_env["PREFECT_API_DATABASE_CONNECTION_URL"]))
    pg_env = compose["services"]["postgres"]["environment"]
    assert (url.drivername, url.host, url.port) == ("postgresql+asyncpg", "postgres", 5432)
    assert url.username == pg_env["POSTGRES_USER"] and url.database == pg_env["POSTGRES_DB"]
    assert compose["services"]["prefect-server"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_worker_environment_matches_the_code(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    env = worker["environment"]
    assert set(RUN_CONFIG_ENV) <= set(env), "the deployed run config reads these"
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    state = sa.engine.make_url(expand(env["OCO_L3_STATE_URL"]))
    assert (state.drivername, state.host, state.database) == ("postgresql+psycopg", "postgres", "oco_l3")
    init = (ROOT / "deployments" / "postgres-init.sql").read_text()
    assert "CREATE DATABASE oco_l3" in init
    assert any("postgres-init.sql:/docker-entrypoint-initdb.d/" in v for v in compose["services"]["postgres"]["volumes"])
    assert worker["command"][-4:] == ["--pool", WORK_POOL, "--type", "process"]
    assert WORK_POOL in " ".join(compose["services"]["deploy"]["command"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"WORKDIR {env['OCO_L3_PROJECT_DIR']}" in dockerfile and "FROM python:3.11" in dockerfile
    assert not any(re.search(r"(PASSWORD|TOKEN|SECRET)", k) and v and "${" not in str(v) for k, v in env.items())


def test_deployed_run_config_parses_with_the_compose_environment(compose: dict[str, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from oco_l3.config import load_oco_config

    for key, value in compose["services"]["worker"]["environment"].items():
        monkeypatch.setenv(key, expand(str(value)))
    config = load_oco_config(str(ROOT / RUN_CONFIG))
    assert config.search is not None and config.search.source == "cmr"
    assert config.state is not None and config.state.url and config.state.url.startswith("postgresql+psycopg://")
    assert config.output.local == "/data/oco-l3"


def test_prefect_yaml_entrypoints_and_parameters_match_the_flows() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = [d["name"] for d in spec["deployments"]]
    assert names == list(DEPLOYMENTS)
    assert spec["prefect-version"] == version("prefect")
    for d in spec["deployments"]:
        path, func = d["entrypoint"].split(":")
        assert not path.endswith(".py"), "module-path entrypoints: Dask workers import the flows package by name"
        flow = getattr(import_module(path), func)
        assert set(d["parameters"]) <= set(inspect.signature(flow.fn).parameters), d["name"]
        assert d["work_pool"]["name"] == WORK_POOL and d["concurrency_limit"] == 1
    daily = spec["deployments"][0]
    assert daily["schedules"][0]["cron"].count(" ") == 4


def test_dockerignore_keeps_the_image_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)
