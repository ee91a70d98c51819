"""Load the run config (``${NAME}`` environment references resolved, secrets registered for log redaction)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3.config import RunConfig, read_yaml
from oco_l3.config import parse_config as _parse
from oco_l3.secrets import register_model_secrets, resolve_env_refs


def load_run_config_fn(path: str) -> RunConfig:
    config = _parse(resolve_env_refs(read_yaml(path), path), path)
    register_model_secrets(config)
    return config


@task(name="load-run-config", cache_policy=NO_CACHE)
def load_run_config(path: str) -> RunConfig:
    return load_run_config_fn(path)
