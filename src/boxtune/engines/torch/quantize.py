"""The default model's int8 twin (``model.int8.onnx``): calibrated on the user's images and
checked against the fp32 model before it is accepted. Needs ONNX Runtime and numpy, no torch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from boxtune.artifacts import Artifact
from boxtune.detections import Detections
from boxtune.engines.base import QuantizedModel
from boxtune.engines.quantize import METHOD, quantize_static_int8
from boxtune.engines.torch import INT8_BACKEND
from boxtune.engines.torch.onnx_runner import (
    INPUT_NAME,
    INT8_ONNX_FILE,
    ONNX_FILE,
    OnnxRunner,
    resize_batch,
)
from boxtune.errors import ModelError
from boxtune.evaluate.matching import box_iou

# What the check calls a confident fp32 detection, and what it takes to reproduce it.
CONFIDENT_SCORE = 0.3
MATCH_IOU = 0.5
MIN_AGREEMENT = 0.9  # share of confident fp32 detections the int8 model must reproduce


def quantize_artifact(
    artifact: Artifact, images: Sequence[np.ndarray], directory: Path
) -> QuantizedModel:
    """``model.int8.onnx`` for ``artifact``, written in ``directory``, with its check."""
    float_model = artifact.optional_file(ONNX_FILE)
    if float_model is None:
        raise ModelError(
            f"{artifact.model_id} artifacts hold no {ONNX_FILE}, so there is nothing to quantize",
            where=str(artifact.directory),
            hint="int8 export covers the default model (EfficientDet-Lite0, "
            "pytorch-od1-efficientdet-lite0-320); serve this one with --backend torch",
        )
    batch, _ = resize_batch(images, artifact.image_size)
    feeds = [{INPUT_NAME: batch[i : i + 1].astype(np.float32)} for i in range(len(batch))]
    target = Path(directory) / INT8_ONNX_FILE
    quantize_static_int8(float_model, target, feeds)
    fp32 = OnnxRunner(float_model, artifact.image_size, artifact.label_map)
    int8 = OnnxRunner(target, artifact.image_size, artifact.label_map, backend=INT8_BACKEND)
    check = agreement(fp32.predict(images), int8.predict(images))
    if check["confident_detections"] and check["agreement"] < MIN_AGREEMENT:
        target.unlink()
        raise ModelError(
            f"the int8 model reproduces only {check['agreement']:.0%} of the fp32 model's "
            f"{check['confident_detections']} confident detections on the calibration images "
            f"(at least {MIN_AGREEMENT:.0%} needed)",
            where=str(artifact.directory),
            hint="calibrate on more images like those it will serve (--calibration-images), "
            "or serve the fp32 model (--backend onnxruntime)",
        )
    record = {
        "method": METHOD,
        "file": INT8_ONNX_FILE,
        "calibration_images": len(images),
        "check": check,
    }
    return QuantizedModel(INT8_ONNX_FILE, target, record)


def agreement(reference: list[Detections], candidate: list[Detections]) -> dict:
    """How many of the reference's confident detections (score >= CONFIDENT_SCORE) the
    candidate finds again: same class, IoU >= MATCH_IOU; and the largest score change."""
    confident = matched = 0
    score_change = 0.0
    for ref, cand in zip(reference, candidate, strict=True):
        ref = ref.above(CONFIDENT_SCORE)
        confident += len(ref)
        if not len(ref) or not len(cand):
            continue
        ious = box_iou(ref.boxes, cand.boxes)
        ious[ref.classes[:, None] != cand.classes[None, :]] = 0
        best = ious.argmax(axis=1)
        found = ious[np.arange(len(ref)), best] >= MATCH_IOU
        matched += int(found.sum())
        if found.any():
            change = np.abs(ref.scores[found] - cand.scores[best[found]]).max()
            score_change = max(score_change, float(change))
    return {
        "confident_detections": confident,
        "reproduced": matched,
        "agreement": round(matched / confident, 4) if confident else None,
        "max_score_change": round(score_change, 4),
        "rule": f"fp32 detections with score >= {CONFIDENT_SCORE} found again by int8 "
        f"(same class, IoU >= {MATCH_IOU})",
    }
