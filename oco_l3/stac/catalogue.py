"""The thin writer of the static catalogue: JSON objects on local disk or S3, links merged under a lock.

Layout (``<root>`` is the product's output root, a folder or ``s3://bucket/prefix``)::

    <root>/catalog.json                              root catalogue: one child link per collection
    <root>/stac/<collection>/collection.json          one collection per product (extent, providers)
    <root>/stac/<collection>/<f>/.../catalog.json     sub-catalogues (a target, a year, a grid)
    <root>/stac/<collection>/<f>/.../<item>.json      items

Links between catalogue files are relative (the tree can be copied or synced as a whole); asset hrefs are
relative for local files under the root and absolute otherwise (``s3://...`` on S3, or outside the root).

Writes: every object is written whole and atomically (temporary file + rename locally, one put on S3). One
:class:`CollectionSession` holds the collection's lock (``<root>/stac/<collection>.lock``, the stores'
:class:`~oco_l3.stores.StoreLock`: ``flock`` locally, a leased conditional put on S3) while it writes items and
then rewrites the sub-catalogues and the collection it changed, each read *under the lock*: two writers updating
one collection serialise, and each adds its links to what the other wrote, so no child is lost. The root catalogue
is changed (under its own lock, ``<root>/stac/catalog.lock``) only when a collection is new. Items are written before the links that point to
them, so a crash leaves at worst an item that no catalogue lists yet; the next session of that collection links it
(see :meth:`CollectionSession.ensure_linked`).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import fsspec
import numpy as np

from oco_l3.paths import check_component
from oco_l3.stac.items import CollectionSpec, catalog, collection, iso
from oco_l3.zarr_store._objectstore import ObjectStore, is_local

log = logging.getLogger(__name__)

ROOT_FILE = "catalog.json"
STAC_DIR = "stac"
ROOT_ID = "oco-l3"
ROOT_TITLE = "oco-l3 Level-3 products"
ROOT_DESCRIPTION = ("Level-3 products of oco-l3: OCO-2/OCO-3 target-focused and global gridded XCO2 and SIF, and "
                    "ICESat-2 daily polar grids, as Zarr stores and Cloud-Optimized GeoTIFFs.")
JSON_TYPE = "application/json"
GEOJSON_TYPE = "application/geo+json"
#: A catalogue session holds its lock for well under a second: on S3 a killed writer's lock expires after this.
LOCK_LEASE_S = 30.0
_STRUCTURAL = {"root", "parent", "collection", "self", "child", "item"}

Folder = tuple[str, ...]
#: (root catalogue URL, collection id) pairs this process has seen linked (links are never removed).
_LINKED: set[tuple[str, str]] = set()


def relative(target: str, start: str) -> str:
    """Relative href from the object ``start`` (a key) to the key ``target``."""
    rel = posixpath.relpath(target, posixpath.dirname(start) or ".")
    return rel if rel.startswith("../") else f"./{rel}"


def _link(rel: str, href: str, media: str, title: str | None = None) -> dict[str, Any]:
    link = {"rel": rel, "href": href, "type": media}
    if title:
        link["title"] = title
    return link


class Catalogue:
    """The catalogue at one output root."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/") or "/"
        self.local = is_local(fs)
        self.objects = ObjectStore(fs, self.root)

    # --- keys and hrefs -------------------------------------------------------------------------------------
    @staticmethod
    def collection_key(cid: str) -> str:
        return f"{STAC_DIR}/{cid}/collection.json"

    @staticmethod
    def folder_key(cid: str, folder: Folder) -> str:
        if not folder:
            return Catalogue.collection_key(cid)
        return "/".join((STAC_DIR, cid, *folder, "catalog.json"))

    @staticmethod
    def item_key(cid: str, folder: Folder, item_id: str) -> str:
        return "/".join((STAC_DIR, cid, *folder, f"{item_id}.json"))

    def url(self, key: str) -> str:
        return self.objects.path(key)

    def asset_href(self, target: str, from_key: str) -> str:
        """Href of an asset at ``target`` (a path or URL) from the catalogue object ``from_key``."""
        target = target.rstrip("/")
        root = self.root.rstrip("/")
        if self.local:  # store paths are joined with symlinks resolved (paths.safe_join)
            target, root = os.path.realpath(target), os.path.realpath(root)
        if self.local and target.startswith(root + "/"):
            return relative(target[len(root) + 1 :], from_key)
        return target

    # --- objects --------------------------------------------------------------------------------------------
    def read(self, key: str) -> dict[str, Any] | None:
        raw = self.objects.read(key)
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
        except ValueError:
            log.warning("Catalogue object %s is not JSON; it is rewritten", self.url(key))
            return None
        return doc if isinstance(doc, dict) else None

    def write(self, key: str, doc: Mapping[str, Any]) -> None:
        self.objects.write(key, (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode())

    def exists(self, key: str) -> bool:
        return self.objects.exists(key)

    @contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        from oco_l3.zarr_store import StoreLock

        with StoreLock(self.fs, self.url(name), lease=LOCK_LEASE_S):
            yield

    # --- sessions -------------------------------------------------------------------------------------------
    @contextmanager
    def session(self, spec: CollectionSpec) -> Iterator[CollectionSession]:
        """Hold the collection's lock; at the end write the changed catalogues and link the collection."""
        check_component(spec.id)
        with self._lock(f"{STAC_DIR}/{spec.id}"):
            s = CollectionSession(self, spec)
            yield s
            s.flush()
        self._link_collection(spec)

    def _link_collection(self, spec: CollectionSpec) -> None:
        if (self.url(ROOT_FILE), spec.id) in _LINKED:  # seen linked by this process: no read per session
            return
        href = relative(self.collection_key(spec.id), ROOT_FILE)
        doc = self.read(ROOT_FILE)
        if doc is not None and any(lk.get("href") == href for lk in doc.get("links", [])):
            _LINKED.add((self.url(ROOT_FILE), spec.id))
            return
        with self._lock(f"{STAC_DIR}/catalog"):
            doc = self.read(ROOT_FILE) or catalog(ROOT_ID, ROOT_TITLE, ROOT_DESCRIPTION)
            links = [lk for lk in doc.get("links", []) if lk.get("rel") not in ("root", "self")]
            if not any(lk.get("href") == href for lk in links):
                links.append(_link("child", href, JSON_TYPE, spec.title))
            doc["links"] = [_link("root", "./catalog.json", JSON_TYPE, ROOT_TITLE), *_sorted(links)]
            self.write(ROOT_FILE, doc)


def _sorted(links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {"child": 0, "item": 1}
    return sorted(links, key=lambda lk: (order.get(str(lk.get("rel")), 2), str(lk.get("href"))))


class CollectionSession:
    """Changes to one collection made while its lock is held (see the module docstring)."""

    def __init__(self, cat: Catalogue, spec: CollectionSpec) -> None:
        self.cat = cat
        self.spec = spec
        self._docs: dict[Folder, dict[str, Any]] = {}
        self._dirty: set[Folder] = set()
        self._extent: tuple[list[float], Any, Any] | None = None
        self.items_written = 0

    # --- reading --------------------------------------------------------------------------------------------
    def _folder_doc(self, folder: Folder) -> dict[str, Any]:
        if folder not in self._docs:
            self._docs[folder] = self.cat.read(Catalogue.folder_key(self.spec.id, folder)) or {}
        return self._docs[folder]

    def linked_items(self, folder: Folder) -> set[str]:
        """Ids of the items the folder's catalogue (or the collection, for ``()``) links to."""
        out = set()
        for link in self._folder_doc(folder).get("links", []):
            if link.get("rel") == "item":
                out.add(posixpath.basename(str(link["href"]))[: -len(".json")])
        return out

    def read_item(self, folder: Folder, item_id: str) -> dict[str, Any] | None:
        return self.cat.read(Catalogue.item_key(self.spec.id, folder, item_id))

    def item_exists(self, folder: Folder, item_id: str) -> bool:
        return self.cat.exists(Catalogue.item_key(self.spec.id, folder, item_id))

    # --- writing --------------------------------------------------------------------------------------------
    def put_item(self, folder: Folder, doc: dict[str, Any], *, keep_assets: bool = False) -> str:
        """Write the item ``doc`` (its structural links are set here) and link it; returns its key.

        ``keep_assets``: assets of the item being replaced that ``doc`` does not have are kept (a capture
        re-committed before its COGs are exported again keeps listing them)."""
        for part in (*folder, doc["id"]):
            check_component(part)
        key = Catalogue.item_key(self.spec.id, folder, doc["id"])
        if keep_assets:
            old = self.cat.read(key)
            if old is not None:
                doc["assets"] = {**old.get("assets", {}), **doc.get("assets", {})}
                doc["stac_extensions"] = sorted(set(old.get("stac_extensions", [])) | set(doc["stac_extensions"]))
        own = [lk for lk in doc.get("links", []) if lk.get("rel") not in _STRUCTURAL]
        doc["collection"] = self.spec.id
        doc["links"] = [
            _link("root", relative(ROOT_FILE, key), JSON_TYPE, ROOT_TITLE),
            _link("parent", relative(Catalogue.folder_key(self.spec.id, folder), key), JSON_TYPE),
            _link("collection", relative(Catalogue.collection_key(self.spec.id), key), JSON_TYPE, self.spec.title),
            *own,
        ]
        self.cat.write(key, doc)
        self.items_written += 1
        self.ensure_linked(folder, doc["id"])
        return key

    def ensure_linked(self, folder: Folder, item_id: str, title: str | None = None) -> None:
        """Link the item ``item_id`` (already written) from its folder, and the folder chain from the collection."""
        if item_id not in self.linked_items(folder):
            href = relative(Catalogue.item_key(self.spec.id, folder, item_id), Catalogue.folder_key(self.spec.id, folder))
            self._folder_doc(folder).setdefault("links", []).append(_link("item", href, GEOJSON_TYPE, title))
            self._dirty.add(folder)
        for depth in range(len(folder), 0, -1):
            self._ensure_child(folder[: depth - 1], folder[:depth])

    def _ensure_child(self, parent: Folder, child: Folder) -> None:
        pkey = Catalogue.folder_key(self.spec.id, parent)
        href = relative(Catalogue.folder_key(self.spec.id, child), pkey)
        doc = self._folder_doc(parent)
        if not any(lk.get("rel") == "child" and lk.get("href") == href for lk in doc.get("links", [])):
            doc.setdefault("links", []).append(_link("child", href, JSON_TYPE, child[-1]))
            self._dirty.add(parent)

    def extend(self, bbox: Sequence[float], start: np.datetime64 | None, end: np.datetime64 | None) -> None:
        """Grow the collection's extent to cover ``bbox`` and ``[start, end]``."""
        old = self._extent or self._stored_extent()
        b, s, e = old
        nb = list(bbox) if not b else [min(b[0], bbox[0]), min(b[1], bbox[1]), max(b[2], bbox[2]), max(b[3], bbox[3])]
        ns = iso(start) if start is not None else None
        ne = iso(end) if end is not None else None
        s = min(x for x in (s, ns) if x is not None) if (s or ns) else None
        e = max(x for x in (e, ne) if x is not None) if (e or ne) else None
        if (nb, s, e) != (old[0], old[1], old[2]) or self._extent is None:
            self._dirty.add(())
        self._extent = (nb, s, e)

    def _stored_extent(self) -> tuple[list[float], Any, Any]:
        ext = self._folder_doc(()).get("extent", {})
        try:
            return [float(v) for v in ext["spatial"]["bbox"][0]], *ext["temporal"]["interval"][0]
        except (KeyError, IndexError, TypeError, ValueError):
            return [], None, None

    # --- flushing -------------------------------------------------------------------------------------------
    def flush(self) -> None:
        for folder in sorted(self._dirty, key=len, reverse=True):  # deepest first: a parent never links a
            self._write_folder(folder)                             # catalogue that does not exist yet

    def _write_folder(self, folder: Folder) -> None:
        cid = self.spec.id
        key = Catalogue.folder_key(cid, folder)
        old = self._folder_doc(folder)
        links = [lk for lk in old.get("links", []) if lk.get("rel") in ("child", "item")
                 or lk.get("rel") not in _STRUCTURAL]
        if folder:
            doc = catalog("-".join((cid, *folder)), folder[-1], f"{self.spec.title}: {'/'.join(folder)}")
            parent = Catalogue.folder_key(cid, folder[:-1])
        else:
            bbox, start, end = self._extent or self._stored_extent()
            doc = collection(self.spec, bbox or [-180.0, -90.0, 180.0, 90.0], _t(start), _t(end))
            parent = ROOT_FILE
        doc["links"] = [_link("root", relative(ROOT_FILE, key), JSON_TYPE, ROOT_TITLE),
                        _link("parent", relative(parent, key), JSON_TYPE), *_sorted(links)]
        self.cat.write(key, doc)
        self._docs[folder] = doc


def _t(value: Any) -> np.datetime64 | None:
    return None if value is None else np.datetime64(str(value).rstrip("Z").replace("+00:00", ""), "us")
