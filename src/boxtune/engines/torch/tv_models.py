"""torchvision's COCO detectors behind the same small network interface as the default model.

Softmax detectors (Faster R-CNN, SSD) reserve label 0 for the background, so class index ``i``
of a boxtune label map is their label ``i + 1``; sigmoid detectors (RetinaNet, FCOS) have no
background slot and use ``i`` itself. COCO-pretrained runners keep torchvision's labels, which
are COCO category ids.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torchvision.models.detection as tvd
from torch import nn

from boxtune.detections import Detections
from boxtune.errors import ModelError

# Low enough to return the tiny scores the managed service returns, high enough to keep NMS fast.
SCORE_THRESHOLD = 1e-3
MAX_DETECTIONS = 100
COCO_NUM_CLASSES = 91
_PRIOR = 0.01


def background_slots(architecture: str) -> int:
    """1 when label 0 means background (softmax heads), 0 for sigmoid heads."""
    return 0 if architecture.startswith(("retinanet", "fcos")) else 1


def _kwargs(architecture: str, image_size: int | None) -> dict:
    # Runners already stretch images to S x S: make torchvision's own resize a no-op (SSD models
    # have a fixed input size set by their builders).
    size = (
        {}
        if image_size is None or architecture.startswith("ssd")
        else {"min_size": image_size, "max_size": image_size}
    )
    if architecture.startswith("fasterrcnn"):
        return {
            "box_score_thresh": SCORE_THRESHOLD,
            "box_detections_per_img": MAX_DETECTIONS,
            **size,
        }
    return {"score_thresh": SCORE_THRESHOLD, "detections_per_img": MAX_DETECTIONS, **size}


def build_torchvision(
    architecture: str, num_classes: int, image_size: int | None = None
) -> nn.Module:
    """A torchvision detector with ``num_classes`` outputs (background included), random init.

    Backbone ImageNet weights are never fetched: pretrained weights come as a full COCO
    checkpoint through the catalog.
    """
    builder = getattr(tvd, architecture, None)
    if builder is None:
        raise ModelError(
            f"torchvision {tvd.__name__} has no detector named {architecture!r}",
            hint="upgrade torchvision (boxtune pins 0.29)",
        )
    return builder(
        weights=None,
        weights_backbone=None,
        num_classes=num_classes,
        **_kwargs(architecture, image_size),
    )


def load_coco_weights(model: nn.Module, path: Path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)


def _replace_conv(old: nn.Conv2d, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(
        old.in_channels, out_channels, old.kernel_size, stride=old.stride, padding=old.padding
    ).to(old.weight.device)


def reset_classes(model: nn.Module, architecture: str, num_classes: int) -> None:
    """Replace the class predictor for ``num_classes`` (background included), new random init."""
    if architecture.startswith("fasterrcnn"):
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

        old = model.roi_heads.box_predictor
        model.roi_heads.box_predictor = FastRCNNPredictor(
            old.cls_score.in_features, num_classes
        ).to(old.cls_score.weight.device)
    elif architecture.startswith(("retinanet", "fcos")):
        head = model.head.classification_head
        anchors = head.cls_logits.out_channels // head.num_classes
        head.cls_logits = _replace_conv(head.cls_logits, anchors * num_classes)
        nn.init.normal_(head.cls_logits.weight, std=0.01)
        nn.init.constant_(head.cls_logits.bias, -math.log((1 - _PRIOR) / _PRIOR))
        head.num_classes = num_classes
    elif architecture.startswith(("ssdlite", "ssd300")):
        head = model.head.classification_head
        for index, block in enumerate(head.module_list):
            conv = block[-1] if isinstance(block, nn.Sequential) else block
            anchors = conv.out_channels // head.num_columns
            new = _replace_conv(conv, anchors * num_classes)
            if architecture.startswith("ssdlite"):
                nn.init.normal_(new.weight, std=0.03)
            else:
                nn.init.xavier_uniform_(new.weight)
            nn.init.zeros_(new.bias)
            if isinstance(block, nn.Sequential):
                block[-1] = new
            else:
                head.module_list[index] = new
        head.num_columns = num_classes
    else:
        raise ModelError(f"no class-head replacement known for {architecture}")


def _rows(tensor: torch.Tensor, groups: int, classes: int, keep: list[int], per_class: int = 1):
    """The rows of ``keep``'s classes from a tensor whose rows run (group, class, per_class)."""
    shaped = tensor.detach().reshape(groups, classes, per_class, *tensor.shape[1:])
    return shaped[:, keep].reshape(groups * len(keep) * per_class, *tensor.shape[1:]).clone()


def _keep_rows(old: nn.Module, new: nn.Module, groups: int, classes: int, keep: list[int],
               per_class: int = 1) -> nn.Module:  # fmt: skip
    with torch.no_grad():
        new.weight.copy_(_rows(old.weight, groups, classes, keep, per_class))
        new.bias.copy_(_rows(old.bias, groups, classes, keep, per_class))
    return new


