"""The managed endpoint's request/response contract: Accept parsing and the JSON answer.

``Accept: application/json`` gives ``normalized_boxes`` ([xmin, ymin, xmax, ymax] in [0, 1] of
the original image, y from the top), ``classes`` (indices into ``labels``) and ``scores``, sorted
by score. ``;verbose`` adds ``labels`` and the raw output: the runner's own
(``tensorflow_model_output``, the SavedModel signature's outputs, for TensorFlow models) or
``model_output``, the raw detections in pixels of the original image; ``;n_predictions=N``
keeps the N best boxes, N from 1 to :data:`MAX_N_PREDICTIONS` (the server's
``--max-detections`` caps the boxes in any case).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from boxtune.detections import Detections
from boxtune.errors import BoxtuneError
from boxtune.labels import LabelMap

JSON_CONTENT_TYPE = "application/json"
SUPPORTED_ACCEPT = "application/json, application/json;verbose, with optional ;n_predictions=N"
# Far above any useful box count (default --max-detections: 100); bounds int() on client text
MAX_N_PREDICTIONS = 1000
_SHOWN_CHARS = 40  # how much of a bad value an error message echoes
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
    _check_no_control_characters(header)
    for media_range in header.split(","):
        parts = [p.strip() for p in media_range.split(";")]
        if parts[0].lower() in _JSON_RANGES:
            return _parse_parameters(parts[1:], header)
    raise UnsupportedAcceptError(
        f"cannot answer with any type in Accept: {_shown(header)!r}",
        hint=f"use Accept: {SUPPORTED_ACCEPT}",
    )


def _check_no_control_characters(header: str) -> None:
    """HTTP servers refuse these before the app sees them; callers embedding the predictor
    (or a laxer server) get the same clear refusal instead of a parameter silently ignored."""
    for position, char in enumerate(header):
        if (ord(char) < 0x20 and char != "\t") or char == "\x7f":
            raise BadAcceptParameterError(
                f"the Accept header holds a control character {char!r} at position {position}",
                where=f"Accept: {_shown(header)!r}",
                hint=f"send only printable characters, e.g. Accept: {SUPPORTED_ACCEPT}",
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
            n_predictions = _parse_n_predictions(value, header)
        # other parameters (q=, charset=) do not change the answer
    return ResponseFormat(verbose=verbose, n_predictions=n_predictions)


def _parse_n_predictions(value: str, header: str) -> int:
    # ASCII digits only, and few of them: str.isdigit() accepts "²", which int() refuses, and
    # int() refuses more than 4300 digits; both must be a 400, not a 500.
    digits = value.isascii() and value.isdigit() and len(value) <= len(str(MAX_N_PREDICTIONS))
    if digits and 1 <= int(value) <= MAX_N_PREDICTIONS:
        return int(value)
    raise BadAcceptParameterError(
        f"n_predictions must be a positive integer from 1 to {MAX_N_PREDICTIONS} in the Accept "
        f"header, got {_shown(value)!r}",
        where=f"Accept: {_shown(header)!r}",
        hint="e.g. Accept: application/json;verbose;n_predictions=5",
    )


def _shown(text: str) -> str:
    """``text`` cut short for an error message: clients may send kilobytes."""
    if len(text) <= _SHOWN_CHARS:
        return text
    return f"{text[:_SHOWN_CHARS]}... ({len(text):,} characters)"


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
