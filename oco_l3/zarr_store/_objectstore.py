"""A small key/value view of one folder on an fsspec filesystem (local disk, S3, memory).

The transaction code needs only a few verbs: read, write (atomic per object), place (a staged object into the
store), delete, list one level, remove a tree and, on local disk, rename a whole staged tree into place. Local disk
gets ``os.replace``/``os.rename`` (atomic); other filesystems get put/copy/delete, where every single object put or
copy is atomic (S3 semantics). On S3 a copy is one server-side ``CopyObject`` request.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """True for the local-disk filesystem (rename is atomic there)."""
    return isinstance(fs, LocalFileSystem)


class ObjectStore:
    """Keys (``a/b/c``) relative to ``root`` on ``fs``."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, *, fsync: bool = True) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.local = is_local(fs)
        #: Durability on local disk. Objects are written without a per-object fsync; the transaction calls
        #: :meth:`barrier` (one ``syncfs``) at each commit step instead, which costs one flush, not thousands.
        self.fsync = fsync
        #: Local folders known to exist (saves a stat + mkdir per object written or moved).
        self._dirs: set[str] = set()

    def _makedirs(self, folder: str) -> None:
        if folder not in self._dirs:
            os.makedirs(folder or ".", exist_ok=True)
            self._dirs.add(folder)

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    # --- reads ---------------------------------------------------------------------------------------
    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        if self.local:
            try:
                with open(self.path(key), "rb") as fh:
                    return fh.read()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        try:
            return bytes(self.fs.cat_file(self.path(key)))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def exists(self, key: str) -> bool:
        if self.local:
            return os.path.isfile(self.path(key))
        return bool(self.fs.isfile(self.path(key)))

    def list_dir(self, key: str) -> list[str]:
        """Names directly under ``key`` (files and folders); empty when it does not exist."""
        if self.local:
            try:
                return sorted(os.listdir(self.path(key)))
            except (FileNotFoundError, NotADirectoryError):
                return []
        try:
            entries = self.fs.ls(self.path(key), detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(str(e).rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def walk_files(self, key: str) -> Iterator[str]:
        """Every object key below ``key`` (relative to ``key``)."""
        base = self.path(key).rstrip("/")
        if self.local:
            for dirpath, _dirs, files in os.walk(base):
                for name in files:
                    yield os.path.relpath(os.path.join(dirpath, name), base).replace(os.sep, "/")
            return
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return
        for full in found:
            full = str(full)
            stripped = full.split("://", 1)[-1]
            base_stripped = base.split("://", 1)[-1]
            if stripped.startswith(base_stripped + "/"):
                yield stripped[len(base_stripped) + 1 :]

    # --- writes --------------------------------------------------------------------------------------
    def write(self, key: str, data: bytes, *, atomic: bool = True) -> None:
        """Write one object. ``atomic``: readers see the old or the new bytes, never a mix (temp + rename
        locally; every S3 put is atomic). Staged transaction objects skip the rename: their folder is only trusted
        once the manifest exists."""
        target = self.path(key)
        if not self.local:
            self.fs.pipe_file(target, data)
            return
        parent = os.path.dirname(target)
        self._makedirs(parent)
        if not atomic:
            try:
                fh = open(target, "wb")  # noqa: SIM115
            except FileNotFoundError:  # the folder went away (removed tree): create it again
                self._dirs.discard(parent)
                self._makedirs(parent)
                fh = open(target, "wb")  # noqa: SIM115
            with fh:
                fh.write(data)
            return
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=parent)
        except FileNotFoundError:  # the folder went away: create it again
            self._dirs.discard(parent)
            self._makedirs(parent)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def place(self, staging: ObjectStore, src: str, dst: str) -> bool:
        """Put staged object ``src`` of ``staging`` over ``dst`` of this store, atomically for readers of ``dst``;
        False (and nothing done) when ``src`` does not exist. Local disk: a rename (the staged object is gone
        afterwards). Object stores: a server-side copy (the staged object stays until its folder is removed)."""
        if self.local:
            target = self.path(dst)
            self._makedirs(os.path.dirname(target))
            try:
                os.replace(staging.path(src), target)
            except FileNotFoundError:
                if not os.path.exists(staging.path(src)):
                    return False
                self._dirs.discard(os.path.dirname(target))  # the target folder went away
                self._makedirs(os.path.dirname(target))
                os.replace(staging.path(src), target)
            return True
        try:
            _copy_object(self.fs, staging.path(src), self.path(dst))
        except FileNotFoundError:
            return False
        return True

    def rename_tree(self, staging: ObjectStore, src: str) -> None:
        """Local disk only: rename folder ``src`` of ``staging`` to this store's root, atomically (the root must
        not exist, or be an empty folder)."""
        os.makedirs(os.path.dirname(self.root) or ".", exist_ok=True)
        os.rename(staging.path(src), self.root)
        self._dirs.clear()

    def delete_many(self, keys: list[str]) -> None:
        """Remove objects (one batched request per 1,000 on S3); missing ones are fine."""
        if self.local or len(keys) < 2:
            for key in keys:
                self.delete(key)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm([self.path(k) for k in keys])

    def delete(self, key: str) -> None:
        """Remove one object; missing is fine."""
        try:
            if self.local:
                os.unlink(self.path(key))
            else:
                self.fs.rm_file(self.path(key))
        except FileNotFoundError:
            pass

    def remove_tree(self, key: str) -> None:
        """Remove everything under ``key``; missing is fine."""
        prefix = self.path(key).rstrip("/")
        self._dirs = {d for d in self._dirs if d != prefix and not d.startswith(prefix + "/")}
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path(key), recursive=True)
        if self.local and os.path.isdir(self.path(key)):
            # fsspec may leave an empty folder behind on some versions.
            os.rmdir(self.path(key))

    def barrier(self) -> None:
        """Make every write and rename so far durable (local disk: one ``syncfs`` of the filesystem; every object
        put elsewhere is durable when it returns)."""
        if self.local and self.fsync:
            syncfs(self.root)


def _copy_object(fs: fsspec.AbstractFileSystem, src: str, dst: str) -> None:
    """One server-side copy; FileNotFoundError when ``src`` does not exist."""
    call = getattr(fs, "call_s3", None)
    if call is None or not hasattr(fs, "split_path"):
        if not fs.isfile(src):
            raise FileNotFoundError(src)
        fs.copy(src, dst)
        return
    sb, sk, _ = fs.split_path(src)
    db, dk, _ = fs.split_path(dst)
    call("copy_object", Bucket=db, Key=dk, CopySource={"Bucket": sb, "Key": sk})


def syncfs(path: str) -> None:
    """Flush the filesystem holding ``path`` (Linux ``syncfs``; ``os.sync`` elsewhere)."""
    import ctypes

    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    try:
        fd = os.open(probe or ".", os.O_RDONLY)
    except OSError:
        os.sync()
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if not hasattr(libc, "syncfs") or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)
