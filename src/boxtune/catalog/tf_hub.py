"""The 36 inference-only models of the managed algorithm (ids ``tensorflow-od-…``): TF Hub
SavedModels of the TensorFlow 2 Detection Model Zoo, deployable as is, never fine-tuned.

Each is a TF2 SavedModel at ``https://tfhub.dev/<handle>``; TF Hub serves it as a tarball with
``?tf-hub-format=compressed`` (``BOXTUNE_TFHUB_BASE_URL`` replaces ``https://tfhub.dev`` for
mirrors: tfhub.dev now redirects to Kaggle Models). Its ``serving_default`` signature takes a
uint8 ``[1, H, W, 3]`` image and answers the Object Detection API's ``detection_boxes``
(normalised ``[ymin, xmin, ymax, xmax]``), ``detection_classes`` (COCO ids 1..90),
``detection_scores`` and ``num_detections`` (the ``-kpts`` CenterNets add keypoints, unused
here). COCO mAP and speed are the zoo table's numbers for the same model.

A spec's ``architecture`` is ``tfhub:<handle>``; the weights file is the tarball, named
``<handle with / as _>.tar.gz`` in ``BOXTUNE_HOME/weights``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from boxtune.catalog.spec import ModelSpec, WeightsSource
from boxtune.catalog.tf_zoo import ZOO_CLASS_NAMES
from boxtune.errors import ModelError

TFHUB_URL = "https://tfhub.dev"
HUB_ARCHITECTURE_PREFIX = "tfhub:"
HUB_LICENSE = "Apache-2.0"
COMPRESSED = "?tf-hub-format=compressed"

_RESNET50_640 = "tensorflow-od1-ssd-resnet50-v1-fpn-640x640-coco17-tpu-8"
_RESNET50_1024 = "tensorflow-od1-ssd-resnet50-v1-fpn-1024x1024-coco17-tpu-8"
_RESNET101_640 = "tensorflow-od1-ssd-resnet101-v1-fpn-640x640-coco17-tpu-8"
_RESNET101_1024 = "tensorflow-od1-ssd-resnet101-v1-fpn-1024x1024-coco17-tpu-8"
_RESNET152_640 = "tensorflow-od1-ssd-resnet152-v1-fpn-640x640-coco17-tpu-8"
_RESNET152_1024 = "tensorflow-od1-ssd-resnet152-v1-fpn-1024x1024-coco17-tpu-8"
_EFFICIENTDET = {
    0: "tensorflow-od1-ssd-efficientdet-d0-512x512-coco17-tpu-8",
    1: "tensorflow-od1-ssd-efficientdet-d1-640x640-coco17-tpu-8",
    2: "tensorflow-od1-ssd-efficientdet-d2-768x768-coco17-tpu-8",
    3: "tensorflow-od1-ssd-efficientdet-d3-896x896-coco17-tpu-32",
}
_MOBILENET_V1_FPN = "tensorflow-od1-ssd-mobilenet-v1-fpn-640x640-coco17-tpu-8"
_FPNLITE_320 = "tensorflow-od1-ssd-mobilenet-v2-fpnlite-320x320-coco17-tpu-8"
_FPNLITE_640 = "tensorflow-od1-ssd-mobilenet-v2-fpnlite-640x640-coco17-tpu-8"


@dataclass(frozen=True)
class HubModel:
    model_id: str
    handle: str
    family: str
    title: str  # the zoo table's model name
    image_size: int  # the longer side of the model's input
    coco_map: float  # box mAP
    speed_ms: float
    fine_tune_instead: str  # the tensorflow-od1 id closest to it, for the error of training

    @property
    def file_name(self) -> str:
        return self.handle.replace("/", "_") + ".tar.gz"

    @property
    def page_url(self) -> str:
        return f"{TFHUB_URL}/{self.handle}"

    def download_url(self) -> str:
        """The compressed download, from ``BOXTUNE_TFHUB_BASE_URL`` when that is set."""
        base = os.environ.get("BOXTUNE_TFHUB_BASE_URL", "").strip().rstrip("/") or TFHUB_URL
        return f"{base}/{self.handle}{COMPRESSED}"


def _hub(model_id, handle, family, title, size, coco_map, speed, instead) -> HubModel:
    return HubModel(model_id, handle, family, title, size, coco_map, speed, instead)


def _centernet(name: str, size: int, coco_map: float, speed: float, instead: str) -> HubModel:
    """``name``: the handle's model part (``hourglass_512x512_kpts``: with keypoints)."""
    backbone = name.partition("_")[0]
    return _hub(
        f"tensorflow-od-centernet-{name.replace('_', '-')}-1",
        f"tensorflow/centernet/{name}/1",
        f"CenterNet ({backbone})",
        f"CenterNet {name}",
        size,
        coco_map,
        speed,
        instead,
    )


