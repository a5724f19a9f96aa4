"""``sagemaker.model.Model`` with the SDK v2's signature: serve a model without training.

``model_data`` is what ``model_uris.retrieve(model_scope="inference")`` returned (a deployable
pretrained catalog model) or a boxtune artifact (``model.tar.gz``, directory, ``s3://``).
As in the SDK, ``deploy`` returns ``predictor_cls(endpoint_name)`` when a ``predictor_cls`` was
given, else ``None`` (``JumpStartModel.deploy`` always returns a Predictor).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boxtune.sagemaker.exceptions import sdk_errors
from boxtune.sdk.model import Model as _LocalModel
from boxtune.sdk.model import start_background_endpoint


class Model(_LocalModel):
    def __init__(
        self,
        image_uri: str | None = None,
        model_data: str | None = None,
        role: str | None = None,
        predictor_cls: Any = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        vpc_config: Any = None,
        sagemaker_session: Any = None,
        enable_network_isolation: bool | None = None,
        model_kms_key: str | None = None,
        image_config: Any = None,
        source_dir: str | None = None,
        code_location: str | None = None,
        entry_point: str | None = None,
        container_log_level: int = 20,
        **kwargs: Any,
    ):
        model_id = kwargs.pop("model_id", None)
        model_version = kwargs.pop("model_version", None) or "*"
        with sdk_errors():
            super().__init__(
                model_data=model_data,
                model_id=model_id,
                image_uri=image_uri,
                role=role,
                entry_point=entry_point,
                source_dir=source_dir,
                name=name,
                model_version=model_version,
                sagemaker_session=sagemaker_session,
                env=env,
                vpc_config=vpc_config,
                enable_network_isolation=enable_network_isolation,
                model_kms_key=model_kms_key,
                image_config=image_config,
                code_location=code_location,
                container_log_level=None if container_log_level == 20 else container_log_level,
                **kwargs,
            )
        # Kept as given: the SDK calls any callable predictor_cls(endpoint_name, session).
        self.predictor_cls = predictor_cls
        self.image_uri = image_uri
        self.role = role
        self.env = dict(env or {})
        self.sagemaker_session = sagemaker_session
        self.endpoint_name: str | None = None

    def _start(
        self,
        *,
        caller: str,
        endpoint_name: str | None,
        wait: bool,
        platform: dict[str, Any],
    ) -> str:
        endpoint = start_background_endpoint(
            self.model_ref,
            caller=caller,
            model_id=self.model_id,
            name=endpoint_name or self.name,
            port=platform.pop("port", None),
            host=platform.pop("host", "127.0.0.1"),
            backend=platform.pop("backend", None),
            wait=wait,
            platform=platform,
        )
        self.endpoint_name = endpoint.name
        return endpoint.name

    def deploy(
        self,
        initial_instance_count: int | None = None,
        instance_type: str | None = None,
        serializer: Any = None,
        deserializer: Any = None,
        accelerator_type: str | None = None,
        endpoint_name: str | None = None,
        tags: Any = None,
        kms_key: str | None = None,
        wait: bool = True,
        data_capture_config: Any = None,
        **kwargs: Any,
    ) -> Any:
        name = self._start(
            caller="Model.deploy",
            endpoint_name=endpoint_name,
            wait=wait,
            platform={
                "initial_instance_count": None
                if initial_instance_count in (None, 1)
                else initial_instance_count,
                "instance_type": instance_type,
                "accelerator_type": accelerator_type,
                "tags": tags,
                "kms_key": kms_key,
                "data_capture_config": data_capture_config,
                **kwargs,
            },
        )
        if not self.predictor_cls:
            return None
        predictor = self.predictor_cls(name, self.sagemaker_session)
        if serializer is not None:
            predictor.serializer = serializer
        if deserializer is not None:
            predictor.deserializer = deserializer
        self.predictor = predictor
        return predictor

    def transformer(
        self,
        instance_count: int,
        instance_type: str,
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        accept: str | None = None,
        env: Mapping[str, str] | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: int | None = None,
        tags: Any = None,
        volume_kms_key: str | None = None,
    ):
        from boxtune.sagemaker.transformer import Transformer

        return Transformer(
            self.name or self.model_ref,
            instance_count,
            instance_type,
            strategy=strategy,
            assemble_with=assemble_with,
            output_path=output_path,
            output_kms_key=output_kms_key,
            accept=accept,
            max_concurrent_transforms=max_concurrent_transforms,
            max_payload=max_payload,
            tags=tags,
            env=env,
            volume_kms_key=volume_kms_key,
            model_ref=self.model_ref,
        )

    def delete_model(self) -> None:
        """Nothing to delete: the model is its artifact, which stays where it is."""
