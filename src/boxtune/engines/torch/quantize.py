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
    OUTPUT_NAMES,
    OnnxRunner,
    resize_batch,
)
from boxtune.errors import ModelError
from boxtune.evaluate.matching import box_iou

# What the check calls a confident fp32 detection, and what it takes to reproduce it.
CONFIDENT_SCORE = 0.3
MATCH_IOU = 0.5
MIN_AGREEMENT = 0.9  # share of confident detections the other model must reproduce
# The 99.9th percentile of |int8 - fp32| class scores over every anchor and class of the
# calibration images. Measured on the trained default model: 0.023 (QDQ, accepted); 0.57 for
# a broken int8 graph (QOperator). The largest single change is no test: one anchor of one
# image in a hundred moved by 0.36 with QDQ. This check also holds when no detection is
# confident (a model with a new head), where the detection check has nothing to compare.
MAX_SCORE_ERROR = 0.1


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
    reference, candidate = fp32.predict(images), int8.predict(images)
    check = agreement(reference, candidate)
    spurious = agreement(candidate, reference)  # int8's own confident detections, in fp32
    check["int8_confident_detections"] = spurious["confident_detections"]
    check["int8_found_in_fp32"] = spurious["reproduced"]
    check["score_error_p999"] = score_error(fp32.session, int8.session, batch)
    problem = None
    if check["confident_detections"] and check["agreement"] < MIN_AGREEMENT:
        problem = (
            f"the int8 model reproduces only {check['agreement']:.0%} of the fp32 model's "
            f"{check['confident_detections']} confident detections (at least "
            f"{MIN_AGREEMENT:.0%} needed)"
        )
    elif spurious["confident_detections"] and spurious["agreement"] < MIN_AGREEMENT:
        problem = (
            f"only {spurious['agreement']:.0%} of the int8 model's "
            f"{spurious['confident_detections']} confident detections are the fp32 model's "
            f"(at least {MIN_AGREEMENT:.0%} needed)"
        )
    elif check["score_error_p999"] > MAX_SCORE_ERROR:
        problem = (
            f"the int8 model's class scores differ from the fp32 model's by up to "
            f"{check['score_error_p999']} (99.9th percentile over every anchor and class; at "
            f"most {MAX_SCORE_ERROR} allowed)"
        )
    if problem is not None:
        target.unlink()
        raise ModelError(
            f"{problem} on the {len(images)} calibration images",
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


def score_error(reference, candidate, batch: np.ndarray, chunk: int = 8) -> float:
    """The 99.9th percentile of |candidate - reference| class scores (sigmoid of the
    ``class_logits`` output) of two ONNX Runtime sessions over ``batch`` (uint8 [B,3,S,S])."""
    changes = []
    for start in range(0, len(batch), chunk):
        feed = {INPUT_NAME: batch[start : start + chunk].astype(np.float32)}
        ref, cand = (s.run([OUTPUT_NAMES[0]], feed)[0] for s in (reference, candidate))
        changes.append(np.abs(_sigmoid(cand) - _sigmoid(ref)).ravel())
    return round(float(np.quantile(np.concatenate(changes), 0.999)), 4)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * logits))  # no overflow warnings for large logits


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
