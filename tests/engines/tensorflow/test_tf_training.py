"""TensorFlowDetector training: one trace for a whole run and flat memory, frozen layers that
stay frozen, the pretrained class head kept or replaced, the six optimizers, non-finite steps
skipped, and resuming weights and optimizer state from a checkpoint.

A detector's first step costs tens of seconds (tracing and graph optimisation) on a small CPU,
so the module shares one detector and traces as few steps as it can: one full-training run
(which also writes the checkpoint the resume tests read) and two head-only runs.
"""

from __future__ import annotations

import gc
import math
import os
import time

import numpy as np
import pytest
import tensorflow as tf
from _engine_helpers import LABELS, SMALL, draw_scene, hp

from boxtune.catalog import TF_PERSON_MODEL_ID, get_spec, resolve_weights
from boxtune.engines import get_engine
from boxtune.errors import ModelError
from boxtune.labels import LabelMap

STEPS = 300
BATCH = 2
MEASURE_FROM = 50  # RSS after this many steps is the baseline: allocators have warmed up
RSS_MARGIN_MB = 60.0
RESUME_AFTER = 3  # the checkpoint the resume tests read is written after this many steps

State = dict[str, np.ndarray]


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _batch(rng: np.random.Generator, size: int):
    """``size`` images with 0 to 5 boxes each (a different padding pattern every step)."""
    images, targets = [], []
    for i in range(size):
        image, boxes, labels = draw_scene(rng, SMALL, count=int(rng.integers(0, 6)))
        images.append(image)
        targets.append(
            {
                "boxes": boxes.reshape(-1, 4),
                "labels": labels,
                "image_id": i,
                "orig_size": (SMALL, SMALL),
            }
        )
    return np.stack(images), targets


def _layer_state(model, keep=lambda name: True) -> State:
    """Every variable (batch-norm moving statistics included) of the layers that ``keep``."""
    return {
        f"{layer.name}/{i}": np.array(weight)
        for layer in model.layers
        if keep(layer.name)
        for i, weight in enumerate(layer.get_weights())
    }


def _is_head(name: str) -> bool:
    return name.startswith("BoxPredictor_")


def _changed(before: State, after: State) -> list[str]:
    assert before.keys() == after.keys()
    return [k for k in before if not np.array_equal(before[k], after[k], equal_nan=True)]


def _optimizer_state(optimizer) -> dict[str, np.ndarray]:
    """Its variables by position and path (without the optimizer's own, uniquified name)."""
    return {f"{i}:{v.path.split('/', 1)[-1]}": v.numpy() for i, v in enumerate(optimizer.variables)}


@pytest.fixture(scope="module")
def engine():
    return get_engine("tensorflow")


@pytest.fixture(scope="module")
def spec():
    return get_spec(TF_PERSON_MODEL_ID)


@pytest.fixture(scope="module")
def detector(engine, spec):
    """The module's one trained detector (random init at 128 px); each test sets it up."""
    engine.seed(0)
    return engine.create(spec, LABELS, init="random", image_size=SMALL)


@pytest.fixture(scope="module")
def full_run(detector, tmp_path_factory) -> dict:
    """STEPS full-training steps on different batches; what the tests check, recorded."""
    detector.set_trainable(head_only=False)
    detector.configure_optimizer(hp(learning_rate=0.001))
    traces_before = detector.trace_counts["train_step"]
    frozen_before = _layer_state(detector.model, lambda n: not _is_head(n))
    rng = np.random.default_rng(0)
    record: dict = {"losses": [], "sizes": set(), "box_counts": set()}
    started = time.perf_counter()
    for step in range(1, STEPS + 1):
        size = 1 if step % 50 == 0 else BATCH  # an epoch's smaller last batch
        images, targets = _batch(rng, size)
        record["sizes"].add(size)
        record["box_counts"].update(len(t["boxes"]) for t in targets)
        record["losses"].append(detector.train_step(images, targets)["loss"])
        if step == 1:
            record["first_step_s"] = time.perf_counter() - started
            started = time.perf_counter()
        if step == RESUME_AFTER:
            path = tmp_path_factory.mktemp("tf-resume") / "last.tfckpt"
            detector.save_checkpoint(path, {"epoch": "1"})
            record["checkpoint"] = path
            record["saved_weights"] = [w.numpy() for w in detector.model.weights]
            record["saved_optimizer"] = _optimizer_state(detector.optimizer)
        if step in (MEASURE_FROM, STEPS):
            gc.collect()
            record[f"rss_{step}"] = _rss_mb()
    record["step_s"] = (time.perf_counter() - started) / (STEPS - 1)
    record["traces"] = detector.trace_counts["train_step"] - traces_before
    record["frozen_before"] = frozen_before
    record["frozen_after"] = _layer_state(detector.model, lambda n: not _is_head(n))
    return record


