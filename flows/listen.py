"""``oco-listen``: a long-running Prefect deployment that consumes ``input.queue`` and runs the product per message.

Secrets: ``secret_env`` maps an environment variable name to a Prefect Secret block name. Each block is loaded here
(the only place Prefect blocks are read), registered for log redaction and put into this process's environment, so
the run config can refer to it as ``${NAME}`` (e.g. ``password: ${OCO_L3_RABBITMQ_PASSWORD}``). Secret values are
never flow parameters, return values or artifact text.

SIGTERM/SIGINT (when the flow runs in the main thread, as under a Prefect worker's flow-run process) stop the
consumer after the message in hand.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from oco_l3.allocator import keep_freed_memory
from oco_l3.errors import ConfigInvalid
from oco_l3.listen_cli import pipeline_handler
from oco_l3.secrets import redact, register_secret
from tasks.config import load_run_config
from tasks.queue import consume

log = logging.getLogger(__name__)


def inject_secret_blocks(secret_env: dict[str, str]) -> None:
    """Load each Prefect Secret block into the environment variable that names it; register the values."""
    from prefect.blocks.system import Secret

    for env_name, block_name in secret_env.items():
        block: Any = Secret.load(block_name)  # sync context: the block itself, not a coroutine
        value = str(block.get())
        register_secret(value)
        os.environ[env_name] = value
        log.info("secret block %s loaded into %s", block_name, env_name)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set ``stop`` while the consumer runs (main thread only); the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame: Any) -> None:
        log.warning("received %s: stopping after the message in hand", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _summary(queue: str, stats: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in stats.items() if k != "reasons")
    reasons = "\n".join(f"- {redact(r)}" for r in stats["reasons"][-20:]) or "- none"
    return f"# oco-l3 listen: {queue}\n\n| count | value |\n|---|---|\n{rows}\n\n## Last failure reasons\n{reasons}\n"


@flow(name="oco-listen")
def oco_listen(config: str, secret_env: dict[str, str] | None = None, max_messages: int | None = None,
               idle_timeout: float | None = None, retry_delay: float = 2.0) -> dict[str, Any]:
    """Consume the run config's input.queue until stopped (or max_messages / idle_timeout).

    Args:
        config: Path of the run-config YAML on the worker, with an input.queue section.
        secret_env: Environment variable name -> Prefect Secret block name, loaded before the config is read.
        max_messages: Stop after handling this many messages (default: run until cancelled).
        idle_timeout: Stop after this many seconds without a message (default: never).
        retry_delay: Seconds between reconnection attempts when the broker is unreachable.
    """
    keep_freed_memory()  # every message is gridded in this process
    inject_secret_blocks(secret_env or {})
    run_config = load_run_config(config)
    if run_config.input is None or run_config.input.queue is None:
        raise ConfigInvalid(f"{config}: input.queue is required for oco-listen")
    stop = threading.Event()
    with _stop_on_signals(stop):
        stats = consume(run_config.input.queue, pipeline_handler(run_config), max_messages=max_messages,
                        idle_timeout=idle_timeout, stop=stop, retry_delay=retry_delay)
    result = dataclasses.asdict(stats)
    result["reasons"] = [redact(r) for r in result["reasons"]]
    create_markdown_artifact(_summary(run_config.input.queue.queue, result), key="oco-l3-listen",
                             description="oco-l3 queue consumer summary")
    return result
