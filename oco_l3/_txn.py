"""Crash-safe commits of a set of object writes/deletes into one store folder.

Protocol (see docs/architecture.md, "Store commits"):

1. The writer works on an :class:`Overlay`: reads go lazily to the real store, writes and deletes stay in memory.
2. :func:`commit` stages every written object under ``<store>/.oco-l3-txn/<txid>/data/<key>`` (on local disk
   as one flat folder, ``<key>`` percent-quoted, which saves creating and removing a folder per array; the
   manifest records ``"layout": "flat"``).
3. It then writes ``<store>/.oco-l3-txn/<txid>/manifest.json`` -- the commit point. Without a manifest the
   transaction never happened (its folder is discarded); with one it is replayed to the end.
4. :func:`apply` moves staged data objects into place, applies deletes, then moves metadata objects
   (``.zarray``, ``.zattrs``, ``.zgroup``, ``.zmetadata`` -- the root ``.zmetadata`` very last), removes the
   manifest and the transaction folder. A staged object that is gone was already moved, so replay is idempotent.

Callers must hold the store lock around :func:`commit` and :func:`recover`: recovery discards folders without a
manifest, which would destroy a concurrent writer's staging.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from oco_l3._objectstore import ObjectStore

log = logging.getLogger(__name__)

TXN_DIR = ".oco-l3-txn"
MANIFEST = "manifest.json"
_METADATA_NAMES = (".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json")

#: Test hook: called with a point name ("staged", "manifest", "apply:<i>", "applied") during commit/apply.
#: Raising from it simulates a crash at that point.
FAULT_HOOK: Callable[[str], None] | None = None


def _fault(point: str) -> None:
    if FAULT_HOOK is not None:
        FAULT_HOOK(point)


def is_metadata_key(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in _METADATA_NAMES


def apply_order(keys: list[str]) -> list[str]:
    """Data objects first, then metadata, consolidated metadata after that, the root ``.zmetadata`` last."""

    def rank(key: str) -> tuple[int, int, str]:
        if not is_metadata_key(key):
            return (0, 0, key)
        if key == ".zmetadata":
            return (3, 0, key)
        if key.endswith(".zmetadata"):
            return (2, 0, key)
        return (1, -key.count("/"), key)

    return sorted(keys, key=rank)


class Overlay:
    """The store as one transaction sees it: reads go lazily to ``store``, writes and deletes stay in memory.

    There is no listing on purpose: a whole-store listing would make a write cost grow with the store.
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.writes: dict[str, bytes] = {}
        self.deletes: set[str] = set()
        self._cache: dict[str, bytes | None] = {}
        self._meta: dict[str, Any] | None = None
        self.reads = 0
        self.committed: tuple[int, int] = (0, 0)
        #: Size of every object the last commit wrote, for a read-back check.
        self.committed_sizes: dict[str, int] = {}
        #: The transaction id, chosen by the first :meth:`stage` (else by :func:`commit`).
        self.txid: str | None = None
        self._staged: dict[str, bytes] = {}
        self._manifest_written = False

    def preload(self, docs: dict[str, Any]) -> None:
        """Serve metadata keys from consolidated metadata ``docs`` (saves one read per key on S3)."""
        self._meta = docs

    def original(self, key: str) -> bytes | None:
        """The bytes of ``key`` in the store before this transaction."""
        if key not in self._cache:
            if self._meta is not None and is_metadata_key(key) and not key.endswith(".zmetadata"):
                doc = self._meta.get(key)
                self._cache[key] = None if doc is None else json.dumps(doc, indent=2).encode()
            else:
                self.reads += 1
                self._cache[key] = self.store.read(key)
        return self._cache[key]

    def raw(self, key: str) -> bytes | None:
        """Current bytes of ``key`` as this transaction sees them (None when absent)."""
        if key in self.writes:
            return self.writes[key]
        if key in self.deletes:
            return None
        return self.original(key)

    def put(self, key: str, data: bytes) -> None:
        self.writes[key] = data
        self.deletes.discard(key)

    def stage(self, key: str, data: bytes) -> None:
        """:meth:`put`, and write the object to the transaction folder right away (so the writer's I/O overlaps
        its other work; :func:`commit` does not write it again). Harmless before the manifest exists."""
        self.put(key, data)
        if self.txid is None:
            self.txid = new_txid()
        self.store.write(staged_key(f"{TXN_DIR}/{self.txid}", key, _layout(self.store)), data, atomic=False)
        self._staged[key] = data

    def discard(self) -> None:
        """Remove what :meth:`stage` wrote when the transaction is abandoned before its commit point."""
        if self.txid is None or self._manifest_written:
            return
        self.store.remove_tree(f"{TXN_DIR}/{self.txid}")
        if not self.store.list_dir(TXN_DIR):
            self.store.remove_tree(TXN_DIR)
        self.txid = None
        self._staged.clear()

    def drop(self, key: str) -> None:
        """Delete ``key`` (recorded without checking existence: a check would cost a read)."""
        self.writes.pop(key, None)
        self.deletes.add(key)

    def changed(self) -> dict[str, bytes]:
        """Writes that differ from what the store holds (metadata compared as JSON)."""
        out = {}
        for key, value in self.writes.items():
            before = self.original(key) if key in self._cache or is_metadata_key(key) else None
            if before is None:
                out[key] = value
            elif is_metadata_key(key):
                if json.loads(before) != json.loads(value):
                    out[key] = value
            elif before != value:
                out[key] = value
        return out


