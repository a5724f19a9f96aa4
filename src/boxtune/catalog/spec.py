"""The records that describe a model: what it is, where its weights come from, its defaults."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's pretrained weights come from.

    ``package``/``resource``: a file shipped inside an installed Python package (offline).
    ``url``/``file_name``/``sha256``: a download; ``sha256`` may be a prefix (torchvision
    publishes the first hex digits of the hash in the file name).
    ``describes``: what the weights cover ("backbone" ImageNet or the full "detector").
    An empty ``sha256`` means none is published: the hash of the file boxtune first uses is
    recorded next to it and checked on every later use (trust on first use).
    """

    describes: str
    file_name: str
    sha256: str
    url: str | None = None
    package: str | None = None
    resource: str | None = None
    license: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """One catalog entry, keyed by ``model_id`` (the managed platform's naming style).

    ``params_m``: millions of parameters (None where not known); ``speed_ms``: the speed its
    publisher reports (ms per image on their hardware), None where there is none;
    ``fine_tunable``: False for inference-only models (deployable as is, never trained).
    """

    model_id: str
    engine: str
    family: str
    architecture: str
    image_size: int
    weights: WeightsSource
    license: str
    coco_map: float | None
    params_m: float | None
    deployable: bool
    class_names: tuple[str, ...] = ()
    default_hyperparameters: dict[str, str] = field(default_factory=dict)
    offline: bool = False
    description: str = ""
    fine_tunable: bool = True
    speed_ms: float | None = None

    def to_json(self) -> dict:
        return {
            "model_id": self.model_id,
            "engine": self.engine,
            "family": self.family,
            "architecture": self.architecture,
            "image_size": self.image_size,
            "license": self.license,
            "coco_map": self.coco_map,
            "params_m": self.params_m,
            "deployable": self.deployable,
            "fine_tunable": self.fine_tunable,
            "speed_ms": self.speed_ms,
            "offline": self.offline,
            "description": self.description,
            "weights": {
                "describes": self.weights.describes,
                "file_name": self.weights.file_name,
                "sha256": self.weights.sha256,
                "url": self.weights.url,
                "package": self.weights.package,
                "resource": self.weights.resource,
                "license": self.weights.license,
            },
            "num_coco_classes": len(self.class_names),
            "default_hyperparameters": dict(self.default_hyperparameters),
        }