def test_a_run_traces_once_and_its_memory_stays_flat(full_run):
    growth = full_run["rss_300"] - full_run[f"rss_{MEASURE_FROM}"]
    numbers = (
        f"RSS {full_run[f'rss_{MEASURE_FROM}']:.1f} MB at step {MEASURE_FROM}, "
        f"{full_run['rss_300']:.1f} MB at step {STEPS} ({growth:+.1f} MB); first step "
        f"{full_run['first_step_s']:.1f} s, then {full_run['step_s'] * 1000:.0f} ms/step; "
        f"traces {full_run['traces']}"
    )
    print(numbers)
    assert full_run["sizes"] == {1, BATCH}
    assert {0, 5} <= full_run["box_counts"]  # images without boxes, and padding that varies
    assert all(math.isfinite(loss) for loss in full_run["losses"]), numbers
    assert full_run["traces"] == 1, numbers
    assert growth < RSS_MARGIN_MB, numbers


def test_full_training_moves_the_batch_norm_statistics(full_run):
    """The control for the head-only test: what it keeps frozen does move otherwise."""
    before, after = full_run["frozen_before"], full_run["frozen_after"]
    # BatchNormalization weights: gamma, beta, moving_mean (2), moving_variance (3)
    moving = [k for k in before if k.endswith(("BatchNorm/2", "BatchNorm/3"))]
    assert len(moving) > 100
    unchanged = [k for k in moving if np.array_equal(before[k], after[k])]
    assert not unchanged, unchanged[:5]
    assert set(_changed(before, after)) >= set(moving)


def test_train_only_top_layer_leaves_everything_else_bit_identical(detector):
    detector.set_trainable(head_only=True)
    detector.configure_optimizer(hp(learning_rate=0.01))
    frozen = _layer_state(detector.model, lambda n: not _is_head(n))
    head = _layer_state(detector.model, _is_head)
    assert any(k.endswith("BatchNorm/3") for k in frozen)  # moving variances are in it
    rng = np.random.default_rng(1)
    for _ in range(3):
        images, targets = _batch(rng, BATCH)
        assert math.isfinite(detector.train_step(images, targets)["loss"])
    assert _changed(frozen, _layer_state(detector.model, lambda n: not _is_head(n))) == []
    moved = _changed(head, _layer_state(detector.model, _is_head))
    assert any(k.endswith("ClassPredictor/0") for k in moved)
    assert any(k.endswith("BoxEncodingPredictor/0") for k in moved)


# -- reinitialize_top_layer --------------------------------------------------------------------
_API_NAMES = {
    "Conv2D": ("weights", "biases"),
    "DepthwiseConv2D": ("depthwise_weights",),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
}


@pytest.fixture(scope="module")
def graph_constants(spec) -> dict[str, np.ndarray]:
    """The frozen graph's float constants, read here without boxtune's reader."""
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(resolve_weights(spec).read_bytes())
    return {
        node.name: tf.make_ndarray(node.attr["value"].tensor)
        for node in graph.node
        if node.op == "Const" and node.attr["dtype"].type == tf.float32.as_datatype_enum
    }


def _compare_with_graph(model, constants) -> dict[str, list[str]]:
    """Per weight-bearing layer: equal to the graph's constants of its scope, or not."""
    result: dict[str, list[str]] = {"equal": [], "different": []}
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        names = _API_NAMES[type(layer).__name__][: len(weights)]
        scope = layer.name.replace(".", "/")
        pairs = zip(weights, names, strict=True)
        same = all(np.array_equal(w, constants[f"{scope}/{n}"]) for w, n in pairs)
        result["equal" if same else "different"].append(layer.name)
    return result


def _class_predictors(names: list[str]) -> list[str]:
    return [n for n in names if n.endswith(".ClassPredictor")]


