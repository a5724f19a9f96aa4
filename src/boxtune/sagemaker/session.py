"""``sagemaker.session``: ``Session`` and ``get_execution_role`` on this machine.

``default_bucket()`` is ``BOXTUNE_DEFAULT_BUCKET`` (a bucket on your S3-compatible server) or
``boxtune-local``, a folder that every boxtune function maps ``s3://boxtune-local/...`` to (see
:mod:`boxtune.storage`), so a notebook's ``f"s3://{sess.default_bucket()}/prefix/output"``
works with or without an S3 server. There are no roles or accounts: the identity helpers return
fixed local placeholders, which every ``role=`` argument accepts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from boxtune import storage
from boxtune.sdk.notices import ignore_platform_arguments

LOCAL_ACCOUNT_ID = "000000000000"
LOCAL_ROLE_ARN = f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/boxtune-local-role"


def get_execution_role(sagemaker_session: Any = None, use_default: bool = False) -> str:
    return LOCAL_ROLE_ARN


def region_name() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "local"


class Session:
    """The platform session's data and job helpers, backed by the local registry."""

    def __init__(
        self,
        boto_session: Any = None,
        sagemaker_client: Any = None,
        sagemaker_runtime_client: Any = None,
        sagemaker_featurestore_runtime_client: Any = None,
        default_bucket: str | None = None,
        settings: Any = None,
        sagemaker_metrics_client: Any = None,
        sagemaker_config: dict | None = None,
        default_bucket_prefix: str | None = None,
    ):
        from boxtune.sagemaker.control_plane import LocalSageMakerClient

        ignore_platform_arguments(
            "Session",
            {
                "boto_session": boto_session,
                "sagemaker_client": sagemaker_client,
                "sagemaker_runtime_client": sagemaker_runtime_client,
                "sagemaker_featurestore_runtime_client": sagemaker_featurestore_runtime_client,
                "settings": settings,
                "sagemaker_metrics_client": sagemaker_metrics_client,
                "sagemaker_config": sagemaker_config,
            },
        )
        self._default_bucket = default_bucket
        self.default_bucket_prefix = default_bucket_prefix
        # boto3's SageMaker client shape, for code that calls it directly.
        self.sagemaker_client = LocalSageMakerClient()
        self.local_mode = True

    @property
    def boto_region_name(self) -> str:
        return region_name()

    def default_bucket(self) -> str:
        return self._default_bucket or storage.default_bucket()

    def account_id(self) -> str:
        return LOCAL_ACCOUNT_ID

    def get_caller_identity_arn(self) -> str:
        return LOCAL_ROLE_ARN

    # -- data ------------------------------------------------------------------------------------
    def _uri(self, bucket: str | None, key: str = "") -> str:
        return storage.join(f"s3://{bucket or self.default_bucket()}", key)

    def upload_data(
        self,
        path: str,
        bucket: str | None = None,
        key_prefix: str = "data",
        callback: Any = None,
        extra_args: Any = None,
    ) -> str:
        """Upload a file or a directory; returns ``s3://bucket/key_prefix[/file name]``."""
        ignore_platform_arguments(
            "Session.upload_data", {"callback": callback, "extra_args": extra_args}
        )
        source = Path(path).expanduser()
        prefix = (
            f"{self.default_bucket_prefix}/{key_prefix}"
            if self.default_bucket_prefix and bucket is None
            else key_prefix
        )
        target = self._uri(bucket, prefix)
        if source.is_file():
            target = storage.join(target, source.name)
        storage.upload(source, target)
        return target

    def upload_string_as_file_body(
        self, body: str, bucket: str, key: str, kms_key: str | None = None
    ) -> str:
        uri = self._uri(bucket, key)
        storage.write_text(uri, body)
        return uri

    def read_s3_file(self, bucket: str, key_prefix: str) -> str:
        return storage.read_text(self._uri(bucket, key_prefix))

    def list_s3_files(self, bucket: str, key_prefix: str) -> list[str]:
        return storage.list_files(self._uri(bucket, key_prefix))

    def download_data(
        self, path: str, bucket: str, key_prefix: str = "", extra_args: Any = None
    ) -> list[str]:
        """Download every object under ``key_prefix`` into the directory ``path``."""
        ignore_platform_arguments("Session.download_data", {"extra_args": extra_args})
        return [str(p) for p in storage.download(self._uri(bucket, key_prefix), Path(path))]

    # -- jobs ------------------------------------------------------------------------------------
    def describe_training_job(self, job_name: str) -> dict[str, Any]:
        return self.sagemaker_client.describe_training_job(TrainingJobName=job_name)

    def describe_tuning_job(self, job_name: str) -> dict[str, Any]:
        return self.sagemaker_client.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=job_name
        )

    def logs_for_job(
        self,
        job_name: str,
        wait: bool = False,
        poll: int = 10,
        log_type: str = "All",
        timeout: int | None = None,
    ) -> None:
        import sys

        from boxtune.jobs import stream_logs

        stream_logs(job_name, sys.stdout, follow=wait)

    def wait_for_job(self, job: str, poll: int = 5) -> dict[str, Any]:
        from boxtune.sagemaker.estimator import wait_for_training

        wait_for_training(job, logs=False)
        return self.describe_training_job(job)

    def delete_endpoint(self, endpoint_name: str) -> None:
        from boxtune.jobs import stop_endpoint

        stop_endpoint(endpoint_name)

    def delete_model(self, model_name: str) -> None:
        """Nothing to delete: a model is its artifact, which stays where it is."""
