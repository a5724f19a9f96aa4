"""``sagemaker.jumpstart.model.JumpStartModel``: deploy a catalog model (or a fine-tuned
artifact of one, ``model_data=``) by id; ``deploy()`` always returns a Predictor that sends image
bytes and returns the parsed answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boxtune.sagemaker.exceptions import InvalidModelError
from boxtune.sagemaker.jumpstart.serializers_for_models import (
    detection_deserializer,
    detection_serializer,
)
from boxtune.sagemaker.model import Model
from boxtune.sagemaker.predictor import Predictor


class JumpStartModel(Model):
    def __init__(
        self,
        model_id: str | None = None,
        model_version: str | None = None,
        hub_name: str | None = None,
        tolerate_vulnerable_model: bool | None = None,
        tolerate_deprecated_model: bool | None = None,
        region: str | None = None,
        instance_type: str | None = None,
        image_uri: str | None = None,
        model_data: str | None = None,
        role: str | None = None,
        predictor_cls: Any = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ):
        if not model_id and not model_data:
            raise InvalidModelError(
                "JumpStartModel needs a model_id",
                where="JumpStartModel",
                hint="pass model_id=<a deployable model> (`boxtune models list`), or "
                "model_data=<a boxtune model.tar.gz> with its model_id",
            )
        super().__init__(
            image_uri=image_uri,
            model_data=model_data,
            role=role,
            predictor_cls=predictor_cls or Predictor,
            env=env,
            name=name,
            model_id=model_id,
            model_version=model_version,
            hub_name=hub_name,
            tolerate_vulnerable_model=tolerate_vulnerable_model,
            tolerate_deprecated_model=tolerate_deprecated_model,
            region=region,
            instance_type=instance_type,
            **kwargs,
        )

    def deploy(
        self,
        initial_instance_count: int | None = None,
        instance_type: str | None = None,
        serializer: Any = None,
        deserializer: Any = None,
        accelerator_type: str | None = None,
        endpoint_name: str | None = None,
        inference_component_name: str | None = None,
        tags: Any = None,
        kms_key: str | None = None,
        wait: bool = True,
        data_capture_config: Any = None,
        **kwargs: Any,
    ) -> Predictor:
        return super().deploy(
            initial_instance_count=initial_instance_count,
            instance_type=instance_type,
            serializer=serializer or detection_serializer(),
            deserializer=deserializer or detection_deserializer(),
            accelerator_type=accelerator_type,
            endpoint_name=endpoint_name,
            tags=tags,
            kms_key=kms_key,
            wait=wait,
            data_capture_config=data_capture_config,
            inference_component_name=inference_component_name,
            **kwargs,
        )
