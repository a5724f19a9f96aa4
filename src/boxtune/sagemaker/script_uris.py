"""``sagemaker.script_uris.retrieve``: a ``boxtune://script/<scope>/<model_id>`` reference
(the training and inference code is boxtune itself)."""

from __future__ import annotations

from typing import Any

from boxtune.sagemaker.exceptions import sdk_errors
from boxtune.sdk.uris import script_uris as _script_uris


def retrieve(
    region: str | None = None,
    model_id: str | None = None,
    model_version: str | None = None,
    hub_arn: str | None = None,
    script_scope: str | None = None,
    **kwargs: Any,
) -> str:
    with sdk_errors():
        return _script_uris.retrieve(
            region=region,
            model_id=model_id,
            model_version=model_version or "*",
            script_scope=script_scope,
            hub_arn=hub_arn,
            **kwargs,
        )
