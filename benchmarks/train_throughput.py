"""Training throughput of `boxtune train` against a bare torch loop on the same model and data.

Both run as separate processes, one after the other, in the same invocation: the boxtune CLI
(``boxtune train``; images/s from its ``metrics.jsonl``, training steps only, data loading
included, validation excluded) and a bare loop (the engine's network with the same frozen
pretrained blocks, the same loader, ``torch.optim.Adam`` and gradient clipping, nothing else;
it turns the loader's numpy batches into torch tensors itself, as a bare torch user would).
The first epoch fills the image cache and warms up kernels, so images/s compare the later
epochs. Peak RSS of every boxtune epoch is printed to show that memory does not grow.

This 2-core VM's speed drifts by 10-20 % within minutes, so one bare-then-boxtune pair can
mislead; ``--repeats N`` alternates the two N times (bare, boxtune, bare, ...) and reports the
median of each side's rates (the per-epoch lists are those of the last pair).

    .venv/bin/python benchmarks/train_throughput.py [--images 64] [--epochs 4] [--size 320]
        [--repeats 1]

Prints one JSON object; ``ratio`` = boxtune images/s / bare images/s (must be >= 0.95).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL_ID = "pytorch-od1-efficientdet-lite0-320"


def bare_loop(dataset: Path, epochs: int, size: int, batch: int, lr: float) -> dict:
    """The same network, loader and optimizer as boxtune's defaults, with no trainer around."""
    import dataclasses
    import resource

    import torch

    from boxtune.catalog import get_spec, resolve_weights
    from boxtune.data import AugmentConfig, make_loader, read_dataset, split_dataset
    from boxtune.engines.torch.architecture import TorchArchitecture, build_network

    torch.manual_seed(0)
    train_part, _ = split_dataset(read_dataset(dataset), 0.2, 0)
    spec = dataclasses.replace(get_spec(MODEL_ID), image_size=size)
    arch = TorchArchitecture(
        name=spec.architecture,
        image_size=size,
        num_classes=len(train_part.label_map),
        pretrained_freezing=True,
    )
    net = build_network(arch, backbone_weights=resolve_weights(spec))
    # The same model as boxtune's full fine-tuning: its pretrained stem and first blocks stay
    # frozen (weights and batch-norm statistics), so both sides do the same work per step.
    frozen = list(net.frozen_modules())
    for module in frozen:
        module.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-7)
    loader = make_loader(
        train_part,
        train_part.label_map,
        size,
        batch,
        augment=AugmentConfig(),
        shuffle=True,
        num_workers=0,
        seed=0,
    )
    per_epoch = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        net.train()
        for module in frozen:
            module.eval()
        images_seen = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for images, targets in loader:
            # numpy [B, S, S, 3] uint8 -> torch [B, 3, S, S] uint8 view, as the engine converts
            # it (a permuted view: the convolutions then run channels-last on both sides).
            tensors = torch.from_numpy(images).permute(0, 3, 1, 2)
            torch_targets = [
                {
                    "boxes": torch.from_numpy(t["boxes"]),
                    "labels": torch.from_numpy(t["labels"]),
                }
                for t in targets
            ]
            losses = net.losses(tensors, torch_targets)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            images_seen += len(targets)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        per_epoch.append(
            {
                "epoch": epoch,
                "images_per_second": images_seen / seconds,
                "images_per_cpu_second": images_seen / cpu_seconds,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    return {"epochs": per_epoch}


def boxtune_train(dataset: Path, output: Path, epochs: int, size: int, batch: int) -> dict:
    command = [
        sys.executable,
        "-m",
        "boxtune.cli",
        "train",
        "--model-id",
        MODEL_ID,
        "--training",
        str(dataset),
        "--output",
        str(output),
        "--quiet",
        "--hp",
        f"epochs={epochs}",
        "--hp",
        f"image_size={size}",
        "--hp",
        f"batch_size={batch}",
        "--hp",
        "num_workers=0",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"boxtune train failed:\n{done.stdout}\n{done.stderr}")
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return {
        "wall_seconds": round(wall, 1),
        "epochs": [
            {
                "epoch": r["epoch"],
                "images_per_second": r["samples_per_second"],
                "images_per_cpu_second": r["images"] / max(r["train_cpu_seconds"], 1e-9),
                "peak_rss_mb": r["peak_rss_mb"],
                "rss_mb": r["rss_mb"],
                "validation_seconds": r["validation_seconds"],
            }
            for r in records
        ],
    }


def steady(epochs: list[dict], key: str = "images_per_second") -> float:
    """Median rate over the epochs after the first (cache fill, kernel warm-up)."""
    rates = [e[key] for e in epochs[1:]] or [epochs[0][key]]
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1, help="alternating bare/boxtune pairs")
    parser.add_argument("--bare-only", metavar="DATASET", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.bare_only:  # the child process of the bare measurement
        result = bare_loop(Path(args.bare_only), args.epochs, args.size, args.batch, 1e-3)
        print(json.dumps(result))
        return

    from boxtune.data import generate_sample_dataset

    with tempfile.TemporaryDirectory(prefix="boxtune-throughput-") as tmp:
        dataset = generate_sample_dataset(Path(tmp) / "data", images=args.images, seed=0)
        child = [
            sys.executable,
            __file__,
            "--bare-only",
            str(dataset),
            "--epochs",
            str(args.epochs),
            "--size",
            str(args.size),
            "--batch",
            str(args.batch),
        ]
        bares, boxtunes = [], []
        for repeat in range(max(1, args.repeats)):
            done = subprocess.run(child, capture_output=True, text=True, check=True)
            bares.append(json.loads(done.stdout.strip().splitlines()[-1]))
            output = Path(tmp) / f"out-{repeat}"
            boxtunes.append(boxtune_train(dataset, output, args.epochs, args.size, args.batch))
    bare, boxtune = bares[-1], boxtunes[-1]

    def rate(runs: list[dict], key: str = "images_per_second") -> float:
        return statistics.median(steady(run["epochs"], key) for run in runs)

    boxtune_rate, bare_rate = rate(boxtunes), rate(bares)
    # Per CPU-second of the training process: on a shared machine other jobs change wall-clock
    # rates from one phase to the next, CPU time much less.
    key = "images_per_cpu_second"
    boxtune_cpu_rate, bare_cpu_rate = rate(boxtunes, key), rate(bares, key)
    peaks = [e["peak_rss_mb"] for e in boxtune["epochs"]]
    result = {
        "benchmark": "train_throughput",
        "model_id": MODEL_ID,
        "images": args.images,
        "image_size": args.size,
        "batch_size": args.batch,
        "epochs": args.epochs,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "boxtune_images_per_second": round(boxtune_rate, 3),
        "bare_images_per_second": round(bare_rate, 3),
        "ratio": round(boxtune_rate / bare_rate, 3),
        "ratio_ok": boxtune_rate / bare_rate >= 0.95,
        "boxtune_images_per_cpu_second": round(boxtune_cpu_rate, 3),
        "bare_images_per_cpu_second": round(bare_cpu_rate, 3),
        "cpu_ratio": round(boxtune_cpu_rate / bare_cpu_rate, 3),
        "cpu_ratio_ok": boxtune_cpu_rate / bare_cpu_rate >= 0.95,
        "boxtune_peak_rss_mb_per_epoch": peaks,
        # Growth after the warm-up epoch (epoch 0 fills the cache and the allocator).
        "rss_growth_mb_after_epoch_1": round(max(peaks[1:]) - peaks[1], 1)
        if len(peaks) > 1
        else None,
        "boxtune_wall_seconds": boxtune["wall_seconds"],
        "boxtune_epochs": boxtune["epochs"],
        "bare_epochs": bare["epochs"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
