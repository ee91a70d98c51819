"""Worker processes that run one library call at a time, as if in the caller's process, for callers that must
stay small (a Prefect flow's process) or that do not want the GIL shared with their own threads.

A :class:`ProcessPool` starts ``python -m oco_l3.process_pool`` processes on demand (one per concurrent caller, up
to ``max_processes``): plain interpreters that import ``oco_l3.pipeline`` and nothing of the caller's (no Prefect,
no ``__main__`` re-import as ``multiprocessing``'s spawn and forkserver do). :meth:`ProcessPool.call` sends the
function (by reference) and its arguments over a socket and blocks until it returns, while:

* every ``oco_l3`` log record the call emits, in any of its threads, is re-emitted in the calling thread as it
  arrives (same logger name, level, time and message), so it reaches whatever handlers the caller has, with the
  caller's context (a Prefect task run's id);
* the call's exception is raised in the caller with its own type (a :class:`~oco_l3.errors.TransientError` stays
  one, so retry policies keyed on the type still work), its traceback text attached as a note;
* the caller's environment, the library's log level and the secrets in the arguments go with each call, so the
  worker sees credentials set after it started and redacts what the caller redacts;
* a worker process that dies (killed, out of memory) fails the call with :class:`~oco_l3.errors.WorkerProcessDied`
  (transient) and is replaced by the next call.

Each worker runs with one BLAS/OpenMP thread and two malloc arenas (as ``oco-l3 run``), whatever its parent set
(``dask worker``'s nanny sets ``MALLOC_TRIM_THRESHOLD_``, which turns off glibc's dynamic mmap threshold: every
large NumPy temporary is then a fresh mmap), and hands freed memory back to the system after each call.

:func:`call_in_worker` is the entry point: the shared pool of this process, or the caller's own process when
``OCO_L3_WORKER_PROCESS=0`` (debugging, profiling, tests that replace library functions).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

from oco_l3.allocator import keep_freed_memory, release_memory
from oco_l3.errors import WorkerProcessDied, one_line

T = TypeVar("T")
LIBRARY_LOGGER = "oco_l3"
PRELOAD = ("oco_l3.pipeline",)
MAX_PROCESSES = 32
#: Set in every worker's environment (the caller's own values win), as ``oco-l3 run`` sets them for itself.
WORKER_DEFAULTS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "MALLOC_ARENA_MAX": "2"}
#: Never passed on to a worker: the Dask nanny's setting, which slows NumPy-heavy code (see the module docstring).
WORKER_DROPPED = ("MALLOC_TRIM_THRESHOLD_",)
_MANAGED = frozenset(WORKER_DEFAULTS) | frozenset(WORKER_DROPPED) | {"PYTHONPATH"}


def in_worker_enabled() -> bool:
    """False when ``OCO_L3_WORKER_PROCESS`` is ``0``/``false``/``no``: calls then run in the caller's process."""
    return os.environ.get("OCO_L3_WORKER_PROCESS", "1").strip().lower() not in {"0", "false", "no"}


def call_in_worker(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a worker process of this process's shared pool (see the module docstring)."""
    if not in_worker_enabled():
        return fn(*args, **kwargs)
    return shared_pool().call(fn, *args, **kwargs)


# --- the caller's side ------------------------------------------------------------------------------------
@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection

    @property
    def name(self) -> str:
        return f"worker process {self.process.pid}"

    def stop(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ProcessPool:
    """Up to ``max_processes`` worker processes, started when a call finds none idle (see the module docstring)."""

    def __init__(self, max_processes: int = MAX_PROCESSES, preload: tuple[str, ...] = PRELOAD) -> None:
        self.max_processes = max(1, max_processes)
        self.preload = preload
        self._idle: list[_Worker] = []
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker; its log records are re-emitted here as they come."""
        level = logging.getLogger(LIBRARY_LOGGER).getEffectiveLevel()
        message = pickle.dumps((fn, args, kwargs, dict(os.environ), level), protocol=pickle.HIGHEST_PROTOCOL)
        worker = self._acquire()
        healthy = False
        try:
            worker.conn.send_bytes(message)
            kind, value = _relay(worker)
            healthy = True
        except (EOFError, OSError) as exc:
            raise WorkerProcessDied(f"{_name_of(fn)}: {worker.name} ended ({_how_it_ended(worker, exc)})") from None
        finally:
            self._release(worker, healthy)
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        """Stop every worker (each ends when its connection closes)."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for worker in idle:
            worker.stop()

    @property
    def processes(self) -> list[int]:
        """Process ids of the idle workers (for tests and benchmarks)."""
        with self._cond:
            return [w.process.pid for w in self._idle]

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("the process pool is closed")
                if self._idle:
                    return self._idle.pop()
                if self._count < self.max_processes:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return _start_worker(self.preload)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker, healthy: bool) -> None:
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(worker)
            else:
                self._count -= 1
            self._cond.notify()
        if not healthy or self._closed:
            worker.process.kill()  # a call that did not end cleanly leaves the worker in an unknown state
            worker.stop()


def _relay(worker: _Worker) -> tuple[str, Any]:
    """Receive until the call's outcome, re-emitting its log records in this thread."""
    while True:
        kind, value = worker.conn.recv()
        if kind != "log":
            return kind, value
        record = logging.makeLogRecord(value)
        _redact(record)
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def _redact(record: logging.LogRecord) -> None:
    from oco_l3.secrets import redact

    record.msg = redact(str(record.msg))
    if record.exc_text:
        record.exc_text = redact(record.exc_text)


def _how_it_ended(worker: _Worker, exc: BaseException) -> str:
    try:
        code = worker.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return one_line(exc)
    if code < 0:
        return f"killed by {signal.Signals(-code).name}" + (", out of memory?" if code == -signal.SIGKILL else "")
    return f"exit code {code}"


def _name_of(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in WORKER_DROPPED}
    for key, value in WORKER_DEFAULTS.items():
        env.setdefault(key, value)
    package_root = str(Path(__file__).resolve().parents[1])  # importable even when not installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    return env


def _start_worker(preload: tuple[str, ...]) -> _Worker:
    ours, theirs = socket.socketpair()
    with theirs:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "oco_l3.process_pool", str(theirs.fileno()), ",".join(preload)],
            pass_fds=(theirs.fileno(),), env=_worker_env(), stdin=subprocess.DEVNULL, close_fds=True)
    return _Worker(process, Connection(ours.detach()))


