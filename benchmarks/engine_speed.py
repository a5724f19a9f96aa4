"""Speed of the default model on this CPU, next to a bare torchvision SSDLite320 in the same run.

Prints JSON: train s/step (batch 8, 320 px; full fine-tuning and head only), inference
ms/image with torch and onnxruntime (batch 1 and 8), parameter counts.

    .venv/bin/python benchmarks/engine_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
import torchvision

from boxtune.catalog import DEFAULT_MODEL_ID, get_spec
from boxtune.engines import get_engine
from boxtune.labels import LabelMap
from boxtune.train.hyperparameters import Hyperparameters, parse_hyperparameters

BATCH, SIZE = 8, 320
LABELS = LabelMap.from_categories({1: "a", 2: "b", 3: "c", 4: "d"})


def _batch(seed: int):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), dtype=torch.uint8, generator=gen)
    targets = []
    for _ in range(BATCH):
        xy = torch.rand(3, 2, generator=gen) * 200
        wh = 20 + torch.rand(3, 2, generator=gen) * 100
        targets.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.tensor([0, 1, 2])})
    return images, targets


def _numpy_batch(seed: int):
    """The same batch as the loader gives it: uint8 numpy [B, S, S, 3], numpy targets."""
    images, targets = _batch(seed)
    return images.permute(0, 2, 3, 1).contiguous().numpy(), [
        {"boxes": t["boxes"].numpy(), "labels": t["labels"].numpy()} for t in targets
    ]


def _adam(lr: float) -> Hyperparameters:
    """Adam at ``lr`` with the managed algorithm's defaults for every other option."""
    return parse_hyperparameters(None, {"optimizer": "adam", "learning_rate": lr})


def _median_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_ssdlite_step():
    """A bare torchvision SSDLite320 training step (random init, AdamW), as a callable."""
    model = torchvision.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=len(LABELS) + 1
    )
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images, targets = _batch(0)
    float_images = [im.float() / 255 for im in images]
    tv_targets = [{"boxes": t["boxes"], "labels": t["labels"] + 1} for t in targets]

    def step():
        losses = model(float_images, tv_targets)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()

    return step


def interleaved_medians(fns: dict, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Alternate the candidates step by step, so that load from other processes on a shared
    machine hits them alike; median seconds per call of each."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    engine = get_engine("torch")
    detector = engine.create(get_spec(DEFAULT_MODEL_ID), LABELS)
    images, targets = _numpy_batch(1)
    result: dict = {"torch_threads": torch.get_num_threads()}
    result["params_m"] = round(detector.num_parameters() / 1e6, 3)

    full = engine.create(get_spec(DEFAULT_MODEL_ID), LABELS)
    full.configure_optimizer(_adam(1e-4))
    detector.set_trainable(True)
    detector.configure_optimizer(_adam(1e-4))
    medians = interleaved_medians(
        {
            "train_s_per_step": lambda: full.train_step(images, targets),
            "train_s_per_step_head_only": lambda: detector.train_step(images, targets),
            "bare_ssdlite320_train_s_per_step": bare_ssdlite_step(),
        },
        args.repeats,
    )
    result.update({k: round(v, 3) for k, v in medians.items()})
    result["trainable_params_m_head_only"] = round(detector.num_parameters(True) / 1e6, 3)
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(BATCH)]
    for backend in ("torch", "onnxruntime"):
        runner = detector.runner(backend)
        for batch in (1, BATCH):
            seconds = _median_time(lambda r=runner, b=batch: r.predict(photos[:b]), args.repeats)
            result[f"infer_ms_per_image_{backend}_batch{batch}"] = round(1000 * seconds / batch, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
