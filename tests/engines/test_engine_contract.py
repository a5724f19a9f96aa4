"""The engine contract: the same checks, parametrised over every engine the trainer may see.

The fake engine (tests/fake_engine.py) is what the trainer's own tests run on; the torch engine
is the real one. Anything the trainer, the artifact writer or the server relies on is checked
here against both, so a fake that drifts from the real engine fails here first. A new engine
(TensorFlow) adds one ``EngineUnderTest`` entry.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from _engine_helpers import LABELS, SMALL, hp, make_batch
from tests.fake_engine import FakeDetector, FakeEngine

from boxtune.artifacts import load_artifact, write_artifact
from boxtune.catalog import DEFAULT_MODEL_ID, TF_PERSON_MODEL_ID, get_spec
from boxtune.detections import Detections
from boxtune.engines import available_backends, get_engine
from boxtune.engines.base import Detector, Engine, Runner
from boxtune.errors import ModelError
from boxtune.labels import LabelMap

State = dict[str, np.ndarray]
OTHER_LABELS = LabelMap.from_categories({3: "ellipse", 8: "triangle"})


@dataclass(frozen=True)
class EngineUnderTest:
    """An engine plus test-only probes into its detectors' weights."""

    make_engine: Callable[[], Engine]
    # every tensor that train_only_top_layer must leave bit-identical (BN statistics included)
    frozen_when_head_only: Callable[[Detector], State]
    # the class predictor that reinitialize_head replaces
    class_predictor: Callable[[Detector], State]
    # everything else the model holds
    all_weights: Callable[[Detector], State]
    model_id: str = DEFAULT_MODEL_ID
    # a detector whose checkpoints must not load into model_id's (another model or classes)
    mismatched: Callable[[Engine], Detector] = lambda engine: engine.create(
        get_spec("pytorch-od1-ssdlite320-mobilenet-v3-large"), LABELS, init="random",
        image_size=SMALL,
    )  # fmt: skip


def _torch_state(module: torch.nn.Module, keep: Callable[[str], bool] = lambda _: True) -> State:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items() if keep(k)}


def _torch_frozen(detector) -> State:
    head = {
        id(t) for m in detector.net.new_modules() for t in m.state_dict(keep_vars=True).values()
    }
    return {
        name: tensor.detach().cpu().numpy().copy()
        for name, tensor in detector.net.state_dict(keep_vars=True).items()
        if id(tensor) not in head
    }


def _keras_state(model, keep: Callable[[str], bool] = lambda _: True) -> State:
    """Every variable (batch-norm statistics included) of the layers whose name ``keep``s."""
    return {
        f"{layer.name}/{i}": np.array(weight)
        for layer in model.layers
        if keep(layer.name)
        for i, weight in enumerate(layer.get_weights())
    }


def _fake_state(detector: FakeDetector) -> State:
    return {"weights": np.array(detector.weights), "body": np.array(detector.body)}


ENGINES = {
    "fake": EngineUnderTest(
        FakeEngine,
        frozen_when_head_only=lambda d: {"body": np.array(d.body)},
        class_predictor=lambda d: {"weights": np.array(d.weights)},
        all_weights=_fake_state,
    ),
    "torch": EngineUnderTest(
        lambda: get_engine("torch"),
        frozen_when_head_only=_torch_frozen,
        class_predictor=lambda d: _torch_state(d.net, lambda k: "class_tower.predict" in k),
        all_weights=lambda d: _torch_state(d.net),
    ),
    "tensorflow": EngineUnderTest(
        lambda: get_engine("tensorflow"),
        frozen_when_head_only=lambda d: _keras_state(d.model, lambda n: not n.startswith("Box")),
        class_predictor=lambda d: _keras_state(d.model, lambda n: n.endswith("ClassPredictor")),
        all_weights=lambda d: _keras_state(d.model),
        model_id=TF_PERSON_MODEL_ID,
        mismatched=lambda engine: engine.create(
            get_spec(TF_PERSON_MODEL_ID), OTHER_LABELS, init="random", image_size=SMALL
        ),
    ),
}


# Module-scoped so that pytest runs one engine's tests together, and ``trained`` is built once
# per engine: a TensorFlow detector's first train step traces for tens of seconds, its export
# (SavedModel + ONNX) for about as long again.
@pytest.fixture(scope="module", params=sorted(ENGINES))
def case(request) -> EngineUnderTest:
    return ENGINES[request.param]


@pytest.fixture
def engine(case) -> Engine:
    return case.make_engine()


