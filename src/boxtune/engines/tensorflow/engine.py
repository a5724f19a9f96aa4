"""The TensorFlow engine: builds Keras SSD detectors from catalog specs and artifacts."""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import tensorflow as tf

from boxtune.artifacts import Artifact
from boxtune.catalog import ModelSpec, is_hub_spec, resolve_weights, resolve_zoo_checkpoint
from boxtune.engines.base import (
    CheckpointRole,
    Engine,
    ExportedFile,
    Init,
    Runner,
    check_create_arguments,
)
from boxtune.engines.tensorflow.architecture import (
    PRETRAINED_BN_MOMENTUM,
    RANDOM_INIT_BN_MOMENTUM,
    TFArchitecture,
    build_network,
)
from boxtune.engines.tensorflow.detector import TensorFlowDetector
from boxtune.engines.tensorflow.frozen_graph import import_weights, read_constants
from boxtune.engines.tensorflow.onnx_export import ONNX_FILE
from boxtune.engines.tensorflow.runners import BACKENDS, OnnxRunner, SavedModelRunner
from boxtune.engines.tensorflow.saved_model import (
    CHECKPOINT_DIR,
    CHECKPOINT_PREFIX,
    SAVED_MODEL_DIR,
)
from boxtune.engines.tensorflow.ssdlite_mobilenet_v2 import is_class_predictor
from boxtune.engines.tensorflow.zoo.configs import is_zoo_architecture, zoo_config
from boxtune.engines.tensorflow.zoo.weights import pipeline_box_coder_scales, restore_zoo_weights
from boxtune.errors import BoxtuneWarning, HyperparameterError, ModelError
from boxtune.labels import LabelMap

CHECKPOINT_SUFFIX = ".tfckpt"  # a directory: index + data shards + boxtune's record


def pretrained_label_map(spec: ModelSpec) -> LabelMap:
    """The classes the pretrained head predicts, ids from 1 as in the API's label maps."""
    return LabelMap.from_categories({i + 1: name for i, name in enumerate(spec.class_names)})


def _kept_classes(spec: ModelSpec, init: str, label_map: LabelMap) -> list[int]:
    """For reinitialize_top_layer=False: the pretrained classes (indices into
    ``spec.class_names``) of each of the label map's classes, matched by name; a ModelError says
    why there are none."""
    problem = None
    if init == "random":
        problem = "the run starts from random weights (init='random')"
    elif spec.weights.describes != "detector":
        problem = f"its pretrained weights cover the {spec.weights.describes} only"
    by_name = {name.lower(): i for i, name in enumerate(spec.class_names)}
    missing = [name for name in label_map.names if name.lower() not in by_name]
    if problem is None and missing:
        problem = (
            f"its pretrained head predicts {', '.join(spec.class_names)}, and "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not among them"
        )
    if problem:
        raise ModelError(
            f"reinitialize_top_layer=False keeps the pretrained class head of {spec.model_id}, "
            f"but there is none that fits: {problem}",
            where="reinitialize_top_layer",
            hint="use reinitialize_top_layer=Auto (a new head for your classes); False keeps "
            "the head of an artifact in incremental training, or of a pretrained model whose "
            "classes include all of yours (same names)",
        )
    return [by_name[name.lower()] for name in label_map.names]


def class_columns(classes: list[int], *, background_column: bool) -> list[int]:
    """The logit columns of pretrained ``classes``: behind column 0 (the background) when the
    head has one, else class i is column i (EfficientDet)."""
    return [0] + [i + 1 for i in classes] if background_column else list(classes)


def _assign_kept_columns(model, constants: dict, columns: list[int]) -> None:
    """Copy the pretrained class predictors' columns ``columns`` into the new, narrower one."""
    for layer in model.layers:
        if not is_class_predictor(layer.name):
            continue
        scope = layer.name.replace(".", "/")
        kernel, bias = constants[f"{scope}/weights"], constants[f"{scope}/biases"]
        anchors_per_location = layer.bias.shape[0] // len(columns)
        old_columns = bias.shape[0] // anchors_per_location
        per_anchor = kernel.reshape(*kernel.shape[:3], -1, old_columns)[..., columns]
        layer.set_weights(
            [
                per_anchor.reshape(*kernel.shape[:3], -1),
                bias.reshape(-1, old_columns)[:, columns].reshape(-1),
            ]
        )


