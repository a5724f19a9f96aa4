"""Run a :class:`~boxtune.engines.base.Runner` over a dataset and time it, image by image."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from boxtune.data.images import load_rgb_array
from boxtune.data.records import DetectionDataset, ImageRecord
from boxtune.detections import Detections
from boxtune.engines.base import Runner
from boxtune.errors import DatasetError, ModelError


def image_path(dataset: DetectionDataset, record: ImageRecord) -> Path:
    return Path(dataset.image_path(record))


def read_pixels(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB pixels of a dataset image, decoded as everywhere else in boxtune
    (:func:`boxtune.data.images.load_rgb_array`), as the runner expects them."""
    try:
        return load_rgb_array(path)
    except (OSError, SyntaxError, ValueError) as exc:  # ImageProblem is a ValueError
        raise DatasetError(
            f"cannot decode image ({exc})",
            where=str(path),
            hint="run `boxtune data validate` on the dataset and fix or remove the file",
        ) from exc


def _progress(items: list, enabled: bool, description: str) -> Iterator:
    if not enabled:
        return iter(items)
    from tqdm import tqdm

    return iter(tqdm(items, desc=description, unit="img", file=sys.stderr, leave=False))


def _predict_one(runner: Runner, pixels: np.ndarray, where: str) -> Detections:
    results = runner.predict([pixels])
    if len(results) != 1:
        raise ModelError(
            f"the runner returned {len(results)} results for 1 image",
            where=where,
            hint="Runner.predict must return one Detections per input image",
        )
    return results[0].sorted()


def predict_dataset(
    runner: Runner, dataset: DetectionDataset, *, progress: bool = True
) -> tuple[dict[int, Detections], dict[str, Any]]:
    """Detections per image id and the speed of the runner on this machine.

    One image per call (the latency a client of the HTTP endpoint sees, without the network);
    the first image is predicted once before timing starts, so that lazy initialisation and
    allocator warm-up do not count. Decoding is timed apart from the model.
    """
    records = list(dataset.images)
    predictions: dict[int, Detections] = {}
    latencies_ms: list[float] = []
    decode_ms: list[float] = []
    warmup_ms = None
    for index, record in enumerate(_progress(records, progress, "evaluating")):
        path = image_path(dataset, record)
        started = time.perf_counter()
        pixels = read_pixels(path)
        decode_ms.append((time.perf_counter() - started) * 1000)
        if index == 0:
            started = time.perf_counter()
            _predict_one(runner, pixels, str(path))
            warmup_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        predictions[int(record.id)] = _predict_one(runner, pixels, str(path))
        latencies_ms.append((time.perf_counter() - started) * 1000)
    return predictions, speed_summary(runner, latencies_ms, decode_ms, warmup_ms)


def speed_summary(
    runner: Runner, latencies_ms: list[float], decode_ms: list[float], warmup_ms: float | None
) -> dict[str, Any]:
    lat = np.asarray(latencies_ms, dtype=np.float64)
    total_s = lat.sum() / 1000
    return {
        "images": len(lat),
        "batch_size": 1,
        "mean_ms": float(lat.mean()) if lat.size else None,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
        "p95_ms": float(np.percentile(lat, 95)) if lat.size else None,
        "max_ms": float(lat.max()) if lat.size else None,
        "images_per_second": float(len(lat) / total_s) if total_s > 0 else None,
        "warmup_ms": warmup_ms,
        "decode_mean_ms": float(np.mean(decode_ms)) if decode_ms else None,
        "runner": type(runner).__name__,
        "backend": runner.backend,
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.system(),
        },
    }
