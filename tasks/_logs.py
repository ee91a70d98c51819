"""``oco_l3`` log records to the Prefect API from wherever a task runs.

In the flow's own process ``PREFECT_LOGGING_EXTRA_LOGGERS=oco_l3`` wires the library's logger to the API; a Dask
worker process never set Prefect's logging up, so there a task attaches Prefect's API log handler to the ``oco_l3``
logger while it runs (one handler per process, shared by the tasks running in it; removed when the last ends).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.logging.handlers import APILogHandler

LIBRARY_LOGGER = "oco_l3"
_lock = threading.Lock()
_users = 0
_attached: tuple[APILogHandler, int] | None = None  # our handler and the logger level it replaced


@contextmanager
def library_logs_to_prefect() -> Iterator[None]:
    """While the block runs, ``oco_l3`` records at INFO and above reach the Prefect API (and so the UI)."""
    logger = logging.getLogger(LIBRARY_LOGGER)
    if _attached is None and any(isinstance(h, APILogHandler) for h in logger.handlers):
        yield  # Prefect's own logging setup wired it already (the flow's process)
        return
    _enter(logger)
    try:
        yield
    finally:
        _leave(logger)


def _enter(logger: logging.Logger) -> None:
    global _users, _attached
    with _lock:
        if _users == 0:
            handler = APILogHandler()
            handler.setLevel(logging.INFO)
            _attached = (handler, logger.level)
            logger.addHandler(handler)
            if logger.level == logging.NOTSET or logger.level > logging.INFO:
                logger.setLevel(logging.INFO)
        _users += 1


def _leave(logger: logging.Logger) -> None:
    global _users, _attached
    with _lock:
        _users -= 1
        if _users == 0 and _attached is not None:
            handler, level = _attached
            handler.flush()
            logger.removeHandler(handler)
            logger.setLevel(level)
            _attached = None


class _NoCompletedTaskLines(logging.Filter):
    """Drop Prefect's per-task ``Finished in state Completed()`` INFO line (one per granule: noise on the console
    and in the UI, where the task run's state shows anyway); failures and every other line pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and str(record.msg).startswith("Finished in state Completed"))


def quiet_task_state_lines() -> None:
    """Install the filter on Prefect's task-run logger (idempotent)."""
    logger = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, _NoCompletedTaskLines) for f in logger.filters):
        logger.addFilter(_NoCompletedTaskLines())
