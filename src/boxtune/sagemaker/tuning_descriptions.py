"""A stored tuning study in the platform's shapes: ``DescribeHyperParameterTuningJob`` (with
``BestTrainingJob``) and the ``TrainingJobSummaries`` of its trials."""

from __future__ import annotations

from typing import Any

from boxtune.sagemaker.descriptions import arn, timestamp
from boxtune.tuning import TrialResult, TuningResult, load_tuning

# Trial states as the platform counts training jobs.
TRIAL_STATUS = {
    "Completed": "Completed",
    "Pruned": "Stopped",
    "Stopped": "Stopped",
    "Failed": "Failed",
    "Running": "InProgress",
}


def _summary(result: TuningResult, trial: TrialResult) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "TrainingJobName": trial.job_name or f"{result.name}-trial-{trial.number}",
        "TrainingJobArn": arn("training-job", trial.job_name or str(trial.number)),
        "TuningJobName": result.name,
        "TrainingJobStatus": TRIAL_STATUS.get(trial.state, "InProgress"),
        "TunedHyperParameters": dict(trial.hyperparameters),
        "ObjectiveStatus": "Succeeded" if trial.objective_value is not None else "Pending",
        "TrainingStartTime": timestamp(trial.started_at),
        "TrainingEndTime": timestamp(trial.ended_at),
        "boxtune": {"trial": trial.number, "state": trial.state},
    }
    if trial.state == "Failed":
        summary["ObjectiveStatus"] = "Failed"
    if trial.objective_value is not None:
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "MetricName": result.objective.name,
            "Value": trial.objective_value,
        }
    return summary


def training_job_summaries(name: str, storage_url: str | None = None) -> list[dict[str, Any]]:
    result = load_tuning(name, storage_url)
    return [_summary(result, trial) for trial in result.trials]


def describe_tuning_job(name: str, storage_url: str | None = None) -> dict[str, Any]:
    result = load_tuning(name, storage_url)
    summaries = [_summary(result, trial) for trial in result.trials]
    counts = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0}
    counts["Stopped"] = 0
    for summary in summaries:
        status = summary["TrainingJobStatus"]
        counts["NonRetryableError" if status == "Failed" else status] += 1
    starts = [t.started_at for t in result.trials if t.started_at is not None]
    ends = [t.ended_at for t in result.trials if t.ended_at is not None]
    description: dict[str, Any] = {
        "HyperParameterTuningJobName": result.name,
        "HyperParameterTuningJobArn": arn("hyper-parameter-tuning-job", result.name),
        "HyperParameterTuningJobStatus": result.status,
        "HyperParameterTuningJobConfig": {
            "HyperParameterTuningJobObjective": {
                "Type": "Maximize" if result.objective.direction == "maximize" else "Minimize",
                "MetricName": result.objective.name,
            },
        },
        "CreationTime": timestamp(min(starts) if starts else None),
        "TrainingJobStatusCounters": counts,
        "ObjectiveStatusCounters": {
            "Succeeded": sum(s["ObjectiveStatus"] == "Succeeded" for s in summaries),
            "Pending": sum(s["ObjectiveStatus"] == "Pending" for s in summaries),
            "Failed": sum(s["ObjectiveStatus"] == "Failed" for s in summaries),
        },
        "boxtune": {"storage_url": result.storage_url},
    }
    if result.status != "InProgress" and ends:
        description["HyperParameterTuningEndTime"] = timestamp(max(ends))
    if result.best is not None:
        description["BestTrainingJob"] = _summary(result, result.best)
    return description
