"""``sagemaker.transformer.Transformer``: batch transform, as ``boxtune predict`` in the
background.

Each image under ``data`` (a folder or ``s3://`` prefix) gets ``<output_path>/<file name>.out``
holding the endpoint's JSON answer, as the platform's batch transform writes them. The job runs
as a child process; ``wait()`` follows its log and raises ``UnexpectedStatusException`` when
it fails (an image that cannot be read fails the job, as on the platform, after the others ran).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from boxtune import storage
from boxtune.errors import BoxtuneError
from boxtune.jobs import processes
from boxtune.sagemaker.exceptions import UnexpectedStatusException
from boxtune.sdk.notices import ignore_platform_arguments

DATA_TYPES = ("S3Prefix",)


class _TransformJob:
    def __init__(self, name: str, process: subprocess.Popen, log_path: Path, output_path: str):
        self.name = name
        self.job_name = name
        self.process = process
        self.log_path = log_path
        self.output_path = output_path

    def wait(self, logs: bool = True) -> None:
        from boxtune.jobs.logs import failure_reason, follow, read_tail

        if logs:
            follow(self.log_path, lambda: self.process.poll() is not None, sys.stdout)
        code = self.process.wait()
        if code != 0:
            reason = failure_reason(read_tail(self.log_path)) or f"exit code {code}"
            raise UnexpectedStatusException(
                f"Error for Transform job {self.name}: Failed. Reason: {reason}",
                allowed_statuses=["Completed", "Stopped"],
                actual_status="Failed",
                hint=f"full log: {self.log_path}; outputs written so far: {self.output_path}",
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class Transformer:
    def __init__(
        self,
        model_name: str,
        instance_count: int,
        instance_type: str,
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        accept: str | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: int | None = None,
        tags: Any = None,
        env: Mapping[str, str] | None = None,
        base_transform_job_name: str | None = None,
        sagemaker_session: Any = None,
        volume_kms_key: str | None = None,
        *,
        model_ref: str | None = None,
    ):
        ignore_platform_arguments(
            "Transformer",
            {
                "instance_count": None if instance_count in (None, 1) else instance_count,
                "instance_type": instance_type,
                "strategy": strategy,
                "assemble_with": assemble_with,
                "output_kms_key": output_kms_key,
                "max_concurrent_transforms": max_concurrent_transforms,
                "max_payload": max_payload,
                "tags": tags,
                "env": env,
                "sagemaker_session": sagemaker_session,
                "volume_kms_key": volume_kms_key,
            },
        )
        self.model_name = model_name
        # A model name is the model itself here: an artifact or a deployable model id.
        self.model_ref = model_ref or model_name
        self.output_path = output_path
        self.accept = accept
        self.base_transform_job_name = base_transform_job_name
        self.latest_transform_job: _TransformJob | None = None

    @property
    def _current_job_name(self) -> str | None:
        return self.latest_transform_job.name if self.latest_transform_job else None

    def transform(
        self,
        data: str,
        data_type: str = "S3Prefix",
        content_type: str | None = None,
        compression_type: str | None = None,
        split_type: str | None = None,
        job_name: str | None = None,
        input_filter: str | None = None,
        output_filter: str | None = None,
        join_source: str | None = None,
        experiment_config: Any = None,
        model_client_config: Any = None,
        batch_data_capture_config: Any = None,
        wait: bool = True,
        logs: bool = True,
    ) -> None:
        from boxtune.paths import boxtune_home
        from boxtune.sagemaker.utils import name_from_base

        ignore_platform_arguments(
            "Transformer.transform",
            {
                "content_type": content_type,
                "input_filter": input_filter,
                "output_filter": output_filter,
                "join_source": join_source,
                "experiment_config": experiment_config,
                "model_client_config": model_client_config,
                "batch_data_capture_config": batch_data_capture_config,
            },
        )
        if data_type not in DATA_TYPES:
            raise BoxtuneError(
                f"data_type {data_type!r} is not supported",
                where="Transformer.transform",
                hint='use data_type="S3Prefix": a folder or s3:// prefix of images',
            )
        if compression_type not in (None, "None") or split_type not in (None, "None"):
            raise BoxtuneError(
                "compression_type and split_type are not supported: each file is one image",
                where="Transformer.transform",
                hint="leave them out (images are sent whole, as application/x-image)",
            )
        if not storage.exists(data):
            raise BoxtuneError(
                f"the input {data} does not exist",
                where="Transformer.transform(data=...)",
                hint="pass a folder or s3:// prefix holding the images",
            )
        name = job_name or name_from_base(self.base_transform_job_name or "boxtune-transform")
        output = self.output_path or f"s3://{storage.default_bucket()}/{name}"
        storage.check_destination(output)
        log_dir = boxtune_home() / "transform-jobs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        command = [
            *processes.python_command("boxtune.cli", "predict"),
            "--model",
            str(self.model_ref),
            "--input",
            str(data),
            "--output",
            output,
            "--no-progress",
        ]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.latest_transform_job = _TransformJob(name, process, log_path, output)
        if wait:
            self.latest_transform_job.wait(logs=logs)

    def wait(self, logs: bool = True) -> None:
        if self.latest_transform_job is None:
            raise BoxtuneError(
                "no transform job has been started",
                where="Transformer.wait",
                hint="call transform(data) first",
            )
        self.latest_transform_job.wait(logs=logs)

    def stop_transform_job(self, wait: bool = True) -> None:
        if self.latest_transform_job is not None:
            self.latest_transform_job.stop()

    def delete_model(self) -> None:
        """Nothing to delete: the model is its artifact."""
