"""The interface every engine (torch now, tensorflow next) implements.

Nothing outside ``boxtune/engines/`` imports a framework: the trainer, the server, the SDK and
evaluation talk to an engine only through :class:`Engine`, :class:`Detector` and
:class:`Runner`, with images as numpy arrays and results as
:class:`~boxtune.detections.Detections`.

Batches (from :func:`boxtune.data.make_loader`) are framework-free: ``images`` is a uint8 numpy
array ``[B, S, S, 3]`` (RGB, channels last) and ``targets`` a list of dicts with ``boxes``
(float32 ``[N, 4]`` corner pixels in the S x S image), ``labels`` (int64 ``[N]`` class indices),
``image_id`` and ``orig_size`` ``(height, width)``. Each engine converts them as it needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np

from boxtune.detections import Detections
from boxtune.errors import ModelError
from boxtune.labels import LabelMap

if TYPE_CHECKING:
    from boxtune.artifacts import Artifact
    from boxtune.catalog import ModelSpec

Init = Literal["pretrained", "random"]
# Which checkpoint of a run: the latest one (for --resume) or the best one (for export).
CheckpointRole = Literal["last", "best"]


class OptimizerSettings(Protocol):
    """The hyperparameters an engine's optimizer reads (``boxtune.train.Hyperparameters``
    has them all, with the managed algorithm's names; they are Keras's names too)."""

    optimizer: str
    learning_rate: float
    momentum: float
    beta_1: float
    beta_2: float
    epsilon: float
    rho: float
    initial_accumulator_value: float
    gradient_clip_norm: float  # 0: no clipping


@contextmanager
def framework_imports(engine: str, extra: str) -> Iterator[None]:
    """Imports of an engine's framework: a missing one is a ModelError with the install line
    (a slim ``boxtune[serve]`` install serves ``model.onnx`` files without any framework)."""
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if not missing or missing == "boxtune":
            raise
        raise ModelError(
            f"the {engine} engine needs {missing}, which is not installed here",
            hint=f"pip install 'boxtune[{extra}]' (a 'boxtune[serve]' install only serves "
            "artifacts that hold a model.onnx, with --backend onnxruntime)",
        ) from exc


def check_create_arguments(init: str, label_map: LabelMap) -> None:
    """What every ``Engine.create`` refuses first: an unknown init, a label map without
    classes."""
    if init not in ("pretrained", "random"):
        raise ModelError(f"unknown init {init!r}", hint="use 'pretrained' or 'random'")
    if len(label_map) == 0:
        raise ModelError(
            "the label map has no classes", hint="the dataset needs at least one category"
        )


@dataclass(frozen=True)
class ExportedFile:
    """What ``Engine.export_as`` wrote, and what it checked before writing it."""

    path: Path
    format: str
    size_bytes: int
    check: str  # e.g. "boxes within 0.0003 of the model on a check image"


@dataclass(frozen=True)
class QuantizedModel:
    """What ``Engine.quantize_int8`` wrote: ``name`` in the artifact, the file at ``path``,
    and the manifest's record of how it was made and checked."""

    name: str
    path: Path
    record: dict[str, Any]


