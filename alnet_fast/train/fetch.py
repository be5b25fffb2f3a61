"""Fetch the real training data from the package registries only, and verify it by SHA-256.

  nuclei: stardist==0.9.2 wheel from PyPI (``pip download``, never imported):
          stardist/data/images/img2d.tif and mask2d.tif (DSB2018 / BBBC038 crop, CC0)
  brain:  Debian package mricron-data (``apt-get download``): usr/share/mricron/templates/ch2.nii.gz
          (T1 "colin27" template) and ch2bet.nii.gz (its skull-stripped brain), BSD-3

Files land in ROOT/nuclei/ and ROOT/brain/ (ROOT: ``default_data_dir()``); files already present with
the right checksum are kept. Run it as ``alnet-fast fetch-data``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from ..atomic import atomic_path

NUCLEI = {"img2d.tif": "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
          "mask2d.tif": "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f"}
BRAIN = {"ch2.nii.gz": "a009051127f64dc3dd554d5f5b589870ea72106d9642c21b4e7093e478cfc309",
         "ch2bet.nii.gz": "592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1"}
STARDIST = "stardist==0.9.2"
STARDIST_DIR = "stardist/data/images/"
MRICRON = "mricron-data"
MRICRON_DIR = "usr/share/mricron/templates/"


def default_data_dir() -> Path:
    """``$ALNET_DATA`` if set, else ``$XDG_CACHE_HOME/alnet_fast/data`` (``~/.cache/alnet_fast/data``)."""
    if os.environ.get("ALNET_DATA"):
        return Path(os.environ["ALNET_DATA"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "alnet_fast" / "data"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def present(folder: Path, expected: dict[str, str]) -> bool:
    """Whether every file of ``expected`` (name -> SHA-256) is in ``folder`` with its checksum."""
    return all((folder / name).is_file() and sha256(folder / name) == digest for name, digest in expected.items())


def install_verified(source: Path, target: Path, digest: str) -> None:
    """Copy ``source`` to ``target`` (atomically) only if its SHA-256 is ``digest``; ValueError otherwise."""
    actual = sha256(source)
    if actual != digest:
        raise ValueError(f"checksum mismatch for {source.name}: expected {digest}, got {actual}; not installed")
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    print(f"  {target} (sha256 ok)")


def _run(cmd: list[str], cwd: Path) -> None:
    print("  $ " + " ".join(cmd))
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"command failed ({result.returncode}): {' '.join(cmd)}: {result.stderr.strip()}")


def fetch_nuclei(folder: Path, work: Path) -> None:
    _run([sys.executable, "-m", "pip", "download", STARDIST, "--no-deps", "--only-binary=:all:", "-d", str(work)],
         work)
    wheel = next(work.glob("stardist-0.9.2-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        for name, digest in NUCLEI.items():
            install_verified(Path(zf.extract(STARDIST_DIR + name, work / "wheel")), folder / name, digest)


def fetch_brain(folder: Path, work: Path) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise RuntimeError("the brain data comes from Debian's mricron-data package: needs apt-get and dpkg-deb")
    _run(["apt-get", "download", MRICRON], work)
    deb = next(work.glob("mricron-data_*.deb"))
    _run(["dpkg-deb", "-x", str(deb), str(work / "deb")], work)
    for name, digest in BRAIN.items():
        install_verified(work / "deb" / MRICRON_DIR / name, folder / name, digest)


FETCHERS: dict[str, tuple[dict[str, str], Callable[[Path, Path], None]]] = {
    "nuclei": (NUCLEI, fetch_nuclei), "brain": (BRAIN, fetch_brain)}


def fetch(names: list[str], root: str | os.PathLike | None = None) -> Path:
    """Download and verify the data sets ``names`` into ``root`` (default ``default_data_dir()``); -> root."""
    root = Path(root) if root is not None else default_data_dir()
    unknown = sorted(set(names) - set(FETCHERS))
    if unknown:
        raise ValueError(f"unknown data set(s) {unknown}; known: {sorted(FETCHERS)}")
    for name in names:
        expected, fetcher = FETCHERS[name]
        folder = root / name
        if present(folder, expected):
            print(f"{name}: already present and verified in {folder}")
            continue
        print(f"{name}: fetching into {folder}")
        with tempfile.TemporaryDirectory() as work:
            fetcher(folder, Path(work))
    return root
