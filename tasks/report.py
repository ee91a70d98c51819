"""The per-run markdown artifact: days, captures, targets, failures, timings and quick-look images."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

MAX_INLINE_IMAGES = 6
MAX_INLINE_BYTES = 300_000


def _image(path: str) -> str:
    name = os.path.basename(path)
    if os.path.getsize(path) <= MAX_INLINE_BYTES:
        data = base64.b64encode(open(path, "rb").read()).decode()  # noqa: SIM115 - tiny file
        return f"![{name}](data:image/png;base64,{data})"
    return f"- `{path}`"


def run_summary_markdown(kind: str, days: Sequence[Mapping[str, Any]], totals: Mapping[str, Any]) -> str:
    lines = [f"# oco-l3 {kind}", "",
             f"**{totals['days']} days**, {totals['granules']} granules: {totals['done']} done, "
             f"{totals['failed']} failed, {totals['waiting']} waiting; {totals['captures']} captures on "
             f"{totals['targets']} targets; {totals['seconds']:.1f} s", "",
             "| day | granules | captures | targets | failed | seconds |", "|---|---|---|---|---|---|"]
    for d in days:
        lines.append(f"| {d['day']} | {d['granules']} | {d['captures']} | {len(d['targets'])} | "
                     f"{len(d['failures'])} | {d['seconds']:.1f} |")
    failures = [f for d in days for f in d["failures"]]
    if failures:
        lines += ["", "## Failures", "", *(f"- {f}" for f in failures)]
    looks = [q for d in days for q in d["quicklooks"] if os.path.exists(q)]
    if looks:
        lines += ["", "## Quick-looks", ""]
        lines += [_image(q) for q in looks[:MAX_INLINE_IMAGES]]
        lines += [f"- `{q}`" for q in looks[MAX_INLINE_IMAGES:]]
    return "\n".join(lines)


@task(name="publish-run-summary", cache_policy=NO_CACHE)
def publish_run_summary(kind: str, days: Sequence[Mapping[str, Any]], totals: Mapping[str, Any]) -> str:
    markdown = run_summary_markdown(kind, days, totals)
    create_markdown_artifact(markdown, key=f"oco-l3-{kind}", description=f"oco-l3 {kind} run summary")
    return markdown
