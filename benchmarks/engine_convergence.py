"""How fast the default model learns, in optimizer steps and in seconds, on the sample dataset.

Trains the default model (EfficientNet-Lite0 ImageNet backbone, or ``--init random``) with a
bare loop over ``boxtune.data`` loaders: Adam, linear warm-up, batch 8, 320 px, and evaluates
COCO mAP / mAP50 on a held-out split every ``--eval-every`` steps. Prints JSON.

    .venv/bin/python benchmarks/engine_convergence.py --steps 300 --eval-every 50
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from boxtune.catalog import DEFAULT_MODEL_ID, get_spec
from boxtune.data import generate_sample_dataset, make_loader, read_dataset, split_dataset
from boxtune.data.augment import PRESETS
from boxtune.engines import get_engine
from boxtune.evaluate.coco import CocoInput, compute_coco_metrics
from boxtune.train.hyperparameters import Hyperparameters, parse_hyperparameters


def adam_settings(lr: float) -> Hyperparameters:
    """Adam at ``lr`` with the managed algorithm's defaults for every other option."""
    return parse_hyperparameters(None, {"optimizer": "adam", "learning_rate": lr})


def evaluate(detector, loader) -> dict:
    ids, sizes, gt_ids, gt_boxes, gt_cls, d_ids, d_boxes, d_cls, d_scores = ([] for _ in range(9))
    for images, targets in loader:
        for target, det in zip(targets, detector.predict_batch(images), strict=True):
            image_id = int(target["image_id"])
            ids.append(image_id)
            sizes.append((images.shape[2], images.shape[1]))  # (width, height) of [B, S, S, 3]
            gt_ids += [image_id] * len(target["labels"])
            gt_boxes.append(np.asarray(target["boxes"]).reshape(-1, 4))
            gt_cls.append(np.asarray(target["labels"]))
            d_ids += [image_id] * len(det)
            d_boxes.append(det.boxes)
            d_cls.append(det.classes)
            d_scores.append(det.scores)
    metrics = compute_coco_metrics(
        CocoInput(
            image_ids=ids,
            image_sizes=sizes,
            gt_image_ids=np.array(gt_ids),
            gt_boxes=np.concatenate(gt_boxes),
            gt_classes=np.concatenate(gt_cls),
            det_image_ids=np.array(d_ids),
            det_boxes=np.concatenate(d_boxes),
            det_classes=np.concatenate(d_cls),
            det_scores=np.concatenate(d_scores),
            category_ids=list(detector.label_map.category_ids),
        )
    )
    return {"mAP": metrics.summary.get("map"), "mAP50": metrics.summary.get("map50")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--budget-s", type=float, default=None, help="stop after this many s")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--init", default="pretrained", choices=["pretrained", "random"])
    parser.add_argument("--augment", default="standard")
    parser.add_argument("--data", default=None, help="dataset dir (generated if missing)")
    args = parser.parse_args()

    torch.manual_seed(0)
    data_dir = Path(args.data or Path(tempfile.gettempdir()) / f"boxtune-sample-{args.images}")
    if not (data_dir / "annotations.json").is_file():
        generate_sample_dataset(data_dir, images=args.images, seed=0)
    dataset = read_dataset(data_dir)
    train, val = split_dataset(dataset, 0.2, seed=0)
    label_map = dataset.label_map
    augment = PRESETS.get(args.augment) if args.augment != "off" else None
    train_loader = make_loader(
        train, label_map, 320, args.batch_size, augment=augment, shuffle=True, drop_last=True
    )
    val_loader = make_loader(val, label_map, 320, 16)
    detector = get_engine("torch").create(get_spec(DEFAULT_MODEL_ID), label_map, init=args.init)
    detector.set_trainable(False)
    detector.configure_optimizer(adam_settings(args.lr))

    curve, step, train_s = [], 0, 0.0
    start = time.perf_counter()
    while step < args.steps and (args.budget_s is None or train_s < args.budget_s):
        for images, targets in train_loader:
            detector.set_learning_rate(args.lr * min(1.0, (step + 1) / max(args.warmup, 1)))
            t0 = time.perf_counter()
            values = detector.train_step(images, targets)
            train_s += time.perf_counter() - t0
            step += 1
            if step % args.eval_every == 0 or step == args.steps:
                point = {"step": step, "train_s": round(train_s, 1), "loss": values["loss"]}
                point.update(evaluate(detector, val_loader))
                curve.append(point)
                print(json.dumps(point), flush=True)
            if step >= args.steps or (args.budget_s is not None and train_s >= args.budget_s):
                break
    result = {
        "init": args.init,
        "steps": step,
        "s_per_step": round(train_s / max(step, 1), 3),
        "wall_s": round(time.perf_counter() - start, 1),
        "curve": curve,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
