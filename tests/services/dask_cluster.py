"""Fixture module: a real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, started from the
project's environment as an operator would (separate processes, no PYTHONPATH, a working directory outside the
project), so a task that Dask cannot import by its installed module name fails here as it would in production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.postgres import free_port

BIN = Path(sys.executable).parent


def _bare_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ} | {"DO_NOT_TRACK": "1"}


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The scheduler's address, with two single-threaded workers registered."""
    from distributed import Client

    tmp = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{free_port()}"
    common = {"env": _bare_env(), "cwd": tmp, "start_new_session": True, "stderr": subprocess.STDOUT}
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                               address.rsplit(":", 1)[1], "--no-dashboard"],
                              stdout=open(tmp / "scheduler.log", "wb"), **common)]  # noqa: SIM115
    for i in range(2):
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                       "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(tmp / f"w{i}")],
                                      stdout=open(tmp / f"worker{i}.log", "wb"), **common))  # noqa: SIM115
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout=10) as client:
                    client.wait_for_workers(2, timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    raise
                time.sleep(1)
        yield address
    finally:
        _stop(procs)