@pytest.mark.parametrize(
    "categories", [{1: "person"}, {5: "Person"}], ids=["same-name", "other-id-and-case"]
)
def test_keeping_the_top_layer_keeps_the_pretrained_class_head(
    engine, spec, graph_constants, categories
):
    detector = engine.create(
        spec, LabelMap.from_categories(categories), reinitialize_head=False, image_size=SMALL
    )
    compared = _compare_with_graph(detector.model, graph_constants)
    assert compared["different"] == []
    assert len(_class_predictors(compared["equal"])) == 6


def test_keeping_the_top_layer_for_classes_it_lacks_is_refused(engine, spec):
    labels = LabelMap.from_categories({1: "person", 2: "bicycle"})
    with pytest.raises(ModelError, match="reinitialize_top_layer") as caught:
        engine.create(spec, labels, reinitialize_head=False, image_size=SMALL)
    assert caught.value.where == "reinitialize_top_layer"
    assert "bicycle" in caught.value.message


def test_reinitializing_the_top_layer_replaces_only_the_class_predictors(
    engine, spec, graph_constants
):
    engine.seed(0)
    detector = engine.create(
        spec, LabelMap.from_categories({1: "person"}), reinitialize_head=True, image_size=SMALL
    )
    compared = _compare_with_graph(detector.model, graph_constants)
    assert sorted(compared["different"]) == sorted(_class_predictors(compared["different"]))
    assert len(compared["different"]) == 6
    # the box predictor and its depthwise branches, and the whole backbone, are the graph's
    assert any(n.endswith(".BoxEncodingPredictor") for n in compared["equal"])
    assert any(n.endswith(".ClassPredictor_depthwise") for n in compared["equal"])
    assert any(n.startswith("FeatureExtractor.") for n in compared["equal"])
    for layer in detector.model.layers:
        if layer.name.endswith(".ClassPredictor"):
            assert not np.any(layer.get_weights()[1]), layer.name  # zero biases


