"""``hyperparameters.retrieve_default`` / ``validate``: the managed SDK's functions, locally.

>>> from boxtune import hyperparameters
>>> hp = hyperparameters.retrieve_default(model_id="pytorch-od1-efficientdet-lite0-320",
...                                       model_version="*")
>>> hp["epochs"] = "3"   # strings, as on the managed platform
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boxtune.sdk.notices import ignore_platform_arguments


def retrieve_default(
    region: str | None = None,
    model_id: str | None = None,
    model_version: str = "*",
    include_container_hyperparameters: bool = False,
    **platform: Any,
) -> dict[str, str]:
    """The default hyperparameters of ``model_id``, every value a string."""
    from boxtune.train.hyperparameters import retrieve_default as _retrieve_default

    ignore_platform_arguments("hyperparameters.retrieve_default", platform)
    if model_id is None:
        from boxtune.catalog import DEFAULT_MODEL_ID
        from boxtune.errors import ModelError

        raise ModelError(
            "model_id is required",
            where="hyperparameters.retrieve_default",
            hint=f'pass model_id=... (e.g. "{DEFAULT_MODEL_ID}"; `boxtune models list`)',
        )
    return _retrieve_default(model_id, model_version)


def validate(
    region: str | None = None,
    model_id: str | None = None,
    model_version: str = "*",
    hyperparameters: Mapping[str, Any] | None = None,
    **platform: Any,
) -> None:
    """Raise ``HyperparameterError`` listing every unknown name or out-of-range value."""
    from boxtune.train.hyperparameters import parse_hyperparameters

    ignore_platform_arguments("hyperparameters.validate", platform)
    parse_hyperparameters(model_id, dict(hyperparameters or {}), model_version)
