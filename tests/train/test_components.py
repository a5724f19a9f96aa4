"""The loop's parts on their own: schedule, early stopping, divergence guard, log lines."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from boxtune.detections import Detections
from boxtune.errors import TrainingError
from boxtune.train import reporting
from boxtune.train.divergence import DivergenceGuard
from boxtune.train.early_stopping import BestEpochTracker
from boxtune.train.schedule import FINAL_LR_FRACTION, LearningRateSchedule
from boxtune.train.validation import to_original_pixels

# The reference's metric regexes.
LOSS = re.compile(r"loss=([0-9\.]+).")
VAL_LOC = re.compile(r"Val_localization=([0-9\.]+)")
VAL_CLS = re.compile(r"Val_classification=([0-9\.]+)")


def test_warmup_then_cosine():
    schedule, note = LearningRateSchedule.plan(
        peak=0.01,
        steps_per_epoch=10,
        epochs=10,
        warmup_epochs=1,
        warmup_steps=0,
        shape="cosine",
    )
    assert note is None and schedule.warmup_steps == 10
    rates = [schedule.learning_rate(step) for step in range(100)]
    assert rates[0] < rates[5] < rates[9]  # rising during warm-up
    assert max(rates) <= 0.01
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))  # decaying after
    assert rates[-1] == pytest.approx(0.01 * FINAL_LR_FRACTION, rel=0.05)


def test_warmup_steps_override_and_cap():
    schedule, _ = LearningRateSchedule.plan(
        peak=1.0, steps_per_epoch=10, epochs=3, warmup_epochs=1, warmup_steps=4, shape="constant"
    )
    assert schedule.warmup_steps == 4
    assert schedule.learning_rate(50) == 1.0
    capped, note = LearningRateSchedule.plan(
        peak=1.0, steps_per_epoch=10, epochs=1, warmup_epochs=5, warmup_steps=0, shape="cosine"
    )
    assert capped.warmup_steps == 3 and "shortened" in note


def test_time_budget_drives_the_decay():
    schedule, _ = LearningRateSchedule.plan(
        peak=1.0,
        steps_per_epoch=100,
        epochs=1000,
        warmup_epochs=0,
        warmup_steps=0,
        shape="cosine",
        max_seconds=100,
    )
    assert schedule.learning_rate(10, elapsed_seconds=0) == pytest.approx(1.0, abs=1e-3)
    assert schedule.learning_rate(10, elapsed_seconds=50) == pytest.approx(
        FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5, rel=1e-6
    )
    assert schedule.learning_rate(10, elapsed_seconds=100) == pytest.approx(FINAL_LR_FRACTION)


def test_early_stopping_on_a_maximised_metric():
    tracker = BestEpochTracker(metric="map", min_delta=0.01, patience=2, enabled=True)
    assert tracker.update(0, 0.5)
    assert tracker.update(1, 0.6)
    assert not tracker.update(2, 0.605)  # within min_delta: no improvement
    assert not tracker.should_stop()
    assert not tracker.update(3, 0.55)
    assert tracker.should_stop() and tracker.best_epoch == 1


def test_early_stopping_on_a_loss_and_disabled():
    tracker = BestEpochTracker(metric="loss", patience=1, enabled=False)
    tracker.update(0, 2.0)
    assert tracker.update(1, 1.0)
    assert not tracker.update(2, 1.5)
    assert not tracker.should_stop()  # disabled: only tracks the best epoch
    assert BestEpochTracker.from_state(tracker.state()) == tracker


def test_undefined_metric_keeps_the_first_epoch_as_best():
    tracker = BestEpochTracker(metric="map")
    assert tracker.update(0, None)
    assert not tracker.update(1, None)
    assert tracker.update(2, 0.1)


def test_divergence_on_nan_names_epoch_step_and_remedies():
    guard = DivergenceGuard()
    with pytest.raises(TrainingError) as info:
        guard.check(math.nan, epoch=3, step=17, learning_rate=0.5, optimizer="sgd")
    text = str(info.value)
    assert "epoch 3, step 17" in text and "learning_rate=0.05" in text
    assert "optimizer=adam" in text


def test_divergence_on_explosion_but_not_on_noise():
    guard = DivergenceGuard(factor=100)
    for step in range(20):
        guard.check(
            2.0 + 0.1 * (step % 3), epoch=0, step=step, learning_rate=1e-3, optimizer="adam"
        )
    guard.check(150.0, epoch=1, step=0, learning_rate=1e-3, optimizer="adam")  # 75x: tolerated
    with pytest.raises(TrainingError, match="exploded"):
        guard.check(9e5, epoch=1, step=1, learning_rate=1e-3, optimizer="adam")
    restored = DivergenceGuard.from_state(guard.state())
    assert restored.reference == guard.reference


def test_log_lines_parse_with_the_reference_regexes():
    line = reporting.epoch_line(0, 12.3456, 0.000012)
    assert line == "[Epoch 0], Speed: 12.346 samples/sec, loss=0.0000."
    assert float(LOSS.search(line).group(1).rstrip(".")) == 0.0
    line = reporting.epoch_line(4, 1.0, 1234.56789)
    assert float(LOSS.search(line).group(1).rstrip(".")) == pytest.approx(1234.5679)
    val = reporting.validation_line(2, 0.123, 4.5)
    assert val == "[Epoch 2], Val_localization=0.1230, Val_classification=4.5000"
    assert float(VAL_LOC.search(val).group(1)) == 0.123
    assert float(VAL_CLS.search(val).group(1)) == 4.5
    map_line = reporting.map_line(2, 0.5, None)
    assert "Val_mAP=0.5000" in map_line and "Val_mAP50=n/a" in map_line
    assert LOSS.search(map_line) is None  # no second source of "loss=" values


def test_boxes_go_back_to_original_pixels():
    found = Detections(
        np.array([[0, 0, 160, 320], [300, 300, 400, 400]], np.float32),
        np.array([0, 1]),
        np.array([0.9, 0.5], np.float32),
    )
    scaled = to_original_pixels(found, 320, (100, 640))  # h=100, w=640
    np.testing.assert_allclose(scaled.boxes[0], [0, 0, 320, 100])
    np.testing.assert_allclose(scaled.boxes[1], [600, 93.75, 640, 100])


def test_metrics_log_append_and_rewrite(tmp_path):
    log = reporting.MetricsLog(tmp_path / "metrics.jsonl")
    log.append({"epoch": 0})
    log.append({"epoch": 1})
    assert [r["epoch"] for r in log.read()] == [0, 1]
    log.rewrite([{"epoch": 0}])
    assert log.read() == [{"epoch": 0}]


def test_memory_probe_reports_positive_numbers():
    probe = reporting.MemoryProbe()
    probe.reset_peak()
    assert probe.peak_mb() > 0


def test_with_a_time_budget_the_warmup_ends_by_a_tenth_of_it():
    schedule, _ = LearningRateSchedule.plan(
        peak=1.0,
        steps_per_epoch=1000,
        epochs=100,
        warmup_epochs=1,
        warmup_steps=0,
        shape="constant",
        max_seconds=100,
    )
    assert schedule.learning_rate(0, elapsed_seconds=0) < 0.01
    assert schedule.learning_rate(5, elapsed_seconds=5) == pytest.approx(0.5)
    assert schedule.learning_rate(10, elapsed_seconds=10) == 1.0