# -- optimizers ----------------------------------------------------------------------------
OPTIONS = dict(
    learning_rate=0.0042,
    momentum=0.7,
    beta_1=0.8,
    beta_2=0.95,
    epsilon=1e-5,
    rho=0.85,
    initial_accumulator_value=0.3,
    gradient_clip_norm=5.0,
)
ALL_OPTIONS = ("momentum", "beta_1", "beta_2", "epsilon", "rho", "initial_accumulator_value")
OPTIMIZERS = {
    "adam": ("Adam", dict(beta_1=0.8, beta_2=0.95, epsilon=1e-5)),
    "sgd": ("SGD", dict(momentum=0.7, nesterov=False)),
    "nesterov": ("SGD", dict(momentum=0.7, nesterov=True)),
    "rmsprop": ("RMSprop", dict(rho=0.85, epsilon=1e-5)),
    "adagrad": ("Adagrad", dict(initial_accumulator_value=0.3, epsilon=1e-5)),
    "adadelta": ("Adadelta", dict(rho=0.85, epsilon=1e-5)),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_is_the_keras_one_with_the_given_options(detector, name):
    import keras

    class_name, expected = OPTIMIZERS[name]
    ignored = detector.configure_optimizer(hp(optimizer=name, **OPTIONS))
    optimizer = detector.optimizer
    assert type(optimizer) is getattr(keras.optimizers, class_name)
    assert float(optimizer.learning_rate) == pytest.approx(OPTIONS["learning_rate"])
    for option, value in expected.items():
        assert getattr(optimizer, option) == pytest.approx(value), option
    used = set(expected) - {"nesterov"}
    assert sorted(ignored) == sorted(set(ALL_OPTIONS) - used)
    assert detector.gradient_clip_norm == 5.0
    detector.set_learning_rate(0.123)
    assert float(optimizer.learning_rate) == pytest.approx(0.123)


def test_no_gradient_clipping_is_an_infinite_norm(detector):
    detector.configure_optimizer(hp(gradient_clip_norm=0.0))
    assert detector.gradient_clip_norm == math.inf


@pytest.fixture(scope="module")
def learning_rate_run(detector) -> dict:
    """Head-only SGD (cheap to trace): a step, set_learning_rate(0.123), a step, then a
    learning rate of 1e38 until a step's loss is not finite, with the state around each step.
    (At 1e30 the head's own batch norms keep the loss finite, ~1e34; at 1e38 the next update
    leaves weights ~1e37 and the loss after it overflows to inf.)"""
    weights = detector.model.get_weights()  # put back afterwards: the run wrecks the head
    detector.set_trainable(head_only=True)
    detector.configure_optimizer(hp(optimizer="sgd", momentum=0.0, gradient_clip_norm=0.0))
    traces_before = detector.trace_counts["train_step"]
    images, targets = _batch(np.random.default_rng(2), BATCH)
    record: dict = {"first": detector.train_step(images, targets)}
    detector.set_learning_rate(0.123)
    record["learning_rate"] = float(detector.optimizer.learning_rate)
    record["second"] = detector.train_step(images, targets)
    record["traces"] = detector.trace_counts["train_step"] - traces_before
    detector.set_learning_rate(1e38)
    record["steps"] = []
    for _ in range(6):
        before = {
            "trainable": [v.numpy() for v in detector.model.trainable_variables],
            "all": _layer_state(detector.model),
            "iterations": int(detector.optimizer.iterations),
        }
        losses = detector.train_step(images, targets)
        after = {
            "trainable": [v.numpy() for v in detector.model.trainable_variables],
            "all": _layer_state(detector.model),
            "iterations": int(detector.optimizer.iterations),
        }
        record["steps"].append((losses, before, after))
        if not math.isfinite(losses["loss"]):
            break
    record["traces_at_end"] = detector.trace_counts["train_step"] - traces_before
    detector.model.set_weights(weights)
    return record


def test_set_learning_rate_takes_effect_without_retracing(learning_rate_run):
    run = learning_rate_run
    assert math.isfinite(run["first"]["loss"]) and math.isfinite(run["second"]["loss"])
    assert run["learning_rate"] == pytest.approx(0.123)
    assert run["traces"] == 1
    # the compiled step reads the variable: the next step at 1e38 blows the head up
    losses, _, after = run["steps"][0]
    assert math.isfinite(losses["loss"])
    largest = max(float(np.nanmax(np.abs(w))) for w in after["trainable"])
    assert largest > 1e30, largest
    assert run["traces_at_end"] == 1


def test_a_non_finite_loss_skips_the_update(learning_rate_run):
    losses, before, after = learning_rate_run["steps"][-1]
    if math.isfinite(losses["loss"]):
        pytest.skip("a learning rate of 1e38 gave no non-finite loss within six steps")
    assert len(learning_rate_run["steps"]) > 1  # the steps before it did update
    assert after["iterations"] == before["iterations"]  # the optimizer did not step
    assert all(
        np.array_equal(a, b, equal_nan=True)
        for a, b in zip(before["trainable"], after["trainable"], strict=True)
    )


# -- resume --------------------------------------------------------------------------------
def _fresh(engine, spec):
    engine.seed(123)  # other initial weights than the trained detector's
    return engine.create(spec, LABELS, init="random", image_size=SMALL)


def _assert_resumed(fresh, full_run):
    saved = full_run["saved_weights"]
    assert len(saved) == len(fresh.model.weights)
    for value, variable in zip(saved, fresh.model.weights, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    restored = _optimizer_state(fresh.optimizer)
    assert restored.keys() == full_run["saved_optimizer"].keys()
    for key, value in full_run["saved_optimizer"].items():
        np.testing.assert_array_equal(restored[key], value, err_msg=key)
    assert int(fresh.optimizer.iterations) == RESUME_AFTER


def test_the_checkpoint_is_a_tensorflow_checkpoint_directory(full_run):
    names = [p.name for p in full_run["checkpoint"].iterdir()]
    assert any(n.endswith(".index") for n in names), names
    assert any(n.endswith(".data-00000-of-00001") for n in names), names


def test_resuming_restores_the_weights_and_the_optimizer_state(engine, spec, full_run):
    fresh = _fresh(engine, spec)
    first = fresh.model.weights[0]
    assert not np.array_equal(first.numpy(), full_run["saved_weights"][0])
    fresh.configure_optimizer(hp(learning_rate=0.001))
    assert int(fresh.optimizer.iterations) == 0
    assert fresh.load_checkpoint(full_run["checkpoint"]) == {"epoch": "1"}
    _assert_resumed(fresh, full_run)


def test_loading_before_configuring_restores_the_optimizer_once_it_exists(engine, spec, full_run):
    fresh = _fresh(engine, spec)
    assert fresh.load_checkpoint(full_run["checkpoint"]) == {"epoch": "1"}
    fresh.configure_optimizer(hp(learning_rate=0.001))
    _assert_resumed(fresh, full_run)
