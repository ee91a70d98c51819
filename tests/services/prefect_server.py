"""Fixture module: Prefect on loopback.

* ``prefect_harness`` (session): ONE ``prefect_test_harness(server_startup_timeout=120)`` for every flow test
  (each start costs ~16 s here).
* ``prefect_server`` (session): a real ``prefect server start --host 127.0.0.1 --port N`` with a temporary
  ``PREFECT_HOME`` (SQLite), its UI served as an operator's is, healthy within 120 s; yields the API URL. Stopped at the end of the session. Its
  scheduler runs every 2 s (deployments' schedules get their runs at once); ``prefect_server_log`` is its log file.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.postgres import free_port

STARTUP_TIMEOUT = 120.0
# Task retry delays are fixed when the tasks module is imported: no waiting between retries in any test.
os.environ.setdefault("OCO_L3_RETRY_BASE_SECONDS", "0")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=int(STARTUP_TIMEOUT)):
        yield


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310 - loopback only
            return bool(response.status == 200)
    except OSError:
        return False


def _server_env(home: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    # the UI asks the API at PREFECT_UI_API_URL (by default the settings' host and port, not the command line's)
    env.update(PREFECT_HOME=str(home), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_API_URL=url,
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2")
    return env


_HOME: dict[str, Path] = {}


@pytest.fixture(scope="session")
def prefect_server_log(prefect_server: str) -> Path:
    """The session server's log (stdout and stderr of ``prefect server start``)."""
    return _HOME[prefect_server] / "server.log"


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    home = Path(tempfile.mkdtemp(prefix="oco-l3-prefect-server-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    prefect = str(Path(sys.executable).parent / "prefect")
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=_server_env(home, url), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (home / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"prefect server on 127.0.0.1:{port} did not become healthy:\n{tail}")
            time.sleep(1)
        _HOME[url] = home
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(home, ignore_errors=True)
