"""The job page's metric charts: SVG drawn on the server from metrics.jsonl records."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from boxtune.errors import BoxtuneError
from boxtune.ui.charts import BOTTOM, CHARTS, HEIGHT, LEFT, RIGHT, WIDTH, metric_chart

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    return root


def polylines(root: ET.Element) -> list[list[tuple[float, float]]]:
    lines = []
    for line in root.iter(f"{SVG}polyline"):
        pairs = [pair.split(",") for pair in line.get("points", "").split()]
        lines.append([(float(x), float(y)) for x, y in pairs])
    return lines


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def loss_records(epochs: int) -> list[dict]:
    return [
        {"epoch": e, "loss": 2.0 / e, "val_loss": 2.5 / e, "lr": 0.001}
        for e in range(1, epochs + 1)
    ]


def test_unknown_kind_is_a_boxtune_error():
    with pytest.raises(BoxtuneError) as caught:
        metric_chart("accuracy", loss_records(2))
    assert "'accuracy'" in caught.value.message
    assert "loss" in caught.value.hint and "map" in caught.value.hint


@pytest.mark.parametrize("kind", sorted(CHARTS))
def test_no_records_draw_a_placeholder(kind: str):
    root = parse(metric_chart(kind, []))
    assert root.get("data-points") == "0"
    assert polylines(root) == []
    assert "waiting for the first epoch to end" in texts(root)
    assert CHARTS[kind].title in texts(root)
    assert root.get("viewBox") == f"0 0 {WIDTH} {HEIGHT}"


def test_records_without_the_series_draw_the_placeholder():
    root = parse(metric_chart("map", loss_records(3)))  # no val_map yet
    assert root.get("data-points") == "0"
    assert "waiting for the first epoch to end" in texts(root)


@pytest.mark.parametrize("epochs", [1, 2, 7])
def test_loss_chart_has_two_lines_of_one_point_per_epoch(epochs: int):
    root = parse(metric_chart("loss", loss_records(epochs)))
    lines = polylines(root)
    assert [len(line) for line in lines] == [epochs, epochs]
    assert root.get("data-points") == str(2 * epochs)
    assert len(list(root.iter(f"{SVG}circle"))) == 2 * epochs
    assert {"training loss", "validation loss"} <= set(texts(root))
    assert "waiting for the first epoch to end" not in texts(root)
    for line in lines:
        for x, y in line:
            assert LEFT <= x <= WIDTH - RIGHT and 0 <= y <= HEIGHT
        assert [x for x, _ in line] == sorted(x for x, _ in line)  # left to right by epoch
    training, validation = lines
    # Validation loss is the larger here: higher values are drawn higher up (smaller y).
    for (_, y_train), (_, y_val) in zip(training, validation, strict=True):
        assert y_val < y_train
    # Falling losses: each point lower than the one before.
    assert [y for _, y in training] == sorted(y for _, y in training)
    axis_y = str(HEIGHT - BOTTOM + 16)
    epoch_labels = [t.text for t in root.iter(f"{SVG}text") if t.get("y") == axis_y]
    assert epoch_labels == [str(e) for e in range(1, epochs + 1)]


def test_missing_and_non_finite_values_are_skipped():
    records = [
        {"epoch": 1, "loss": 1.0, "val_loss": 1.1},
        {"epoch": 2, "loss": math.nan, "val_loss": None},
        {"epoch": 3, "loss": 0.5, "val_loss": math.inf},
        {"epoch": 4, "loss": "0.4", "val_loss": 0.8},  # not a number: skipped
        {"epoch": 5, "loss": 0.3},
        {"loss": 0.2, "val_loss": 0.2},  # no epoch
        {"epoch": 6.0, "loss": 0.1},  # not an integer epoch
    ]
    svg = metric_chart("loss", records)
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    root = parse(svg)
    training, validation = polylines(root)
    assert len(training) == 3  # epochs 1, 3, 5
    assert len(validation) == 2  # epochs 1, 4
    assert root.get("data-points") == "5"


def test_only_one_series_draws_one_line():
    records = [{"epoch": e, "loss": 1.0 / e} for e in (1, 2, 3)]
    root = parse(metric_chart("loss", records))
    assert [len(line) for line in polylines(root)] == [3]
    assert "training loss" in texts(root) and "validation loss" not in texts(root)


def test_map_chart():
    records = [{"epoch": e, "val_map": 0.1 * e, "val_map50": 0.2 * e} for e in (1, 2)]
    root = parse(metric_chart("map", records))
    assert [len(line) for line in polylines(root)] == [2, 2]
    assert {"mAP@[.5:.95]", "mAP@.5"} <= set(texts(root))


def test_flat_and_negative_values_stay_inside_the_plot():
    for records in (
        [{"epoch": 1, "loss": 0.0}, {"epoch": 2, "loss": 0.0}],
        [{"epoch": 3, "loss": -2.0}, {"epoch": 4, "loss": 5.0}],
        [{"epoch": 9, "loss": 1.5}],
    ):
        root = parse(metric_chart("loss", records))
        for x, y in polylines(root)[0]:
            assert math.isfinite(x) and math.isfinite(y)
            assert LEFT <= x <= WIDTH - RIGHT and 0 <= y <= HEIGHT
