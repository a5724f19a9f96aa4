"""The managed endpoint's request/response contract: Accept parsing and the JSON answer.

``Accept: application/json`` gives ``normalized_boxes`` ([xmin, ymin, xmax, ymax] in [0, 1] of
the original image, y from the top), ``classes`` (indices into ``labels``) and ``scores``, sorted
by score. ``;verbose`` adds ``labels`` and the raw output: the runner's own
(``tensorflow_model_output``, the SavedModel signature's outputs, for TensorFlow models) or
``model_output``, the raw detections in pixels of the original image; ``;n_predictions=N``
keeps the N best boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from boxtune.detections import Detections
from boxtune.errors import BoxtuneError
from boxtune.labels import LabelMap

JSON_CONTENT_TYPE = "application/json"
SUPPORTED_ACCEPT = "application/json, application/json;verbose, with optional ;n_predictions=N"
# Media ranges that a JSON answer satisfies
_JSON_RANGES = {"application/json", "application/*", "*/*", "*"}


class UnsupportedAcceptError(BoxtuneError):
    """No acceptable response type (HTTP 406)."""


class BadAcceptParameterError(BoxtuneError):
    """A malformed parameter in a JSON Accept header, e.g. n_predictions=abc (HTTP 400)."""


@dataclass(frozen=True)
class ResponseFormat:
    verbose: bool = False
    n_predictions: int | None = None


def parse_accept(header: str | None) -> ResponseFormat:
    """Parse an Accept header. Missing, empty or ``*/*`` means plain JSON.

    Several comma-separated ranges are allowed; the first one JSON satisfies wins (quality
    values are ignored: there is only one representation).
    """
    if header is None or not header.strip():
        return ResponseFormat()
    for media_range in header.split(","):
        parts = [p.strip() for p in media_range.split(";")]
        if parts[0].lower() in _JSON_RANGES:
            return _parse_parameters(parts[1:], header)
    raise UnsupportedAcceptError(
        f"cannot answer with any type in Accept: {header!r}",
        hint=f"use Accept: {SUPPORTED_ACCEPT}",
    )


def _parse_parameters(params: list[str], header: str) -> ResponseFormat:
    verbose = False
    n_predictions: int | None = None
    for param in params:
        if not param:
            continue
        key, _, value = param.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"')
        if key == "verbose":
            verbose = value.lower() not in ("false", "0", "no")
        elif key == "n_predictions":
            if not value.isdigit() or int(value) < 1:
                raise BadAcceptParameterError(
                    f"n_predictions must be a positive integer, got {value!r}",
                    where=f"Accept: {header}",
                    hint="e.g. Accept: application/json;verbose;n_predictions=5",
                )
            n_predictions = int(value)
        # other parameters (q=, charset=) do not change the answer
    return ResponseFormat(verbose=verbose, n_predictions=n_predictions)


def build_response(
    detections: Detections,
    *,
    width: int,
    height: int,
    label_map: LabelMap,
    response_format: ResponseFormat,
    score_threshold: float | None = None,
    model_output_name: str = "model_output",
) -> dict:
    """The JSON-ready answer for one image; ``detections`` are in that image's pixels."""
    raw = detections.sorted()
    shown = raw.above(score_threshold) if score_threshold is not None else raw
    if response_format.n_predictions is not None:
        shown = shown.top(response_format.n_predictions)
    scale = np.array([width, height, width, height], dtype=np.float64)
    normalized = np.clip(shown.boxes.astype(np.float64) / scale, 0.0, 1.0)
    body: dict = {
        "normalized_boxes": normalized.tolist(),
        "classes": shown.classes.astype(np.int64).tolist(),
        "scores": shown.scores.astype(np.float32).tolist(),
    }
    if response_format.verbose:
        body["labels"] = list(label_map.names)
        if detections.model_output is not None:
            body[model_output_name] = detections.model_output
        else:
            body[model_output_name] = {
                "boxes": raw.boxes.astype(np.float32).tolist(),
                "classes": raw.classes.astype(np.int64).tolist(),
                "scores": raw.scores.astype(np.float32).tolist(),
                "image_size": {"width": width, "height": height},
            }
    return body
