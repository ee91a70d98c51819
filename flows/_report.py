"""What a range run tells the operator: a progress artifact while it runs, then a table artifact of every
(mission, day) with its status and reason, a markdown summary (failures, what was skipped and why, quick-look
paths: never images inlined into Prefect's database) and the flow run's final state.

* any ``failed`` (mission, day) -> the flow run ends ``Failed``, its message naming each with its reason;
* otherwise, any ``waiting`` after a transient error (retries exhausted) -> ``Completed`` named ``Waiting``,
  the message naming each: the daily run retries waiting days, so nothing needs a person yet;
* otherwise ``Completed``; the message counts the days done and lists failed days skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact
from prefect.artifacts import update_progress_artifact as _update
from prefect.states import Completed, Failed, State

if TYPE_CHECKING:
    from flows._range import Row

log = logging.getLogger(__name__)

MAX_IN_MESSAGE = 20
MAX_LISTED_QUICKLOOKS = 200


class RunFailed(Exception):  # noqa: N818 - what a failed range run raises when called as a function
    """A range run ended with failed (mission, day)s: the message names each with its reason; ``totals`` are the
    run's counts (the ``data`` of the ``Failed`` state, so a direct call raises this, and ``oco-l3 backfill``
    still prints the counts)."""

    def __init__(self, message: str, totals: Mapping[str, Any]) -> None:
        super().__init__(message, dict(totals))
        self.message = message
        self.totals = dict(totals)

    def __str__(self) -> str:
        return self.message


class Progress:
    """A Prefect progress artifact, updated at most every ``every`` seconds (and at the end)."""

    def __init__(self, kind: str, total: int, every: float = 2.0) -> None:
        self.total, self.done, self.bad, self.every = total, 0, 0, every
        self._last = 0.0
        self._id = create_progress_artifact(0.0, key=f"oco-l3-{kind}-progress",
                                            description=self._text()) if total else None

    def _text(self) -> str:
        return f"{self.done} of {self.total} granules finished ({self.bad} not done)"

    def advance(self, n: int, bad: int = 0) -> None:
        self.done += n
        self.bad += bad
        now = time.monotonic()
        if self._id is not None and (now - self._last >= self.every or self.done >= self.total):
            self._last = now
            _update(self._id, 100.0 * self.done / self.total, description=self._text())


def totals(rows: Sequence[Row], seconds: float) -> dict[str, Any]:
    """The run's counts (what ``oco-l3 backfill`` prints and the flow returns)."""
    tried = [r for r in rows if r.tried]
    return {
        "days": len({r.day for r in tried}),
        "granules": len(tried),
        "done": sum(r.status == "done" for r in rows),
        "failed": sum(r.status == "failed" for r in rows),
        "waiting": sum(r.status == "waiting" for r in tried),
        "captures": sum(r.captures for r in rows),
        "targets": len({t for r in rows for t in r.targets}),
        "seconds": round(seconds, 3),
        "failures": [f"{r.mission} {r.day}: {r.reason}" for r in rows if r.status == "failed"],
        "retrying": [f"{r.mission} {r.day}: {r.reason}" for r in tried if r.status == "waiting"],
        "skipped": [f"{r.mission} {r.day}: {r.status}: {r.reason}" for r in rows if r.status in ("skipped", "busy")],
        "not_ready": [f"{r.mission} {r.day}: {r.reason}" for r in rows if not r.tried and r.status == "waiting"],
        "quicklooks": [q for r in rows for q in r.quicklooks],
    }


def _listed(lines: Sequence[str]) -> str:
    more = f"; (+{len(lines) - MAX_IN_MESSAGE} more: see the run's artifacts)" if len(lines) > MAX_IN_MESSAGE else ""
    return "; ".join(lines[:MAX_IN_MESSAGE]) + more


def final_state(kind: str, t: Mapping[str, Any]) -> State[Any]:
    """The flow run's final state (see the module docstring); ``data`` is the totals."""
    head = f"{kind}: {t['granules']} granules on {t['days']} days, {t['done']} done"
    skipped = f"; skipped {_listed(t['skipped'])}" if t["skipped"] else ""
    if t["failed"]:
        message = f"{head}, {t['failed']} failed: {_listed(t['failures'])}{skipped}"
        return Failed(message=message, data=RunFailed(message, t))
    if t["waiting"]:
        return Completed(name="Waiting", message=f"{head}, {t['waiting']} waiting (transient; the daily run "
                                                 f"retries them): {_listed(t['retrying'])}{skipped}", data=dict(t))
    return Completed(message=f"{head}{skipped}", data=dict(t))


def markdown(kind: str, t: Mapping[str, Any], notes: Sequence[str]) -> str:
    lines = [f"# oco-l3 {kind}", "",
             f"**{t['days']} days, {t['granules']} granules: {t['done']} done, {t['failed']} failed, "
             f"{t['waiting']} waiting**; {t['captures']} captures on {t['targets']} targets; {t['seconds']:.1f} s", ""]
    lines += [f"- {n}" for n in notes]
    for title, key in (("Failed", "failures"), ("Waiting (transient: retried by the daily run)", "retrying"),
                       ("Skipped", "skipped"), ("Not ready (no granule yet)", "not_ready")):
        if t[key]:
            lines += ["", f"## {title} ({len(t[key])})", "", *(f"- {line}" for line in t[key])]
    looks = t["quicklooks"]
    if looks:
        lines += ["", f"## Quick-looks ({len(looks)})", "", *(f"- `{q}`" for q in looks[:MAX_LISTED_QUICKLOOKS])]
        if len(looks) > MAX_LISTED_QUICKLOOKS:
            lines.append(f"- ... and {len(looks) - MAX_LISTED_QUICKLOOKS} more")
    lines += ["", "The table artifact of this run lists every (mission, day) with its status and reason."]
    return "\n".join(lines)


def publish(kind: str, rows: Sequence[Row], t: Mapping[str, Any], notes: Sequence[str] = ()) -> None:
    """The table of (mission, day, status, reason) and the markdown summary, as artifacts of the flow run."""
    table = [{"mission": r.mission, "day": r.day, "status": r.status, "reason": r.reason, "granule": r.granule,
              "captures": r.captures} for r in sorted(rows, key=lambda r: (r.day, r.mission))]
    if table:
        create_table_artifact(table, key=f"oco-l3-{kind}-days", description=f"oco-l3 {kind}: every (mission, day)")
    create_markdown_artifact(markdown(kind, t, notes), key=f"oco-l3-{kind}", description=f"oco-l3 {kind} run summary")
    for line in t["failures"]:
        log.error("failed: %s", line)
    for line in t["skipped"]:
        log.warning("%s", line)
