"""Registry records in the platform's API shapes: ``DescribeTrainingJob`` and
``DescribeHyperParameterTuningJob`` (the keys notebooks read: ``TrainingJobStatus``,
``ModelArtifacts.S3ModelArtifacts``, ``BestTrainingJob.TrainingJobName``, ...)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from boxtune.jobs import (
    COMPLETED,
    FAILED,
    QUEUED,
    RUNNING,
    STARTING,
    STOPPED,
    JobRecord,
    read_metric_definitions,
)
from boxtune.sagemaker.session import LOCAL_ACCOUNT_ID, LOCAL_ROLE_ARN, region_name
from boxtune.sdk.metrics import metric_points

TRAINING_STATUS = {
    QUEUED: "InProgress",
    STARTING: "InProgress",
    RUNNING: "InProgress",
    COMPLETED: "Completed",
    FAILED: "Failed",
    STOPPED: "Stopped",
}
SECONDARY_STATUS = {
    QUEUED: "Starting",
    STARTING: "Starting",
    RUNNING: "Training",
    COMPLETED: "Completed",
    FAILED: "Failed",
    STOPPED: "Stopped",
}


def timestamp(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region_name()}:{LOCAL_ACCOUNT_ID}:{kind}/{name.lower()}"


def training_status(job: JobRecord) -> str:
    return TRAINING_STATUS.get(job.status, "InProgress")


def read_log(job: JobRecord) -> str:
    try:
        return Path(job.log_path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def final_metrics(job: JobRecord) -> list[dict[str, Any]]:
    """The last value of each defined metric, as ``FinalMetricDataList`` holds them."""
    last: dict[str, float] = {}
    for point in metric_points(read_log(job), read_metric_definitions(job)):
        last[point.name] = point.value
    when = timestamp(job.ended_at or job.started_at)
    return [{"MetricName": k, "Value": v, "Timestamp": when} for k, v in last.items()]


def describe_training_job(job: JobRecord) -> dict[str, Any]:
    status = training_status(job)
    description: dict[str, Any] = {
        "TrainingJobName": job.name,
        "TrainingJobArn": arn("training-job", job.name),
        "TrainingJobStatus": status,
        "SecondaryStatus": SECONDARY_STATUS.get(job.status, "Starting"),
        "HyperParameters": dict(job.hyperparameters),
        "AlgorithmSpecification": {
            "TrainingImage": f"boxtune://image/{job.model_id or 'incremental'}",
            "TrainingInputMode": "File",
            "MetricDefinitions": read_metric_definitions(job),
        },
        "RoleArn": LOCAL_ROLE_ARN,
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel, uri in job.inputs.items()
        ],
        "OutputDataConfig": {"S3OutputPath": job.output_path or ""},
        "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1, "VolumeSizeInGB": 0},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "CreationTime": timestamp(job.created_at),
        "LastModifiedTime": timestamp(job.ended_at or job.started_at or job.created_at),
        "FinalMetricDataList": final_metrics(job),
        "EnableNetworkIsolation": False,
        "boxtune": {"status": job.status, "log_path": job.log_path, "work_dir": job.work_dir},
    }
    if job.started_at is not None:
        description["TrainingStartTime"] = timestamp(job.started_at)
    if job.ended_at is not None:
        description["TrainingEndTime"] = timestamp(job.ended_at)
        seconds = round(job.ended_at - (job.started_at or job.ended_at))
        description["TrainingTimeInSeconds"] = seconds
        description["BillableTimeInSeconds"] = 0
    if status == "Completed" and job.model_data:
        description["ModelArtifacts"] = {"S3ModelArtifacts": job.model_data}
    if job.failure_reason:
        description["FailureReason"] = job.failure_reason
    return description
