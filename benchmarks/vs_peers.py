"""boxtune's default model against peers, for the same wall-clock training budget.

One generated sample dataset is split once into training and validation folders; every
contender trains on the same training images for ``--budget`` seconds and is evaluated on the
same validation images with the same code (``boxtune.evaluate.evaluate_detections``):

(a) the default model through ``boxtune train`` (its default hyperparameters, with
    ``max_runtime_seconds`` = budget; per-epoch validation counts against its budget);
(b) a bare torchvision SSDLite320-MobileNetV3-Large loop (random init, AdamW, the same loader
    and augmentation, cosine decay over the budget; it turns the loader's numpy batches into
    torch tensors itself);
(c) YOLOv8n from its yaml (random init) through ultralytics, when ``ultralytics`` is importable
    (``YOLO_OFFLINE=1``, integrations off, its own ``time`` budget).

    .venv/bin/python benchmarks/vs_peers.py [--budget 600] [--images 200] [--size 320]

Prints one JSON object with mAP50 and mAP50-95 of each contender.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL_ID = "pytorch-od1-efficientdet-lite0-320"


# -- data ----------------------------------------------------------------------------------------
def prepare_data(root: Path, images: int, seed: int) -> tuple[Path, Path]:
    from boxtune.data import generate_sample_dataset, read_dataset, split_dataset, write_dataset

    full = generate_sample_dataset(root / "full", images=images, seed=seed)
    train, val = split_dataset(read_dataset(full), 0.2, seed)
    return write_dataset(root / "train", train), write_dataset(root / "val", val)


def evaluate(predictions: dict, val_dir: Path) -> dict:
    from boxtune.data import read_dataset
    from boxtune.evaluate import evaluate_detections

    val = read_dataset(val_dir)
    result = evaluate_detections(val, predictions, val.label_map, score_threshold=0.5)
    return {"map50": result.map50, "map50_95": result.map}


# -- (a) boxtune ---------------------------------------------------------------------------------
def run_boxtune(train_dir: Path, val_dir: Path, out: Path, budget: float, size: int) -> dict:
    command = [
        sys.executable,
        "-m",
        "boxtune.cli",
        "train",
        "--model-id",
        MODEL_ID,
        "--training",
        str(train_dir),
        "--validation",
        str(val_dir),
        "--output",
        str(out),
        "--quiet",
        "--hp",
        "epochs=10000",
        "--hp",
        f"max_runtime_seconds={budget}",
        "--hp",
        f"image_size={size}",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    import numpy as np
    from PIL import Image

    from boxtune.artifacts import load_artifact
    from boxtune.data import read_dataset
    from boxtune.engines import get_engine

    # The exported artifact, as a user would load it; the runner answers in original pixels.
    artifact = load_artifact(out)
    runner = get_engine(artifact.engine).load_runner(artifact, backend="torch")
    val = read_dataset(val_dir)
    predictions = {}
    for record in val.images:
        image = np.asarray(Image.open(val.image_path(record)).convert("RGB"))
        predictions[record.id] = runner.predict([image])[0]
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        **evaluate(predictions, val_dir),
        "epochs": metrics["epochs_completed"],
        "best_epoch": metrics["best_epoch"],
        "train_wall_seconds": round(metrics["training"]["seconds"], 1),
        "process_wall_seconds": round(wall, 1),
    }


# -- (b) bare SSDLite ----------------------------------------------------------------------------
def run_ssdlite(train_dir: Path, val_dir: Path, budget: float, size: int, batch: int) -> dict:
    import numpy as np
    import torch
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    from boxtune.data import AugmentConfig, make_loader, read_dataset
    from boxtune.detections import Detections
    from boxtune.train.validation import to_original_pixels

    def to_float_images(images: np.ndarray) -> list[torch.Tensor]:
        """uint8 numpy [B, S, S, 3] -> float [3, S, S] tensors in [0, 1], one per image."""
        batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        return [image.float() / 255.0 for image in batch]

    torch.manual_seed(0)
    train = read_dataset(train_dir)
    label_map = train.label_map
    model = ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=len(label_map) + 1
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = make_loader(
        train, label_map, size, batch, augment=AugmentConfig(), shuffle=True, num_workers=0, seed=0
    )
    started = time.perf_counter()
    steps = epochs = 0
    while time.perf_counter() - started < budget:
        loader.set_epoch(epochs)
        model.train()
        for images, targets in loader:
            elapsed = time.perf_counter() - started
            if elapsed >= budget:
                break
            for group in optimizer.param_groups:  # cosine over the budget
                group["lr"] = 1e-3 * (
                    0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
                )
            inputs = to_float_images(images)
            tv_targets = [
                {
                    "boxes": torch.from_numpy(t["boxes"]),
                    "labels": torch.from_numpy(t["labels"]) + 1,
                }
                for t in targets
            ]
            losses = model(inputs, tv_targets)
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            steps += 1
        epochs += 1
    train_seconds = time.perf_counter() - started

    model.eval()
    val = read_dataset(val_dir)
    val_loader = make_loader(val, label_map, size, batch, augment=None, shuffle=False)
    predictions = {}
    with torch.no_grad():
        for images, targets in val_loader:
            outputs = model(to_float_images(images))
            for target, output in zip(targets, outputs, strict=True):
                found = (
                    Detections(
                        output["boxes"].numpy().astype(np.float32),
                        (output["labels"].numpy() - 1).astype(np.int64),
                        output["scores"].numpy().astype(np.float32),
                    )
                    .sorted()
                    .top(100)
                )
                predictions[int(target["image_id"])] = to_original_pixels(
                    found, size, target["orig_size"]
                )
    return {
        **evaluate(predictions, val_dir),
        "steps": steps,
        "epochs": epochs,
        "train_wall_seconds": round(train_seconds, 1),
    }


# -- (c) YOLOv8n ---------------------------------------------------------------------------------
def _yolo_layout(source: Path, target: Path, label_map) -> Path:
    """images/ + labels/*.txt (class cx cy w h, normalised) for ultralytics."""
    from boxtune.data import read_dataset

    dataset = read_dataset(source)
    (target / "images").mkdir(parents=True)
    (target / "labels").mkdir(parents=True)
    for record in dataset.images:
        image = dataset.image_path(record)
        (target / "images" / record.file_name).symlink_to(image)
        lines = []
        for ann in dataset.boxes_for(record.id):
            x0, y0, x1, y1 = ann.bbox
            lines.append(
                f"{label_map.index_of(ann.category_id)} {(x0 + x1) / 2 / record.width:.6f} "
                f"{(y0 + y1) / 2 / record.height:.6f} {(x1 - x0) / record.width:.6f} "
                f"{(y1 - y0) / record.height:.6f}"
            )
        stem = Path(record.file_name).stem
        (target / "labels" / f"{stem}.txt").write_text("\n".join(lines) + "\n" if lines else "")
    return target / "images"


def run_yolo(
    train_dir: Path, val_dir: Path, work: Path, budget: float, size: int, batch: int
) -> dict:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        return {"skipped": "ultralytics is not installed"}
    import numpy as np
    from ultralytics import YOLO, settings
    from ultralytics.utils import LOGGER

    for handler in LOGGER.handlers:  # its log lines go to stdout, where our JSON goes
        if hasattr(handler, "setStream"):
            handler.setStream(sys.stderr)

    from boxtune.data import read_dataset
    from boxtune.detections import Detections

    settings.update(
        {
            key: False
            for key in settings
            if key
            in (
                "sync",
                "clearml",
                "comet",
                "dvc",
                "hub",
                "mlflow",
                "neptune",
                "raytune",
                "tensorboard",
                "wandb",
            )
        }
    )
    label_map = read_dataset(train_dir).label_map
    train_images = _yolo_layout(train_dir, work / "yolo" / "train", label_map)
    val_images = _yolo_layout(val_dir, work / "yolo" / "val", label_map)
    data_yaml = work / "yolo" / "data.yaml"
    data_yaml.write_text(
        json.dumps(
            {
                "train": str(train_images),
                "val": str(val_images),
                "names": dict(enumerate(label_map.names)),
            }
        )
    )
    model = YOLO("yolov8n.yaml")
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # its progress output would break our JSON
        model.train(
            data=str(data_yaml),
            epochs=10000,
            time=budget / 3600,
            imgsz=size,
            batch=batch,
            device="cpu",
            workers=0,
            pretrained=False,
            amp=False,
            plots=False,
            val=False,
            project=str(work / "yolo-runs"),
            name="run",
            exist_ok=True,
            verbose=False,
            seed=0,
        )
    train_seconds = time.perf_counter() - started
    val = read_dataset(val_dir)
    predictions = {}
    for record in val.images:
        result = model.predict(
            str(val.image_path(record)),
            imgsz=size,
            conf=0.001,
            max_det=100,
            device="cpu",
            verbose=False,
        )[0]
        boxes = result.boxes
        predictions[record.id] = Detections(
            boxes.xyxy.numpy().astype(np.float32),
            boxes.cls.numpy().astype(np.int64),
            boxes.conf.numpy().astype(np.float32),
        ).sorted()
    return {**evaluate(predictions, val_dir), "train_wall_seconds": round(train_seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per contender")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", choices=("boxtune", "ssdlite", "yolov8n"))
    args = parser.parse_args()
    chosen = args.only or ["boxtune", "ssdlite", "yolov8n"]

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="boxtune-vs-peers-") as tmp:
        work = Path(tmp)
        train_dir, val_dir = prepare_data(work, args.images, args.seed)
        if "boxtune" in chosen:
            results["boxtune_" + MODEL_ID] = run_boxtune(
                train_dir, val_dir, work / "boxtune", args.budget, args.size
            )
        if "ssdlite" in chosen:
            results["torchvision_ssdlite320_mobilenet_v3_large"] = run_ssdlite(
                train_dir, val_dir, args.budget, args.size, args.batch
            )
        if "yolov8n" in chosen:
            results["ultralytics_yolov8n"] = run_yolo(
                train_dir, val_dir, work, args.budget, args.size, args.batch
            )
    scored = {k: v for k, v in results.items() if v.get("map50") is not None}
    print(
        json.dumps(
            {
                "benchmark": "vs_peers",
                "budget_seconds": args.budget,
                "images": args.images,
                "image_size": args.size,
                "cpu_count": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
                "results": results,
                "best_map50": max(scored, key=lambda k: scored[k]["map50"]) if scored else None,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
