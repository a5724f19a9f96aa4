"""``sagemaker.jumpstart.notebook_utils.list_jumpstart_models``: the catalog's model ids."""

from __future__ import annotations

from typing import Any

from boxtune.sagemaker.jumpstart.filters import BooleanValues, Constant, Operand
from boxtune.sdk.listing import list_models
from boxtune.sdk.notices import ignore_platform_arguments

MODEL_VERSION = "1.0.0"
_EVERY_MODEL = Constant(BooleanValues.TRUE)


def list_jumpstart_models(
    filter: Operand | str = _EVERY_MODEL,
    region: str | None = None,
    list_incomplete_models: bool = False,
    list_old_models: bool = False,
    list_versions: bool = False,
    sagemaker_session: Any = None,
) -> list[str] | list[tuple[str, str]]:
    """Sorted model ids that pass ``filter`` (``(model_id, version)`` pairs with
    ``list_versions=True``)."""
    ignore_platform_arguments(
        "list_jumpstart_models",
        {
            "region": region,
            "sagemaker_session": sagemaker_session,
            "list_incomplete_models": list_incomplete_models or None,
            "list_old_models": list_old_models or None,
        },
    )
    ids = list_models(filter=filter)
    if list_versions:
        return [(model_id, MODEL_VERSION) for model_id in ids]
    return ids