def staged_key(base: str, key: str, layout: str) -> str:
    """Where ``key`` is staged in transaction folder ``base`` (``flat``: one folder, the key quoted)."""
    return f"{base}/data/{quote(key, safe='')}" if layout == "flat" else f"{base}/data/{key}"


def _layout(store: ObjectStore) -> str:
    return "flat" if store.local else "nested"


def new_txid() -> str:
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"


def commit(store: ObjectStore, overlay: Overlay) -> str | None:
    """Stage, mark committed and apply the overlay's changes. Returns the txid (None when nothing changed)."""
    writes = overlay.changed()
    if not writes and not overlay.deletes:
        overlay.discard()
        return None
    txid = overlay.txid or new_txid()
    base = f"{TXN_DIR}/{txid}"
    puts = apply_order(list(writes))
    layout = _layout(store)
    for key in puts:
        if overlay._staged.get(key) is not writes[key]:
            store.write(staged_key(base, key, layout), writes[key], atomic=False)
    _fault("staged")
    manifest = {"version": 1, "txid": txid, "layout": layout, "puts": puts, "deletes": sorted(overlay.deletes)}
    store.barrier()  # the staged objects are durable before the commit point exists
    overlay._manifest_written = True
    store.write(f"{base}/{MANIFEST}", json.dumps(manifest).encode())
    store.barrier()  # the commit point itself is durable before anything is applied
    _fault("manifest")
    apply(store, txid, manifest)
    if not store.list_dir(TXN_DIR):
        store.remove_tree(TXN_DIR)
    overlay.committed = (len(puts), len(overlay.deletes))
    overlay.committed_sizes = {key: len(writes[key]) for key in puts}
    return txid


def apply(store: ObjectStore, txid: str, manifest: dict) -> None:
    """Move a committed transaction's objects into place (idempotent) and remove its folder."""
    base = f"{TXN_DIR}/{txid}"
    layout = str(manifest.get("layout", "nested"))
    puts: list[str] = list(manifest["puts"])
    data = [k for k in puts if not is_metadata_key(k)]
    meta = [k for k in puts if is_metadata_key(k)]
    step = 0
    for key in data:
        store.move(staged_key(base, key, layout), key)
        step += 1
        _fault(f"apply:{step}")
    for key in manifest.get("deletes", []):
        store.delete(key)
    _fault("deleted")
    for key in meta:
        store.move(staged_key(base, key, layout), key)
        step += 1
        _fault(f"apply:{step}")
    store.barrier()  # every move is durable before the manifest that would replay it goes away
    _fault("applied")
    store.delete(f"{base}/{MANIFEST}")
    store.remove_tree(base)


def recover(store: ObjectStore) -> tuple[int, int]:
    """Replay committed transactions, discard uncommitted ones. Returns (replayed, discarded)."""
    replayed = discarded = 0
    names = store.list_dir(TXN_DIR)
    for txid in sorted(n for n in names if not n.startswith(".")):
        raw = store.read(f"{TXN_DIR}/{txid}/{MANIFEST}")
        manifest = _parse_manifest(raw)
        if manifest is None:
            log.warning("Discarding uncommitted transaction %s in %s", txid, store.root)
            store.remove_tree(f"{TXN_DIR}/{txid}")
            discarded += 1
            continue
        log.warning("Replaying committed transaction %s in %s", txid, store.root)
        apply(store, txid, manifest)
        replayed += 1
    if names:
        store.remove_tree(TXN_DIR)
    return replayed, discarded


def _parse_manifest(raw: bytes | None) -> dict[str, Any] | None:
    """The manifest, or None when absent or incomplete (a torn manifest means the commit point was not reached:
    it is written atomically on every filesystem we support, so this is defence in depth)."""
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("puts"), list):
        return None
    return doc


def pending(store: ObjectStore) -> bool:
    """True when a transaction folder exists (something to recover, or a writer at work)."""
    return bool(store.list_dir(TXN_DIR))
