"""A local stand-in for boto3's SageMaker client (``Session().sagemaker_client``): the
``describe_*``/``list_*``/``stop_*`` calls notebooks make, answered from the job registry and
the tuning studies, with the platform's keyword names and response shapes."""

from __future__ import annotations

from typing import Any


class LocalSageMakerClient:
    def describe_training_job(self, *, TrainingJobName: str) -> dict[str, Any]:
        from boxtune.jobs import get_job
        from boxtune.sagemaker.descriptions import describe_training_job

        return describe_training_job(get_job(TrainingJobName, with_metrics=False))

    def describe_hyper_parameter_tuning_job(
        self,
        *,
        HyperParameterTuningJobName: str,
    ) -> dict[str, Any]:
        from boxtune.sagemaker.tuning_descriptions import describe_tuning_job

        return describe_tuning_job(HyperParameterTuningJobName)

    def list_training_jobs(self, **filters: Any) -> dict[str, Any]:
        from boxtune.jobs import list_jobs
        from boxtune.sagemaker.descriptions import arn, timestamp, training_status

        name_contains = filters.get("NameContains")
        summaries = [
            {
                "TrainingJobName": job.name,
                "TrainingJobArn": arn("training-job", job.name),
                "TrainingJobStatus": training_status(job),
                "CreationTime": timestamp(job.created_at),
                "TrainingEndTime": timestamp(job.ended_at),
            }
            for job in list_jobs(limit=filters.get("MaxResults"))
            if not name_contains or name_contains in job.name
        ]
        return {"TrainingJobSummaries": summaries}

    def stop_training_job(self, *, TrainingJobName: str) -> dict[str, Any]:
        from boxtune.jobs import stop_job

        stop_job(TrainingJobName)
        return {}

    def stop_hyper_parameter_tuning_job(
        self,
        *,
        HyperParameterTuningJobName: str,
    ) -> dict[str, Any]:
        from boxtune.tuning import stop_tuning

        stop_tuning(HyperParameterTuningJobName)
        return {}