@dataclass
class Trained:
    """One detector per engine, trained for two steps and exported, with what the tests check
    recorded on the way. Tests may read ``detector`` but must not change it: one that trains
    or edits weights works on a ``copy.deepcopy`` of it (or a detector of its own)."""

    detector: Detector
    before_first_step: State
    first_step_losses: dict[str, float]
    after_first_step: State
    twin_at_copy: State  # copy.deepcopy(detector) after the first step...
    twin_at_end: State  # ...and the same twin once the detector has trained another step
    weights: State  # the detector's, after both steps; what the artifact holds
    artifact: Path


@pytest.fixture(scope="module")
def trained(case, tmp_path_factory) -> Trained:
    with pytest.MonkeyPatch.context() as patch:  # isolated_home is per test
        patch.setenv("BOXTUNE_HOME", str(tmp_path_factory.mktemp("trained-home")))
        engine = case.make_engine()
        detector = _create(engine, case.model_id)
        images, targets = make_batch(3, 2, SMALL)
        before = case.all_weights(detector)
        losses = detector.train_step(images, targets)
        after_first = case.all_weights(detector)
        twin = copy.deepcopy(detector)
        twin_at_copy = case.all_weights(twin)
        assert math.isfinite(detector.train_step(images, targets)["loss"])
        weights = case.all_weights(detector)
        directory = write_artifact(
            detector, tmp_path_factory.mktemp("trained") / "model", hyperparameters={"epochs": "1"}
        )
    return Trained(
        detector=detector,
        before_first_step=before,
        first_step_losses=losses,
        after_first_step=after_first,
        twin_at_copy=twin_at_copy,
        twin_at_end=case.all_weights(twin),
        weights=weights,
        artifact=directory,
    )


@pytest.fixture
def model_id(case) -> str:
    return case.model_id


def _create(engine: Engine, model_id: str) -> Detector:
    engine.seed(0)
    detector = engine.create(get_spec(model_id), LABELS, image_size=SMALL)
    detector.set_trainable(head_only=False)
    detector.configure_optimizer(hp(learning_rate=0.01))
    return detector


def _train(detector: Detector, steps: int = 2) -> None:
    images, targets = make_batch(3, 2, SMALL)
    for _ in range(steps):
        assert math.isfinite(detector.train_step(images, targets)["loss"])


def _same(a: State, b: State) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_the_engine_is_an_engine_and_builds_a_detector_for_the_label_map(engine, model_id):
    assert isinstance(engine, Engine)
    assert engine.default_backend == engine.backends[0]
    assert set(engine.backends) <= set(available_backends()) or engine.name == "fake"
    detector = _create(engine, model_id)
    assert isinstance(detector, Detector) and detector.engine == engine.name
    assert detector.label_map == LABELS and detector.image_size == SMALL
    assert detector.model_id == model_id
    assert json.loads(json.dumps(detector.architecture()))  # stored in the manifest
    assert 0 < detector.num_parameters(trainable_only=True) <= detector.num_parameters()


def test_a_train_step_changes_the_weights_and_reports_the_losses(trained):
    losses = trained.first_step_losses
    assert {"loss", "localization", "classification"} <= set(losses)
    assert all(isinstance(v, float) and math.isfinite(v) for v in losses.values())
    assert not _same(trained.before_first_step, trained.after_first_step)


def test_validation_losses_change_nothing(case, trained):
    detector = trained.detector
    before = case.all_weights(detector)
    images, targets = make_batch(4, 2, SMALL, empty_index=1)
    losses = detector.validation_losses(images, targets)
    assert {"loss", "localization", "classification"} <= set(losses)
    assert all(math.isfinite(v) for v in losses.values())
    assert _same(before, case.all_weights(detector))


def test_predicting_a_batch_with_an_image_without_boxes(trained):
    detector = trained.detector
    images, targets = make_batch(5, 3, SMALL, empty_index=0)
    detector.validation_losses(images, targets)
    results = detector.predict_batch(images)
    assert len(results) == 3 and all(isinstance(r, Detections) for r in results)
    for det in results:
        assert det.boxes.shape == (len(det), 4) and det.boxes.dtype == np.float32
        assert len(det) == 0 or (det.classes.max() < len(LABELS) and det.boxes.max() <= SMALL)


