"""Crash-safe commits of a set of object writes/deletes into one store folder.

Protocol (see docs/architecture.md, "Store commits", and docs/guarantees.md):

1. The writer works on an :class:`Overlay`: reads go lazily to the real store, writes and deletes stay in memory;
   chunk objects are staged while they are encoded.
2. Staging lives BESIDE the store, in ``<parent>/.<name>.oco-l3-txn/<txid>/`` (so nothing but committed Zarr
   objects is ever under the store path). Local disk, existing store: one flat folder ``data/`` (keys
   percent-quoted, saves a folder per array). Local disk, first commit: the whole store in final layout under
   ``tree/``. Object stores: ``data/<key>``.
3. First commit on local disk: one barrier, then ``tree/`` is RENAMED to the store path -- the commit point and
   the apply in one atomic step: the store path appears only once it holds the whole committed store.
4. Every other commit writes ``manifest.json`` -- the commit point -- after a barrier. Without a manifest the
   transaction never happened (its folder is discarded); with one it is replayed to the end.
5. :func:`apply` places staged objects into the store in the manifest's order: data objects that readers of the
   old metadata cannot see (beyond the old time axis, or rows of a chunk they do not read) first, then data they
   can see, then deletes, then array/group metadata, group ``.zmetadata``, the root ``.zmetadata``, new groups'
   ``.zgroup`` and the root ``.zgroup`` very last (it exists only from the first commit on, so on S3 a plain
   reader sees no store until the first commit is complete). Zarr v3: array ``zarr.json``, then group ``zarr.json``
   (each holds its subtree's consolidated metadata), the root ``zarr.json`` (marker and consolidated metadata in
   one) very last. Then the manifest and the folder are removed.
   Replay is idempotent: a staged object that is gone was already moved (local); on S3 copies are repeated.

Transactions of older versions, staged inside the store (``<store>/.oco-l3-txn/``), are recovered the same way.

Callers must hold the store lock around :func:`commit` and :func:`recover`: recovery discards folders without a
manifest, which would destroy a concurrent writer's staging.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from oco_l3.zarr_store._objectstore import ObjectStore

log = logging.getLogger(__name__)

#: Legacy staging folder inside the store (older versions); still recovered.
TXN_DIR = ".oco-l3-txn"
MANIFEST = "manifest.json"
_METADATA_NAMES = (".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json")

#: Test hook: called with a point name ("staged", "manifest", "apply:<i>", "deleted", "applied", "renamed")
#: during commit/apply. Raising from it simulates a crash at that point.
FAULT_HOOK: Callable[[str], None] | None = None


def _fault(point: str) -> None:
    if FAULT_HOOK is not None:
        FAULT_HOOK(point)


def is_metadata_key(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in _METADATA_NAMES


def staging_home(store: ObjectStore) -> ObjectStore:
    """The folder beside the store that holds its transactions: ``<parent>/.<name>.oco-l3-txn``."""
    parent, _, name = store.root.rpartition("/")
    return ObjectStore(store.fs, f"{parent}/.{name}{TXN_DIR}", fsync=store.fsync)


def legacy_home(store: ObjectStore) -> ObjectStore:
    return ObjectStore(store.fs, store.path(TXN_DIR), fsync=store.fsync)


def apply_order(keys: Iterable[str], visible: Iterable[str] = (), groups: Iterable[str] = ()) -> list[str]:
    """Hidden data, visible data (visible time-coordinate chunks last of them), array/group metadata (deepest
    first), group ``.zmetadata``, root ``.zmetadata``, group ``.zgroup``, root ``.zgroup`` last. ``visible``: data
    keys whose change readers of the old metadata see. Zarr v3: ``groups`` are the group ``zarr.json`` keys (they
    carry consolidated metadata, so they go after the arrays' ``zarr.json``); the root ``zarr.json`` is last."""
    shown = set(visible)
    group_docs = set(groups)

    def rank(key: str) -> tuple[int, int, str]:
        name = key.rsplit("/", 1)[-1]
        if not is_metadata_key(key):
            if key not in shown:
                return (0, 0, key)
            return (2 if key.rsplit("/", 2)[-2] == "time" else 1, 0, key)  # visible time labels last
        if key in (".zgroup", "zarr.json"):
            return (8, 0, key)
        if name == "zarr.json" and key in group_docs:
            return (5, -key.count("/"), key)
        if name == ".zgroup":
            return (7, 0, key)
        if key == ".zmetadata":
            return (6, 0, key)
        if name == ".zmetadata":
            return (5, 0, key)
        return (4, -key.count("/"), key)

    return sorted(keys, key=rank)


class Overlay:
    """The store as one transaction sees it: reads go lazily to ``store``, writes and deletes stay in memory.

    There is no listing of the store on purpose: a whole-store listing would make a write cost grow with the store.
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.home = staging_home(store)
        self.writes: dict[str, bytes] = {}
        self.deletes: set[str] = set()
        #: Data keys whose change is visible to readers of the store's current metadata (applied after the rest).
        self.visible: set[str] = set()
        #: True when the store does not exist yet (set by the writer before anything is staged).
        self.creating = False
        self._cache: dict[str, bytes | None] = {}
        self._meta: dict[str, Any] | None = None
        self._live: set[str] = set()
        #: Group metadata documents this transaction writes (their place in the apply order depends on it).
        self.group_keys: set[str] = set()
        self.reads = 0
        self.committed: tuple[int, int] = (0, 0)
        #: Size of every object the last commit wrote, for a read-back check.
        self.committed_sizes: dict[str, int] = {}
        #: The transaction id, chosen by the first :meth:`stage` (else by :func:`commit`).
        self.txid: str | None = None
        self._staged: dict[str, bytes] = {}
        self._manifest_written = False

    @property
    def layout(self) -> str:
        """How objects are staged: ``tree`` (local first commit), ``flat`` (local) or ``nested`` (object stores)."""
        if not self.store.local:
            return "nested"
        return "tree" if self.creating else "flat"

    def preload(self, docs: dict[str, Any], live: set[str] | None = None) -> None:
        """Serve metadata keys from consolidated metadata ``docs`` (saves one read per key on S3), except ``live``
        keys, whose stored bytes hold more than their document in ``docs`` (v3 groups: consolidated metadata)."""
        self._meta = docs
        self._live = set(live or ())

    def original(self, key: str) -> bytes | None:
        """The bytes of ``key`` in the store before this transaction."""
        if key not in self._cache:
            if self._meta is not None and is_metadata_key(key) and not key.endswith(".zmetadata") \
                    and key not in self._live:
                doc = self._meta.get(key)
                self._cache[key] = None if doc is None else json.dumps(doc, indent=2).encode()
            else:
                self.reads += 1
                self._cache[key] = self.store.read(key)
        return self._cache[key]

    def known_absent(self, key: str) -> bool:
        """True when ``key`` was read and found missing (no request made here)."""
        return key in self._cache and self._cache[key] is None

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
        its other work; :func:`commit` does not write it again). Harmless before the commit point."""
        self.put(key, data)
        if self.txid is None:
            self.txid = new_txid()
        self.home.write(staged_key(self.txid, key, self.layout), data, atomic=False)
        self._staged[key] = data

    def discard(self) -> None:
        """Remove what :meth:`stage` wrote when the transaction is abandoned before its commit point."""
        if self.txid is None or self._manifest_written:
            return
        self.home.remove_tree(self.txid)
        _remove_if_empty(self.home)
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


def staged_key(txid: str, key: str, layout: str) -> str:
    """Where ``key`` is staged in transaction ``txid`` (``flat``: one folder, the key quoted)."""
    if layout == "flat":
        return f"{txid}/data/{quote(key, safe='')}"
    if layout == "tree":
        return f"{txid}/tree/{key}"
    return f"{txid}/data/{key}"


def new_txid() -> str:
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"


def _remove_if_empty(home: ObjectStore) -> None:
    """Remove the transaction folder when nothing is left in it (object stores have no empty folders)."""
    if home.local:
        with contextlib.suppress(OSError):
            os.rmdir(home.root)


def commit(store: ObjectStore, overlay: Overlay, guard: Callable[[], None] | None = None) -> str | None:
    """Stage, mark committed and apply the overlay's changes. Returns the txid (None when nothing changed).

    ``guard`` is called right before the commit point and before the metadata is applied; it raises when the
    writer may no longer write (a lost S3 lease), so a writer that lost its lock never reaches its commit point.
    """
    writes = overlay.changed()
    if not writes and not overlay.deletes:
        overlay.discard()
        return None
    txid = overlay.txid or new_txid()
    overlay.txid = txid
    layout = overlay.layout
    puts = apply_order(writes, overlay.visible, overlay.group_keys)
    for key in puts:
        if overlay._staged.get(key) is not writes[key]:
            overlay.home.write(staged_key(txid, key, layout), writes[key], atomic=False)
    _fault("staged")
    if guard is not None:
        guard()
    overlay.home.barrier()  # the staged objects are durable before the commit point exists
    if layout == "tree":
        _create_by_rename(store, overlay, txid)
    else:
        manifest = {"version": 2, "txid": txid, "layout": layout, "puts": puts,
                    "deletes": sorted(overlay.deletes)}
        overlay._manifest_written = True
        overlay.home.write(f"{txid}/{MANIFEST}", json.dumps(manifest).encode())
        overlay.home.barrier()  # the commit point itself is durable before anything is applied
        _fault("manifest")
        apply(store, overlay.home, txid, manifest, guard)
    _remove_if_empty(overlay.home)
    overlay.committed = (len(puts), len(overlay.deletes))
    overlay.committed_sizes = {key: len(writes[key]) for key in puts}
    return txid


def _create_by_rename(store: ObjectStore, overlay: Overlay, txid: str) -> None:
    """First commit on local disk: the staged tree becomes the store in one rename (the commit point)."""
    overlay._manifest_written = True  # from here on the staging is the store: never discard it
    try:
        store.rename_tree(overlay.home, f"{txid}/tree")
    except OSError:
        overlay._manifest_written = False
        raise
    _fault("renamed")
    store.barrier()
    overlay.home.remove_tree(txid)


def apply(store: ObjectStore, home: ObjectStore, txid: str, manifest: dict,
          guard: Callable[[], None] | None = None) -> None:
    """Put a committed transaction's objects into place (idempotent) and remove its folder."""
    layout = str(manifest.get("layout", "nested"))
    puts: list[str] = list(manifest["puts"])
    data = [k for k in puts if not is_metadata_key(k)]
    meta = [k for k in puts if is_metadata_key(k)]
    step = 0
    for key in data:
        store.place(home, staged_key(txid, key, layout), key)
        step += 1
        _fault(f"apply:{step}")
    store.delete_many(list(manifest.get("deletes", [])))
    _fault("deleted")
    if guard is not None:
        guard()
    for key in meta:
        store.place(home, staged_key(txid, key, layout), key)
        step += 1
        _fault(f"apply:{step}")
    store.barrier()  # every move is durable before the manifest that would replay it goes away
    _fault("applied")
    home.delete(f"{txid}/{MANIFEST}")
    home.remove_tree(txid)


def recover(store: ObjectStore) -> tuple[int, int]:
    """Replay committed transactions, discard uncommitted ones. Returns (replayed, discarded)."""
    replayed = discarded = 0
    for home in (legacy_home(store), staging_home(store)):
        names = home.list_dir("")
        for txid in sorted(n for n in names if not n.startswith(".")):
            manifest = _parse_manifest(home.read(f"{txid}/{MANIFEST}"))
            if manifest is None:
                log.warning("Discarding uncommitted transaction %s of %s", txid, store.root)
                home.remove_tree(txid)
                discarded += 1
                continue
            log.warning("Replaying committed transaction %s of %s", txid, store.root)
            apply(store, home, txid, manifest)
            replayed += 1
        if names:
            home.remove_tree("")
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
    return bool(legacy_home(store).list_dir("")) or bool(staging_home(store).list_dir(""))
