"""Fixture module: rabbitmq -- Debian's ``rabbitmq-server`` on a loopback port, started by the test setup.

The broker runs as the ``rabbitmq`` user (the Debian wrapper drops to it) with every folder in a private temporary
directory, its own ``epmd`` on a free loopback port (so parallel test sessions never share or kill each other's
epmd), and the default guest/guest user. ``rabbitmq`` (session) yields a :class:`RabbitBroker` with ``restart()``
for the broker-restart test; it fails loudly when the server is missing or does not come up.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.services.moto_s3 import free_port

SERVER = "/usr/sbin/rabbitmq-server"
CTL = "/usr/sbin/rabbitmqctl"
START_TIMEOUT = 90.0


def _epmd_binary() -> str:
    found = shutil.which("epmd") or next(iter(sorted(Path("/usr/lib/erlang").glob("erts-*/bin/epmd"))), None)
    if not found:
        pytest.fail("epmd (Erlang) not found: run scripts/install-services.sh")
    return str(found)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class RabbitBroker:
    root: Path
    port: int
    dist_port: int
    epmd_port: int
    node: str
    env: dict[str, str] = field(default_factory=dict)
    server: subprocess.Popen[bytes] | None = None
    epmd: subprocess.Popen[bytes] | None = None

    host: str = "127.0.0.1"
    username: str = "guest"
    password: str = "guest"

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CTL, "-n", self.node, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
            cwd=str(self.root),
        )

    def start(self) -> None:
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = subprocess.Popen(
                [_epmd_binary(), "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        out = open(self.root / "server.out", "ab")  # noqa: SIM115 - handed to the child process
        self.server = subprocess.Popen([SERVER], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=str(self.root))
        out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.server.poll() is not None and not _port_open(self.port):
                break
            if _port_open(self.port) and self.ctl("status", timeout=30).returncode == 0:
                return
            time.sleep(0.3)
        logs = (self.root / "server.out").read_text(errors="replace")[-3000:]
        pytest.fail(f"rabbitmq-server did not start on 127.0.0.1:{self.port}:\n{logs}")

    def stop(self) -> None:
        self.ctl("stop", timeout=60)
        if self.server is not None:
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(5)
        deadline = time.monotonic() + 30
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)

    def restart(self) -> None:
        """Stop the whole broker node and start it again (durable queues and persistent messages survive)."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self.epmd is not None:
            self.epmd.terminate()
            try:
                self.epmd.wait(10)
            except subprocess.TimeoutExpired:
                self.epmd.kill()
                self.epmd.wait(5)

    def queue_depth(self, queue: str) -> int:
        """Messages ready + unacknowledged in ``queue`` (via the management-free rabbitmqctl)."""
        res = self.ctl("list_queues", "-q", "--no-table-headers", "name", "messages")
        for line in res.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return int(parts[1])
        return 0


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitBroker]:
    if not (os.path.exists(SERVER) and os.path.exists(CTL)):
        pytest.fail("rabbitmq-server is not installed: run scripts/install-services.sh (make test does)")
    root = Path(tempfile.mkdtemp(prefix="oco-l3-rabbitmq-"))
    for sub in ("mnesia", "log"):
        (root / sub).mkdir()
    (root / "plugins").write_text("[].\n")
    shutil.chown(root, "rabbitmq", "rabbitmq")
    for path in root.iterdir():
        shutil.chown(path, "rabbitmq", "rabbitmq")
    port, dist_port, epmd_port = free_port(), free_port(), free_port()
    node = f"ocol3{uuid.uuid4().hex[:8]}@localhost"
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
        "RABBITMQ_LOG_BASE": str(root / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "plugins"),
        "RABBITMQ_FEATURE_FLAGS_FILE": str(root / "ff"),
        "RABBITMQ_PID_FILE": str(root / "pid"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "ERL_EPMD_PORT": str(epmd_port),
    }
    broker = RabbitBroker(root=root, port=port, dist_port=dist_port, epmd_port=epmd_port, node=node, env=env)
    broker.start()
    try:
        yield broker
    finally:
        broker.close()
        shutil.rmtree(root, ignore_errors=True)
