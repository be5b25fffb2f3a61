"""Fetch the real training data from the package registries only, and verify it by SHA-256.

  nuclei: stardist==0.9.2 wheel from PyPI (pip download, never imported):
          stardist/data/images/img2d.tif and mask2d.tif (DSB2018 / BBBC038 crop, CC0)
  brain:  Debian package mricron-data (apt-get download): usr/share/mricron/templates/ch2.nii.gz
          (T1 "colin27" template) and ch2bet.nii.gz (its skull-stripped brain), BSD-3

Usage: python scripts/fetch_data.py [--out data] [--only nuclei|brain]
Files land in OUT/nuclei/ and OUT/brain/; files already present with the right checksum are kept.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NUCLEI = {"img2d.tif": "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
          "mask2d.tif": "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f"}
BRAIN = {"ch2.nii.gz": "a009051127f64dc3dd554d5f5b589870ea72106d9642c21b4e7093e478cfc309",
         "ch2bet.nii.gz": "592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1"}
STARDIST = "stardist==0.9.2"
STARDIST_DIR = "stardist/data/images/"
MRICRON = "mricron-data"
MRICRON_DIR = "usr/share/mricron/templates/"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def present(out: Path, expected: dict[str, str]) -> bool:
    return all((out / name).is_file() and sha256(out / name) == digest for name, digest in expected.items())


def install_verified(source: Path, target: Path, digest: str) -> None:
    """Copy ``source`` to ``target`` only if its SHA-256 is ``digest`` (atomic: temp file + rename)."""
    actual = sha256(source)
    if actual != digest:
        raise SystemExit(f"checksum mismatch for {source.name}: expected {digest}, got {actual}; not installed")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    print(f"  {target} (sha256 ok)")


def run(cmd: list[str], cwd: Path) -> None:
    print("  $ " + " ".join(cmd))
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr.strip()}")


def fetch_nuclei(out: Path, work: Path) -> None:
    run([sys.executable, "-m", "pip", "download", STARDIST, "--no-deps", "--only-binary=:all:", "-d", str(work)],
        work)
    wheel = next(work.glob("stardist-0.9.2-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        for name, digest in NUCLEI.items():
            extracted = Path(zf.extract(STARDIST_DIR + name, work / "wheel"))
            install_verified(extracted, out / name, digest)


def fetch_brain(out: Path, work: Path) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise SystemExit("the brain data comes from Debian's mricron-data package: needs apt-get and dpkg-deb")
    run(["apt-get", "download", MRICRON], work)
    deb = next(work.glob("mricron-data_*.deb"))
    run(["dpkg-deb", "-x", str(deb), str(work / "deb")], work)
    for name, digest in BRAIN.items():
        install_verified(work / "deb" / MRICRON_DIR / name, out / name, digest)


FETCHERS = {"nuclei": (NUCLEI, fetch_nuclei), "brain": (BRAIN, fetch_brain)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data"), help="data directory (default: ./data)")
    parser.add_argument("--only", choices=sorted(FETCHERS), help="fetch one data set")
    args = parser.parse_args(argv)
    for name in [args.only] if args.only else sorted(FETCHERS):
        expected, fetch = FETCHERS[name]
        target = args.out / name
        if present(target, expected):
            print(f"{name}: already present and verified in {target}")
            continue
        print(f"{name}: fetching into {target}")
        with tempfile.TemporaryDirectory() as work:
            fetch(target, Path(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
