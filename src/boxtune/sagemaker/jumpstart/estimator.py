"""``sagemaker.jumpstart.estimator.JumpStartEstimator``: an Estimator named by model id.

``JumpStartEstimator(model_id, model_version)``: hyperparameters start from the model's
defaults (the given ones override them, validated at once), the metric definitions default to
the algorithm's log regexes, and ``deploy()`` returns a Predictor that sends image bytes and
returns the parsed answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boxtune.sagemaker.estimator import Estimator
from boxtune.sagemaker.exceptions import InvalidModelError, sdk_errors
from boxtune.sagemaker.jumpstart.serializers_for_models import (
    detection_deserializer,
    detection_serializer,
)
from boxtune.sagemaker.predictor import Predictor

# The algorithm's own log lines (boxtune prints them the same way).
DEFAULT_METRIC_DEFINITIONS = [
    {"Name": "val_localization_loss", "Regex": "Val_localization=([0-9\\.]+)"},
    {"Name": "val_classification_loss", "Regex": "Val_classification=([0-9\\.]+)"},
    {"Name": "train_loss", "Regex": "loss=([0-9\\.]+)."},
]


class JumpStartEstimator(Estimator):
    def __init__(
        self,
        model_id: str | None = None,
        model_version: str | None = None,
        hub_name: str | None = None,
        tolerate_vulnerable_model: bool | None = None,
        tolerate_deprecated_model: bool | None = None,
        region: str | None = None,
        image_uri: str | None = None,
        role: str | None = None,
        instance_count: int | None = None,
        instance_type: str | None = None,
        keep_alive_period_in_seconds: int | None = None,
        volume_size: int | None = None,
        volume_kms_key: str | None = None,
        max_run: int | None = None,
        input_mode: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        base_job_name: str | None = None,
        sagemaker_session: Any = None,
        hyperparameters: Mapping[str, Any] | None = None,
        tags: Any = None,
        subnets: Any = None,
        security_group_ids: Any = None,
        model_uri: str | None = None,
        model_channel_name: str | None = None,
        metric_definitions: list[dict[str, str]] | None = None,
        **kwargs: Any,
    ):
        from boxtune.sagemaker.hyperparameters import retrieve_default, validate

        if not model_id:
            raise InvalidModelError(
                "JumpStartEstimator needs a model_id",
                where="JumpStartEstimator",
                hint="pass model_id=... (`boxtune models list` lists them)",
            )
        model_version = model_version or "*"
        values = dict(retrieve_default(model_id=model_id, model_version=model_version))
        values.update({k: str(v) for k, v in (hyperparameters or {}).items()})
        validate(model_id=model_id, model_version=model_version, hyperparameters=values)
        with sdk_errors():
            super().__init__(
                image_uri,
                role=role,
                instance_count=instance_count,
                instance_type=instance_type,
                keep_alive_period_in_seconds=keep_alive_period_in_seconds,
                volume_size=volume_size or 30,
                volume_kms_key=volume_kms_key,
                max_run=max_run or 86400,
                input_mode=input_mode or "File",
                output_path=output_path,
                output_kms_key=output_kms_key,
                base_job_name=base_job_name or model_id,
                sagemaker_session=sagemaker_session,
                hyperparameters=values,
                tags=tags,
                subnets=subnets,
                security_group_ids=security_group_ids,
                model_uri=model_uri,
                model_channel_name=model_channel_name or "model",
                metric_definitions=metric_definitions or DEFAULT_METRIC_DEFINITIONS,
                model_id=model_id,
                model_version=model_version,
                hub_name=hub_name,
                tolerate_vulnerable_model=tolerate_vulnerable_model,
                tolerate_deprecated_model=tolerate_deprecated_model,
                region=region,
                **kwargs,
            )

    def fit(
        self,
        inputs: Any = None,
        wait: bool = True,
        logs: Any = None,
        job_name: str | None = None,
        experiment_config: Any = None,
        accept_eula: bool | None = None,
    ) -> None:
        super().fit(
            inputs,
            wait=wait,
            logs="All" if logs is None else logs,
            job_name=job_name,
            experiment_config=experiment_config,
        )

    @classmethod
    def attach(
        cls,
        training_job_name: str,
        model_id: str | None = None,
        model_version: str | None = None,
        hub_arn: str | None = None,
        sagemaker_session: Any = None,
        model_channel_name: str = "model",
        config_name: str | None = None,
    ) -> JumpStartEstimator:
        estimator = super().attach(
            training_job_name,
            sagemaker_session=sagemaker_session,
            model_channel_name=model_channel_name,
        )
        if model_id and estimator.model_id and model_id != estimator.model_id:
            raise InvalidModelError(
                f"training job {training_job_name} fine-tuned {estimator.model_id}, not {model_id}",
                where="JumpStartEstimator.attach",
                hint="pass the job's own model_id, or leave model_id out",
            )
        return estimator  # type: ignore[return-value]

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
    ) -> Predictor:
        return super().deploy(
            initial_instance_count=initial_instance_count,
            instance_type=instance_type,
            serializer=serializer or detection_serializer(),
            deserializer=deserializer or detection_deserializer(),
            accelerator_type=accelerator_type,
            endpoint_name=endpoint_name,
            wait=wait,
            kms_key=kms_key,
            data_capture_config=data_capture_config,
            tags=tags,
            **kwargs,
        )