def test_checkpoint_round_trip_restores_weights_and_extra(
    case, engine, tmp_path, model_id, trained
):
    detector = trained.detector
    path = tmp_path / "checkpoints" / engine.checkpoint_name("last")
    path.parent.mkdir()
    extra = {"boxtune_trainer_state": json.dumps({"epoch": 3})}
    detector.save_checkpoint(path, extra)
    assert path.exists()
    fresh = _create(engine, model_id)
    assert not _same(trained.weights, case.all_weights(fresh))
    assert fresh.load_checkpoint(path) == extra
    assert _same(trained.weights, case.all_weights(fresh))
    other = case.mismatched(engine)
    with pytest.raises(ModelError):
        other.load_checkpoint(path)


def test_checkpoint_names_differ_by_role(engine):
    last, best = engine.checkpoint_name("last"), engine.checkpoint_name("best")
    assert last != best and last.startswith("last") and best.startswith("best")


def test_export_then_load_the_detector_and_a_runner_from_the_artifact(case, engine, trained):
    # trained.artifact is write_artifact(detector, ..., hyperparameters={"epochs": "1"})
    artifact = load_artifact(trained.artifact)
    assert artifact.engine == engine.name and artifact.label_map == LABELS
    assert artifact.manifest["architecture"] == trained.detector.architecture()
    loaded = engine.load_detector(artifact)
    assert _same(trained.weights, case.all_weights(loaded))
    for backend in engine.derived_backends:
        with pytest.raises(ModelError, match="boxtune export"):
            engine.load_runner(artifact, backend)
    for backend in (None, *(b for b in engine.backends if b not in engine.derived_backends)):
        runner = engine.load_runner(artifact, backend)
        assert isinstance(runner, Runner) and runner.backend in engine.backends
        image = make_batch(6, 1, SMALL, empty_index=0)[0][0]
        (result,) = runner.predict([image, image[:50]])[:1]
        assert isinstance(result, Detections)
    with pytest.raises(ModelError, match="no backend"):
        engine.load_runner(artifact, "no-such-backend")


def test_loading_an_artifact_does_not_need_its_catalog_entry(case, engine, monkeypatch, trained):
    directory = trained.artifact
    import boxtune.catalog
    import boxtune.catalog.models

    monkeypatch.setattr(boxtune.catalog.models, "get_spec", _no_catalog)
    monkeypatch.setattr(boxtune.catalog, "get_spec", _no_catalog)
    loaded = engine.load_detector(load_artifact(directory))
    assert _same(trained.weights, case.all_weights(loaded))
    assert isinstance(engine.load_runner(load_artifact(directory)), Runner)


def _no_catalog(model_id: str):
    raise AssertionError(f"the catalog was asked for {model_id}")


def test_reinitialize_head_replaces_only_the_class_predictor(case, trained):
    detector = copy.deepcopy(trained.detector)  # a trained detector of the test's own
    head, rest = case.class_predictor(detector), case.all_weights(detector)
    detector.reinitialize_head()
    assert not _same(head, case.class_predictor(detector))
    after = case.all_weights(detector)
    assert all(np.array_equal(rest[k], after[k]) for k in rest if k not in head)
    detector.configure_optimizer(hp())
    _train(detector, steps=1)


def test_head_only_training_leaves_everything_else_bit_identical(case, engine, model_id):
    detector = _create(engine, model_id)
    detector.set_trainable(head_only=True)
    detector.configure_optimizer(hp(learning_rate=0.01))
    assert detector.num_parameters(trainable_only=True) < detector.num_parameters()
    frozen = case.frozen_when_head_only(detector)
    everything = case.all_weights(detector)
    _train(detector, steps=3)
    assert _same(frozen, case.frozen_when_head_only(detector))
    assert not _same(everything, case.all_weights(detector))


def test_a_runner_over_the_current_weights(engine, model_id):
    detector = _create(engine, model_id)
    runner = detector.runner()
    assert isinstance(runner, Runner) and runner.label_map == LABELS
    image = make_batch(7, 1, SMALL)[0][0]
    assert len(runner.predict([image])) == 1


def test_copies_are_independent(trained):
    """The twin was copied after the first step; the detector then trained one more."""
    assert _same(trained.twin_at_copy, trained.after_first_step)
    assert not _same(trained.weights, trained.twin_at_end)
    assert _same(trained.twin_at_end, trained.twin_at_copy)


def test_unknown_devices_are_refused_by_name(engine):
    assert engine.resolve_device("cpu") == "cpu"
    assert engine.resolve_device("auto") in ("cpu", "cuda", "mps")
    with pytest.raises(Exception, match="device"):
        engine.resolve_device("quantum")
