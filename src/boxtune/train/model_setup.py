"""Which model a run starts from (a catalog model or an earlier artifact) and how it is built.

``reinitialize_top_layer`` follows the reference: ``Auto`` gives a pretrained catalog model a
new class head and keeps the head of an artifact (incremental training); ``True``/``False``
force either. Only the engine interface is used, so any engine plugs in.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from boxtune.engines.base import Detector
from boxtune.errors import HyperparameterError, TrainingError
from boxtune.labels import LabelMap
from boxtune.train.hyperparameters import Hyperparameters


@dataclass
class ModelSetup:
    model_id: str
    spec: Any  # boxtune.catalog.ModelSpec
    artifact: Any | None = None  # boxtune.artifacts.Artifact for incremental training
    artifact_location: str | None = None

    @property
    def engine_name(self) -> str:
        return str(self.artifact.engine if self.artifact is not None else self.spec.engine)

    @property
    def artifact_image_size(self) -> int | None:
        return None if self.artifact is None else int(self.artifact.image_size)


def _looks_like_artifact(model_ref: str) -> bool:
    return (
        model_ref.startswith(("s3://", "file://"))
        or model_ref.endswith(".tar.gz")
        or os.path.exists(model_ref)
    )


def resolve_model(model_id: str | None, artifact: str | os.PathLike | None) -> ModelSetup:
    """A catalog model_id, or an artifact (dir, model.tar.gz, s3://) for incremental training.

    A path given as ``model_id`` is taken as an artifact, as the SDK's ``model`` channel is.
    """
    from boxtune.catalog import get_spec

    if artifact is None and model_id is not None and _looks_like_artifact(str(model_id)):
        artifact, model_id = model_id, None
    if artifact is None:
        if model_id is None:
            raise TrainingError(
                "no model given",
                where="train()",
                hint="pass a catalog model_id (see `boxtune models list`) or an artifact",
            )
        return ModelSetup(model_id=model_id, spec=get_spec(model_id))

    from boxtune.artifacts import load_artifact

    loaded = load_artifact(str(artifact))
    if model_id is not None and model_id != loaded.model_id:
        raise TrainingError(
            f"--model-id {model_id} differs from the artifact's model {loaded.model_id}",
            where=str(artifact),
            hint="drop --model-id: incremental training continues the artifact's model",
        )
    return ModelSetup(
        model_id=loaded.model_id,
        spec=get_spec(loaded.model_id),
        artifact=loaded,
        artifact_location=str(artifact),
    )


def seed_engine(engine: Any, seed: int, log: Callable[[str], None]) -> None:
    """Seed the framework's random generators (the engine owns them)."""
    hook = getattr(engine, "seed", None)
    if callable(hook):
        hook(seed)
    else:
        log(f"note: engine {type(engine).__name__} has no seed() hook; runs may not repeat")


def resolve_device(engine: Any, device: str) -> str:
    """``auto`` picks an accelerator when the engine finds one, else the CPU."""
    hook = getattr(engine, "resolve_device", None)
    if callable(hook):
        return str(hook(device))
    return "cpu" if device == "auto" else device


def _class_set_error(model: LabelMap, data: LabelMap, where: str) -> TrainingError:
    model_classes = dict(zip(model.category_ids, model.names, strict=True))
    data_classes = dict(zip(data.category_ids, data.names, strict=True))
    only_model = [f"{c}:{n}" for c, n in model_classes.items() if data_classes.get(c) != n]
    only_data = [f"{c}:{n}" for c, n in data_classes.items() if model_classes.get(c) != n]
    return TrainingError(
        "incremental training needs the class set the model was trained on; "
        f"only in the model: {only_model or 'none'}; only in the data: {only_data or 'none'}",
        where=where,
        hint="use the same categories (ids and names) in annotations.json, or fine-tune the "
        "catalog model instead (--model-id ID without --model)",
    )


def build_detector(
    setup: ModelSetup,
    label_map: LabelMap,
    hp: Hyperparameters,
    *,
    init: str = "pretrained",
    log: Callable[[str], None] = print,
) -> Detector:
    """The detector for this run, trainable parts set and optimizer configured."""
    from boxtune.engines import get_engine

    engine = get_engine(setup.engine_name)
    seed_engine(engine, hp.seed, log)
    device = resolve_device(engine, hp.device)
    if setup.artifact is None:
        # Auto: a pretrained catalog model gets a new head for the dataset's classes.
        reinitialize = hp.reinitialize_top_layer != "False"
        spec = dataclasses.replace(setup.spec, image_size=hp.image_size)
        detector = engine.create(
            spec, label_map, init=init, reinitialize_head=reinitialize, device=device
        )
    else:
        if setup.artifact.label_map != label_map:
            raise _class_set_error(setup.artifact.label_map, label_map, setup.artifact_location)
        detector = engine.load_detector(setup.artifact, device)
        if hp.reinitialize_top_layer == "True":
            reinit = getattr(detector, "reinitialize_head", None)
            if not callable(reinit):
                raise HyperparameterError(
                    f"engine {setup.engine_name} cannot re-initialise the head of a loaded model",
                    where="reinitialize_top_layer",
                    hint="use reinitialize_top_layer=Auto to keep the trained head",
                )
            reinit()
            log("reinitialize_top_layer=True: the artifact's class head starts again from random")
    if detector.image_size != hp.image_size and "image_size" in hp.explicit:
        raise HyperparameterError(
            f"image_size={hp.image_size} but the model takes {detector.image_size} px",
            where="image_size",
            hint="drop --hp image_size to use the model's input size",
        )
    detector.set_trainable(head_only=hp.train_only_top_layer)
    ignored = set(detector.configure_optimizer(hp))
    for name in sorted(ignored & hp.explicit - set(hp.ignored_options())):
        log(f"note: hyperparameter {name} is ignored by optimizer {hp.optimizer}")
    return detector
