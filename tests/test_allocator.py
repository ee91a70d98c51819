"""The malloc policy of the processes that grid (oco_l3.allocator): freed temporaries are reused, not faulted in
again; set by each process's entry point, never by the library."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from oco_l3.process_pool import ProcessPool

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")


def fault_rounds() -> tuple[bool, int]:
    """Whether this process's thresholds were set (by anyone), and the page faults of 10 rounds of making and
    dropping 3 x 6 MB (after 3 rounds to settle). glibc's default policy gives much of the 18 MB back to the OS
    each round (above its adaptive trim threshold, twice the largest block freed), so the rounds fault it in again
    (10,000-15,000 faults seen here); with the policy set it stays in the heap (0 seen)."""
    import resource

    import numpy as np

    from oco_l3.allocator import keep_freed_memory

    def round_() -> None:
        arrays = [np.ones(6 * 2**20 // 8) for _ in range(3)]
        del arrays

    for _ in range(3):
        round_()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        round_()
    return keep_freed_memory.cache_info().currsize > 0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _in_fresh_process(prologue: str, env: dict[str, str] | None = None) -> tuple[bool, int]:
    """:func:`fault_rounds` in a new interpreter, after ``prologue`` (this repository importable)."""
    code = f"{prologue}\nfrom tests.test_allocator import fault_rounds\nprint(*fault_rounds())\n"
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
               **(env or {})}
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout.split()
    return out[-2] == "True", int(out[-1])


def test_freed_memory_is_reused_unless_switched_off() -> None:
    set_, faults = _in_fresh_process("from oco_l3.allocator import keep_freed_memory\nassert keep_freed_memory()")
    assert set_ and faults < 500  # tuned: the same memory reused
    script = "from oco_l3.allocator import keep_freed_memory\nassert not keep_freed_memory()"
    _, faults_default = _in_fresh_process(script, {"OCO_L3_MALLOC_TUNING": "0"})
    assert faults_default > 5000  # the default policy: the memory faulted in again round after round


def test_gridding_leaves_the_process_malloc_policy_alone() -> None:
    # A library call must not change a process-wide setting: before, grid_capture set the thresholds itself.
    grid = ("from tests.test_gridding import GRID, make_soundings\nfrom oco_l3.gridding import grid_capture\n"
            "assert grid_capture(make_soundings(), GRID, 'cubic').pre.has_values")
    set_, faults = _in_fresh_process(grid)
    assert not set_
    assert faults > 5000


def test_the_cli_sets_it_at_start() -> None:
    # A core command that stops at once (no config file): the policy is set before anything else runs.
    cli = "from oco_l3.cli import main\nassert main(['validate', '-i', '/nonexistent/oco-l3.yaml']) == 2"
    set_, faults = _in_fresh_process(cli)
    assert set_ and faults < 500


def test_a_worker_process_sets_it_at_start() -> None:
    pool = ProcessPool(max_processes=1)
    try:
        set_, faults = pool.call(fault_rounds)
    finally:
        pool.close()
    assert set_ and faults < 500
