"""``sagemaker.estimator.Estimator`` with the SDK v2's signature, training on this machine.

The notebook's ``Estimator(role=..., image_uri=train_image_uri, source_dir=train_source_uri,
model_uri=train_model_uri, entry_point="transfer_learning.py", instance_type=...,
hyperparameters=..., output_path=..., base_job_name=..., metric_definitions=...)`` finds its
model_id in the ``image_uris``/``script_uris``/``model_uris`` values; a ``model_uri`` that is a
previous ``model.tar.gz`` trains incrementally. A job that fails raises the SDK's
``UnexpectedStatusException``; ``latest_training_job.describe()`` is ``DescribeTrainingJob``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from boxtune.sagemaker.exceptions import UnexpectedStatusException, sdk_errors
from boxtune.sagemaker.predictor import Predictor
from boxtune.sdk.estimator import Estimator as _LocalEstimator
from boxtune.sdk.estimator import TrainingJob as _LocalTrainingJob
from boxtune.sdk.model import start_background_endpoint

# A job that ended in one of these is not an error for ``wait`` (as on the platform).
FINISHED_OK = ("Completed", "Stopped")


def wait_for_training(name: str, logs: Any = "All") -> None:
    """Wait for job ``name`` (streaming its log when ``logs``); raise
    ``UnexpectedStatusException`` when it failed."""
    from boxtune.jobs import get_job, stream_logs, wait_for_job
    from boxtune.sagemaker.descriptions import training_status

    if logs and str(logs).lower() not in ("none", "false"):
        job = stream_logs(name, sys.stdout, follow=True)
    else:
        job = wait_for_job(name)
    job = get_job(name, with_metrics=False)
    status = training_status(job)
    if status not in FINISHED_OK:
        raise UnexpectedStatusException(
            f"Error for Training job {name}: {status}. Reason: {job.failure_reason or status}",
            allowed_statuses=list(FINISHED_OK),
            actual_status=status,
            hint=f"full log: {job.log_path} (`boxtune jobs logs {name}`)",
        )


class TrainingJob(_LocalTrainingJob):
    """``estimator.latest_training_job``: ``.name``, ``describe()``, ``wait()``, ``stop()``."""

    def describe(self) -> dict[str, Any]:
        from boxtune.jobs import get_job
        from boxtune.sagemaker.descriptions import describe_training_job

        return describe_training_job(get_job(self.name, with_metrics=False))

    def wait(self, logs: Any = "All") -> None:
        wait_for_training(self.name, logs)


def _rename_model_channel(inputs: Any, model_channel_name: str) -> Any:
    if isinstance(inputs, Mapping) and model_channel_name != "model":
        inputs = dict(inputs)
        if model_channel_name in inputs:
            inputs["model"] = inputs.pop(model_channel_name)
    return inputs


class Estimator(_LocalEstimator):
    def __init__(
        self,
        image_uri: str | None,
        role: str | None = None,
        instance_count: int | None = None,
        instance_type: str | None = None,
        keep_alive_period_in_seconds: int | None = None,
        volume_size: int = 30,
        volume_kms_key: str | None = None,
        max_run: int = 86400,
        input_mode: str = "File",
        output_path: str | None = None,
        output_kms_key: str | None = None,
        base_job_name: str | None = None,
        sagemaker_session: Any = None,
        hyperparameters: Mapping[str, Any] | None = None,
        tags: Any = None,
        subnets: Any = None,
        security_group_ids: Any = None,
        model_uri: str | None = None,
        model_channel_name: str = "model",
        metric_definitions: list[dict[str, str]] | None = None,
        **kwargs: Any,
    ):
        source_dir = kwargs.pop("source_dir", None)
        entry_point = kwargs.pop("entry_point", None)
        model_id = kwargs.pop("model_id", None)
        model_version = kwargs.pop("model_version", None) or "*"
        platform = {
            "keep_alive_period_in_seconds": keep_alive_period_in_seconds,
            "volume_size": None if volume_size == 30 else volume_size,
            "volume_kms_key": volume_kms_key,
            "input_mode": None if input_mode == "File" else input_mode,
            "output_kms_key": output_kms_key,
            "tags": tags,
            "subnets": subnets,
            "security_group_ids": security_group_ids,
            **kwargs,
        }
        with sdk_errors():
            super().__init__(
                model_id=model_id,
                hyperparameters=hyperparameters,
                output_path=output_path,
                instance_count=instance_count or 1,
                instance_type=instance_type,
                model_version=model_version,
                model_uri=model_uri,
                base_job_name=base_job_name,
                role=role,
                image_uri=image_uri,
                source_dir=source_dir,
                entry_point=entry_point,
                sagemaker_session=sagemaker_session,
                max_run=None if max_run == 86400 else max_run,
                metric_definitions=metric_definitions,
                **platform,
            )
        self.image_uri = image_uri
        self.role = role
        self.instance_type = instance_type
        self.model_uri = model_uri
        self.model_channel_name = model_channel_name
        self.sagemaker_session = sagemaker_session

    def training_image_uri(self) -> str | None:
        return self.image_uri

    def fit(
        self,
        inputs: Any = None,
        wait: bool = True,
        logs: Any = "All",
        job_name: str | None = None,
        experiment_config: Any = None,
    ) -> None:
        inputs = _rename_model_channel(inputs, self.model_channel_name)
        with sdk_errors():
            super().fit(
                inputs,
                wait=False,
                logs=logs,
                job_name=job_name,
                experiment_config=experiment_config,
            )
        assert self.latest_training_job is not None
        name = self.latest_training_job.name
        self.latest_training_job = TrainingJob(name)
        if wait:
            wait_for_training(name, logs)

    @property
    def training_job_analytics(self):
        from boxtune.sagemaker.analytics import TrainingJobAnalytics

        return TrainingJobAnalytics(self._job().name)

    @classmethod
    def attach(
        cls,
        training_job_name: str,
        sagemaker_session: Any = None,
        model_channel_name: str = "model",
    ) -> Estimator:
        """An Estimator for an existing job; waits for it to end, as the SDK does."""
        from boxtune.jobs import get_job

        estimator = super().attach(
            training_job_name, sagemaker_session=sagemaker_session, wait=False
        )
        job = get_job(training_job_name, with_metrics=False)
        estimator.latest_training_job = TrainingJob(job.name)
        estimator.image_uri = None
        estimator.role = None
        estimator.instance_type = None
        estimator.model_uri = job.base_model
        estimator.model_channel_name = model_channel_name
        estimator.sagemaker_session = sagemaker_session
        if job.is_active:
            wait_for_training(job.name, logs=False)
        return estimator

    def deploy(
        self,
        initial_instance_count: int | None = None,
        instance_type: str | None = None,
        serializer: Any = None,
        deserializer: Any = None,
        accelerator_type: str | None = None,
        endpoint_name: str | None = None,
        use_compiled_model: bool = False,
        wait: bool = True,
        model_name: str | None = None,
        kms_key: str | None = None,
        data_capture_config: Any = None,
        tags: Any = None,
        **kwargs: Any,
    ) -> Predictor:
        """Serve the trained model in the background; returns its ``Predictor``."""
        predictor_cls = kwargs.pop("predictor_cls", None) or Predictor
        endpoint = start_background_endpoint(
            self.model_data,
            caller="Estimator.deploy",
            model_id=self.model_id,
            name=endpoint_name,
            port=kwargs.pop("port", None),
            host=kwargs.pop("host", "127.0.0.1"),
            backend=kwargs.pop("backend", None),
            wait=wait,
            job_name=self._job().name,
            platform={
                "initial_instance_count": None
                if initial_instance_count in (None, 1)
                else initial_instance_count,
                "instance_type": instance_type,
                "accelerator_type": accelerator_type,
                "use_compiled_model": use_compiled_model or None,
                "model_name": model_name,
                "kms_key": kms_key,
                "data_capture_config": data_capture_config,
                "tags": tags,
                **kwargs,
            },
        )
        kwargs_for_predictor = {}
        if serializer is not None:
            kwargs_for_predictor["serializer"] = serializer
        if deserializer is not None:
            kwargs_for_predictor["deserializer"] = deserializer
        return predictor_cls(endpoint.name, **kwargs_for_predictor)

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
        role: str | None = None,
        volume_kms_key: str | None = None,
        vpc_config_override: Any = "VPC_CONFIG_DEFAULT",
        enable_network_isolation: bool | None = None,
        model_name: str | None = None,
    ):
        """A batch ``Transformer`` over the trained model."""
        from boxtune.sagemaker.transformer import Transformer

        return Transformer(
            model_name or self.model_data,
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
        )
