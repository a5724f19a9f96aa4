"""``sagemaker.model_uris.retrieve``: where a model's pretrained weights live (a file inside an
installed package, or the published download URL)."""

from __future__ import annotations

from typing import Any

from boxtune.sagemaker.exceptions import sdk_errors
from boxtune.sdk.uris import model_uris as _model_uris


def retrieve(
    region: str | None = None,
    model_id: str | None = None,
    model_version: str | None = None,
    hub_arn: str | None = None,
    model_scope: str | None = None,
    instance_type: str | None = None,
    **kwargs: Any,
) -> str:
    with sdk_errors():
        return _model_uris.retrieve(
            region=region,
            model_id=model_id,
            model_version=model_version or "*",
            model_scope=model_scope or "training",
            hub_arn=hub_arn,
            instance_type=instance_type,
            **kwargs,
        )
