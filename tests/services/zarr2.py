"""Fixture module: zarr2 -- a separate small virtual environment with a reader of the zarr 2.x line (Apache SDAP
runs zarr 2), created once under ``.services/zarr2`` by the test setup and reused after.

``zarr2_python`` (session) yields the path of that environment's python. The pins are :data:`PINS`; changing them
rebuilds the environment. It needs the package registry once (as ``make test`` does anyway).
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

#: The zarr 2.x reader: the last zarr 2 release with a numcodecs it supports, and our numpy.
PINS = ("zarr==2.18.7", "numcodecs==0.15.1", "numpy==2.4.6")
ROOT = Path(__file__).resolve().parents[2]
ENV = ROOT / ".services" / "zarr2"


def _ready(python: Path, stamp: Path) -> bool:
    return python.exists() and stamp.exists() and stamp.read_text() == " ".join(PINS)


def ensure_zarr2_env() -> Path:
    """The python of the zarr 2 environment, created (or rebuilt after a change of :data:`PINS`) when needed."""
    python, stamp = ENV / "bin" / "python", ENV / ".installed"
    ENV.parent.mkdir(parents=True, exist_ok=True)
    with open(ENV.parent / ".zarr2.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions at once build it once
        if _ready(python, stamp):
            return python
        shutil.rmtree(ENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(ENV)], check=True, capture_output=True, timeout=120)
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"could not install {' '.join(PINS)} into {ENV}: {proc.stderr[-2000:]}")
        stamp.write_text(" ".join(PINS))
    return python


@pytest.fixture(scope="session")
def zarr2_python() -> Iterator[str]:
    yield str(ensure_zarr2_env())
