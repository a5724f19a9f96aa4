"""Hyperparameter tuning on Optuna, mirroring the managed SDK's HyperparameterTuner.

A tuning job is an Optuna study; each trial is a real background training job of the job
registry (``source="tuning"``), named ``<tuning name>-<NNN>-<8 hex>`` as on the platform::

    spec = TuningSpec(
        "lr-search", training="data/", output_path="out/",
        model_id=DEFAULT_MODEL_ID,
        ranges={"learning_rate": ContinuousRange(0.0001, 0.1)},
        objective=Objective("val_map", "maximize"),
        max_jobs=6, max_parallel_jobs=2, early_stopping=True,
    )
    result = run_tuning(spec)            # or wait=False: a detached driver process
    result.best.hyperparameters          # load_tuning(name) / stop_tuning(name) from anywhere

Optuna is imported only when a tuning job is created or read.
"""

from boxtune.tuning.api import list_tunings, load_tuning, run_tuning, stop_tuning
from boxtune.tuning.objective import (
    PLATFORM_METRIC_DEFINITIONS,
    Objective,
    default_direction,
    values_from_log,
)
from boxtune.tuning.ranges import (
    SCALING_TYPES,
    CategoricalRange,
    ContinuousRange,
    IntegerRange,
    Range,
    parse_range,
)
from boxtune.tuning.results import TrialResult, TuningResult
from boxtune.tuning.spec import STRATEGIES, TuningSpec, check_spec, trial_job_name

__all__ = [
    "PLATFORM_METRIC_DEFINITIONS",
    "SCALING_TYPES",
    "STRATEGIES",
    "CategoricalRange",
    "ContinuousRange",
    "IntegerRange",
    "Objective",
    "Range",
    "TrialResult",
    "TuningResult",
    "TuningSpec",
    "check_spec",
    "default_direction",
    "list_tunings",
    "load_tuning",
    "parse_range",
    "run_tuning",
    "stop_tuning",
    "trial_job_name",
    "values_from_log",
]
