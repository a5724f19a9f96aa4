"""``sagemaker.tuner.HyperparameterTuner``: automatic model tuning on Optuna, on this machine.

Trials are background training jobs in the registry (``boxtune jobs list`` shows them), at
most ``max_parallel_jobs`` at once; the study lives in SQLite beside the registry (see
:mod:`boxtune.tuning`). The objective is one of the estimator's ``metric_definitions`` (a regex
over the job log, e.g. ``validation:localization_loss``) or a boxtune metric (``val_map``).
``strategy``: ``Bayesian`` (TPE), ``Random``, ``Grid``, ``Hyperband``; ``early_stopping_type=
"Auto"`` prunes trials whose per-epoch values fall behind.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from boxtune.errors import BoxtuneError
from boxtune.sagemaker.analytics import HyperparameterTuningJobAnalytics
from boxtune.sagemaker.estimator import Estimator
from boxtune.sagemaker.parameter import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    ParameterRange,
)
from boxtune.sdk.notices import ignore_platform_arguments
from boxtune.tuning import Objective, TuningResult, TuningSpec, load_tuning, run_tuning, stop_tuning

STRATEGIES = ("Bayesian", "Random", "Grid", "Hyperband")
OBJECTIVE_TYPES = ("Maximize", "Minimize")
EARLY_STOPPING_TYPES = ("Off", "Auto")
MAX_TUNING_JOB_NAME = 32  # the platform's limit


def _choice(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise BoxtuneError(
            f"{field} must be one of {', '.join(allowed)}, not {value!r}",
            where=f"HyperparameterTuner({field}=...)",
            hint=f'e.g. {field}="{allowed[0]}"',
        )
    return value


def objective_for(
    name: str, objective_type: str, metric_definitions: list[dict[str, str]]
) -> Objective:
    """The objective named ``name``: a metric definition's regex, or a boxtune metric key."""
    direction = "maximize" if objective_type == "Maximize" else "minimize"
    for definition in metric_definitions:
        if definition.get("Name") == name:
            return Objective(name=name, direction=direction, regex=definition["Regex"])
    return Objective(name=name, direction=direction, regex=None)


class _TuningJob:
    """``tuner.latest_tuning_job``: the running or finished tuning job."""

    def __init__(self, name: str, storage_url: str | None):
        self.name = name
        self.storage_url = storage_url

    def describe(self) -> dict[str, Any]:
        from boxtune.sagemaker.tuning_descriptions import describe_tuning_job

        return describe_tuning_job(self.name, self.storage_url)

    def wait(self, poll_s: float = 2.0) -> TuningResult:
        while True:
            result = load_tuning(self.name, self.storage_url)
            if result.status != "InProgress":
                return result
            time.sleep(poll_s)

    def stop(self) -> None:
        stop_tuning(self.name, self.storage_url)


