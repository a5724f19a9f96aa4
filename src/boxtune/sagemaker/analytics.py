"""``sagemaker.analytics``: a job's metrics and a tuning job's trials as pandas DataFrames.

``TrainingJobAnalytics(name).dataframe()`` has the platform's columns ``timestamp`` (seconds
since the job started), ``metric_name`` and ``value``: one row per match of each of the job's
``metric_definitions`` in its log (the platform reads CloudWatch, where the same regexes feed
the metrics). The timestamp of an ``[Epoch N]`` line is when that epoch ended.
"""

from __future__ import annotations

from typing import Any

from boxtune.errors import BoxtuneError


def _pandas():
    try:
        import pandas
    except ImportError as exc:  # pragma: no cover - pandas is in the sagemaker extra
        raise BoxtuneError(
            "TrainingJobAnalytics needs pandas",
            hint="pip install 'boxtune[sagemaker]' (or pip install pandas)",
        ) from exc
    return pandas


def _epoch_end_seconds(metrics: list[dict]) -> dict[int, float]:
    """Seconds from the job's start to the end of each epoch (training + validation time)."""
    elapsed, ends = 0.0, {}
    for record in metrics:
        elapsed += float(record.get("train_seconds") or 0) + float(
            record.get("validation_seconds") or 0
        )
        ends[int(record.get("epoch", len(ends)))] = round(elapsed, 3)
    return ends


class TrainingJobAnalytics:
    CLOUDWATCH_NAMESPACE = "/aws/sagemaker/TrainingJobs"

    def __init__(
        self,
        training_job_name: str,
        metric_names: list[str] | None = None,
        sagemaker_session: Any = None,
        start_time: Any = None,
        end_time: Any = None,
        period: int | None = None,
    ):
        self._training_job_name = training_job_name
        self._metric_names = list(metric_names) if metric_names else None
        self._dataframe = None

    @property
    def name(self) -> str:
        return self._training_job_name

    def clear_cache(self) -> None:
        self._dataframe = None

    def _rows(self) -> list[dict[str, Any]]:
        from boxtune.jobs import get_job, read_metric_definitions
        from boxtune.sagemaker.descriptions import read_log
        from boxtune.sdk.metrics import metric_points

        job = get_job(self._training_job_name)
        definitions = read_metric_definitions(job)
        if self._metric_names:
            known = {d["Name"] for d in definitions}
            unknown = [n for n in self._metric_names if n not in known]
            if unknown:
                raise BoxtuneError(
                    f"training job {job.name} has no metric named {', '.join(unknown)}",
                    where="TrainingJobAnalytics(metric_names=...)",
                    hint="its metric_definitions name: " + (", ".join(sorted(known)) or "none"),
                )
            definitions = [d for d in definitions if d["Name"] in self._metric_names]
        ends = _epoch_end_seconds(job.metrics)
        return [
            {
                "timestamp": ends.get(point.epoch, float(point.epoch)),
                "metric_name": point.name,
                "value": point.value,
            }
            for point in metric_points(read_log(job), definitions)
        ]

    def dataframe(self, force_refresh: bool = False):
        if force_refresh or self._dataframe is None:
            frame = _pandas().DataFrame(self._rows(), columns=["timestamp", "metric_name", "value"])
            self._dataframe = frame
        return self._dataframe

    def export_csv(self, filename: str) -> None:
        self.dataframe().to_csv(filename)


class HyperparameterTuningJobAnalytics:
    """One row per trial: its hyperparameters, ``TrainingJobName``, ``TrainingJobStatus``,
    ``FinalObjectiveValue``, start/end times and ``TrainingElapsedTimeSeconds``."""

    def __init__(self, hyperparameter_tuning_job_name: str, sagemaker_session: Any = None):
        self._tuning_job_name = hyperparameter_tuning_job_name
        self._dataframe = None

    @property
    def name(self) -> str:
        return self._tuning_job_name

    def clear_cache(self) -> None:
        self._dataframe = None

    def description(self, force_refresh: bool = False) -> dict[str, Any]:
        from boxtune.sagemaker.tuning_descriptions import describe_tuning_job

        return describe_tuning_job(self._tuning_job_name)

    def training_job_summaries(self, force_refresh: bool = False) -> list[dict[str, Any]]:
        from boxtune.sagemaker.tuning_descriptions import training_job_summaries

        return training_job_summaries(self._tuning_job_name)

    def dataframe(self, force_refresh: bool = False):
        if force_refresh or self._dataframe is None:
            rows = []
            for summary in self.training_job_summaries():
                row = {k: _number_or_text(v) for k, v in summary["TunedHyperParameters"].items()}
                start, end = summary.get("TrainingStartTime"), summary.get("TrainingEndTime")
                row.update(
                    {
                        "TrainingJobName": summary["TrainingJobName"],
                        "TrainingJobStatus": summary["TrainingJobStatus"],
                        "FinalObjectiveValue": summary.get(
                            "FinalHyperParameterTuningJobObjectiveMetric", {}
                        ).get("Value"),
                        "TrainingStartTime": start,
                        "TrainingEndTime": end,
                        "TrainingElapsedTimeSeconds": (end - start).total_seconds()
                        if start and end
                        else None,
                    }
                )
                rows.append(row)
            self._dataframe = _pandas().DataFrame(rows)
        return self._dataframe

    def export_csv(self, filename: str) -> None:
        self.dataframe().to_csv(filename)


def _number_or_text(value: str) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
