"""The process's glibc malloc policy, in one place: keep freed memory for the next capture, cap the arenas, give
freed heap back between units of work. Every function is a no-op off glibc.

Keep freed memory in the process for the next capture instead of handing it back to the OS after each one.

Gridding a capture makes and drops a few hundred NumPy temporaries of 0.1-10 MB. With glibc's default policy most
of them are mapped fresh from the OS and given back when freed (above its adaptive mmap threshold, or trimmed off
the top of the heap), so every capture pays the kernel to fault in and zero its working set again: about 19,000 page
faults, a fifth of a 5,600-sounding capture's CPU time. :func:`keep_freed_memory` sets two glibc ``mallopt``
parameters once per process so blocks up to :data:`MMAP_THRESHOLD` come from the heap and up to
:data:`TRIM_THRESHOLD` of free heap stays mapped for reuse. Larger blocks (whole global grids) are still mapped and
unmapped on their own. The results are unchanged: only where the bytes live.

These are process-wide settings, so the library never makes them: each process that grids calls
:func:`keep_freed_memory` where it starts -- the CLI's ``main`` (its forked day and capture workers inherit it), the
worker processes of :mod:`oco_l3.process_pool` (where the flows' granule and global-day tasks grid), the
``oco-listen`` flow, the benchmarks that grid in their own process and the test session.
:func:`limit_arenas` is called by the CLI, :func:`release_memory` by the flows and worker processes after each unit.
``OCO_L3_MALLOC_TUNING=0`` leaves the allocator as it is; on a C library without ``mallopt`` (musl, macOS) it does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import os

log = logging.getLogger(__name__)

#: Blocks up to this size are taken from the heap (glibc ``M_MMAP_THRESHOLD``; its adaptive default tops at 32 MB).
MMAP_THRESHOLD = 16 * 1024 * 1024
#: Free memory up to this size is kept at the top of each heap (glibc ``M_TRIM_THRESHOLD``).
TRIM_THRESHOLD = 64 * 1024 * 1024
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@functools.cache
def keep_freed_memory() -> bool:
    """Set the process's malloc thresholds (see the module docstring) once; True when they were set."""
    if os.environ.get("OCO_L3_MALLOC_TUNING", "1").strip().lower() in {"0", "false", "no", "off"}:
        return False
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("malloc thresholds %s", "set" if done else "not set")
    return done


def limit_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc at ``arenas`` arenas (it makes up to 8 per core, one per allocating thread, and keeps
    what each frees): the gridding and compression threads then reuse freed memory instead of growing the
    resident size (-30 MB on the busy sample day). ``MALLOC_ARENA_MAX`` in the environment wins."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, arenas)


def release_memory() -> None:
    """Collect cycles and hand freed heap back to the OS (after a unit of work in a long-lived process)."""
    gc.collect()
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)
