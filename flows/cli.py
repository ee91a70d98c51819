"""``oco-l3 backfill | daily | status``: a plugin of the ``oco_l3.commands`` entry-point group; ICESat-2 products:
``oco-l3 icesat2-process-files | icesat2-backfill | icesat2-daily``.

``backfill`` and ``daily`` run the Prefect flows in this process (an ephemeral Prefect API when ``PREFECT_API_URL``
is unset, so no server is needed). ``status`` reads the state table and never imports Prefect; nor does this
module at import time, so ``oco-l3 run`` stays fast.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from typing import Any


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text[:40]!r}") from None


def _quiet_prefect() -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # The temporary (ephemeral) server's telemetry service ignores DO_NOT_TRACK and fails offline.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "oco_l3")


def _totals_of(state: Any) -> dict[str, Any]:
    """The totals a range flow's final state carries; an exception it ended with (a bad parameter) is raised."""
    from flows._report import RunFailed

    result = state.result(raise_on_failure=False)
    if isinstance(result, RunFailed):
        return result.totals
    if isinstance(result, BaseException):
        raise result
    return dict(result)


def _print_totals(totals: dict[str, Any]) -> int:
    """The one-line summary, then every failure, transient failure and skipped day; exit 1 unless all went."""
    print(f"{totals['days']} days, {totals['granules']} granules: {totals['done']} done, {totals['failed']} failed, "
          f"{totals['waiting']} waiting; {totals['captures']} captures on {totals['targets']} targets "
          f"({totals['seconds']:.1f} s)", flush=True)
    for key, label in (("failures", "failed"), ("retrying", "waiting"), ("skipped", "skipped")):
        for line in totals.get(key, ()):
            print(f"  {label}: {line}", file=sys.stderr)
    return 1 if totals["failed"] or totals["waiting"] else 0


def _day_arg(value: dt.date | str | None) -> dt.date | None:
    return _date(value) if isinstance(value, str) else value


def _flow(name: str, args: argparse.Namespace) -> Any:
    _quiet_prefect()
    dask_address = getattr(args, "dask_address", None)
    if getattr(args, "quicklooks", None):
        os.environ["OCO_L3_QUICKLOOK_DIR"] = os.path.abspath(args.quicklooks)
    from flows import oco
    from flows.runners import task_runner

    chosen = getattr(oco, name)
    return chosen.with_options(task_runner=task_runner(dask_address)) if dask_address else chosen


def cmd_backfill(args: argparse.Namespace) -> int:
    flow = _flow("oco_backfill", args)
    return _print_totals(_totals_of(flow(config=os.path.abspath(args.input), start=_day_arg(args.start),
                                         end=_day_arg(args.end), reprocess=bool(getattr(args, "reprocess", False)),
                                         return_state=True)))


def cmd_daily(args: argparse.Namespace) -> int:
    flow = _flow("oco_daily", args)
    return _print_totals(_totals_of(flow(config=os.path.abspath(args.input),
                                         today=_day_arg(getattr(args, "today", None)),
                                         lookback_days=getattr(args, "lookback_days", 30),
                                         max_retry_days=getattr(args, "max_retry_days", 60), return_state=True)))


def cmd_process_files(args: argparse.Namespace) -> int:
    flow = _flow("oco_process_files", args)
    return _print_totals(_totals_of(flow(config=os.path.abspath(args.input), return_state=True)))


def _icesat2_flow(name: str, args: argparse.Namespace) -> Any:
    _quiet_prefect()
    dask_address = getattr(args, "dask_address", None)
    from flows import icesat2
    from flows.runners import task_runner

    chosen = getattr(icesat2, name)
    return chosen.with_options(task_runner=task_runner(dask_address)) if dask_address else chosen


def _print_icesat2(summary: dict[str, Any]) -> int:
    found = f"{summary['found']} granules found, " if "found" in summary else ""
    days = sorted({d for r in summary["results"] for d in r["days"]})
    span = f"; days {days[0]}..{days[-1]}" if days else ""
    print(f"{summary['product']}: {found}{summary['ok']} ok, {summary['failed']} failed, "
          f"{sum(r['n_segments'] for r in summary['results'])} segments{span}", flush=True)
    for r in summary["results"]:
        if not r["ok"]:
            label = "waiting (retried by the daily run)" if r.get("transient") else "failed"
            print(f"  {label}: {os.path.basename(r['input'])}: {r['message']}", file=sys.stderr)
        for warning in r.get("warnings", ()):
            print(f"WARNING {warning}", file=sys.stderr)
    return 1 if summary["failed"] else 0


def cmd_icesat2_process_files(args: argparse.Namespace) -> int:
    flow = _icesat2_flow("icesat2_process_files", args)
    return _print_icesat2(flow(config=os.path.abspath(args.input)))


def cmd_icesat2_daily(args: argparse.Namespace) -> int:
    flow = _icesat2_flow("icesat2_daily", args)
    today = getattr(args, "today", None)
    return _print_icesat2(flow(config=os.path.abspath(args.input), latency_days=args.latency_days,
                               lookback_days=args.lookback_days, max_retry_days=args.max_retry_days,
                               today=today.isoformat() if today else None))


