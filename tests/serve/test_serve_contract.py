from __future__ import annotations

import numpy as np
import pytest
from serve_fakes import LABELS, FakeRunner, encode, scene

from boxtune.detections import Detections
from boxtune.serve.contract import (
    BadAcceptParameterError,
    ResponseFormat,
    UnsupportedAcceptError,
    build_response,
    parse_accept,
)
from boxtune.serve.predictor import InProcessPredictor


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ResponseFormat()),
        ("", ResponseFormat()),
        ("*/*", ResponseFormat()),
        ("application/json", ResponseFormat()),
        ("application/json;verbose", ResponseFormat(verbose=True)),
        ("application/json; verbose", ResponseFormat(verbose=True)),
        ("application/json;n_predictions=3", ResponseFormat(n_predictions=3)),
        ("application/json;verbose;n_predictions=5", ResponseFormat(True, 5)),
        ("application/json;n_predictions=5;verbose", ResponseFormat(True, 5)),
        ("Application/JSON;Verbose", ResponseFormat(verbose=True)),
        ("text/html, application/json;verbose", ResponseFormat(verbose=True)),
        ("application/*", ResponseFormat()),
        ("application/json; charset=utf-8", ResponseFormat()),
    ],
)
def test_parse_accept(header, expected):
    assert parse_accept(header) == expected


@pytest.mark.parametrize("header", ["text/html", "image/png", "application/xml, text/csv"])
def test_unsupported_accept(header):
    with pytest.raises(UnsupportedAcceptError, match="cannot answer") as info:
        parse_accept(header)
    assert "application/json" in info.value.hint


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5", ""])
def test_bad_n_predictions(value):
    with pytest.raises(BadAcceptParameterError, match="n_predictions must be a positive integer"):
        parse_accept(f"application/json;n_predictions={value}")


def _detections():
    return Detections(
        np.array([[10, 20, 50, 60], [-5, -5, 30, 500], [0, 0, 200, 100]], np.float32),
        np.array([1, 0, 2], np.int64),
        np.array([0.2, 0.9, 1e-8], np.float32),
    )


def test_response_is_normalized_clipped_and_sorted():
    body = build_response(
        _detections(), width=200, height=100, label_map=LABELS, response_format=ResponseFormat()
    )
    assert set(body) == {"normalized_boxes", "classes", "scores"}
    assert body["classes"] == [0, 1, 2]
    assert body["scores"] == pytest.approx([0.9, 0.2, 1e-8])
    assert body["normalized_boxes"][0] == pytest.approx([0.0, 0.0, 0.15, 1.0])  # clipped
    assert body["normalized_boxes"][1] == pytest.approx([0.05, 0.2, 0.25, 0.6])
    assert all(isinstance(c, int) for c in body["classes"])


def test_verbose_adds_labels_and_raw_output_and_n_predictions_limits():
    body = build_response(
        _detections(),
        width=200,
        height=100,
        label_map=LABELS,
        response_format=ResponseFormat(verbose=True, n_predictions=2),
    )
    assert body["labels"] == list(LABELS.names)
    assert len(body["normalized_boxes"]) == len(body["classes"]) == len(body["scores"]) == 2
    raw = body["model_output"]
    assert raw["boxes"][0] == [-5.0, -5.0, 30.0, 500.0]  # pixels, not clipped, not limited
    assert len(raw["scores"]) == 3
    assert raw["image_size"] == {"width": 200, "height": 100}


def test_score_threshold_filters_the_answer_only():
    body = build_response(
        _detections(),
        width=200,
        height=100,
        label_map=LABELS,
        response_format=ResponseFormat(verbose=True),
        score_threshold=0.5,
    )
    assert body["scores"] == pytest.approx([0.9])
    assert len(body["model_output"]["scores"]) == 3


def test_predictor_predict_bytes_matches_runner():
    image = scene(160, 120, {2: (40, 30, 100, 90)})
    predictor = InProcessPredictor(FakeRunner(), max_detections=2)
    body, content_type = predictor.predict_bytes(encode(image), "application/json;verbose")
    assert content_type == "application/json"
    assert body["classes"][0] == 2
    assert body["normalized_boxes"][0] == pytest.approx([0.25, 0.25, 0.625, 0.75])
    assert len(body["scores"]) == 2  # max_detections
