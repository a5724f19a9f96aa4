"""Images/s of boxtune's training loader vs a bare PIL decode + resize loop, same images, same run.

    .venv/bin/python benchmarks/loader_throughput.py [--images 200] [--size 320] [--dataset DIR]

Prints JSON. The loader runs with augmentation on (crop/zoom, flip, colour); "cold" is the
first epoch (decode + resize + augment), "warm" a later epoch (decoded images come from the
in-memory cache, augmentation still runs). Both sides end with uint8 HxWx3 numpy arrays, as the
loader's batches are.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from boxtune.data import AugmentConfig, generate_sample_dataset, make_loader, read_dataset


def bare_pil_loop(paths: list[Path], size: int) -> float:
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
        array.copy()  # the loader copies each image into its batch
    return len(paths) / (time.perf_counter() - start)


def loader_epochs(dataset, size: int, batch_size: int, workers: int, epochs: int) -> list[float]:
    loader = make_loader(
        dataset,
        dataset.label_map,
        size,
        batch_size,
        augment=AugmentConfig(),
        shuffle=True,
        num_workers=workers,
        seed=0,
    )
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        seen = sum(images.shape[0] for images, _ in loader)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dataset", default=None, help="use this dataset instead of a sample")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.dataset or generate_sample_dataset(Path(tmp) / "ds", images=args.images)
        dataset = read_dataset(root, decode_images=False)
        paths = [dataset.image_path(r) for r in dataset.images]
        bare_pil_loop(paths[:10], args.size)  # warm the page cache for both sides
        bare = bare_pil_loop(paths, args.size)
        single = loader_epochs(dataset, args.size, args.batch_size, 0, 2)
        workers = min(args.workers, os.cpu_count() or 1)
        multi = loader_epochs(dataset, args.size, args.batch_size, workers, 2) if workers else []
    result = {
        "benchmark": "loader_throughput",
        "images": len(paths),
        "image_size": args.size,
        "batch_size": args.batch_size,
        "cpu_count": os.cpu_count(),
        "bare_pil_decode_resize_images_per_s": round(bare, 1),
        "boxtune_loader_augmented_cold_images_per_s": round(single[0], 1),
        "boxtune_loader_augmented_warm_images_per_s": round(single[1], 1),
        "ratio_cold_vs_bare": round(single[0] / bare, 2),
        "ratio_warm_vs_bare": round(single[1] / bare, 2),
    }
    if multi:
        result[f"boxtune_loader_{workers}_workers_warm_images_per_s"] = round(multi[1], 1)
        result[f"ratio_{workers}_workers_warm_vs_bare"] = round(multi[1] / bare, 2)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
