"""TensorFlowDetector: the trainable side of the TensorFlow engine.

Each step is a ``tf.function`` with a fixed input signature (the batch dimension left open), so
it traces once per configuration and never again: retracing on every batch is what made the
managed algorithm's memory grow step after step. ``trace_counts`` records the traces.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from boxtune.detections import Detections
from boxtune.engines.base import Detector, OptimizerSettings, Runner
from boxtune.engines.tensorflow.architecture import SSDNetwork, TFArchitecture, build_network
from boxtune.engines.tensorflow.optimizers import build_optimizer
from boxtune.engines.tensorflow.saved_model import (
    CHECKPOINT_PREFIX,
    DetectionModule,
    detections_of,
    export_saved_model,
    files_under,
)
from boxtune.engines.tensorflow.ssd_loss import ssd_losses
from boxtune.engines.tensorflow.targets import DEFAULT_MAX_BOXES, pad_targets
from boxtune.errors import ModelError, storage_errors
from boxtune.labels import LabelMap

DEFAULT_GRADIENT_CLIP_NORM = 10.0  # until configure_optimizer sets the run's own
_META_FILE = "boxtune-checkpoint.json"
_CKPT = "ckpt"


def check_images(images: np.ndarray, size: int) -> np.ndarray:
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[1:] != (size, size, 3)
    ):
        raise ModelError(
            f"expected a uint8 numpy batch [B, {size}, {size}, 3], got "
            f"{type(images).__name__} {np.shape(images)} {getattr(images, 'dtype', '')}",
            hint="pass batches from boxtune.data.make_loader",
        )
    return images


def reinitialize_layer(layer: keras.layers.Layer) -> None:
    """Draw a class predictor's weights again from its own initializers."""
    if isinstance(layer, keras.layers.SeparableConv2D):
        weights = [
            (layer.depthwise_kernel, layer.depthwise_initializer),
            (layer.pointwise_kernel, layer.pointwise_initializer),
        ]
    elif isinstance(layer, keras.layers.Conv2D):
        weights = [(layer.kernel, layer.kernel_initializer)]
    else:
        raise ModelError(f"cannot reinitialize {type(layer).__name__} layer {layer.name!r}")
    weights.append((layer.bias, layer.bias_initializer))
    for variable, initializer in weights:
        variable.assign(initializer(variable.shape, variable.dtype))


