"""torchvision detectors behind the engine interface: built with random weights on tiny inputs
(no network here, so COCO weights are stood in for by a random checkpoint with its own hash)."""

import dataclasses
import hashlib

import numpy as np
import pytest
import torch
from _engine_helpers import LABELS, hp, make_batch

from boxtune.catalog import cached_weights_path, get_spec, list_specs
from boxtune.engines import get_engine
from boxtune.engines.torch.tv_models import COCO_NUM_CLASSES, build_torchvision
from boxtune.errors import ModelError

TRAINED_HERE = {
    "pytorch-od1-ssdlite320-mobilenet-v3-large": 320,
    "pytorch-od1-fasterrcnn-mobilenet-v3-large-320-fpn": 160,
    "pytorch-od1-retinanet-resnet50-fpn-v2": 128,
}


@pytest.mark.parametrize("model_id", list(TRAINED_HERE))
def test_train_step_and_predict_with_random_weights(model_id):
    torch.manual_seed(0)
    size = TRAINED_HERE[model_id]
    spec = get_spec(model_id)
    detector = get_engine("torch").create(spec, LABELS, init="random", image_size=size)
    detector.set_trainable(head_only=False)
    detector.configure_optimizer(hp(optimizer="sgd", learning_rate=0.001))
    images, targets = make_batch(0, 2, size, empty_index=1)  # one image with no boxes
    values = detector.train_step(images, targets)
    assert all(np.isfinite(v) for v in values.values())
    assert values["localization"] > 0 and values["classification"] > 0
    val = detector.validation_losses(images, targets)
    assert np.isfinite(val["loss"])
    results = detector.predict_batch(images)
    assert len(results) == 2
    for det in results:
        assert det.classes.size == 0 or (det.classes.min() >= 0 and det.classes.max() < 2)


def test_head_only_freezes_the_torchvision_backbone():
    torch.manual_seed(0)
    spec = get_spec("pytorch-od1-ssdlite320-mobilenet-v3-large")
    detector = get_engine("torch").create(spec, LABELS, init="random")
    detector.set_trainable(head_only=True)
    detector.configure_optimizer(hp(learning_rate=0.01))
    state = {k: v.clone() for k, v in detector.net.state_dict().items()}
    images, targets = make_batch(1, 2, 320)
    detector.train_step(images, targets)
    after = detector.net.state_dict()
    changed = {k for k in state if not torch.equal(state[k], after[k])}
    assert changed and all(k.startswith("model.head.") for k in changed)


@pytest.mark.parametrize(
    "spec", [s for s in list_specs(engine="torch") if s.deployable], ids=lambda s: s.model_id
)
def test_class_head_replacement_fits_every_architecture(spec):
    """Cheap: structure only (no forward), for every torchvision model in the catalog."""
    model = build_torchvision(spec.architecture, COCO_NUM_CLASSES, 128)
    from boxtune.engines.torch.tv_models import TorchvisionNet

    net = TorchvisionNet(model, spec.architecture, 128)
    before = sum(p.numel() for p in net.parameters())
    net.reset_classes(2)
    after = sum(p.numel() for p in net.parameters())
    assert after < before  # 91 -> 3 outputs per anchor
    assert any(p.requires_grad for m in net.new_modules() for p in m.parameters())


@pytest.fixture
def fake_coco_weights(monkeypatch):
    """A random 91-class SSDLite checkpoint in the cache, with the catalog pointed at its hash."""
    torch.manual_seed(0)
    spec = get_spec("pytorch-od1-ssdlite320-mobilenet-v3-large")
    model = build_torchvision(spec.architecture, COCO_NUM_CLASSES)
    path = cached_weights_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return dataclasses.replace(spec, weights=dataclasses.replace(spec.weights, sha256=digest[:8]))


def test_pretrained_create_and_coco_runner_from_cached_weights(fake_coco_weights):
    engine = get_engine("torch")
    detector = engine.create(fake_coco_weights, LABELS, init="pretrained")
    assert detector.net.model.head.classification_head.num_columns == len(LABELS) + 1
    runner = engine.pretrained_runner(fake_coco_weights, backend="torch")
    assert len(runner.label_map) == 80 and runner.label_map.names[0] == "person"
    image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    (det,) = runner.predict([image])
    assert det.classes.size == 0 or det.classes.max() < 80
    assert det.boxes.size == 0 or det.boxes[:, 2].max() <= 320 + 1e-3


def test_pretrained_without_weights_is_a_clear_offline_error(monkeypatch):
    monkeypatch.setenv("BOXTUNE_OFFLINE", "1")
    spec = get_spec("pytorch-od1-fcos-resnet50-fpn")
    with pytest.raises(ModelError) as err:
        get_engine("torch").create(spec, LABELS, init="pretrained")
    assert spec.weights.url in str(err.value) and str(cached_weights_path(spec)) in str(err.value)


def test_default_model_is_not_deployable_as_is():
    from boxtune.catalog import DEFAULT_MODEL_ID

    with pytest.raises(ModelError, match="not deployable"):
        get_engine("torch").pretrained_runner(get_spec(DEFAULT_MODEL_ID))