def _faster_rcnn(backbone: str, size: str, coco_map: float, speed: float, instead: str) -> HubModel:
    height, _, width = size.partition("x")
    return _hub(
        f"tensorflow-od-faster-rcnn-{backbone.replace('_', '-')}-{size}-1",
        f"tensorflow/faster_rcnn/{backbone}_{size}/1",
        "Faster R-CNN",
        f"Faster R-CNN {backbone} {size}",
        max(int(height), int(width)),
        coco_map,
        speed,
        instead,
    )


def _retinanet(depth: int, size: int, coco_map: float, speed: float, instead: str) -> HubModel:
    return _hub(
        f"tensorflow-od-retinanet-resnet{depth}-v1-fpn-{size}x{size}-1",
        f"tensorflow/retinanet/resnet{depth}_v1_fpn_{size}x{size}/1",
        "RetinaNet",
        f"SSD ResNet{depth} V1 FPN {size}x{size} (RetinaNet{depth})",
        size,
        coco_map,
        speed,
        instead,
    )


def _efficientdet(level: int, size: int, coco_map: float, speed: float) -> HubModel:
    return _hub(
        f"tensorflow-od-efficientdet-d{level}-1",
        f"tensorflow/efficientdet/d{level}/1",
        "EfficientDet",
        f"EfficientDet D{level} {size}x{size}",
        size,
        coco_map,
        speed,
        _EFFICIENTDET[min(level, 3)],
    )


HUB_MODELS: tuple[HubModel, ...] = (
    _centernet("hourglass_1024x1024", 1024, 44.5, 197, _RESNET50_1024),
    _centernet("hourglass_1024x1024_kpts", 1024, 42.8, 211, _RESNET50_1024),
    _centernet("hourglass_512x512", 512, 41.9, 70, _EFFICIENTDET[0]),
    _centernet("hourglass_512x512_kpts", 512, 40.0, 76, _EFFICIENTDET[0]),
    _centernet("resnet101v1_fpn_512x512", 512, 34.2, 34, _RESNET101_640),
    _centernet("resnet50v1_fpn_512x512", 512, 31.2, 27, _RESNET50_640),
    _centernet("resnet50v1_fpn_512x512_kpts", 512, 29.3, 30, _RESNET50_640),
    _centernet("resnet50v2_512x512", 512, 29.5, 27, _RESNET50_640),
    _centernet("resnet50v2_512x512_kpts", 512, 27.6, 30, _RESNET50_640),
    _efficientdet(0, 512, 33.6, 39),
    _efficientdet(1, 640, 38.4, 54),
    _efficientdet(2, 768, 41.8, 67),
    _efficientdet(3, 896, 45.4, 95),
    _efficientdet(4, 1024, 48.5, 133),
    _efficientdet(5, 1280, 49.7, 222),
    _faster_rcnn("inception_resnet_v2", "1024x1024", 38.7, 236, _RESNET152_1024),
    _faster_rcnn("inception_resnet_v2", "640x640", 37.7, 206, _RESNET152_640),
    _faster_rcnn("resnet101_v1", "1024x1024", 37.1, 72, _RESNET101_1024),
    _faster_rcnn("resnet101_v1", "640x640", 31.8, 55, _RESNET101_640),
    _faster_rcnn("resnet101_v1", "800x1333", 36.6, 77, _RESNET101_1024),
    _faster_rcnn("resnet152_v1", "1024x1024", 37.6, 85, _RESNET152_1024),
    _faster_rcnn("resnet152_v1", "640x640", 32.4, 64, _RESNET152_640),
    _faster_rcnn("resnet152_v1", "800x1333", 37.4, 101, _RESNET152_1024),
    _faster_rcnn("resnet50_v1", "1024x1024", 31.0, 65, _RESNET50_1024),
    _faster_rcnn("resnet50_v1", "640x640", 29.3, 53, _RESNET50_640),
    _faster_rcnn("resnet50_v1", "800x1333", 31.6, 65, _RESNET50_1024),
    _retinanet(101, 1024, 39.5, 104, _RESNET101_1024),
    _retinanet(101, 640, 35.6, 57, _RESNET101_640),
    _retinanet(152, 1024, 39.6, 111, _RESNET152_1024),
    _retinanet(152, 640, 35.4, 80, _RESNET152_640),
    _retinanet(50, 1024, 38.3, 87, _RESNET50_1024),
    _retinanet(50, 640, 34.3, 46, _RESNET50_640),
    _hub(
        "tensorflow-od-ssd-mobilenet-v1-fpn-640x640-1",
        "tensorflow/ssd_mobilenet_v1/fpn_640x640/1",
        "SSD MobileNet",
        "SSD MobileNet V1 FPN 640x640",
        640,
        29.1,
        48,
        _MOBILENET_V1_FPN,
    ),
    _hub(
        "tensorflow-od-ssd-mobilenet-v2-2",
        "tensorflow/ssd_mobilenet_v2/2",
        "SSD MobileNet",
        "SSD MobileNet v2 320x320",
        320,
        20.2,
        19,
        _FPNLITE_320,
    ),
    _hub(
        "tensorflow-od-ssd-mobilenet-v2-fpnlite-320x320-1",
        "tensorflow/ssd_mobilenet_v2/fpnlite_320x320/1",
        "SSD MobileNet",
        "SSD MobileNet V2 FPNLite 320x320",
        320,
        22.2,
        22,
        _FPNLITE_320,
    ),
    _hub(
        "tensorflow-od-ssd-mobilenet-v2-fpnlite-640x640-1",
        "tensorflow/ssd_mobilenet_v2/fpnlite_640x640/1",
        "SSD MobileNet",
        "SSD MobileNet V2 FPNLite 640x640",
        640,
        28.2,
        39,
        _FPNLITE_640,
    ),
)

