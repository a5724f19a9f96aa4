"""``sagemaker.image_uris.retrieve``: a ``boxtune://image/<scope>/<model_id>`` reference that
``Estimator(image_uri=...)`` and ``Model(image_uri=...)`` map back to the model (boxtune has no
container registry: training and serving run on this machine)."""

from __future__ import annotations

from typing import Any

from boxtune.sagemaker.exceptions import sdk_errors
from boxtune.sdk.uris import image_uris as _image_uris


def retrieve(
    framework: str | None,
    region: str | None,
    version: str | None = None,
    py_version: str | None = None,
    instance_type: str | None = None,
    accelerator_type: str | None = None,
    image_scope: str | None = None,
    container_version: str | None = None,
    distribution: Any = None,
    base_framework_version: str | None = None,
    training_compiler_config: Any = None,
    model_id: str | None = None,
    model_version: str | None = None,
    **kwargs: Any,
) -> str:
    with sdk_errors():
        return _image_uris.retrieve(
            region=region,
            framework=framework,
            model_id=model_id,
            model_version=model_version or "*",
            image_scope=image_scope,
            instance_type=instance_type,
            accelerator_type=accelerator_type,
            py_version=py_version,
            container_version=container_version,
            distribution=distribution,
            base_framework_version=base_framework_version,
            training_compiler_config=training_compiler_config,
            **kwargs,
        )
