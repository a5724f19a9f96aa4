import math

import pytest
import torch
from _engine_helpers import LABELS, SMALL, hp, make_batch

from boxtune.catalog import DEFAULT_MODEL_ID, get_spec
from boxtune.engines import get_engine
from boxtune.engines.optimizer_options import OPTIMIZER_OPTIONS
from boxtune.errors import HyperparameterError, ModelError


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    return {k: v.detach().clone() for k, v in tensors.items()}


def test_head_only_training_leaves_every_frozen_tensor_bit_identical(small_detector):
    det = small_detector
    det.set_trainable(head_only=True)
    det.configure_optimizer(hp(learning_rate=0.01))
    head = {id(p) for m in det.net.new_modules() for p in m.parameters()}
    frozen_names = {n for n, p in det.net.named_parameters() if id(p) not in head}
    frozen_names |= {n for n, _ in det.net.named_buffers() if n.startswith("backbone.")}
    assert any("running_mean" in n for n in frozen_names)  # BN statistics are covered
    before = _snapshot(det.net)
    images, targets = make_batch(3, 4, SMALL)
    for _ in range(3):
        assert math.isfinite(det.train_step(images, targets)["loss"])
    after = _snapshot(det.net)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert not changed & frozen_names, sorted(changed & frozen_names)[:5]
    assert any(n.startswith("head.") for n in changed)
    assert any(n.startswith("neck.") and "running_mean" in n for n in changed)
    assert det.num_parameters(trainable_only=True) < det.num_parameters() / 2

    # Full fine-tuning again: the backbone moves, except its pretrained stem and first blocks.
    det.set_trainable(head_only=False)
    det.configure_optimizer(hp(learning_rate=0.01))
    det.train_step(images, targets)
    moved = det.net.backbone.blocks[10]._project_conv.weight
    assert not torch.equal(before["backbone.blocks.10._project_conv.weight"], moved)
    for name in (
        "backbone.stem.0.weight",
        "backbone.stem.1.running_mean",
        "backbone.blocks.2._expand_conv.weight",
        "backbone.blocks.2._bn0.running_var",
    ):
        assert torch.equal(before[name], det.net.state_dict()[name]), name  # fmt: skip


def test_random_init_trains_the_whole_backbone():
    random = get_engine("torch").create(
        get_spec(DEFAULT_MODEL_ID), LABELS, init="random", image_size=SMALL
    )
    assert random.num_parameters(trainable_only=True) == random.num_parameters()


@pytest.mark.parametrize("name", list(OPTIMIZER_OPTIONS))
def test_every_reference_optimizer_trains(small_detector, name):
    det = small_detector
    det.set_trainable(head_only=True)
    ignored = det.configure_optimizer(hp(optimizer=name, learning_rate=0.01))
    assert set(ignored).isdisjoint(OPTIMIZER_OPTIONS[name])
    assert set(ignored) | set(OPTIMIZER_OPTIONS[name]) == {
        "momentum", "beta_1", "beta_2", "epsilon", "rho", "initial_accumulator_value"
    }  # fmt: skip
    weight = det.net.head.box_tower.predict_pw.weight.detach().clone()
    images, targets = make_batch(4, 2, SMALL)
    values = det.train_step(images, targets)
    assert {"loss", "localization", "classification"} <= set(values)
    assert all(isinstance(v, float) for v in values.values())
    assert not torch.equal(weight, det.net.head.box_tower.predict_pw.weight)


def test_optimizer_options_reach_torch(small_detector):
    small_detector.configure_optimizer(hp(optimizer="adam", beta_1=0.8, beta_2=0.95, epsilon=0.01))
    group = small_detector.optimizer.param_groups[0]
    assert group["betas"] == (0.8, 0.95) and group["eps"] == 0.01
    small_detector.configure_optimizer(hp(optimizer="nesterov", momentum=0.7))
    group = small_detector.optimizer.param_groups[0]
    assert group["nesterov"] and group["momentum"] == 0.7
    small_detector.configure_optimizer(hp(optimizer="adagrad", initial_accumulator_value=0.3))
    state = small_detector.optimizer.state[small_detector.optimizer.param_groups[0]["params"][0]]
    assert torch.all(state["sum"] == 0.3)
    small_detector.set_learning_rate(0.123)
    assert all(g["lr"] == 0.123 for g in small_detector.optimizer.param_groups)
    with pytest.raises(HyperparameterError, match="nesterov"):
        small_detector.configure_optimizer(hp(optimizer="nesterov", momentum=0.0))
    with pytest.raises(HyperparameterError, match="unknown optimizer"):
        small_detector.configure_optimizer(hp(optimizer="lamb"))


def test_gradient_clip_norm_from_hyperparameters(small_detector):
    small_detector.configure_optimizer(hp(gradient_clip_norm=0.5))
    assert small_detector.gradient_clip_norm == 0.5
    small_detector.configure_optimizer(hp())
    assert small_detector.gradient_clip_norm == 10.0
    # 0 turns clipping off: a tiny-lr step still moves the weights by the unclipped gradient
    small_detector.configure_optimizer(hp(optimizer="sgd", momentum=0.0, gradient_clip_norm=0))
    weight = small_detector.net.head.box_tower.predict_pw.weight
    before = weight.detach().clone()
    values = small_detector.train_step(*make_batch(9, 2, SMALL))
    assert values["grad_norm"] > 0 and not torch.equal(before, weight)