_shared: tuple[int, ProcessPool] | None = None
_shared_lock = threading.Lock()


def shared_pool() -> ProcessPool:
    """This process's pool (made on first use, stopped at exit; a forked child makes its own)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != os.getpid():
            _shared = (os.getpid(), ProcessPool())
            atexit.register(_shared[1].close)
        return _shared[1]


# --- the worker's side ------------------------------------------------------------------------------------
class _Forward(logging.Handler):
    """Sends each record, its message formatted and its exception as text, to the caller."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        super().__init__(logging.DEBUG)
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {k: v for k, v in record.__dict__.items() if isinstance(v, str | int | float | bool | None)}
            fields.update(msg=record.getMessage(), args=None, exc_info=None,
                          exc_text=self._exc_text(record), stack_info=record.stack_info)
            self._send(("log", fields))
        except Exception:  # noqa: BLE001 - a record that cannot be sent must not fail the call
            self.handleError(record)

    @staticmethod
    def _exc_text(record: logging.LogRecord) -> str | None:
        if record.exc_info and not record.exc_text:
            return logging.Formatter().formatException(record.exc_info)
        return record.exc_text


def _apply_call_context(env: Mapping[str, str], level: int, args: Any) -> None:
    """The caller's environment (its managed keys left as this worker started), log level and secrets."""
    from oco_l3.secrets import register_env_secrets, register_model_secrets

    for key in [k for k in os.environ if k not in env and k not in _MANAGED]:
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k not in _MANAGED and os.environ.get(k) != v})
    logging.getLogger(LIBRARY_LOGGER).setLevel(level)
    register_env_secrets()
    register_model_secrets(args)


def _outcome(fn: Callable[..., Any], args: Any, kwargs: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - every outcome goes back to the caller
        with contextlib.suppress(Exception):
            from oco_l3.secrets import redact

            exc.add_note(redact(f"in {_name_of(fn)}, worker process {os.getpid()}:\n"
                                + "".join(traceback.format_tb(exc.__traceback__))))
        return "error", exc


def _send_outcome(send: Callable[[Any], None], kind: str, value: Any) -> None:
    try:
        send((kind, value))
    except Exception as exc:  # noqa: BLE001 - unpicklable result or exception: say so in its place
        text = one_line(value) if isinstance(value, BaseException) else f"result not picklable: {one_line(exc)}"
        send(("error", RuntimeError(text)))


def serve(fd: int, preload: tuple[str, ...]) -> None:
    """The worker's loop: one call at a time until the caller closes the connection."""
    keep_freed_memory()
    conn = Connection(fd)
    lock = threading.Lock()

    def send(message: Any) -> None:
        with lock:
            conn.send(message)

    library = logging.getLogger(LIBRARY_LOGGER)
    library.addHandler(_Forward(send))
    library.propagate = False
    from oco_l3.secrets import install_redaction

    install_redaction()
    for name in preload:
        importlib.import_module(name)
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            fn, args, kwargs, env, level = pickle.loads(message)  # noqa: S301 - from our own caller
        except Exception as exc:  # noqa: BLE001 - e.g. a function this worker cannot import
            send(("error", RuntimeError(f"worker process {os.getpid()} cannot load the call: {one_line(exc)}")))
            continue
        _apply_call_context(env, level, (args, kwargs))
        _send_outcome(send, *_outcome(fn, args, kwargs))
        del fn, args, kwargs, message
        release_memory()


if __name__ == "__main__":
    serve(int(sys.argv[1]), tuple(n for n in sys.argv[2].split(",") if n))