class TensorFlowEngine(Engine):
    name = "tensorflow"
    backends = BACKENDS
    libraries = ("tensorflow", "tensorflow-cpu", "keras")
    export_formats = ("tflite",)

    def export_as(self, artifact: Artifact, fmt: str, target: Path) -> ExportedFile:
        if fmt != "tflite":
            return super().export_as(artifact, fmt, target)
        from boxtune.engines.tensorflow.tflite_export import export_tflite

        result = export_tflite(self.load_detector(artifact), target)
        return ExportedFile(
            result.path,
            fmt,
            result.size_bytes,
            f"boxes within {result.max_box_difference:.2g} of the model on a check image "
            "(TFLite interpreter)",
        )

    def seed(self, seed: int) -> None:
        keras.utils.set_random_seed(seed)

    def resolve_device(self, device: str) -> str:
        gpus = tf.config.list_physical_devices("GPU")
        if device in ("auto", "cpu"):
            return "gpu" if device == "auto" and gpus else "cpu"
        if device in ("cuda", "gpu") or device.startswith(("cuda:", "gpu:")):
            if not gpus:
                raise HyperparameterError(
                    f"device={device} but TensorFlow sees no GPU",
                    where="device",
                    hint="use device=auto (the CPU here) or install a GPU build of TensorFlow",
                )
            return device
        raise HyperparameterError(
            f"unknown device {device!r}", where="device", hint="use auto, cpu, cuda or cuda:N"
        )

    def checkpoint_name(self, role: CheckpointRole) -> str:
        return f"{role}{CHECKPOINT_SUFFIX}"

    def create(
        self,
        spec: ModelSpec,
        label_map: LabelMap,
        *,
        init: Init = "pretrained",
        reinitialize_head: bool = True,
        device: str = "cpu",
        image_size: int | None = None,
        weights: str | Path | None = None,
    ) -> TensorFlowDetector:
        check_create_arguments(init, label_map)
        kept = None if reinitialize_head else _kept_classes(spec, init, label_map)
        if is_zoo_architecture(spec.architecture):
            return self._create_zoo(
                spec, label_map, init=init, kept=kept, image_size=image_size, weights=weights
            )
        arch = TFArchitecture(
            name=spec.architecture,
            image_size=image_size or spec.image_size,
            num_classes=len(label_map),
            bn_momentum=PRETRAINED_BN_MOMENTUM if init == "pretrained" else RANDOM_INIT_BN_MOMENTUM,
        )
        network = build_network(arch)
        if init == "pretrained":
            constants = read_constants(resolve_weights(spec, weights))
            import_weights(network.model, constants, skip=is_class_predictor)
            if kept is not None:
                columns = class_columns(kept, background_column=True)
                _assign_kept_columns(network.model, constants, columns)
        return TensorFlowDetector(
            network, arch, label_map, model_id=spec.model_id, family=spec.family
        )

    def _create_zoo(
        self,
        spec: ModelSpec,
        label_map: LabelMap,
        *,
        init: Init,
        kept: list[int] | None,
        image_size: int | None,
        weights: str | Path | None,
    ) -> TensorFlowDetector:
        """A TF2 zoo detector; pretrained: from the zoo tarball's ``checkpoint/ckpt-0``, every
        key placed by rule, the class head new unless ``kept`` keeps pretrained classes."""
        config = zoo_config(spec.architecture)
        background = config.predictor.add_background_class
        columns = None if kept is None else class_columns(kept, background_column=background)
        checkpoint = resolve_zoo_checkpoint(spec, weights) if init == "pretrained" else None
        arch = TFArchitecture(
            name=spec.architecture,
            image_size=image_size or spec.image_size,
            num_classes=len(label_map),
            bn_momentum=config.bn_decay if checkpoint else RANDOM_INIT_BN_MOMENTUM,
            box_coder_scales=pipeline_box_coder_scales(checkpoint) if checkpoint else None,
        )
        network = build_network(arch)
        if checkpoint is not None:
            restore_zoo_weights(
                network,
                checkpoint,
                mode="new_head" if columns is None else "full",
                keep_columns=columns,
                anchors_per_location=config.anchors.anchors_per_location,
            )
        return TensorFlowDetector(
            network, arch, label_map, model_id=spec.model_id, family=spec.family
        )

    def load_detector(self, artifact: Artifact, *, device: str = "cpu") -> TensorFlowDetector:
        arch = TFArchitecture.from_manifest(artifact.manifest, str(artifact.directory))
        detector = TensorFlowDetector(
            build_network(arch),
            arch,
            artifact.label_map,
            model_id=artifact.model_id,
            family=artifact.family,
        )
        artifact.subtree(CHECKPOINT_DIR)  # every file TF reads is listed and hash-checked
        prefix = artifact.directory / CHECKPOINT_PREFIX
        try:
            tf.train.Checkpoint(model=detector.model).read(str(prefix)).assert_consumed()
        except (tf.errors.OpError, ValueError, AssertionError) as exc:
            raise ModelError(
                f"cannot restore the artifact's weights ({type(exc).__name__}: {exc})",
                where=str(prefix),
                hint="the artifact is damaged or of another boxtune version; export it again",
            ) from exc
        return detector

    def load_runner(self, artifact: Artifact, backend: str | None = None) -> Runner:
        """ONNX Runtime (default), the SavedModel, or the Keras model rebuilt in process."""
        chosen = self.check_backend(backend)
        if chosen == "keras":
            return self.load_detector(artifact).runner()
        if chosen == "onnxruntime":
            onnx_path = artifact.optional_file(ONNX_FILE)
            if onnx_path is not None:
                return OnnxRunner(onnx_path, artifact.image_size, artifact.label_map)
            if backend is not None:
                warnings.warn(
                    f"{artifact.directory} has no {ONNX_FILE}; serving its SavedModel instead",
                    BoxtuneWarning,
                    stacklevel=2,
                )
        return SavedModelRunner(
            artifact.subtree(SAVED_MODEL_DIR), artifact.image_size, artifact.label_map
        )

    def pretrained_runner(self, spec: ModelSpec, backend: str | None = None) -> Runner:
        """The pretrained detector as is (its own classes), its Keras model in process; a TF
        Hub model (``tensorflow-od-…``) its SavedModel's ``serving_default``."""
        if is_hub_spec(spec):
            from boxtune.engines.tensorflow.hub import hub_runner

            self.check_backend(backend)  # an unknown name is an error, another one a warning
            return hub_runner(spec, backend)
        if not spec.deployable:
            raise ModelError(
                f"{spec.model_id} is not deployable as is (its pretrained weights cover only the "
                "backbone)",
                hint="fine-tune it first with `boxtune train`",
            )
        if backend is not None and self.check_backend(backend) != "keras":
            warnings.warn(
                f"{spec.model_id} as is runs its Keras model in process (backend keras); "
                f"fine-tune or export it for {backend}",
                BoxtuneWarning,
                stacklevel=2,
            )
        label_map = pretrained_label_map(spec)
        detector = self.create(spec, label_map, reinitialize_head=False)
        return detector.runner()
