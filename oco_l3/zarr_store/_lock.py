"""The per-store writer lock: ``<store>.lock`` beside the store.

Local disk: ``fcntl.flock`` (released by the kernel when the process dies; cannot be lost while it lives).

S3: a lease object written only with conditional requests, so two writers can never both hold it:

* take: ``PUT`` with ``If-None-Match: *`` (fails when the object exists);
* renew (heartbeat every ``lease / 4`` s): ``PUT`` with ``If-Match: <our etag>`` (fails when anyone else wrote it
  since: the lock was broken, we stop at once);
* break an expired lease: read it (body + etag) and, when its ``expires`` has passed, ``PUT`` our own lease with
  ``If-Match: <that etag>`` -- of several writers breaking the same lease exactly one succeeds;
* release: ``DELETE`` with ``If-Match: <our etag>``.

Every body carries the owner id and a sequence number, so no two bodies (and no two etags) are equal. A holder
believes it holds the lock only until ``lease`` seconds after it SENT its last successful renewal
(:attr:`StoreLock.held`); the expiry it writes is the same instant on the wall clock, and a waiter breaks a lease
only ``grace`` seconds after that expiry, so on one clock the holder's belief always ends before anyone else can
take the lock. Across machines this needs clocks within ``grace`` of each other. The transaction calls
:meth:`StoreLock.check` before its commit point and before it applies metadata, so a writer that stalled past its
lease (a frozen VM, a debugger) stops instead of writing under someone else's lock.

Other filesystems (e.g. ``memory``): the same lease object, created check-then-put under a process lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time as _time
import uuid
from types import TracebackType
from typing import Any

import fsspec

from oco_l3.errors import StoreLocked
from oco_l3.zarr_store._objectstore import is_local

log = logging.getLogger(__name__)

_MEMORY_LOCK = threading.Lock()


class _Conflict(Exception):
    """A conditional request failed: someone else wrote the lock object."""


class StoreLock:
    """Exclusive per-store writer lock (context manager). Waits up to ``timeout`` seconds, then raises
    :class:`~oco_l3.errors.StoreLocked`. See the module docstring for the S3 protocol."""

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        store_path: str,
        *,
        timeout: float = 600.0,
        lease: float = 120.0,
        poll: float = 0.05,
        grace: float | None = None,
    ) -> None:
        self.fs = fs
        self.path = store_path.rstrip("/") + ".lock"
        self.timeout = timeout
        self.lease = lease
        self.poll = poll
        #: How long after a lease's expiry a waiter breaks it (clock skew between machines).
        self.grace = min(lease / 4, 30.0) if grace is None else grace
        self._fd: int | None = None
        self._owner = uuid.uuid4().hex
        self._seq = 0
        self._etag: str | None = None
        self._deadline = 0.0  # time.monotonic() until which this holder may believe it holds the lock
        self._lost = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._local = is_local(fs)

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    # --- public ------------------------------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        """True while this writer may act as the holder (local: while the flock is held; S3: until the lease it
        last renewed runs out, unless a renewal found the lock taken over)."""
        if self._local:
            return self._fd is not None
        return self._etag is not None and not self._lost and _time.monotonic() < self._deadline

    def check(self) -> None:
        """Raise :class:`StoreLocked` when the lock is no longer held (see :attr:`held`)."""
        if not self.held:
            raise StoreLocked(f"store {self.path[:-5]}: this writer lost its lock (its lease ran out or was broken)")

    def acquire(self) -> None:
        deadline = _time.monotonic() + self.timeout
        delay = self.poll
        while not self._try_acquire():
            if _time.monotonic() >= deadline:
                raise StoreLocked(f"store {self.path[:-5]} is locked by another writer (waited {self.timeout:g} s)")
            _time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=30)
            self._heartbeat = None
        if self._local:
            if self._fd is not None:
                import fcntl

                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None
            return
        etag, self._etag = self._etag, None
        if etag is None or self._lost:
            return
        try:
            self._delete(etag)
        except _Conflict:
            log.warning("Store lock %s was taken over before it was released", self.path)
        except FileNotFoundError:
            pass

    # --- acquiring -------------------------------------------------------------------------------------------
    def _try_acquire(self) -> bool:
        if self._local:
            return self._try_local()
        if not self._try_object():
            return False
        if _time.monotonic() >= self._deadline:  # the request took longer than the lease: not ours to use
            etag, self._etag = self._etag, None
            with contextlib.suppress(_Conflict, FileNotFoundError, OSError):
                self._delete(etag or "")
            return False
        self._lost = False
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._renew_loop, name=f"lease {self.path}", daemon=True)
        self._heartbeat.start()
        return True

    def _try_local(self) -> bool:
        import fcntl

        if self._fd is None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        else:
            fd = self._fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            self._fd = None
            return False
        self._fd = fd
        return True

    def _body(self) -> tuple[bytes, float]:
        """A new lease body (unique: owner and sequence number) and the monotonic deadline it grants."""
        self._seq += 1
        sent = _time.monotonic()
        doc = {"owner": self._owner, "seq": self._seq, "host": socket.gethostname(), "pid": os.getpid(),
               "expires": _time.time() + self.lease}
        return json.dumps(doc).encode(), sent + self.lease

    def _try_object(self) -> bool:
        body, deadline = self._body()
        try:
            self._etag = self._put(body, create=True)
            self._deadline = deadline
            return True
        except (FileExistsError, _Conflict):
            pass
        try:
            raw, etag = self._get()
        except FileNotFoundError:
            return False  # released meanwhile: try again at the next poll
        if not self._expired(raw):
            return False
        body, deadline = self._body()
        try:
            self._etag = self._put(body, match=etag)
        except (_Conflict, FileNotFoundError):
            return False  # another waiter broke it first, or the holder renewed or released it
        self._deadline = deadline
        log.warning("Broke the expired store lock %s (%s)", self.path, raw[:200].decode("utf-8", "replace"))
        return True

    def _expired(self, raw: bytes) -> bool:
        try:
            expires = float(json.loads(raw).get("expires", 0))
        except (ValueError, AttributeError, TypeError):
            return True  # not a lease this code wrote: treat as expired (it is replaced conditionally)
        return expires + self.grace < _time.time()

    # --- renewing ------------------------------------------------------------------------------------------
    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease / 4):
            self.renew()
            if self._lost:
                return

    def renew(self) -> bool:
        """Extend the lease once (the heartbeat calls this); False when it could not be renewed."""
        if self._etag is None or self._lost:
            return False
        body, deadline = self._body()
        try:
            self._etag = self._put(body, match=self._etag)
        except (_Conflict, FileNotFoundError):
            self._lost = True
            log.warning("Store lock %s was taken over; this writer stops", self.path)
            return False
        except Exception as exc:  # noqa: BLE001 - a missed renewal is retried at the next beat
            log.warning("Could not renew store lock %s: %s", self.path, type(exc).__name__)
            return False
        self._deadline = deadline
        return True

    # --- conditional requests --------------------------------------------------------------------------------
    def _s3(self) -> bool:
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return protocol in ("s3", "s3a") and hasattr(self.fs, "call_s3")

    def _put(self, body: bytes, *, create: bool = False, match: str | None = None) -> str:
        """Write the lock object conditionally; returns its new etag. FileExistsError / _Conflict when the
        condition fails."""
        if not self._s3():
            return self._put_emulated(body, create=create, match=match)
        bucket, key, _ = self.fs.split_path(self.path)
        cond: dict[str, Any] = {"IfNoneMatch": "*"} if create else {"IfMatch": match}
        try:
            resp = self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=body, **cond)
        except FileExistsError:
            raise
        except OSError as exc:
            if _is_conflict(exc):
                raise _Conflict(str(exc)) from None
            raise
        return str(resp["ETag"])

    def _get(self) -> tuple[bytes, str]:
        """The lock object's body and etag, read in one request."""
        if not self._s3():
            with _MEMORY_LOCK:
                raw = bytes(self.fs.cat_file(self.path))
            return raw, _digest(raw)
        from fsspec.asyn import sync

        bucket, key, _ = self.fs.split_path(self.path)

        async def get() -> tuple[bytes, str]:
            resp = await self.fs._call_s3("get_object", Bucket=bucket, Key=key)
            async with resp["Body"] as stream:
                raw = await stream.read()
            return bytes(raw), str(resp["ETag"])

        result: tuple[bytes, str] = sync(self.fs.loop, get)
        return result

    def _delete(self, etag: str) -> None:
        if not self._s3():
            with _MEMORY_LOCK:
                if _digest(bytes(self.fs.cat_file(self.path))) != etag:
                    raise _Conflict(self.path)
                self.fs.rm_file(self.path)
            return
        bucket, key, _ = self.fs.split_path(self.path)
        try:
            self.fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=etag)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if _is_conflict(exc):
                raise _Conflict(str(exc)) from None
            raise

    def _put_emulated(self, body: bytes, *, create: bool, match: str | None) -> str:
        """Conditional put on filesystems without conditional requests (memory): atomic within this process."""
        with _MEMORY_LOCK:
            exists = self.fs.exists(self.path)
            if create and exists:
                raise FileExistsError(self.path)
            if not create:
                if not exists:
                    raise FileNotFoundError(self.path)
                if _digest(bytes(self.fs.cat_file(self.path))) != match:
                    raise _Conflict(self.path)
            self.fs.pipe_file(self.path, body)
        return _digest(body)


def _digest(raw: bytes) -> str:
    import hashlib

    return hashlib.md5(raw).hexdigest()  # noqa: S324 - an etag, not security


def _is_conflict(exc: OSError) -> bool:
    """A failed precondition (412 PreconditionFailed) or a concurrent conditional write (409
    ConditionalRequestConflict), from the S3 error that s3fs translated into ``exc``."""
    cause = getattr(exc, "__cause__", None)
    response = getattr(cause, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409") or status in (409, 412)