def test_train_step_without_optimizer_is_a_clear_error(small_detector):
    images, targets = make_batch(5, 1, SMALL)
    with pytest.raises(ModelError, match="configure_optimizer"):
        small_detector.train_step(images, targets)


def test_non_finite_loss_is_reported_and_weights_stay_intact(small_detector):
    det = small_detector
    det.configure_optimizer(hp())
    images, targets = make_batch(6, 2, SMALL)
    with torch.no_grad():  # a diverged weight: every loss from now on is NaN
        det.net.head.class_tower.predict_pw.bias[0] = float("inf")
    before = _snapshot(det.net)
    values = det.train_step(images, targets)
    assert not math.isfinite(values["loss"])
    after = _snapshot(det.net)
    params = dict(det.net.named_parameters())
    assert all(torch.allclose(before[n], after[n], equal_nan=True) for n in params)


def test_validation_losses_change_nothing(small_detector):
    images, targets = make_batch(7, 2, SMALL, empty_index=0)
    before = _snapshot(small_detector.net)
    losses = small_detector.validation_losses(images, targets)
    assert {"loss", "localization", "classification"} <= set(losses)
    after = _snapshot(small_detector.net)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_predict_batch_returns_sorted_detections_in_input_pixels(trained_small_detector):
    images, _ = make_batch(0, 4, SMALL)
    results = trained_small_detector.predict_batch(images)
    assert len(results) == 4
    for det in results:
        assert 0 < len(det) <= 100
        assert (det.scores[:-1] >= det.scores[1:]).all()
        assert det.boxes.max() <= SMALL and det.classes.max() < len(LABELS)
        assert det.boxes.dtype.name == "float32" and det.classes.dtype.name == "int64"


def test_checkpoint_round_trip_restores_model_optimizer_and_extra(tmp_path, small_detector):
    det = small_detector
    det.configure_optimizer(hp())
    images, targets = make_batch(8, 2, SMALL)
    det.train_step(images, targets)
    path = tmp_path / "ckpt" / "last.pt"
    det.save_checkpoint(
        path, {"epoch": 3, "history": [{"loss": 1.5}], "rng": torch.get_rng_state()}
    )
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left

    fresh = get_engine("torch").create(get_spec(DEFAULT_MODEL_ID), LABELS, image_size=SMALL)
    extra = fresh.load_checkpoint(path)  # before configure_optimizer: state applied later
    fresh.configure_optimizer(hp())
    assert extra["epoch"] == 3 and extra["history"] == [{"loss": 1.5}]
    for (name, a), b in zip(
        det.net.state_dict().items(), fresh.net.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    state_a = det.optimizer.state_dict()["state"]
    state_b = fresh.optimizer.state_dict()["state"]
    assert state_a.keys() == state_b.keys()
    assert torch.equal(state_a[0]["exp_avg"], state_b[0]["exp_avg"])
    # the next step is identical too
    torch.manual_seed(1)
    a = det.train_step(images, targets)["loss"]
    torch.manual_seed(1)
    b = fresh.train_step(images, targets)["loss"]
    assert a == pytest.approx(b, rel=1e-5)


def test_checkpoint_of_another_dataset_is_refused(tmp_path, small_detector):
    from boxtune.labels import LabelMap

    small_detector.save_checkpoint(tmp_path / "c.pt", {})
    other = get_engine("torch").create(
        get_spec(DEFAULT_MODEL_ID), LabelMap.from_categories({1: "cat"}), image_size=SMALL
    )
    with pytest.raises(ModelError, match="checkpoint is for"):
        other.load_checkpoint(tmp_path / "c.pt")


def test_reinitialize_head_resets_only_the_class_predictor(trained_small_detector):
    import copy

    det = copy.deepcopy(trained_small_detector)
    tower = det.net.head.class_tower.pointwise[0].weight.detach().clone()
    predictor = det.net.head.class_tower.predict_pw.weight.detach().clone()
    det.reinitialize_head()
    assert torch.equal(tower, det.net.head.class_tower.pointwise[0].weight)
    assert not torch.equal(predictor, det.net.head.class_tower.predict_pw.weight)
    images = torch.from_numpy(make_batch(0, 1, SMALL)[0]).permute(0, 3, 1, 2)
    scores = det.net(images)[0].sigmoid()
    assert scores.max() < 0.05  # back to the 0.01 prior


def test_random_init_differs_from_pretrained():
    spec = get_spec(DEFAULT_MODEL_ID)
    engine = get_engine("torch")
    pretrained = engine.create(spec, LABELS, init="pretrained", image_size=SMALL)
    random = engine.create(spec, LABELS, init="random", image_size=SMALL)
    a = pretrained.net.backbone.blocks[3]._expand_conv.weight
    b = random.net.backbone.blocks[3]._expand_conv.weight
    assert a.shape == b.shape and not torch.equal(a, b)
    with pytest.raises(ModelError, match="unknown init"):
        engine.create(spec, LABELS, init="imagenet")