class HyperparameterTuner:
    def __init__(
        self,
        estimator: Estimator,
        objective_metric_name: str,
        hyperparameter_ranges: Mapping[str, ParameterRange],
        metric_definitions: list[dict[str, str]] | None = None,
        strategy: str = "Bayesian",
        objective_type: str = "Maximize",
        max_jobs: int | None = None,
        max_parallel_jobs: int = 1,
        max_runtime_in_seconds: int | None = None,
        tags: Any = None,
        base_tuning_job_name: str | None = None,
        warm_start_config: Any = None,
        strategy_config: Any = None,
        completion_criteria_config: Any = None,
        early_stopping_type: str = "Off",
        estimator_name: str | None = None,
        random_seed: int | None = None,
        autotune: bool = False,
        hyperparameters_to_keep_static: list[str] | None = None,
        **kwargs: Any,
    ):
        self.storage_url: str | None = kwargs.pop("storage_url", None)
        ignore_platform_arguments(
            "HyperparameterTuner",
            {
                "max_runtime_in_seconds": max_runtime_in_seconds,
                "tags": tags,
                "warm_start_config": warm_start_config,
                "strategy_config": strategy_config,
                "completion_criteria_config": completion_criteria_config,
                "estimator_name": estimator_name,
                "autotune": autotune or None,
                "hyperparameters_to_keep_static": hyperparameters_to_keep_static,
                **kwargs,
            },
        )
        if not isinstance(estimator, Estimator):
            raise BoxtuneError(
                f"the estimator must be a boxtune.sagemaker Estimator, not a "
                f"{type(estimator).__name__}",
                where="HyperparameterTuner(estimator=...)",
                hint="build it with boxtune.sagemaker.estimator.Estimator (or JumpStartEstimator)",
            )
        for name, value in hyperparameter_ranges.items():
            if not isinstance(value, ParameterRange):
                raise BoxtuneError(
                    f"the range of {name!r} is a {type(value).__name__}",
                    where="HyperparameterTuner(hyperparameter_ranges=...)",
                    hint="use ContinuousParameter(min, max), IntegerParameter(min, max) or "
                    "CategoricalParameter([...])",
                )
        self.estimator = estimator
        self.objective_metric_name = objective_metric_name
        self._hyperparameter_ranges = dict(hyperparameter_ranges)
        # The trials report the tuner's metrics and, as extra, the estimator's other ones.
        own = list(metric_definitions or [])
        names = {d.get("Name") for d in own}
        self.metric_definitions = own + [
            d for d in estimator.metric_definitions if d.get("Name") not in names
        ]
        self.strategy = _choice(strategy, STRATEGIES, "strategy")
        self.objective_type = _choice(objective_type, OBJECTIVE_TYPES, "objective_type")
        self.max_jobs = max_jobs if max_jobs is not None else 1
        self.max_parallel_jobs = max_parallel_jobs
        self.base_tuning_job_name = base_tuning_job_name
        self.early_stopping_type = _choice(
            early_stopping_type, EARLY_STOPPING_TYPES, "early_stopping_type"
        )
        self.random_seed = random_seed
        self.latest_tuning_job: _TuningJob | None = None

    def hyperparameter_ranges(self) -> dict[str, list[dict[str, Any]]]:
        """The ranges in the platform's ``ParameterRanges`` form."""
        groups: dict[str, list[dict[str, Any]]] = {
            "ContinuousParameterRanges": [],
            "IntegerParameterRanges": [],
            "CategoricalParameterRanges": [],
        }
        for name, value in self._hyperparameter_ranges.items():
            groups[f"{type(value).__name__.removesuffix('Parameter')}ParameterRanges"].append(
                value.as_tuning_range(name)
            )
        return groups

    @property
    def _current_job_name(self) -> str | None:
        return self.latest_tuning_job.name if self.latest_tuning_job else None

    def _spec(self, inputs: Any, job_name: str | None) -> TuningSpec:
        from boxtune.sagemaker.estimator import _rename_model_channel
        from boxtune.sagemaker.utils import name_from_base
        from boxtune.sdk.estimator import normalize_inputs

        estimator = self.estimator
        channels = normalize_inputs(_rename_model_channel(inputs, estimator.model_channel_name))
        base = self.base_tuning_job_name or estimator.base_job_name or "boxtune-tuning"
        static = {
            k: v
            for k, v in estimator.hyperparameters().items()
            if k not in self._hyperparameter_ranges
        }
        return TuningSpec(
            name=job_name or name_from_base(base, max_length=MAX_TUNING_JOB_NAME),
            training=channels["training"],
            validation=channels.get("validation"),
            output_path=estimator.output_path,
            model_id=estimator.model_id,
            base_model=channels.get("model") or estimator.base_model,
            hyperparameters=static,
            ranges={k: v.to_range() for k, v in self._hyperparameter_ranges.items()},
            objective=objective_for(
                self.objective_metric_name, self.objective_type, self.metric_definitions
            ),
            metric_definitions=self.metric_definitions,
            strategy=self.strategy,
            max_jobs=self.max_jobs,
            max_parallel_jobs=self.max_parallel_jobs,
            early_stopping=self.early_stopping_type == "Auto",
            storage_url=self.storage_url,
            seed=self.random_seed,
        )

    def fit(
        self,
        inputs: Any = None,
        job_name: str | None = None,
        include_cls_metadata: Any = False,
        estimator_kwargs: Any = None,
        wait: bool = True,
        **kwargs: Any,
    ) -> None:
        """Run the tuning job: ``max_jobs`` trials, ``max_parallel_jobs`` at a time."""
        ignore_platform_arguments(
            "HyperparameterTuner.fit",
            {
                "include_cls_metadata": include_cls_metadata or None,
                "estimator_kwargs": estimator_kwargs,
                **kwargs,
            },
        )
        spec = self._spec(inputs, job_name)
        self.latest_tuning_job = _TuningJob(spec.name, self.storage_url)
        run_tuning(spec, wait=wait, log=print)

    def _job(self) -> _TuningJob:
        if self.latest_tuning_job is None:
            raise BoxtuneError(
                "this tuner has not been fitted",
                where="HyperparameterTuner",
                hint="call fit(...) first, or HyperparameterTuner.attach(tuning_job_name)",
            )
        return self.latest_tuning_job

    def wait(self) -> None:
        self._job().wait()

    def describe(self) -> dict[str, Any]:
        return self._job().describe()

    def stop_tuning_job(self) -> None:
        self._job().stop()

    def best_training_job(self) -> str:
        """The name of the trial job with the best final objective value."""
        job = self._job()
        result = load_tuning(job.name, job.storage_url)
        if result.best is None or result.best.job_name is None:
            raise BoxtuneError(
                f"Best training job not available for tuning job: {job.name} (no trial has "
                "completed with an objective value)",
                hint=f"`boxtune tune show {job.name}` lists the trials and why they ended",
            )
        return result.best.job_name

    def best_estimator(self, best_training_job: str | None = None) -> Estimator:
        return type(self.estimator).attach(best_training_job or self.best_training_job())

    def deploy(
        self,
        initial_instance_count: int,
        instance_type: str,
        serializer: Any = None,
        deserializer: Any = None,
        accelerator_type: str | None = None,
        endpoint_name: str | None = None,
        wait: bool = True,
        model_name: str | None = None,
        kms_key: str | None = None,
        data_capture_config: Any = None,
        **kwargs: Any,
    ):
        """Deploy the best trial's model; returns its Predictor."""
        return self.best_estimator().deploy(
            initial_instance_count=initial_instance_count,
            instance_type=instance_type,
            serializer=serializer,
            deserializer=deserializer,
            accelerator_type=accelerator_type,
            endpoint_name=endpoint_name,
            wait=wait,
            model_name=model_name,
            kms_key=kms_key,
            data_capture_config=data_capture_config,
            **kwargs,
        )

    def analytics(self) -> HyperparameterTuningJobAnalytics:
        return HyperparameterTuningJobAnalytics(self._job().name)

    @classmethod
    def attach(
        cls,
        tuning_job_name: str,
        sagemaker_session: Any = None,
        job_details: Any = None,
        estimator_cls: Any = None,
    ) -> HyperparameterTuner:
        """A tuner for a stored tuning job (its estimator rebuilt from a trial's job)."""
        result = load_tuning(tuning_job_name)
        trial = next((t for t in result.trials if t.job_name), None)
        if trial is None:
            raise BoxtuneError(
                f"tuning job {tuning_job_name} has no trial jobs yet",
                hint="attach once a trial has started (`boxtune tune show NAME`)",
            )
        estimator = (estimator_cls or Estimator).attach(trial.job_name)
        tuner = cls.__new__(cls)
        tuner.estimator = estimator
        tuner.objective_metric_name = result.objective.name
        tuner._hyperparameter_ranges = {}
        tuner.metric_definitions = list(estimator.metric_definitions)
        tuner.strategy = "Bayesian"
        tuner.objective_type = (
            "Maximize" if result.objective.direction == "maximize" else "Minimize"
        )
        tuner.max_jobs = len(result.trials)
        tuner.max_parallel_jobs = 1
        tuner.base_tuning_job_name = None
        tuner.early_stopping_type = "Off"
        tuner.random_seed = None
        tuner.storage_url = result.storage_url
        tuner.latest_tuning_job = _TuningJob(tuning_job_name, result.storage_url)
        return tuner


__all__ = [
    "CategoricalParameter",
    "ContinuousParameter",
    "HyperparameterTuner",
    "IntegerParameter",
]
