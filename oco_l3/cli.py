"""The ``oco-l3`` command line.

Library commands live here (``run``, ``validate``, ``demo``); commands that need Prefect or a broker are plugins,
registered through the entry-point group ``oco_l3.commands`` (each entry point is ``register(subparsers)``), so the
``run`` path never imports Prefect.
"""

from __future__ import annotations

import os
import sys

# One BLAS thread per process, set before NumPy loads: SciPy's Delaunay `transform` is many times slower with
# OpenBLAS threads on a busy 2-core machine, and parallelism here comes from processes (days, flows), not BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from oco_l3.allocator import keep_freed_memory, limit_arenas
from oco_l3.errors import OcoL3Error, one_line

log = logging.getLogger("oco_l3")


def setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    try:
        from oco_l3.secrets import install_redaction
    except ImportError:  # pragma: no cover - the secrets module ships with the package
        return
    install_redaction()


def _print_day(result: Any) -> None:
    for o in result.outcomes:
        print(f"{'ok  ' if o.ok else 'FAIL'} {o.message}", flush=True)


def run_days(config: Any, quicklook_dir: str | None = None) -> list[Any]:
    """Process every day of ``input.files`` through the config's product (:func:`oco_l3.runs.run_files`), one line
    per input as each day ends."""
    from oco_l3.runs import run_files

    return run_files(config, quicklook_dir, on_day=_print_day)


def _summary(results: Sequence[Any]) -> int:
    n = sum(len(r.outcomes) for r in results)
    failed = [e for r in results for e in r.errors]
    captures = sum(r.counts["captures"] for r in results)
    stores = len({s for r in results for s in r.stores})
    cogs = sum(len(r.cogs) for r in results)
    print(f"{n - len(failed)} of {n} inputs ok; {captures} captures into {stores} stores; {cogs} COGs", flush=True)
    if failed:
        print(f"{len(failed)} failed:", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
    return 1 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from oco_l3.config import OCO_GLOBAL, OCO_TARGET, load_config, product_of

    config = load_config(args.input)
    if product_of(config) not in (OCO_TARGET, OCO_GLOBAL):
        from oco_l3.icesat2 import run_icesat2

        results = run_icesat2(config)
        from oco_l3.state import record_product_run

        record_product_run(config, results)
        bad = [r for r in results if not r.ok]
        for r in results:
            label = "FAIL" if not r.ok else "EMPTY" if r.empty else "ok  "
            print(f"{label} {r.message if not r.ok else f'{os.path.basename(r.input)}: {r.message}'}", flush=True)
            for warning in r.warnings:
                print(f"WARNING {warning}", file=sys.stderr, flush=True)
        return 1 if bad else 0
    if config.input is None or config.input.files is None:
        print(f"{args.input}: input.files is empty; for input.queue use `oco-l3 listen -i CONFIG`", file=sys.stderr)
        return 2
    return _summary(run_days(config, args.quicklooks))


def cmd_validate(args: argparse.Namespace) -> int:
    from oco_l3.config import load_config

    config = load_config(args.input)
    if getattr(config, "product", "oco") == "oco":
        from oco_l3.missions import MISSIONS
        from oco_l3.pipeline import targets_for

        lists: dict[str, list[str]] = {}
        for key, spec in MISSIONS.items():
            lists.setdefault(spec.target_list.key, []).append(key)
        counts = ", ".join(f"{'/'.join(keys)} {len(targets_for(config, keys[0]))}" for keys in lists.values())
        print(f"{args.input}: ok (targets: {counts})")
    else:
        print(f"{args.input}: ok ({config.product})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from oco_l3.demo import run_demo

    return run_demo(args.out, days=args.days, engine=args.engine, commands=_COMMANDS)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


CORE_COMMANDS = frozenset({"run", "validate", "demo"})


def build_parser(plugins: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oco-l3", description="OCO-2/OCO-3 and ICESat-2 Level-2 to Level-3 products")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging; tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="process input.files of a run config")
    p.add_argument("-i", "--input", required=True, help="run-config YAML")
    p.add_argument("--quicklooks", default=None, help="directory for quick-look PNGs of every capture")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("validate", help="validate a run config")
    p.add_argument("-i", "--input", required=True)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("demo", help="generate SYNTHETIC sample days and run the whole product on them")
    p.add_argument("--out", default="demo-output")
    p.add_argument("--days", type=int, default=3)
    p.add_argument("--engine", choices=["flow", "library"], default="flow",
                   help="flow: through the Prefect backfill flow (ephemeral Prefect, SQLite state); library: no Prefect")
    p.set_defaults(func=cmd_demo)
    for ep in entry_points(group="oco_l3.commands") if plugins else ():
        try:
            ep.load()(sub)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the core commands
            log.debug("command plugin %s failed to load: %s", ep.name, exc)
    for name, action in sub.choices.items():
        _COMMANDS[name] = action.get_default("func")
        _accept_verbose(action)
    return parser


def _accept_verbose(command: argparse.ArgumentParser) -> None:
    """``-v`` after the subcommand too (``oco-l3 run -i CONFIG -v``, the form the README shows); when given there
    it replaces the count given before the subcommand, when absent it leaves that count alone."""
    with contextlib.suppress(argparse.ArgumentError):  # the command defines -v itself
        command.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                             help="more logging; tracebacks on errors")


def _command_of(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    limit_arenas()
    keep_freed_memory()
    # Plugins (Prefect flows, the queue listener) are loaded only when asked for: `run` stays light.
    command = _command_of(argv)
    parser = build_parser(plugins=command not in CORE_COMMANDS or command == "demo")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    # Verbose mode shows tracebacks; otherwise one line per error.
    try:
        return int(args.func(args) or 0)
    except OcoL3Error as exc:
        if args.verbose:
            log.exception("failed")
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    """The ``oco-l3`` console script: :func:`main`, then exit without the interpreter's final garbage collection.

    ``gc.freeze()`` puts every object into the permanent generation, which the last collection skips (0.06 s of
    the busy sample day's 1.9 s); atexit handlers, logging shutdown and module teardown still run, and every file
    this program writes is closed by then. Only for the process's own exit: in-process callers use ``main``.
    """
    code = main()
    sys.stdout.flush()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()


__all__ = ["main", "entry", "build_parser", "run_days"]
