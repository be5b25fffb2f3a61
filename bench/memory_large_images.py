"""Peak memory (RSS) of segmenting very large TIFFs, streamed (alnet_fast.wsi) and, where it fits, in memory.

    python bench/memory_large_images.py                       # 4096 x 4096, then 40000 x 25000
    python bench/memory_large_images.py --sizes 4096x4096 --dtype float32 --tile 512

Each input is a uint8 gray TIFF (tiles of 512, uncompressed) written tile by tile with tifffile, so its
generation holds one row of tiles at a time (the 40000 x 25000 one is 1 GB in --dir). Each measurement
runs in a fresh subprocess: load the bundled ``nuclei`` model, segment, report ``ru_maxrss`` (the peak
resident set of the whole process: Python, torch and the model included) and the time taken. Nothing
is asserted: results go to stdout as one JSON line per run (bench/results/ keeps recorded ones).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

TIFF_TILE = 512


def write_test_tiff(path: Path, height: int, width: int, seed: int = 0) -> Path:
    """A textured uint8 [height, width] TIFF (bright disks on a noisy background), written tile by tile."""
    import tifffile

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:TIFF_TILE, :TIFF_TILE]
    disks = [((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) for cy, cx, r in rng.integers(40, 470, (16, 3)) // (1, 1, 8)]

    def tiles():
        for ty in range(0, height, TIFF_TILE):
            for tx in range(0, width, TIFF_TILE):
                tile = rng.integers(20, 60, (TIFF_TILE, TIFF_TILE), dtype=np.uint8)
                for i, disk in enumerate(disks):
                    if (ty // TIFF_TILE + tx // TIFF_TILE + i) % 3 == 0:
                        tile[disk] = 200
                yield tile

    tifffile.imwrite(path, tiles(), shape=(height, width), dtype=np.uint8, tile=(TIFF_TILE, TIFF_TILE))
    return path


MEASURE = textwrap.dedent("""
    import json, resource, sys, time
    import torch
    import alnet_fast
    from alnet_fast.wsi import segment_tiff
    from alnet_fast.io import read_image
    path, out, mode, tile, dtype, backend = sys.argv[1:7]
    model = alnet_fast.load("nuclei", backend=backend, dtype=getattr(torch, dtype), batch_size=1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if mode == "streamed":
        segment_tiff(model, path, out, tile=int(tile))
    elif mode == "statistics":  # only the first pass of the streamed path: the scaling statistics' sample
        from alnet_fast.inputs import statistics_stride
        from alnet_fast.wsi import LazyTiff
        with LazyTiff(path) as image:
            stride = statistics_stride(1, image.height, image.width)
            image.read(slice(None, None, stride), slice(None, None, stride))
    else:
        model.segment(read_image(path), tile=int(tile))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_mb": round(peak / 1024), "model_loaded_rss_mb": round(before / 1024),
                      "seconds": round(seconds, 1), "backend": model.backend}))
""")


def measure(path: Path, mode: str, tile: int, dtype: str, backend: str, workdir: Path) -> dict:
    out = workdir / f"{path.stem}_{mode}_mask.tif"
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(out), mode, str(tile), dtype, backend],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["4096x4096", "40000x25000"], help="HEIGHTxWIDTH")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--modes", nargs="+", default=["streamed", "in_memory"], choices=("streamed", "in_memory"))
    parser.add_argument("--in-memory-max", type=int, default=4096 * 4096,
                        help="measure the in-memory path only for images of at most this many pixels")
    parser.add_argument("--statistics-only", action="store_true",
                        help="measure only the streamed path's statistics pass (a full run's first step)")
    parser.add_argument("--dir", type=Path, default=None, help="where the test TIFFs go (default: a temp dir)")
    args = parser.parse_args()
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="alnet_memory_"))
    workdir.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        height, width = map(int, size.lower().split("x"))
        path = workdir / f"gray_{height}x{width}.tif"
        if not path.exists():
            write_test_tiff(path, height, width)
        modes = [m for m in args.modes if m == "streamed" or height * width <= args.in_memory_max]
        modes = ["statistics"] if args.statistics_only else modes
        for mode in modes:
            row = {"size": size, "mode": mode, "tile": args.tile, "dtype": args.dtype,
                   **measure(path, mode, args.tile, args.dtype, args.backend, workdir)}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
