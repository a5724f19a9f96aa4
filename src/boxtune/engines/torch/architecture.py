"""What a torch network is, as a record the artifact manifest stores, and the builder from it.

An artifact is rebuilt from this record alone (never from the catalog), so an artifact keeps
loading when its catalog entry changes or disappears.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from boxtune.engines.torch.efficientdet import EfficientDetLite
from boxtune.engines.torch.tv_models import (
    COCO_NUM_CLASSES,
    TorchvisionNet,
    background_slots,
    build_torchvision,
    load_coco_weights,
)
from boxtune.errors import ModelError

EFFICIENTDET_LITE0 = "efficientdet_lite0"


@dataclass(frozen=True)
class TorchArchitecture:
    """``name``: ``efficientdet_lite0`` or a torchvision builder name (``fcos_resnet50_fpn``).

    ``pretrained_freezing``: keep frozen what is frozen when fine-tuning from pretrained weights
    (the default model's stem and first blocks; torchvision's frozen ResNet stages), also after
    the network is rebuilt from an artifact.
    """

    name: str
    image_size: int
    num_classes: int
    pretrained_freezing: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], where: str) -> TorchArchitecture:
        """Format 1 manifests stored the architecture's name only; the sizes were beside it."""
        record = manifest.get("architecture")
        if isinstance(record, str):
            record = {"name": record}
        if not isinstance(record, dict) or not isinstance(record.get("name"), str):
            raise ModelError(
                f"the manifest's architecture {record!r} is not a torch architecture record",
                where=where,
                hint="the artifact is damaged or was written by another tool; export it again",
            )
        try:
            return cls(
                name=record["name"],
                image_size=int(record.get("image_size", manifest["image_size"])),
                num_classes=int(record.get("num_classes", manifest["num_classes"])),
                pretrained_freezing=bool(record.get("pretrained_freezing", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"the manifest's architecture record is incomplete ({exc})",
                where=where,
                hint="the artifact is damaged; export it again",
            ) from exc


def build_network(
    arch: TorchArchitecture,
    *,
    backbone_weights: Path | None = None,
    coco_weights: Path | None = None,
    keep_coco_classes: list[int] | None = None,
) -> nn.Module:
    """The network of ``arch`` with random weights, or with ImageNet backbone weights
    (the default model) or full COCO weights (torchvision; the class head is then new for
    ``arch.num_classes``, or, with ``keep_coco_classes``, the pretrained rows of those COCO
    category ids)."""
    if arch.name == EFFICIENTDET_LITE0:
        if coco_weights is not None:
            raise ModelError(f"{arch.name} has no COCO-pretrained weights")
        return EfficientDetLite(
            arch.num_classes,
            arch.image_size,
            backbone_weights=backbone_weights,
            freeze_early_layers=arch.pretrained_freezing,
        )
    if coco_weights is not None:
        model = build_torchvision(arch.name, COCO_NUM_CLASSES, arch.image_size)
        load_coco_weights(model, coco_weights)
        net = TorchvisionNet(model, arch.name, arch.image_size, pretrained=True)
        if keep_coco_classes is None:
            net.reset_classes(arch.num_classes)
        else:
            net.keep_coco_classes(keep_coco_classes)
        return net
    model = build_torchvision(
        arch.name, arch.num_classes + background_slots(arch.name), arch.image_size
    )
    return TorchvisionNet(model, arch.name, arch.image_size, pretrained=arch.pretrained_freezing)
