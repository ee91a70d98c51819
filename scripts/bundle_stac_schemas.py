"""Rebuild tests/data/stac-schemas/ (the offline STAC schemas of the catalogue tests) from PyPI source packages.

The STAC core v1.1.0 and GeoJSON schemas are shipped by ``pystac-core`` (``pystac/validation/jsonschemas``); the
extension schemas (datacube v2.2.0, projection v2.0.0, raster v1.1.0, processing v1.0.0) and the PROJJSON schema the projection
schema refers to are the recorded HTTP responses (VCR cassettes) in the test folders of the ``pystac-ext-*``
source packages. Usage (needs the registry, nothing else)::

    pip download --no-binary :all: --no-deps -d /tmp/sd pystac-core==1.15.2 pystac-ext-datacube==2.2.1 \
        pystac-ext-projection==2.0.1 pystac-ext-raster==1.1.1
    python scripts/bundle_stac_schemas.py /tmp/sd tests/data/stac-schemas
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import yaml

CORE = "https://schemas.stacspec.org/v1.1.0"
CORE_FILES = {
    "item": "item-spec", "catalog": "catalog-spec", "collection": "collection-spec", "bands": "item-spec",
    "basics": "item-spec", "common": "item-spec", "data-values": "item-spec", "datetime": "item-spec",
    "instrument": "item-spec", "licensing": "item-spec", "provider": "item-spec",
}
WANTED = (
    "https://stac-extensions.github.io/datacube/v2.2.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.0.0/schema.json",
    "https://proj.org/schemas/v0.7/projjson.schema.json",
    "https://proj.org/schemas/v0.4/projjson.schema.json",
)
#: Recorded redirects: the body is stored under the URI the schemas refer to.
REDIRECTED = {f"https://proj.org/en/latest/schemas/{v}/projjson.schema.json":
              f"https://proj.org/schemas/{v}/projjson.schema.json" for v in ("v0.4", "v0.7")}


def _out_path(out: Path, uri: str) -> Path:
    return out / uri.removeprefix("https://")


def _save(out: Path, uri: str, text: str) -> None:
    json.loads(text)  # must be JSON
    path = _out_path(out, uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")
    print(f"{uri} -> {path}")


def main(sdists: Path, out: Path) -> None:
    found: dict[str, str] = {}
    for archive in sorted(sdists.glob("*.tar.gz")):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = member.name
                fh = tar.extractfile(member) if member.isfile() else None
                if fh is None:
                    continue
                if "/pystac/validation/jsonschemas/" in name and name.endswith(".json"):
                    stem = Path(name).stem
                    if "/geojson/" in name:
                        found[f"https://geojson.org/schema/{stem}.json"] = fh.read().decode()
                    elif stem in CORE_FILES:
                        found[f"{CORE}/{CORE_FILES[stem]}/json-schema/{stem}.json"] = fh.read().decode()
                elif "/cassettes/" in name and name.endswith(".yaml"):
                    for interaction in yaml.safe_load(fh.read()).get("interactions", []):
                        uri = interaction["request"]["uri"]
                        uri = REDIRECTED.get(uri, uri)
                        if uri in WANTED and interaction["response"]["status"]["code"] == 200:
                            found.setdefault(uri, interaction["response"]["body"]["string"])
    missing = [u for u in (*WANTED, *(f"{CORE}/{d}/json-schema/{s}.json" for s, d in CORE_FILES.items()))
               if u not in found]
    if missing:
        sys.exit(f"not found in {sdists}: {missing}")
    for uri, text in sorted(found.items()):
        _save(out, uri, text)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
