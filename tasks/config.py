"""Load the OCO run config (``${NAME}`` environment references resolved, secrets registered for log redaction):
the task around :func:`oco_l3.config.load_oco_config`, the one config loader."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3 import config as _config
from oco_l3.config import RunConfig


@task(name="load-run-config", cache_policy=NO_CACHE)
def load_run_config(path: str) -> RunConfig:
    return _config.load_oco_config(path)
