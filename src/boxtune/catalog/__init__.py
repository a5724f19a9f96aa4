"""The model catalog: specs keyed by model_id and resolution of their pretrained weights."""

from boxtune.catalog.coco import COCO_91_CATEGORIES, coco_categories
from boxtune.catalog.models import (
    DEFAULT_MODEL_ID,
    TF_PERSON_MODEL_ID,
    find_spec,
    get_spec,
    list_specs,
)
from boxtune.catalog.spec import ModelSpec, WeightsSource
from boxtune.catalog.tf_hub import check_fine_tunable, is_hub_spec
from boxtune.catalog.tf_zoo import is_zoo_spec
from boxtune.catalog.weights import cached_weights_path, resolve_weights
from boxtune.catalog.zoo_weights import resolve_hub_saved_model, resolve_zoo_checkpoint

__all__ = [
    "COCO_91_CATEGORIES",
    "DEFAULT_MODEL_ID",
    "TF_PERSON_MODEL_ID",
    "ModelSpec",
    "WeightsSource",
    "cached_weights_path",
    "check_fine_tunable",
    "coco_categories",
    "find_spec",
    "get_spec",
    "is_hub_spec",
    "is_zoo_spec",
    "list_specs",
    "resolve_hub_saved_model",
    "resolve_weights",
    "resolve_zoo_checkpoint",
]