HUB_BY_ID: dict[str, HubModel] = {model.model_id: model for model in HUB_MODELS}


def hub_spec(model: HubModel) -> ModelSpec:
    return ModelSpec(
        model_id=model.model_id,
        engine="tensorflow",
        family=model.family,
        architecture=HUB_ARCHITECTURE_PREFIX + model.handle,
        image_size=model.image_size,
        weights=WeightsSource(
            describes="detector",
            file_name=model.file_name,
            sha256="",  # not published: recorded on first use
            url=model.page_url + COMPRESSED,
            license=f"{HUB_LICENSE} (TF Hub {model.handle})",
        ),
        license=HUB_LICENSE,
        coco_map=model.coco_map,
        params_m=None,
        deployable=True,
        class_names=ZOO_CLASS_NAMES,
        default_hyperparameters={},
        offline=False,
        description=f"TF Hub {model.handle} ({model.page_url}): the TF2 Detection Model Zoo's "
        f"{model.title} as a SavedModel, COCO-2017 pretrained; inference only (deploy as is); "
        f"to fine-tune, use {model.fine_tune_instead}.",
        fine_tunable=False,
        speed_ms=model.speed_ms,
    )


HUB_SPECS: tuple[ModelSpec, ...] = tuple(hub_spec(model) for model in HUB_MODELS)


def is_hub_spec(spec: ModelSpec) -> bool:
    return spec.engine == "tensorflow" and spec.architecture.startswith(HUB_ARCHITECTURE_PREFIX)


def hub_model(spec: ModelSpec) -> HubModel:
    """The hub record of a hub spec (a ModelError for any other spec)."""
    model = HUB_BY_ID.get(spec.model_id)
    if model is None or not is_hub_spec(spec):
        raise ModelError(f"{spec.model_id} is not a TF Hub model", where="model_id")
    return model


def check_fine_tunable(spec: ModelSpec) -> None:
    """A ModelError, naming the ``tensorflow-od1-…`` model to fine-tune instead, for a model
    that is inference only; nothing for the others."""
    if spec.fine_tunable:
        return
    model = HUB_BY_ID.get(spec.model_id)
    instead = model.fine_tune_instead if model else "a tensorflow-od1-… model"
    raise ModelError(
        f"{spec.model_id} is inference only (a TF Hub SavedModel, deployable as is): it "
        "cannot be fine-tuned",
        where="model_id",
        hint=f"fine-tune {instead} instead (the fine-tunable TF2 zoo models are the "
        "tensorflow-od1-… ids in `boxtune models list`), or deploy this one as is",
    )
