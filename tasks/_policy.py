"""Retry policy shared by the tasks: exponential backoff with jitter, and only for transient errors."""

from __future__ import annotations

import os
from typing import Any

from prefect.tasks import exponential_backoff

from oco_l3.errors import classify

RETRIES = 4


def is_transient(exc: BaseException | None) -> bool:
    """Retry what :func:`oco_l3.errors.classify` calls transient (network, throttling, a busy lock), never a
    corrupt granule, a bad config or a bug."""
    return exc is not None and classify(exc).transient


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` for Prefect: continue to the retry policy only for a transient error."""
    exc = state.data if isinstance(state.data, BaseException) else state.result(raise_on_failure=False)
    return is_transient(exc if isinstance(exc, BaseException) else None)


def transient_retries() -> dict[str, Any]:
    """Task options: up to :data:`RETRIES` retries, delays ``base * 2**n`` with 50 % jitter, transient only.

    ``OCO_L3_RETRY_BASE_SECONDS`` sets the base delay (default 10 s; tests use 0).
    """
    base = float(os.environ.get("OCO_L3_RETRY_BASE_SECONDS", "10"))
    return {
        "retries": RETRIES,
        "retry_delay_seconds": exponential_backoff(backoff_factor=base) if base > 0 else 0,
        "retry_jitter_factor": 0.5 if base > 0 else None,
        "retry_condition_fn": retry_transient,
    }
