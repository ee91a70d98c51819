"""Offline validation of a whole STAC catalogue against the bundled schemas (tests/data/stac-schemas/README.md).

:func:`validate_catalogue` walks the catalogue from its root ``catalog.json`` through every ``child`` and ``item``
link (on any fsspec filesystem), checks each object against the STAC core schema of its type and the schema of
every extension it declares, and checks the tree itself: every link target exists, every item's ``parent`` lists
it, no item id appears twice in a collection. A ``$ref`` to a schema that is not bundled fails (nothing is fetched).
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

SCHEMAS = Path(__file__).parent / "data" / "stac-schemas"
CORE = {"Catalog": "https://schemas.stacspec.org/v1.1.0/catalog-spec/json-schema/catalog.json",
        "Collection": "https://schemas.stacspec.org/v1.1.0/collection-spec/json-schema/collection.json",
        "Feature": "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"}


def _retrieve(uri: str) -> Resource:
    if uri.startswith(("http://json-schema.org/", "https://json-schema.org/")):  # JSON Schema's own meta-schemas
        from jsonschema_specifications import REGISTRY as META

        return META.get_or_retrieve(uri.rstrip("#")).value  # type: ignore[no-any-return]
    path = SCHEMAS / uri.split("://", 1)[-1].split("#")[0]
    if not path.is_file():
        raise NoSuchResource(ref=uri)
    return Resource.from_contents(json.loads(path.read_text()))


def registry() -> Registry:
    return Registry(retrieve=_retrieve)  # type: ignore[call-arg]


def bundled(uri: str) -> bool:
    return (SCHEMAS / uri.split("://", 1)[-1]).is_file()


def schema_errors(doc: dict[str, Any], reg: Registry | None = None) -> list[str]:
    """Every schema error of one STAC object (core + its extensions), as ``schema: path: message`` lines."""
    reg = reg or registry()
    uris = [CORE[doc.get("type", "")]] if doc.get("type") in CORE else []
    if not uris:
        return [f"unknown STAC type {doc.get('type')!r}"]
    errors = []
    for uri in uris + list(doc.get("stac_extensions", [])):
        if not bundled(uri):
            errors.append(f"{uri}: schema not bundled")
            continue
        schema = reg.get_or_retrieve(uri).value.contents
        for err in Draft7Validator(schema, registry=reg).iter_errors(doc):
            errors.append(f"{uri}: {'/'.join(map(str, err.absolute_path))}: {err.message[:200]}")
    return errors


@dataclass
class Walk:
    """What :func:`validate_catalogue` saw: every object by URL, and the problems found."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {url: doc for url, doc in self.objects.items() if doc.get("type") == kind}

    @property
    def items(self) -> dict[str, dict[str, Any]]:
        return self.of_type("Feature")


def _join(base: str, href: str) -> str:
    if "://" in href or href.startswith("/"):
        return href
    scheme, sep, path = base.rpartition("://")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), href))
    return f"{scheme}{sep}{joined}" if sep else joined


def validate_catalogue(fs: fsspec.AbstractFileSystem, root_catalog: str) -> Walk:
    """Walk and validate the catalogue whose root is ``root_catalog`` (see the module docstring)."""
    reg = registry()
    walk = Walk()
    todo = [root_catalog]
    while todo:
        url = todo.pop()
        if url in walk.objects:
            walk.problems.append(f"{url}: linked twice")
            continue
        if not fs.exists(url):
            walk.problems.append(f"{url}: linked but missing")
            continue
        doc = json.loads(fs.cat_file(url))
        walk.objects[url] = doc
        walk.problems += [f"{url}: {e}" for e in schema_errors(doc, reg)]
        for link in doc.get("links", []):
            target = _join(url, link["href"])
            if link["rel"] in ("child", "item"):
                todo.append(target)
            elif link["rel"] in ("root", "parent", "collection") and not fs.exists(target):
                walk.problems.append(f"{url}: {link['rel']} link to missing {target}")
    for url, doc in walk.items.items():
        parent = next(_join(url, lk["href"]) for lk in doc["links"] if lk["rel"] == "parent")
        listed = {_join(parent, lk["href"]) for lk in walk.objects.get(parent, {}).get("links", [])
                  if lk["rel"] == "item"}
        if url not in listed:
            walk.problems.append(f"{url}: not listed by its parent {parent}")
    ids = Counter((doc.get("collection"), doc["id"]) for doc in walk.items.values())
    walk.problems += [f"item {key} appears {n} times" for key, n in ids.items() if n > 1]
    return walk
