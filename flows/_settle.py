"""Waiting on a fan-out: split finished futures into results and one-line errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect.futures import PrefectFuture, wait

from oco_l3.errors import one_line


def settle(futures: Sequence[PrefectFuture[Any]]) -> tuple[dict[int, Any], dict[int, BaseException]]:
    """Results by position for completed futures, exceptions by position for the others (never raises)."""
    wait(list(futures))
    ok: dict[int, Any] = {}
    bad: dict[int, BaseException] = {}
    for i, future in enumerate(futures):
        state = future.state
        if state.is_completed():
            ok[i] = future.result()
            continue
        exc = state.result(raise_on_failure=False)
        bad[i] = exc if isinstance(exc, BaseException) else RuntimeError(state.message or state.name)
    return ok, bad


def reason(exc: BaseException) -> str:
    return one_line(exc)
