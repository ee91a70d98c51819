"""Waiting on a fan-out: split finished futures into results and one-line errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect.futures import PrefectFuture, wait

from oco_l3.errors import SourceUnavailable, classify


def outcome_of(future: PrefectFuture[Any]) -> tuple[Any, BaseException | None]:
    """A finished future's result, or the exception it ended with (a crashed task run, e.g. a worker process that
    died, counts as transient: :class:`SourceUnavailable`)."""
    future.wait()  # a finished future's final state (without it, ``state`` may ask the API, which can lag)
    state = future.state
    if state.is_completed():
        return future.result(), None
    if state.is_crashed():
        return None, SourceUnavailable(f"task run crashed: {state.message or state.name}")
    exc = state.result(raise_on_failure=False)
    return None, exc if isinstance(exc, BaseException) else RuntimeError(state.message or state.name)


def settle(futures: Sequence[PrefectFuture[Any]]) -> tuple[dict[int, Any], dict[int, BaseException]]:
    """Results by position for completed futures, exceptions by position for the others (never raises)."""
    wait(list(futures))
    ok: dict[int, Any] = {}
    bad: dict[int, BaseException] = {}
    for i, future in enumerate(futures):
        result, exc = outcome_of(future)
        if exc is None:
            ok[i] = result
        else:
            bad[i] = exc
    return ok, bad


def reason(exc: BaseException) -> str:
    """The failure's one-line reason (:func:`oco_l3.errors.classify`)."""
    return classify(exc).reason
