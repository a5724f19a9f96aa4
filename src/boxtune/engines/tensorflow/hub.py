"""TF Hub detection SavedModels served as is (the ``tensorflow-od-…`` catalog ids).

Such a SavedModel's ``serving_default`` signature takes one uint8 image ``[1, H, W, 3]`` of any
size (it resizes by itself) and answers the Object Detection API's outputs: ``detection_boxes``
(``[ymin, xmin, ymax, xmax]`` normalised), ``detection_classes`` (1-based label ids, COCO's for
the hub models), ``detection_scores``, ``num_detections``; anything else it answers (keypoints)
is ignored. boxtune's own TensorFlow exports have the same signature.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import tensorflow as tf

from boxtune.catalog import ModelSpec, resolve_hub_saved_model
from boxtune.detections import Detections
from boxtune.engines.base import Runner
from boxtune.engines.tensorflow.saved_model import RAW_OUTPUTS, SERVING_SIGNATURE, detections_of
from boxtune.errors import BoxtuneWarning, ModelError
from boxtune.labels import LabelMap

HUB_BACKEND = "savedmodel"


class HubSavedModelRunner(Runner):
    """A SavedModel with the Object Detection API's ``serving_default`` signature, one image
    per call at the image's own size; ``label_map`` index ``i`` is the model's label id
    ``i + 1``. Detections of label ids outside the label map are dropped."""

    backend = HUB_BACKEND
    model_output_name: ClassVar[str] = "tensorflow_model_output"

    def __init__(self, path: Path, image_size: int, label_map: LabelMap):
        self.image_size = image_size
        self.label_map = label_map
        self.path = Path(path)
        try:
            self._loaded = tf.saved_model.load(str(path))
            signature = self._loaded.signatures[SERVING_SIGNATURE]
        except (OSError, KeyError, ValueError, tf.errors.OpError) as exc:
            raise ModelError(
                f"cannot load the SavedModel's {SERVING_SIGNATURE} signature "
                f"({type(exc).__name__}: {exc})",
                where=str(path),
                hint="the download is damaged or not a TF2 detection SavedModel; delete it "
                "(and its .sha256) to download it again",
            ) from exc
        self._input = _image_input(signature, path)
        self._signature = signature

    def _outputs(self, image: np.ndarray) -> dict[str, np.ndarray]:
        batch = tf.constant(np.ascontiguousarray(image, dtype=np.uint8)[None])
        out = {
            name: value.numpy() for name, value in self._signature(**{self._input: batch}).items()
        }
        missing = [name for name in RAW_OUTPUTS if name not in out]
        if missing:
            raise ModelError(
                f"the SavedModel's {SERVING_SIGNATURE} answers no {', '.join(missing)}",
                where=str(self.path),
                hint="it is not an Object Detection API detector (outputs detection_boxes, "
                "detection_classes, detection_scores, num_detections)",
            )
        return out

    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results = []
        for image in images:
            height, width = image.shape[:2]
            found = detections_of(self._outputs(image), 0, height, width)
            keep = (found.classes >= 0) & (found.classes < len(self.label_map))
            kept = Detections(found.boxes[keep], found.classes[keep], found.scores[keep])
            kept.model_output = found.model_output
            results.append(kept.sorted())
        return results


def _image_input(signature, path: Path) -> str:
    """The name of the signature's one input, which must take uint8 images."""
    _, inputs = signature.structured_input_signature
    if len(inputs) != 1:
        raise ModelError(
            f"the SavedModel's {SERVING_SIGNATURE} takes {len(inputs)} inputs "
            f"({', '.join(inputs)}), not one image",
            where=str(path),
            hint="serve a TF2 detection SavedModel (one uint8 input_tensor [1, H, W, 3])",
        )
    ((name, spec),) = inputs.items()
    if spec.dtype != tf.uint8 or (spec.shape.rank is not None and spec.shape.rank != 4):
        raise ModelError(
            f"the SavedModel's {SERVING_SIGNATURE} input {name!r} is {spec.dtype.name} "
            f"{spec.shape}, not uint8 images [1, H, W, 3]",
            where=str(path),
            hint="serve a TF2 detection SavedModel (one uint8 input_tensor [1, H, W, 3])",
        )
    return name


def hub_label_map(spec: ModelSpec) -> LabelMap:
    """The model's classes, label ids from 1 as in the API's label maps."""
    return LabelMap.from_categories({i + 1: name for i, name in enumerate(spec.class_names)})


def hub_runner(spec: ModelSpec, backend: str | None = None) -> HubSavedModelRunner:
    """The TF Hub model ``spec`` as is, from its tarball (``BOXTUNE_HOME/weights`` or a
    download, see :func:`boxtune.catalog.resolve_hub_saved_model`)."""
    if backend is not None and backend != HUB_BACKEND:
        warnings.warn(
            f"{spec.model_id} is a TF Hub SavedModel: it runs on backend {HUB_BACKEND}, not "
            f"{backend}",
            BoxtuneWarning,
            stacklevel=3,
        )
    return HubSavedModelRunner(resolve_hub_saved_model(spec), spec.image_size, hub_label_map(spec))
