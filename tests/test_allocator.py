"""The malloc tuning gridding applies (oco_l3.allocator): freed temporaries are reused, not faulted in again."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Make and drop 3 x 6 MB three times, then count the page faults of 10 more rounds. glibc's default policy gives
# much of the 18 MB back to the OS each round (above its adaptive trim threshold, twice the largest block freed), so
# the rounds fault it in again (10,000-15,000 faults seen here); with the tuning it stays in the heap (0 seen).
_ROUNDS = """
import os, resource, sys
import numpy as np
from oco_l3.allocator import keep_freed_memory
tuned = keep_freed_memory()
def round_():
    arrays = [np.ones(6 * 2**20 // 8) for _ in range(3)]
    del arrays
for _ in range(3):
    round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    round_()
print(int(tuned), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(env: dict[str, str]) -> tuple[bool, int]:
    import os

    out = subprocess.run([sys.executable, "-c", _ROUNDS], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "1", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_memory_is_reused_unless_switched_off() -> None:
    tuned, faults = _faults({})
    assert tuned
    untuned, faults_default = _faults({"OCO_L3_MALLOC_TUNING": "0"})
    assert not untuned
    assert faults_default > 5000  # the default policy: the memory faulted in again round after round
    assert faults < 500  # tuned: the same memory reused

