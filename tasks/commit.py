"""Store commits: group the slices per target store, then one single-writer commit task per store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3 import pipeline
from oco_l3.config import RunConfig
from oco_l3.pipeline import GranuleProducts, StoreCommit
from tasks._policy import transient_retries


@task(name="plan-commits", cache_policy=NO_CACHE)
def plan_commits(config: RunConfig, products: Sequence[GranuleProducts]) -> list[StoreCommit]:
    return pipeline.plan_commits(config, products)


@task(name="commit-store", cache_policy=NO_CACHE, task_run_name="commit {commit.mission}/{commit.qf}/{commit.target.id}",
      tags=["oco-l3-store-writer"], **transient_retries())
def commit_store(config: RunConfig, commit: StoreCommit) -> Any:
    return pipeline.commit_store(config, commit)