def test_pretrained_torchvision_backbones_freeze_like_torchvision():
    """COCO-pretrained R-CNN backbones keep frozen batch norms (torchvision's FrozenBatchNorm2d)
    even in full fine-tuning; a random-init build trains everything."""
    from boxtune.engines.torch.architecture import TorchArchitecture
    from boxtune.engines.torch.detector import TorchDetector
    from boxtune.engines.torch.tv_models import TorchvisionNet

    spec = get_spec("pytorch-od1-fasterrcnn-mobilenet-v3-large-320-fpn")
    for pretrained in (True, False):
        model = build_torchvision(spec.architecture, len(LABELS) + 1, 160)
        net = TorchvisionNet(model, spec.architecture, 160, pretrained=pretrained)
        arch = TorchArchitecture(
            spec.architecture, 160, len(LABELS), pretrained_freezing=pretrained
        )
        detector = TorchDetector(net, arch, LABELS, model_id=spec.model_id, family=spec.family)
        detector.set_trainable(head_only=False)
        detector._train_mode()
        body_norms = [
            m for m in model.backbone.body.modules() if isinstance(m, torch.nn.BatchNorm2d)
        ]
        assert body_norms
        assert all(not m.training for m in body_norms) == pretrained
        assert all(not p.requires_grad for m in body_norms for p in m.parameters()) == pretrained
        assert model.rpn.head.conv[0][0].weight.requires_grad


KEPT = [1, 18]  # COCO person, dog


def _head_outputs(net, architecture: str, images: torch.Tensor):
    """Class scores [.., K] and box outputs of the class predictor, straight from the head."""
    model = net.model
    if architecture.startswith("fasterrcnn"):
        torch.manual_seed(1)
        features = torch.randn(5, model.roi_heads.box_predictor.cls_score.in_features)
        scores, deltas = model.roi_heads.box_predictor(features)
        return scores, deltas.reshape(5, scores.shape[1], 4)
    features = model.backbone(images)
    features = list(features.values()) if isinstance(features, dict) else [features]
    out = model.head(features)
    return out["cls_logits"], out["bbox_regression"]


@pytest.mark.parametrize(
    "spec", [s for s in list_specs(engine="torch") if s.deployable], ids=lambda s: s.model_id
)
def test_keeping_coco_classes_keeps_their_pretrained_outputs_exactly(spec):
    """reinitialize_top_layer=False on a COCO model: the new head's class k is the old head's
    COCO class KEPT[k] (plus background where the head has one), with the same outputs."""
    import copy

    from boxtune.engines.torch.tv_models import TorchvisionNet

    torch.manual_seed(0)
    size = 300 if spec.architecture.startswith("ssd300") else 128
    model = build_torchvision(spec.architecture, COCO_NUM_CLASSES, size).eval()
    old = TorchvisionNet(model, spec.architecture, size)
    new = copy.deepcopy(old)
    new.keep_coco_classes(KEPT)
    rows = list(range(old.label_offset)) + KEPT
    images = torch.rand(1, 3, size, size)
    with torch.no_grad():
        old_scores, old_boxes = _head_outputs(old, spec.architecture, images)
        new_scores, new_boxes = _head_outputs(new, spec.architecture, images)
    assert new_scores.shape[-1] == len(rows)
    # Same weights; a convolution with fewer output channels may sum in another order.
    torch.testing.assert_close(new_scores, old_scores[..., rows], rtol=1e-5, atol=1e-5)
    if spec.architecture.startswith("fasterrcnn"):  # class-specific box regression
        torch.testing.assert_close(new_boxes, old_boxes[:, rows], rtol=1e-5, atol=1e-5)
    else:
        torch.testing.assert_close(new_boxes, old_boxes, rtol=0, atol=0)


def test_reinitialize_top_layer_false_keeps_the_coco_head_for_coco_classes(fake_coco_weights):
    from boxtune.labels import LabelMap

    engine = get_engine("torch")
    coco_named = LabelMap.from_categories({5: "Person", 9: "dog"})  # the dataset's own ids
    kept = engine.create(fake_coco_weights, coco_named, init="pretrained", reinitialize_head=False)
    fresh = engine.create(fake_coco_weights, coco_named, init="pretrained")
    pretrained = torch.load(cached_weights_path(fake_coco_weights), weights_only=True)
    name = "model.head.classification_head.module_list.0.1.weight"
    source = pretrained[name.removeprefix("model.")]
    anchors = source.shape[0] // COCO_NUM_CLASSES
    expected = source.reshape(anchors, COCO_NUM_CLASSES, -1)[:, [0, *KEPT]]
    got = kept.net.state_dict()[name].reshape(anchors, 3, -1)
    assert torch.equal(got, expected)  # bit for bit
    assert not torch.equal(fresh.net.state_dict()[name].reshape(anchors, 3, -1), expected)
    with pytest.raises(ModelError, match="hexagon is not one of them"):
        engine.create(
            fake_coco_weights,
            LabelMap.from_categories({1: "person", 2: "hexagon"}),
            reinitialize_head=False,
        )
