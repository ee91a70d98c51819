"""Queue consumption as a Prefect task: a thin wrapper of :func:`oco_l3.queue.consume`."""

from __future__ import annotations

import threading

from prefect import task
from prefect.cache_policies import NO_CACHE

from oco_l3 import queue
from oco_l3.config import QueueConfig
from oco_l3.queue import ConsumeStats, Handler


@task(name="consume-queue", cache_policy=NO_CACHE, task_run_name="consume {config.queue}")
def consume(config: QueueConfig, handle: Handler, max_messages: int | None = None,
            idle_timeout: float | None = None, stop: threading.Event | None = None,
            retry_delay: float = 2.0) -> ConsumeStats:
    """Long-running: returns when ``max_messages`` were handled, after ``idle_timeout`` s idle, or on ``stop``."""
    return queue.consume(config, handle, max_messages=max_messages, idle_timeout=idle_timeout, stop=stop,
                         retry_delay=retry_delay)
