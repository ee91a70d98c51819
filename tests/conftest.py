"""Shared fixtures. Service fixtures (PostgreSQL, RabbitMQ, moto S3, Prefect) live in tests/services/."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from oco_l3.allocator import keep_freed_memory

# Keep Prefect and friends quiet and local in every test process.
os.environ.setdefault("DO_NOT_TRACK", "1")
if "PREFECT_HOME" not in os.environ:
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="oco-l3-prefect-home-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], True)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
for _var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
    os.environ.pop(_var, None)

# The test process grids, as `oco-l3 run` does: the same malloc policy (the library leaves it to the entry points).
keep_freed_memory()

pytest_plugins = [
    "tests.services.postgres",
    "tests.services.prefect_server",
    "tests.services.moto_s3",
    "tests.services.rabbitmq",
    "tests.services.s3_proxy",
    "tests.services.dask_cluster",
    "tests.services.zarr2",
]
