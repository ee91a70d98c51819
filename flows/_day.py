"""One day of granules, as a recipe: fetch -> grid (one task per granule) -> one commit per store -> exports.

Then every granule's (mission, day) is recorded: ``done`` only when all of its stores committed and read back,
``failed`` for a permanent error (corrupt granule), ``waiting`` for a transient one that outlived its retries.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prefect import unmapped

from flows._settle import reason, settle
from oco_l3.errors import TransientError
from oco_l3.sources import GranuleRef
from oco_l3.state import GranuleOutcome, State, Status
from tasks.commit import commit_store, plan_commits
from tasks.discover import fetch_granule
from tasks.export import export_cogs, write_quicklooks
from tasks.grid import grid_granule
from tasks.state import mark_running, record_outcomes


def _fetch(config: Any, refs: Sequence[GranuleRef], staging: str,
           inputs: Sequence[Any] | None) -> tuple[dict[int, Any], dict[int, BaseException]]:
    """Fetch every granule (one task each), or take ``inputs`` as they are (``input.files`` runs)."""
    if inputs is not None:
        return dict(enumerate(inputs)), {}
    return settle(fetch_granule.map(unmapped(config), refs, unmapped(staging)))


def process_granules(config: Any, state: State, refs: Sequence[GranuleRef], *, run_id: int,
                     staging: str, quicklook_dir: str | None, inputs: Sequence[Any] | None = None) -> dict[str, Any]:
    """The day recipe; ``inputs`` (pipeline GranuleInputs) skips the fetch step (``input.files`` runs)."""
    if not refs:
        return _summary(refs, [], set(), [], 0.0)
    t0 = time.perf_counter()
    mark_running(state, refs, run_id)
    day = _Ledger(refs)
    day.fetched(*_fetch(config, refs, staging, inputs))
    day.gridded(*settle(grid_granule.map(unmapped(config), day.inputs())))
    commits = plan_commits(config, day.products())
    day.committed(commits, *settle(commit_store.map(unmapped(config), commits)))
    good = day.to_export()
    day.exported(*settle(export_cogs.map(unmapped(config), good)))
    looks, _ = settle(write_quicklooks.map(unmapped(config), good, unmapped(quicklook_dir))) if quicklook_dir else ({}, {})
    outcomes = day.outcomes()
    record_outcomes(state, outcomes)
    return _summary(refs, outcomes, day.targets(), [q for qs in looks.values() for q in qs], time.perf_counter() - t0)


class _Ledger:
    """What each granule of a day became at each step of the recipe, by its position in ``refs``; a step's results
    come back by position in the list that step was given, and the ledger maps them home."""

    def __init__(self, refs: Sequence[GranuleRef]) -> None:
        self.refs = refs
        self._inputs: dict[int, Any] = {}
        self._products: dict[int, Any] = {}
        self._errors: dict[int, BaseException] = {}
        self._stores: dict[int, list[str]] = {}
        self._cogs: dict[int, list[str]] = {}
        self._exported: list[int] = []

    def fetched(self, inputs: dict[int, Any], errors: dict[int, BaseException]) -> None:
        self._inputs = inputs
        self._fail(errors)

    def inputs(self) -> list[Any]:
        return [self._inputs[i] for i in sorted(self._inputs)]

    def gridded(self, products: dict[int, Any], errors: dict[int, BaseException]) -> None:
        order = sorted(self._inputs)
        self._products = {order[j]: p for j, p in products.items()}
        self._fail({order[j]: e for j, e in errors.items()})

    def products(self) -> list[Any]:
        return [self._products[i] for i in sorted(self._products)]

    def to_export(self) -> list[Any]:
        """The gridded granules with no error so far, in order (the order the export results come back in)."""
        self._exported = [i for i in sorted(self._products) if i not in self._errors]
        return [self._products[i] for i in self._exported]

    def committed(self, commits: Sequence[Any], done: dict[int, Any], errors: dict[int, BaseException]) -> None:
        """A store belongs to every granule it holds slices of; a failed commit fails all of them."""
        index = {p.granule.name: i for i, p in self._products.items()}
        for j, commit in enumerate(commits):
            for name in commit.granules:
                if j in done:
                    self._stores.setdefault(index[name], []).append(done[j].store_path)
                else:
                    self._errors.setdefault(index[name], errors[j])

    def exported(self, cogs: dict[int, list[str]], errors: dict[int, BaseException]) -> None:
        order = self._exported
        self._cogs = {order[j]: c for j, c in cogs.items()}
        self._fail({order[j]: e for j, e in errors.items()})

    def outcomes(self) -> list[GranuleOutcome]:
        return [_outcome(ref, self._products.get(i), self._errors.get(i), self._stores.get(i, []),
                         self._cogs.get(i, [])) for i, ref in enumerate(self.refs)]

    def targets(self) -> set[str]:
        return {c.target_id for i in self._exported for c in self._products[i].captures}

    def _fail(self, errors: dict[int, BaseException]) -> None:
        for i, exc in errors.items():
            self._errors.setdefault(i, exc)


def process_global_granules(config: Any, state: State, refs: Sequence[GranuleRef], *, run_id: int,
                            staging: str, inputs: Sequence[Any] | None = None) -> dict[str, Any]:
    """The global-product day: every granule of the day together (a day slice is replaced as a whole)."""
    from oco_l3.pipeline import DayBatch
    from tasks.global_day import process_global_day

    if not refs:
        return _summary(refs, [], set(), [], 0.0)
    t0 = time.perf_counter()
    mark_running(state, refs, run_id)
    fetched, errors = _fetch(config, refs, staging, inputs)
    result = process_global_day(config, DayBatch(refs[0].day, tuple(fetched[i] for i in sorted(fetched))))
    by_name = {o.granule.name: o for o in result.outcomes}
    outcomes = [_global_outcome(ref, by_name.get(fetched[i].name) if i in fetched else None, errors.get(i),
                                result.stores) for i, ref in enumerate(refs)]
    record_outcomes(state, outcomes)
    targets = {t for o in result.outcomes if o.ok for t in o.targets}
    return _summary(refs, outcomes, targets, [], time.perf_counter() - t0)


def _global_outcome(ref: GranuleRef, outcome: Any, error: BaseException | None, stores: Sequence[str]) -> GranuleOutcome:
    if error is not None or outcome is None:
        return _outcome(ref, None, error or RuntimeError("not processed"), [], [])
    if not outcome.ok:
        transient = any(f"{name}:" in outcome.message for name in _TRANSIENT)
        return GranuleOutcome(ref, "waiting" if transient else "failed", outcome.message)
    return GranuleOutcome(ref, "done", None, outcome.captures, len(outcome.targets), tuple(stores))


def _transient_leaves() -> tuple[str, ...]:
    seen: list[type[BaseException]] = [TransientError]
    for cls in seen:
        seen.extend(c for c in cls.__subclasses__() if c not in seen)
    return tuple(c.__name__ for c in seen)


_TRANSIENT = _transient_leaves()


def _outcome(ref: GranuleRef, products: Any, error: BaseException | None, stores: list[str],
             cogs: list[str]) -> GranuleOutcome:
    if error is not None:
        status: Status = "waiting" if isinstance(error, TransientError) else "failed"
        return GranuleOutcome(ref, status, f"{ref.name}: {reason(error)}")
    targets = {c.target_id for c in products.captures}
    return GranuleOutcome(ref, "done", None, len(products.captures), len(targets), tuple(stores + cogs))


def _summary(refs: Sequence[GranuleRef], outcomes: Sequence[GranuleOutcome], targets: set[str],
             quicklooks: list[str], seconds: float) -> dict[str, Any]:
    return {
        "day": str(refs[0].day) if refs else "",
        "granules": len(refs),
        "done": sum(o.status == "done" for o in outcomes),
        "failed": sum(o.status == "failed" for o in outcomes),
        "waiting": sum(o.status == "waiting" for o in outcomes),
        "captures": sum(o.captures for o in outcomes),
        "targets": sorted(targets),
        "failures": [o.error for o in outcomes if o.error],
        "quicklooks": quicklooks,
        "seconds": round(seconds, 3),
    }
