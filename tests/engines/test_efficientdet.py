import pytest
import torch
from _engine_helpers import SMALL, torch_batch

from boxtune.catalog import DEFAULT_MODEL_ID, get_spec, resolve_weights
from boxtune.engines.torch.anchors import atss_assign, decode, level_counts, make_anchors
from boxtune.engines.torch.backbone import FEATURE_CHANNELS, EfficientNetLite0Backbone
from boxtune.engines.torch.efficientdet import EfficientDetLite
from boxtune.engines.torch.loss import detection_loss


def test_backbone_feature_maps_and_imagenet_weights():
    weights = resolve_weights(get_spec(DEFAULT_MODEL_ID))
    backbone = EfficientNetLite0Backbone(320, weights)
    features = backbone(torch.zeros(1, 3, 320, 320))
    assert [f.shape[1] for f in features] == list(FEATURE_CHANNELS) == [40, 112, 320]
    assert [f.shape[-1] for f in features] == [40, 20, 10]
    reference = torch.load(weights, map_location="cpu", weights_only=True)
    assert torch.equal(backbone.stem[0].weight, reference["_conv_stem.weight"])
    assert torch.equal(
        backbone.blocks[15]._project_conv.weight, reference["_blocks.15._project_conv.weight"]
    )
    random = EfficientNetLite0Backbone(320, None)
    assert not torch.equal(random.stem[0].weight, reference["_conv_stem.weight"])


@pytest.mark.parametrize("size", [SMALL, 320])
def test_outputs_cover_every_anchor(size):
    net = EfficientDetLite(num_classes=3, image_size=size).eval()
    logits, deltas = net(torch.zeros(2, 3, size, size, dtype=torch.uint8))
    anchors = make_anchors(size, net.strides)
    assert logits.shape == (2, anchors.shape[0], 3) and deltas.shape == (2, anchors.shape[0], 4)
    assert sum(level_counts(size, net.strides)) == anchors.shape[0]
    # prior-probability init: every score starts near 0.01
    assert torch.allclose(logits.sigmoid().mean(), torch.tensor(0.01), atol=5e-3)


def test_uint8_and_float_inputs_agree():
    net = EfficientDetLite(num_classes=2, image_size=SMALL).eval()
    images, _ = torch_batch(1, 2, SMALL)
    with torch.no_grad():
        a = net(images)[0]
        b = net(images.float())[0]
    assert torch.allclose(a, b)


def test_atss_gives_every_box_a_positive_and_none_to_empty_images():
    anchors = make_anchors(320, (8, 16, 32, 64))
    counts = level_counts(320, (8, 16, 32, 64))
    boxes = torch.tensor([[0, 0, 6, 6], [100, 100, 300, 180], [10, 200, 60, 310.0]])
    assigned = atss_assign(anchors, counts, boxes)
    for index in range(len(boxes)):
        assert (assigned == index).any()
    empty = atss_assign(anchors, counts, torch.zeros(0, 4))
    assert (empty == -1).all()


def test_decode_with_zero_deltas_is_the_anchor():
    anchors = make_anchors(SMALL, (8, 16, 32, 64))
    assert torch.allclose(decode(anchors, torch.zeros_like(anchors)), anchors)


def test_loss_is_finite_with_an_image_without_boxes_and_has_gradients():
    net = EfficientDetLite(num_classes=2, image_size=SMALL)
    images, targets = torch_batch(2, 3, SMALL, empty_index=1)
    losses = net.losses(images, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    assert net.head.class_tower.predict_pw.weight.grad.abs().sum() > 0
    # all images empty: classification still trains (pushes scores down), no box loss
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}] * 3
    losses = detection_loss(*net(images), net.anchors, net.level_counts, empty)
    assert losses["localization"].item() == 0.0 and losses["classification"].item() > 0
