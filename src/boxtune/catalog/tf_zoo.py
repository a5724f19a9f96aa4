"""The 13 fine-tunable models of the managed algorithm: SSD-family detectors of the TensorFlow 2
Detection Model Zoo, COCO-2017 pretrained (ids ``tensorflow-od1-…``).

One small record per model. COCO mAP and speed are the zoo's published numbers (its
``tf2_detection_zoo.md`` table: ms per image on the zoo's own GPU setup); parameters are
``model.variables`` of the TF Object Detection API's model, the count boxtune's Keras networks
must equal. The platform's ids say ``tpu-8`` for EfficientDet D0-D2 although the zoo names say
``tpu-32`` (D3's id says ``tpu-32``): :attr:`ZooModel.zoo_name` is the zoo's own name, the
``architecture`` of the spec, the tarball's name and its top folder.

The zoo publishes no checksums: the sha256 of the tarball boxtune first uses is recorded next to
it and checked on every later use (see :mod:`boxtune.catalog.zoo_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass

from boxtune.catalog.coco import COCO_91_CATEGORIES
from boxtune.catalog.defaults import large, small
from boxtune.catalog.spec import ModelSpec, WeightsSource

ZOO_URL = "http://download.tensorflow.org/models/object_detection/tf2/20200711/"
ZOO_LICENSE = "Apache-2.0"
ZOO_WEIGHTS_LICENSE = "Apache-2.0 (TF2 Detection Model Zoo checkpoints, COCO-2017 pretrained)"
# The label ids of the zoo's head: 1..90 as in the API's mscoco_label_map.pbtxt (COCO's own
# category ids, the 10 unused ones included as "N/A"); index i holds id i + 1.
ZOO_CLASS_NAMES: tuple[str, ...] = COCO_91_CATEGORIES[1:]
# RetinaNets (33 M parameters and up) are "large": the head only, one epoch, a smaller batch.
LARGE_PARAMS = 30_000_000


@dataclass(frozen=True)
class ZooModel:
    model_id: str
    zoo_name: str
    title: str  # the zoo table's model name
    family: str
    image_size: int
    coco_map: float
    speed_ms: float
    params: int  # the manifest's params_total(model.variables)
    batch_size: int

    @property
    def large(self) -> bool:
        return self.params > LARGE_PARAMS

    @property
    def url(self) -> str:
        return f"{ZOO_URL}{self.file_name}"

    @property
    def file_name(self) -> str:
        return f"{self.zoo_name}.tar.gz"


def _resnet(depth: int, size: int, coco_map: float, speed: float, params: int) -> ZooModel:
    return ZooModel(
        model_id=f"tensorflow-od1-ssd-resnet{depth}-v1-fpn-{size}x{size}-coco17-tpu-8",
        zoo_name=f"ssd_resnet{depth}_v1_fpn_{size}x{size}_coco17_tpu-8",
        title=f"SSD ResNet{depth} V1 FPN {size}x{size} (RetinaNet{depth})",
        family=f"RetinaNet (SSD ResNet{depth} V1 FPN)",
        image_size=size,
        coco_map=coco_map,
        speed_ms=speed,
        params=params,
        batch_size=2 if size < 1024 else 1,
    )


def _fpnlite(size: int, coco_map: float, speed: float) -> ZooModel:
    return ZooModel(
        model_id=f"tensorflow-od1-ssd-mobilenet-v2-fpnlite-{size}x{size}-coco17-tpu-8",
        zoo_name=f"ssd_mobilenet_v2_fpnlite_{size}x{size}_coco17_tpu-8",
        title=f"SSD MobileNet V2 FPNLite {size}x{size}",
        family="SSD MobileNetV2 FPNLite",
        image_size=size,
        coco_map=coco_map,
        speed_ms=speed,
        params=2_667_002,
        batch_size=3,
    )


def _efficientdet(
    level: int, size: int, coco_map: float, speed: float, params: int, tpu: int = 8
) -> ZooModel:
    return ZooModel(
        model_id=f"tensorflow-od1-ssd-efficientdet-d{level}-{size}x{size}-coco17-tpu-{tpu}",
        zoo_name=f"efficientdet_d{level}_coco17_tpu-32",
        title=f"EfficientDet D{level} {size}x{size}",
        family=f"EfficientDet (EfficientNet-B{level} + BiFPN)",
        image_size=size,
        coco_map=coco_map,
        speed_ms=speed,
        params=params,
        batch_size=3 if size < 768 else 2,
    )


ZOO_MODELS: tuple[ZooModel, ...] = (
    # the documented default of the managed algorithm first
    _resnet(50, 640, 34.3, 46, 32_916_218),
    _resnet(50, 1024, 38.3, 87, 32_916_218),
    _resnet(101, 640, 35.6, 57, 51_960_570),
    _resnet(101, 1024, 39.5, 104, 51_960_570),
    _resnet(152, 640, 35.4, 80, 67_650_298),
    _resnet(152, 1024, 39.6, 111, 67_650_298),
    ZooModel(
        model_id="tensorflow-od1-ssd-mobilenet-v1-fpn-640x640-coco17-tpu-8",
        zoo_name="ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8",
        title="SSD MobileNet V1 FPN 640x640",
        family="SSD MobileNetV1 FPN",
        image_size=640,
        coco_map=29.1,
        speed_ms=48,
        params=12_125_178,
        batch_size=3,
    ),
    _fpnlite(320, 22.2, 22),
    _fpnlite(640, 28.2, 39),
    _efficientdet(0, 512, 33.6, 39, 5_622_923),
    _efficientdet(1, 640, 38.4, 54, 8_393_074),
    _efficientdet(2, 768, 41.8, 67, 10_089_063),
    _efficientdet(3, 896, 45.4, 95, 14_279_568, tpu=32),
)

ZOO_BY_ID: dict[str, ZooModel] = {model.model_id: model for model in ZOO_MODELS}
ZOO_BY_NAME: dict[str, ZooModel] = {model.zoo_name: model for model in ZOO_MODELS}


def _hyperparameters(model: ZooModel) -> dict[str, str]:
    return large(model.batch_size) if model.large else small(model.batch_size)


def zoo_spec(model: ZooModel) -> ModelSpec:
    return ModelSpec(
        model_id=model.model_id,
        engine="tensorflow",
        family=model.family,
        architecture=model.zoo_name,
        image_size=model.image_size,
        weights=WeightsSource(
            describes="detector",
            file_name=model.file_name,
            sha256="",  # not published: recorded on first use
            url=model.url,
            license=ZOO_WEIGHTS_LICENSE,
        ),
        license=ZOO_LICENSE,
        coco_map=model.coco_map,
        params_m=round(model.params / 1e6, 2),
        deployable=True,
        class_names=ZOO_CLASS_NAMES,
        default_hyperparameters=_hyperparameters(model),
        offline=False,
        description=f"TF2 Detection Model Zoo {model.title} ({model.zoo_name}), COCO-2017 "
        "pretrained: deployable as is (the COCO classes), fine-tunes to your classes with a "
        "new class head" + (" (by default only the head trains)." if model.large else "."),
        speed_ms=model.speed_ms,
    )


ZOO_SPECS: tuple[ModelSpec, ...] = tuple(zoo_spec(model) for model in ZOO_MODELS)


def zoo_model(spec_or_id: ModelSpec | str) -> ZooModel | None:
    """The zoo record of a spec (or model_id, or zoo_name), None for other models."""
    key = spec_or_id if isinstance(spec_or_id, str) else spec_or_id.model_id
    return ZOO_BY_ID.get(key) or ZOO_BY_NAME.get(key)


def is_zoo_spec(spec: ModelSpec) -> bool:
    return spec.engine == "tensorflow" and spec.architecture in ZOO_BY_NAME