class TensorFlowDetector(Detector):
    engine = "tensorflow"

    def __init__(
        self, network: SSDNetwork, arch: TFArchitecture, label_map: LabelMap, *, model_id, family
    ):
        self.network = network
        self.model = network.model
        self.arch = arch
        self.label_map = label_map
        self.model_id = model_id
        self.family = family
        self.image_size = arch.image_size
        self.anchors = tf.constant(network.anchors)
        self.optimizer = None
        self.gradient_clip_norm = DEFAULT_GRADIENT_CLIP_NORM
        self.head_only = False
        self.trace_counts: Counter[str] = Counter()
        self._train_step = None
        self._pending_checkpoint: str | None = None
        self._validation_step = self._make_validation_step()
        self._serving: DetectionModule | None = None  # built on the first prediction
        self.set_trainable(False)

    # -- description ---------------------------------------------------------------------------
    def architecture(self) -> dict:
        return self.arch.to_json()

    def num_parameters(self, trainable_only: bool = False) -> int:
        variables = self.model.trainable_weights if trainable_only else self.model.weights
        return int(sum(np.prod(v.shape) for v in variables))

    def __deepcopy__(self, memo) -> TensorFlowDetector:
        """A detector with a copy of the weights (and no optimizer: configure it again)."""
        twin = TensorFlowDetector(
            build_network(self.arch),
            self.arch,
            self.label_map,
            model_id=self.model_id,
            family=self.family,
        )
        twin.model.set_weights(self.model.get_weights())
        twin.set_trainable(self.head_only)
        return twin

    # -- training setup ------------------------------------------------------------------------
    def set_trainable(self, head_only: bool) -> None:
        """head_only: only the box predictor trains; a frozen Keras BatchNormalization also
        runs in inference mode, so its statistics stay as they are."""
        head = {id(layer) for layer in self.network.head_layers}
        for layer in self.model.layers:
            layer.trainable = not head_only or id(layer) in head
        self.head_only = head_only
        self.optimizer = None
        self._train_step = None

    def reinitialize_head(self) -> None:
        for layer in self.network.class_layers:
            reinitialize_layer(layer)
        self.optimizer = None
        self._train_step = None

    def configure_optimizer(self, settings: OptimizerSettings) -> list[str]:
        optimizer, ignored = build_optimizer(settings)
        optimizer.build(self.model.trainable_variables)
        self.optimizer = optimizer
        clip = float(settings.gradient_clip_norm)
        self.gradient_clip_norm = clip if clip > 0 else math.inf
        self._train_step = self._make_train_step()
        if self._pending_checkpoint is not None:
            self._checkpoint().read(self._pending_checkpoint).expect_partial()
            self._pending_checkpoint = None
        return ignored

    def set_learning_rate(self, lr: float) -> None:
        self._require_optimizer().learning_rate.assign(lr)

    def _require_optimizer(self):
        if self.optimizer is None or self._train_step is None:
            raise ModelError(
                "no optimizer configured",
                hint="call configure_optimizer(hyperparameters) after set_trainable()",
            )
        return self.optimizer

    # -- compiled steps ------------------------------------------------------------------------
    def _batch_signature(self) -> list[tf.TensorSpec]:
        size, boxes = self.image_size, DEFAULT_MAX_BOXES
        return [
            tf.TensorSpec([None, size, size, 3], tf.uint8, name="images"),
            tf.TensorSpec([None, boxes, 4], tf.float32, name="boxes"),
            tf.TensorSpec([None, boxes], tf.int32, name="classes"),
            tf.TensorSpec([None, boxes], tf.bool, name="valid"),
        ]

    def _make_train_step(self):
        model, optimizer, anchors = self.model, self.optimizer, self.anchors
        network, loss_config = self.network, self.network.loss
        variables = model.trainable_variables
        clip = self.gradient_clip_norm

        @tf.function(input_signature=self._batch_signature(), reduce_retracing=False)
        def train_step(images, boxes, classes, valid):
            self.trace_counts["train_step"] += 1  # runs only while tracing
            with tf.GradientTape() as tape:
                codes, logits = model(network.preprocess(images), training=True)
                losses = ssd_losses(
                    codes, logits, anchors, boxes, classes, valid, config=loss_config
                )
            # Variables the outputs do not depend on (the zoo EfficientNet's unused top, kept
            # for its checkpoint) get no gradient and no update.
            pairs = [
                (gradient, variable)
                for gradient, variable in zip(
                    tape.gradient(losses["loss"], variables), variables, strict=True
                )
                if gradient is not None
            ]
            gradients = [gradient for gradient, _ in pairs]
            updated = [variable for _, variable in pairs]
            grad_norm = tf.linalg.global_norm(gradients)
            finite = tf.math.is_finite(losses["loss"]) & tf.math.is_finite(grad_norm)

            def update():
                clipped = gradients
                if math.isfinite(clip):
                    clipped, _ = tf.clip_by_global_norm(gradients, clip, use_norm=grad_norm)
                optimizer.apply(clipped, updated)
                return tf.constant(True)

            tf.cond(finite, update, lambda: tf.constant(False))
            return {**losses, "grad_norm": grad_norm}

        return train_step

    def _make_validation_step(self):
        model, anchors, network = self.model, self.anchors, self.network

        @tf.function(input_signature=self._batch_signature())
        def validation_step(images, boxes, classes, valid):
            self.trace_counts["validation_step"] += 1
            codes, logits = model(network.preprocess(images), training=False)
            return ssd_losses(codes, logits, anchors, boxes, classes, valid, config=network.loss)

        return validation_step

    # -- steps ---------------------------------------------------------------------------------
    def _targets(self, targets: list[dict]):
        boxes, classes, valid = pad_targets(targets, self.image_size, DEFAULT_MAX_BOXES)
        return tf.constant(boxes), tf.constant(classes), tf.constant(valid)

    def train_step(self, images: np.ndarray, targets: list[dict]) -> dict[str, float]:
        """One step; a non-finite loss or gradient skips the update and returns NaN."""
        self._require_optimizer()
        batch = tf.constant(check_images(images, self.image_size))
        out = self._train_step(batch, *self._targets(targets))
        values = {k: float(v) for k, v in out.items() if k != "num_positives"}
        if not math.isfinite(values["grad_norm"]):
            values["loss"] = float("nan")
        return values

    def validation_losses(self, images: np.ndarray, targets: list[dict]) -> dict[str, float]:
        batch = tf.constant(check_images(images, self.image_size))
        out = self._validation_step(batch, *self._targets(targets))
        return {k: float(v) for k, v in out.items() if k != "num_positives"}

    def detect_outputs(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The serving signature's outputs for uint8 ``[B, S, S, 3]``, as numpy arrays."""
        if self._serving is None:
            self._serving = DetectionModule(self)
        batch = tf.constant(check_images(images, self.image_size))
        return {k: v.numpy() for k, v in self._serving.detect_batch(batch).items()}

    def predict_batch(self, images: np.ndarray) -> list[Detections]:
        out = self.detect_outputs(images)
        size = self.image_size
        return [detections_of(out, i, size, size).sorted() for i in range(len(images))]

    # -- persistence ---------------------------------------------------------------------------
    def _checkpoint(self) -> tf.train.Checkpoint:
        if self.optimizer is None:
            return tf.train.Checkpoint(model=self.model)
        return tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)

    def save_checkpoint(self, path: Path, extra: dict) -> None:
        """A TF checkpoint (index + data shards) and a JSON record, in the directory ``path``."""
        path = Path(path)
        meta = {
            "model_id": self.model_id,
            "category_ids": list(self.label_map.category_ids),
            "head_only": self.head_only,
            "has_optimizer": self.optimizer is not None,
            "extra": extra,
        }
        # TF reports a full disk as ResourceExhaustedError "…; No space left on device".
        with storage_errors("writing the checkpoint", path):
            path.mkdir(parents=True, exist_ok=True)
            self._checkpoint().write(str(path / _CKPT))
            (path / _META_FILE).write_text(json.dumps(meta))

    def load_checkpoint(self, path: Path) -> dict:
        path = Path(path)
        try:
            meta = json.loads((path / _META_FILE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(
                f"not a TensorFlow checkpoint written by boxtune ({exc})",
                where=str(path),
                hint="resume from the checkpoints/ folder of a TensorFlow run",
            ) from exc
        if meta.get("model_id") != self.model_id or meta.get("category_ids") != list(
            self.label_map.category_ids
        ):
            raise ModelError(
                f"the checkpoint is for {meta.get('model_id')} with categories "
                f"{meta.get('category_ids')}, not {self.model_id} with "
                f"{list(self.label_map.category_ids)}",
                where=str(path),
                hint="resume with the same model_id and dataset, or start a new output dir",
            )
        prefix = str(path / _CKPT)
        try:
            self._checkpoint().read(prefix).expect_partial()
        except (tf.errors.OpError, ValueError, AssertionError) as exc:
            raise ModelError(
                f"cannot restore the TensorFlow checkpoint ({exc})",
                where=str(path),
                hint="the checkpoint is damaged or of another network; start a new output dir",
            ) from exc
        if meta.get("has_optimizer") and self.optimizer is None:
            self._pending_checkpoint = prefix  # the optimizer's state, once it exists
        return meta.get("extra", {})

    def export(self, directory: Path) -> list[str]:
        """``saved_model/`` (the TF Object Detection API's serving signature), ``model.onnx``
        (the same signature for ONNX Runtime, the fastest CPU runtime) and ``checkpoint/``
        (the weights for incremental training)."""
        from boxtune.engines.tensorflow.onnx_export import ONNX_FILE, export_onnx

        directory = Path(directory)
        with storage_errors("writing the checkpoint", directory / CHECKPOINT_PREFIX):
            tf.train.Checkpoint(model=self.model).write(str(directory / CHECKPOINT_PREFIX))
        export_saved_model(self, directory)
        export_onnx(self, directory / ONNX_FILE)
        return files_under(directory)

    def runner(self, backend: str | None = None) -> Runner:
        from boxtune.engines.tensorflow.runners import KerasRunner

        return KerasRunner(self.detect_outputs, self.image_size, self.label_map)
