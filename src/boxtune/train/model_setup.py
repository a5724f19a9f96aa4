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
from typing import TYPE_CHECKING

from boxtune.engines.base import Detector, Init
from boxtune.errors import HyperparameterError, TrainingError
from boxtune.labels import LabelMap
from boxtune.train.hyperparameters import Hyperparameters

if TYPE_CHECKING:
    from boxtune.artifacts import Artifact
    from boxtune.catalog import ModelSpec


@dataclass
class ModelSetup:
    """A run's starting point: a catalog ``spec``, or an ``artifact`` (incremental training,
    rebuilt from its own manifest: the catalog entry is not needed)."""

    model_id: str
    engine_name: str
    spec: ModelSpec | None = None
    artifact: Artifact | None = None
    artifact_location: str | None = None
    # The catalog model's pretrained weights from here (a file, folder or s3:// URI) instead
    # of BOXTUNE_HOME/weights or the download.
    weights: str | None = None

    @property
    def artifact_image_size(self) -> int | None:
        return None if self.artifact is None else int(self.artifact.image_size)


def resolve_model(
    model_id: str | None,
    artifact: str | os.PathLike | None,
    weights: str | os.PathLike | None = None,
) -> ModelSetup:
    """A catalog model_id, or an artifact (dir, model.tar.gz, s3://) for incremental training.

    ``model_id`` is read by :func:`boxtune.model_ref.parse_model_ref`, so an artifact given as
    ``model_id`` (as the SDK's ``model`` channel does) is taken as one. ``weights``: where the
    catalog model's pretrained weights are (only with a catalog model).
    """
    from boxtune.model_ref import parse_model_ref

    if artifact is None and model_id is not None:
        ref = parse_model_ref(model_id, where="model_id")
        if ref.kind == "python":
            raise TrainingError(
                f"{model_id} names a custom runner, which can serve but not train",
                where="model_id",
                hint="train a catalog model_id (see `boxtune models list`) or an artifact",
            )
        if ref.kind == "artifact":
            artifact, model_id = ref.value, None
    if artifact is None:
        if model_id is None:
            raise TrainingError(
                "no model given",
                where="train()",
                hint="pass a catalog model_id (see `boxtune models list`) or an artifact",
            )
        from boxtune.catalog import get_spec

        spec = get_spec(model_id)
        return ModelSetup(
            model_id=model_id,
            engine_name=spec.engine,
            spec=spec,
            weights=str(weights) if weights is not None else None,
        )
    if weights is not None:
        raise TrainingError(
            "pretrained weights were given with an artifact to continue from",
            where="--weights",
            hint="incremental training starts from the artifact's own weights: drop --weights "
            "(or drop --model to fine-tune the catalog model from those weights)",
        )

    from boxtune.artifacts import load_artifact

    location = parse_model_ref(str(artifact), where="--model").value
    loaded = load_artifact(location)
    if model_id is not None and model_id != loaded.model_id:
        raise TrainingError(
            f"--model-id {model_id} differs from the artifact's model {loaded.model_id}",
            where=str(artifact),
            hint="drop --model-id: incremental training continues the artifact's model",
        )
    return ModelSetup(
        model_id=loaded.model_id,
        engine_name=loaded.engine,
        artifact=loaded,
        artifact_location=str(artifact),
    )


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
    init: Init = "pretrained",
    log: Callable[[str], None],
) -> Detector:
    """The detector for this run, trainable parts set and optimizer configured.

    ``reinitialize_top_layer``: Auto gives a catalog model a new head and keeps an artifact's;
    True always starts the class head from random; False always keeps it (the engine refuses
    when there is no pretrained head that fits).
    """
    from boxtune import engines

    engine = engines.get_engine(setup.engine_name)
    engine.seed(hp.seed)
    device = engine.resolve_device(hp.device)
    if setup.artifact is None:
        assert setup.spec is not None
        spec = dataclasses.replace(setup.spec, image_size=hp.image_size)
        detector = engine.create(
            spec,
            label_map,
            init=init,
            reinitialize_head=hp.reinitialize_top_layer != "False",
            device=device,
            weights=setup.weights,
        )
    else:
        if setup.artifact.label_map != label_map:
            raise _class_set_error(
                setup.artifact.label_map, label_map, str(setup.artifact_location)
            )
        detector = engine.load_detector(setup.artifact, device=device)
        if hp.reinitialize_top_layer == "True":
            detector.reinitialize_head()
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