class Runner(ABC):
    """Inference only: decoded images in, detections in the same images' pixels out."""

    image_size: int
    label_map: LabelMap
    backend: str  # the runtime it runs on, one of its engine's ``backends``
    # The key of the raw output in the endpoint's verbose answer (the managed endpoint says
    # ``tensorflow_model_output`` for TensorFlow models)
    model_output_name: ClassVar[str] = "model_output"

    @abstractmethod
    def predict(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """images: HxWx3 uint8 RGB arrays of any size; one Detections per image, sorted."""


class Detector(ABC):
    """A trainable detector for a fixed label map (see the module doc for the batch format)."""

    engine: ClassVar[str]
    image_size: int
    label_map: LabelMap
    model_id: str
    family: str

    @abstractmethod
    def architecture(self) -> dict[str, Any]:
        """JSON-able record of everything needed to rebuild this network without the catalog
        (stored in the artifact manifest; read back by :meth:`Engine.load_detector`)."""

    @abstractmethod
    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameter count (only the ones set_trainable left trainable, if asked)."""

    @abstractmethod
    def reinitialize_head(self) -> None:
        """A new, randomly initialised class predictor for ``label_map``'s classes; call
        configure_optimizer again afterwards."""

    @abstractmethod
    def set_trainable(self, head_only: bool) -> None:
        """head_only: freeze every parameter and batch-norm statistic outside the head."""

    @abstractmethod
    def configure_optimizer(self, settings: OptimizerSettings) -> list[str]:
        """Build the optimizer; return the names of options ignored by that optimizer."""

    @abstractmethod
    def set_learning_rate(self, lr: float) -> None: ...

    @abstractmethod
    def train_step(self, images: np.ndarray, targets: list[dict]) -> dict[str, float]:
        """One optimisation step; returns loss, localization, classification (floats). A
        non-finite loss or gradient skips the update and is returned as is."""

    @abstractmethod
    def validation_losses(self, images: np.ndarray, targets: list[dict]) -> dict[str, float]:
        """Losses without updating anything: localization, classification, loss."""

    @abstractmethod
    def predict_batch(self, images: np.ndarray) -> list[Detections]:
        """Detections for a loader batch, boxes in the S x S input pixels."""

    @abstractmethod
    def save_checkpoint(self, path: Path, extra: dict) -> None:
        """Model + optimizer state + ``extra`` (JSON-able) for --resume, written at ``path``
        (a file or a directory, as the engine names it). The trainer makes it atomic."""

    @abstractmethod
    def load_checkpoint(self, path: Path) -> dict:
        """Restore what save_checkpoint wrote; return ``extra``."""

    @abstractmethod
    def export(self, directory: Path) -> list[str]:
        """Write the engine's weights files (and model.onnx) into directory; return names."""

    @abstractmethod
    def runner(self, backend: str | None = None) -> Runner:
        """An in-process runner over the current weights (``None``: the engine's default)."""


class Engine(ABC):
    """One framework: builds detectors and runners, and names its checkpoints."""

    name: ClassVar[str]
    # Runtimes this engine serves on, the default first.
    backends: ClassVar[tuple[str, ...]]
    # Those of ``backends`` whose model an artifact holds only after a `boxtune export` step
    # (e.g. the int8 model); loading them from a plain artifact is a ModelError saying so.
    derived_backends: ClassVar[tuple[str, ...]] = ()
    # Libraries whose versions go into the artifact manifest.
    libraries: ClassVar[tuple[str, ...]] = ()
    # Formats ``boxtune export`` writes from this engine's artifacts (besides the artifact).
    export_formats: ClassVar[tuple[str, ...]] = ()

    @property
    def default_backend(self) -> str:
        return self.backends[0]

    def check_backend(self, backend: str | None) -> str:
        """``backend`` itself, or the default for ``None``; unknown names are a ModelError."""
        if backend is None:
            return self.default_backend
        if backend not in self.backends:
            raise ModelError(
                f"the {self.name} engine has no backend {backend!r}",
                where="--backend",
                hint=f"use one of {', '.join(self.backends)}",
            )
        return backend

    def export_as(self, artifact: Artifact, fmt: str, target: Path) -> ExportedFile:
        """Write ``artifact``'s model in format ``fmt`` at ``target`` (checked, atomic)."""
        raise ModelError(
            f"the {self.name} engine has no export format {fmt!r}",
            where="--format",
            hint=f"this engine exports {', '.join(self.export_formats) or 'nothing else'}; "
            "the artifact itself already holds its serving files",
        )

    def quantize_int8(
        self, artifact: Artifact, images: Sequence[np.ndarray], directory: Path
    ) -> QuantizedModel:
        """An int8 model of ``artifact`` calibrated on ``images`` (HxWx3 uint8), written in
        ``directory`` and checked against the full-precision model."""
        raise ModelError(
            f"the {self.name} engine has no int8 export",
            where="--quantize",
            hint="int8 export covers the torch engine's default model; serve this model in "
            "full precision",
        )

    @abstractmethod
    def seed(self, seed: int) -> None:
        """Seed the framework's random generators so that a fixed seed repeats on CPU."""

    @abstractmethod
    def resolve_device(self, device: str) -> str:
        """``auto``: an accelerator when there is one, else the CPU; other names are checked
        (a HyperparameterError names the ones this engine knows)."""

    @abstractmethod
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
    ) -> Detector:
        """A detector for ``label_map``'s classes from a catalog spec (``image_size``
        overrides the spec's input). ``reinitialize_head=False`` keeps the pretrained class
        head and fails with a ModelError when the pretrained weights have none that fits."""

    @abstractmethod
    def load_detector(self, artifact: Artifact, *, device: str = "cpu") -> Detector:
        """The trainable detector stored in an artifact (incremental training), rebuilt from
        its manifest alone."""

    @abstractmethod
    def load_runner(self, artifact: Artifact, backend: str | None = None) -> Runner:
        """An inference runner for an artifact (``None``: the default backend)."""

    @abstractmethod
    def pretrained_runner(self, spec: ModelSpec, backend: str | None = None) -> Runner:
        """The pretrained model as is (deployable specs only)."""

    @abstractmethod
    def checkpoint_name(self, role: CheckpointRole) -> str:
        """The name of a run's ``role`` checkpoint inside ``checkpoints/`` (e.g. ``last.pt``,
        or a directory name for frameworks that write an index plus shards)."""
