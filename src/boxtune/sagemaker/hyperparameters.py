"""``sagemaker.hyperparameters``: ``retrieve_default`` and ``validate``, raising the SDK's
``JumpStartHyperparametersError`` (a ``ValueError``) with every problem listed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boxtune.sagemaker.exceptions import sdk_errors
from boxtune.sdk import hyperparameters as _hyperparameters


def retrieve_default(
    region: str | None = None,
    model_id: str | None = None,
    model_version: str | None = None,
    hub_arn: str | None = None,
    instance_type: str | None = None,
    include_container_hyperparameters: bool = False,
    **kwargs: Any,
) -> dict[str, str]:
    with sdk_errors():
        return _hyperparameters.retrieve_default(
            region=region,
            model_id=model_id,
            model_version=model_version or "*",
            include_container_hyperparameters=include_container_hyperparameters,
            hub_arn=hub_arn,
            instance_type=instance_type,
            **kwargs,
        )


def validate(
    region: str | None = None,
    model_id: str | None = None,
    hub_arn: str | None = None,
    model_version: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    kwargs.pop("validation_mode", None)  # every given value is validated, as VALIDATE_PROVIDED
    with sdk_errors():
        _hyperparameters.validate(
            region=region,
            model_id=model_id,
            model_version=model_version or "*",
            hyperparameters=hyperparameters,
            hub_arn=hub_arn,
            **kwargs,
        )