def cmd_icesat2_backfill(args: argparse.Namespace) -> int:
    flow = _icesat2_flow("icesat2_backfill", args)
    start, end = getattr(args, "start", None), getattr(args, "end", None)
    return _print_icesat2(flow(config=os.path.abspath(args.input), start=start.isoformat() if start else None,
                               end=end.isoformat() if end else None))


def cmd_status(args: argparse.Namespace) -> int:
    from oco_l3.config import load_config
    from oco_l3.state import default_state_url, format_status, open_state, status_rows

    config = load_config(args.input)  # OCO and ICESat-2 configs
    state = open_state(default_state_url(config))
    try:
        rows = status_rows(state, _day_arg(getattr(args, "start", None)), _day_arg(getattr(args, "end", None)))
    finally:
        state.close()
    print(json.dumps(rows, indent=2) if getattr(args, "json", False) else format_status(rows))
    return 0


def register(subparsers: Any) -> None:
    """Add ``backfill``, ``daily``, ``process-files``, ``status``, ``icesat2-process-files``, ``icesat2-backfill``
    and ``icesat2-daily`` to the ``oco-l3`` command line."""
    p = subparsers.add_parser("backfill", help="process a day range through the Prefect backfill flow")
    p.add_argument("-i", "--input", required=True, help="run-config YAML (with search: and optional state:)")
    p.add_argument("--start", required=True, type=_date, help="first day, YYYY-MM-DD")
    p.add_argument("--end", required=True, type=_date, help="last day, YYYY-MM-DD (inclusive)")
    p.add_argument("--reprocess", action="store_true", help="process days again even when done")
    p.add_argument("--dask-address", default=None, help="dask.distributed scheduler for the fan-out")
    p.add_argument("--quicklooks", default=None, help="directory for quick-look PNGs (default <output>/quicklooks)")
    p.set_defaults(func=cmd_backfill)
    p = subparsers.add_parser("daily", help="process every new ready day (the daily flow, run once)")
    p.add_argument("-i", "--input", required=True)
    p.add_argument("--today", type=_date, default=None, help="pretend today is this day (default: UTC today)")
    p.add_argument("--lookback-days", type=int, default=30, help="how far back an empty state looks")
    p.add_argument("--max-retry-days", type=int, default=60,
                   help="at most this many old waiting days are retried, oldest first (default 60)")
    p.add_argument("--dask-address", default=None)
    p.add_argument("--quicklooks", default=None)
    p.set_defaults(func=cmd_daily)
    p = subparsers.add_parser("process-files", help="process input.files through the Prefect flow")
    p.add_argument("-i", "--input", required=True)
    p.add_argument("--dask-address", default=None)
    p.set_defaults(func=cmd_process_files)
    p = subparsers.add_parser("status", help="print the state table (waiting | done | failed | gap per day)")
    p.add_argument("-i", "--input", required=True)
    p.add_argument("--json", action="store_true", help="a JSON list of {mission, day, status, ...} objects")
    p.add_argument("--start", type=_date, default=None)
    p.add_argument("--end", type=_date, default=None)
    p.set_defaults(func=cmd_status)
    p = subparsers.add_parser("icesat2-process-files",
                              help="process an ICESat-2 config's input.files through the Prefect flow")
    p.add_argument("-i", "--input", required=True, help="ICESat-2 product config YAML (product: icesat2-...)")
    p.add_argument("--dask-address", default=None)
    p.set_defaults(func=cmd_icesat2_process_files)
    p = subparsers.add_parser("icesat2-backfill",
                              help="search CMR, download, process and record an ICESat-2 product's days")
    p.add_argument("-i", "--input", required=True, help="ICESat-2 product config YAML with a search: section")
    p.add_argument("--start", type=_date, default=None, help="first day, YYYY-MM-DD (default: search.temporal)")
    p.add_argument("--end", type=_date, default=None, help="last day, YYYY-MM-DD (default: search.temporal)")
    p.add_argument("--dask-address", default=None)
    p.set_defaults(func=cmd_icesat2_backfill)
    p = subparsers.add_parser("icesat2-daily",
                              help="the scheduled ICESat-2 run: the days since the last done one, up to the latency")
    p.add_argument("-i", "--input", required=True, help="ICESat-2 product config YAML with a search: section")
    p.add_argument("--latency-days", type=int, default=3, help="leave the last N days for later (default 3)")
    p.add_argument("--lookback-days", type=int, default=30, help="how far back an empty state looks (default 30)")
    p.add_argument("--max-retry-days", type=int, default=60,
                   help="at most this many old waiting days are retried, oldest first (default 60)")
    p.add_argument("--today", type=_date, default=None, help="pretend today is this day (default: today)")
    p.add_argument("--dask-address", default=None)
    p.set_defaults(func=cmd_icesat2_daily)
