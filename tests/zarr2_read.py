"""Run by the zarr 2.x environment's python (tests/services/zarr2.py), never imported by the test suite.

    python zarr2_read.py REQUEST.json OUT_DIR

REQUEST: ``{"stores": [path, ...]}``. Opens every store with ``zarr.open_consolidated`` (what xarray and SDAP do),
saves every array of every group as ``OUT_DIR/<store index>/<n>.npy`` and prints one JSON document:
``{"zarr": version, "stores": [{"groups": [...], "arrays": {path: {"file", "dtype", "shape", "fill_value",
"dims"}}}]}``.
"""

import json
import sys
from pathlib import Path

import numpy as np
import zarr


def read_store(path, out):
    root = zarr.open_consolidated(path, mode="r")
    found = {"groups": [], "arrays": {}}

    def visit(name, node):
        if isinstance(node, zarr.Array):
            file = out / f"{len(found['arrays'])}.npy"
            np.save(file, node[...])
            fill = node.fill_value
            found["arrays"][name] = {
                "file": str(file), "dtype": node.dtype.str, "shape": list(node.shape),
                "fill_value": None if fill is None else (float(fill) if node.dtype.kind == "f" else int(fill)),
                "dims": node.attrs.get("_ARRAY_DIMENSIONS"),
            }
        else:
            found["groups"].append(name)

    root.visititems(visit)
    return found


def main():
    request = json.loads(Path(sys.argv[1]).read_text())
    base = Path(sys.argv[2])
    stores = []
    for i, path in enumerate(request["stores"]):
        out = base / str(i)
        out.mkdir(parents=True, exist_ok=True)
        stores.append(read_store(path, out))
    print(json.dumps({"zarr": zarr.__version__, "stores": stores}, allow_nan=True))


if __name__ == "__main__":
    main()