def keep_classes(model: nn.Module, architecture: str, keep: list[int]) -> None:
    """Shrink the class predictor to the labels ``keep`` (in that order), keeping their
    pretrained rows bit for bit (reinitialize_top_layer=False on a COCO model)."""
    if architecture.startswith("fasterrcnn"):
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

        old = model.roi_heads.box_predictor
        classes = old.cls_score.out_features
        new = FastRCNNPredictor(old.cls_score.in_features, len(keep)).to(old.cls_score.weight)
        _keep_rows(old.cls_score, new.cls_score, 1, classes, keep)
        _keep_rows(old.bbox_pred, new.bbox_pred, 1, classes, keep, per_class=4)
        model.roi_heads.box_predictor = new
    elif architecture.startswith(("retinanet", "fcos")):
        head = model.head.classification_head
        anchors = head.cls_logits.out_channels // head.num_classes
        new = _replace_conv(head.cls_logits, anchors * len(keep))
        head.cls_logits = _keep_rows(head.cls_logits, new, anchors, head.num_classes, keep)
        head.num_classes = len(keep)
    elif architecture.startswith(("ssdlite", "ssd300")):
        head = model.head.classification_head
        for index, block in enumerate(head.module_list):
            conv = block[-1] if isinstance(block, nn.Sequential) else block
            anchors = conv.out_channels // head.num_columns
            new = _keep_rows(
                conv, _replace_conv(conv, anchors * len(keep)), anchors, head.num_columns, keep
            )
            if isinstance(block, nn.Sequential):
                block[-1] = new
            else:
                head.module_list[index] = new
        head.num_columns = len(keep)
    else:
        raise ModelError(f"no class-head selection known for {architecture}")


def head_modules(model: nn.Module, architecture: str) -> list[nn.Module]:
    """What `train_only_top_layer` trains: the detection heads (RPN + ROI heads for R-CNN)."""
    if architecture.startswith("fasterrcnn"):
        return [model.rpn.head, model.roi_heads]
    return [model.head]


def pretrained_frozen_modules(model: nn.Module, architecture: str) -> list[nn.Module]:
    """What torchvision itself freezes when it builds these detectors with COCO weights: the
    ResNet stem and first stage, and (v1 and MobileNet models) every backbone batch norm
    (torchvision uses FrozenBatchNorm2d there). We build with ``weights=None`` and load the
    checkpoint ourselves, so the freezing is re-applied here."""
    body = getattr(getattr(model, "backbone", None), "body", None)
    if body is None:
        return []
    frozen: list[nn.Module] = []
    if "resnet50" in architecture:
        frozen += [body.conv1, body.bn1, body.layer1]
    if not architecture.endswith("_v2") and architecture.startswith(("fasterrcnn", "fcos")):
        frozen += [m for m in body.modules() if isinstance(m, nn.BatchNorm2d)]
    return frozen


def _split_losses(loss_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    classification = sum(
        (v for k, v in loss_dict.items() if "class" in k or "objectness" in k),
        start=torch.zeros(()),
    )
    localization = sum(
        (v for k, v in loss_dict.items() if not ("class" in k or "objectness" in k)),
        start=torch.zeros(()),
    )
    return {
        "loss": classification + localization,
        "classification": classification,
        "localization": localization,
    }


class TorchvisionNet(nn.Module):
    """Wraps a torchvision detector: uint8 [B, 3, S, S] batches, 0-based class indices."""

    def __init__(
        self,
        model: nn.Module,
        architecture: str,
        image_size: int,
        label_offset: int | None = None,
        pretrained: bool = False,
    ):
        super().__init__()
        self.pretrained = pretrained
        self.model = model
        self.architecture = architecture
        self.image_size = image_size
        # index i <-> label i + offset; COCO runners pass 0 (their labels are COCO ids).
        self.label_offset = background_slots(architecture) if label_offset is None else label_offset

    @staticmethod
    def _as_list(images: torch.Tensor) -> list[torch.Tensor]:
        return [image.float() / 255.0 for image in images]

    def losses(self, images: torch.Tensor, targets: list[dict]) -> dict[str, torch.Tensor]:
        device = images.device
        tv_targets = [
            {
                "boxes": t["boxes"].to(device, torch.float32).reshape(-1, 4),
                "labels": t["labels"].to(device, torch.int64).reshape(-1) + self.label_offset,
            }
            for t in targets
        ]
        return _split_losses(self.model(self._as_list(images), tv_targets))

    def detect(self, images: torch.Tensor) -> list[Detections]:
        outputs = self.model(self._as_list(images))
        results = []
        for out in outputs:
            results.append(
                Detections(
                    out["boxes"].detach().cpu().numpy().astype("float32"),
                    (out["labels"] - self.label_offset).cpu().numpy().astype("int64"),
                    out["scores"].detach().cpu().numpy().astype("float32"),
                ).sorted()
            )
        return results

    def new_modules(self) -> list[nn.Module]:
        return head_modules(self.model, self.architecture)

    def frozen_modules(self) -> list[nn.Module]:
        return pretrained_frozen_modules(self.model, self.architecture) if self.pretrained else []

    def reset_classes(self, num_classes: int) -> None:
        reset_classes(self.model, self.architecture, num_classes + self.label_offset)

    def keep_coco_classes(self, coco_ids: list[int]) -> None:
        """Class index i becomes COCO category ``coco_ids[i]``, with its pretrained weights
        (and the background row, for heads that have one)."""
        background = list(range(self.label_offset))
        keep_classes(self.model, self.architecture, background + list(coco_ids))
