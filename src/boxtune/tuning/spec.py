"""What a tuning job is (:class:`TuningSpec`) and the checks it passes before any trial starts."""

from __future__ import annotations

import difflib
import json
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from boxtune import storage
from boxtune.errors import BoxtuneError, HyperparameterError
from boxtune.jobs.store import MAX_NAME_LENGTH, validate_name
from boxtune.tuning import ranges as rng
from boxtune.tuning.objective import (
    MetricSource,
    Objective,
    check_regex,
    normalise_direction,
    resolve,
)
from boxtune.tuning.ranges import CategoricalRange, ContinuousRange, IntegerRange, Range

STRATEGIES = ("Bayesian", "Random", "Grid", "Hyperband")
# "<tuning name>-<NNN>-<8 hex>", the managed platform's names for a tuning job's trials.
TRIAL_SUFFIX_LENGTH = len("-001-") + 8


@dataclass
class TuningSpec:
    name: str  # the tuning job's name = the Optuna study name
    training: str
    output_path: str
    _: KW_ONLY
    objective: Objective
    model_id: str | None = None
    base_model: str | None = None
    validation: str | None = None
    hyperparameters: dict[str, str] = field(default_factory=dict)  # fixed for every trial
    ranges: dict[str, Range] = field(default_factory=dict)
    metric_definitions: list[dict[str, str]] = field(default_factory=list)
    strategy: str = "Bayesian"  # Bayesian | Random | Grid | Hyperband
    max_jobs: int = 1
    max_parallel_jobs: int = 1
    early_stopping: bool = False  # the SDK's early_stopping_type="Auto"
    storage_url: str | None = None  # default: tuning.db beside the job registry
    seed: int | None = None
    include_defaults: bool = True  # the model's defaults of the tuned names are trial 0
    # Beyond the SDK: values to try first (after the baseline), one dict per trial.
    enqueue: list[dict[str, str]] = field(default_factory=list)
    # Early stopping's median rule starts once this many trials completed (None: from
    # max_jobs, see boxtune.tuning.study.startup_trials) and never prunes before this epoch.
    pruner_startup_trials: int | None = None
    pruner_warmup_epochs: int = 0

    def to_json(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "_"}
        data["objective"] = self.objective.to_json()
        data["ranges"] = {k: rng.range_to_json(v) for k, v in self.ranges.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TuningSpec:
        values = dict(data)
        values["objective"] = Objective.from_json(values["objective"])
        values["ranges"] = {k: rng.range_from_json(v) for k, v in values["ranges"].items()}
        known = set(cls.__dataclass_fields__) - {"_"}
        return cls(**{k: v for k, v in values.items() if k in known})

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> TuningSpec:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))


def trial_job_name(tuning_name: str, number: int) -> str:
    """``<tuning name>-<NNN>-<8 hex>`` (NNN counts from 001, as on the platform), the tuning
    name shortened so that the whole stays within the job-name limit."""
    base = tuning_name[: MAX_NAME_LENGTH - TRIAL_SUFFIX_LENGTH].rstrip("-")
    return f"{base}-{number + 1:03d}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class CheckedSpec:
    """A spec that passed :func:`check_spec`, with what the checks worked out."""

    spec: TuningSpec
    source: MetricSource  # where the objective's values come from
    metric_sources: dict[str, MetricSource]  # the metric definitions'
    defaults: dict[str, str]  # the hyperparameters a trial gets when nothing is tuned
    total_jobs: int  # max_jobs, or the grid's size when smaller
    baseline: dict[str, Any] | None  # Optuna params of the default values, when in range
    enqueued: list[dict[str, Any]]  # Optuna params of spec.enqueue
    notes: list[str]


def check_spec(spec: TuningSpec) -> CheckedSpec:
    """Normalise ``spec`` in place and check all of it; raises a BoxtuneError that names the
    field and how to fix it. Nothing starts before this passes."""
    notes: list[str] = []
    validate_name(spec.name, "tuning job")
    spec.strategy = _strategy(spec.strategy)
    spec.objective = Objective(
        str(spec.objective.name),
        normalise_direction(spec.objective.direction),
        spec.objective.regex,
    )
    spec.metric_definitions = _metric_definitions(spec.metric_definitions)
    source = resolve(spec.objective, spec.metric_definitions)
    metric_sources = {
        d["Name"]: MetricSource(f"the regex {d['Regex']!r}", regex=d["Regex"])
        for d in spec.metric_definitions
    }
    _check_counts(spec)
    _check_inputs(spec)
    if not spec.ranges:
        raise BoxtuneError(
            "nothing to tune: no hyperparameter ranges",
            where="ranges",
            hint="give at least one range, e.g. learning_rate: ContinuousRange(0.0001, 0.1) "
            "(CLI: --range learning_rate=0.0001:0.1:log)",
        )
    spec.hyperparameters = {str(k): str(v) for k, v in (spec.hyperparameters or {}).items()}
    spec.ranges = {str(k): rng.check_range(str(k), v) for k, v in spec.ranges.items()}
    defaults = _check_hyperparameters(spec)
    total = spec.max_jobs
    if spec.strategy == "Grid":
        size = rng.grid_size(spec.ranges)
        if size < total:
            notes.append(
                f"the grid has {size} combinations: {size} trials instead of max_jobs={total}"
            )
            total = size
        elif size > total:
            notes.append(f"max_jobs={total} covers {total} of the grid's {size} combinations")
    if spec.max_parallel_jobs > total:
        spec.max_parallel_jobs = total
    baseline = None
    if spec.include_defaults and spec.strategy != "Grid":
        baseline, note = _baseline(spec, defaults)
        if note:
            notes.append(note)
    enqueued = [_enqueued(spec, i, values) for i, values in enumerate(spec.enqueue or [])]
    if spec.strategy == "Grid" and enqueued:
        raise BoxtuneError(
            "the Grid strategy tries every combination itself; nothing can be enqueued",
            where="enqueue",
            hint="leave enqueue empty, or use strategy Bayesian or Random",
        )
    return CheckedSpec(spec, source, metric_sources, defaults, total, baseline, enqueued, notes)


def _strategy(strategy: str) -> str:
    by_lower = {s.lower(): s for s in STRATEGIES}
    value = by_lower.get(str(strategy).strip().lower())
    if value is None:
        raise BoxtuneError(
            f"unknown strategy {strategy!r}",
            where="strategy",
            hint=f"use one of {', '.join(STRATEGIES)}",
        )
    return value


def _metric_definitions(definitions: Any) -> list[dict[str, str]]:
    checked = []
    for index, definition in enumerate(definitions or []):
        where = f"metric_definitions[{index}]"
        if not isinstance(definition, Mapping) or not {"Name", "Regex"} <= set(definition):
            raise BoxtuneError(
                f"expected a dict with Name and Regex, got {definition!r}",
                where=where,
                hint=r'e.g. {"Name": "validation:mAP", "Regex": "Val_mAP=([0-9\\.]+)"}',
            )
        check_regex(str(definition["Regex"]), f"{where} ({definition['Name']})")
        checked.append({"Name": str(definition["Name"]), "Regex": str(definition["Regex"])})
    return checked


def _positive_int(value: Any, where: str, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise BoxtuneError(f"{value!r} is not a whole number", where=where, hint=hint)
    if value < 1:
        raise BoxtuneError(f"{where} must be at least 1 (it is {value})", where=where, hint=hint)
    return int(value)


def _check_counts(spec: TuningSpec) -> None:
    spec.max_jobs = _positive_int(
        spec.max_jobs, "max_jobs", "the number of training jobs in all, e.g. max_jobs=6"
    )
    spec.max_parallel_jobs = _positive_int(
        spec.max_parallel_jobs,
        "max_parallel_jobs",
        "how many trials train at once, e.g. 2 (a CPU core or GPU each)",
    )
    if spec.max_parallel_jobs > spec.max_jobs:
        raise BoxtuneError(
            f"max_parallel_jobs={spec.max_parallel_jobs} is more than max_jobs={spec.max_jobs}",
            where="max_parallel_jobs",
            hint=f"lower max_parallel_jobs to at most {spec.max_jobs}, or raise max_jobs",
        )
    if spec.pruner_startup_trials is not None:
        spec.pruner_startup_trials = _non_negative(
            spec.pruner_startup_trials, "pruner_startup_trials"
        )
    spec.pruner_warmup_epochs = _non_negative(spec.pruner_warmup_epochs, "pruner_warmup_epochs")
    if spec.seed is not None and (isinstance(spec.seed, bool) or not isinstance(spec.seed, int)):
        raise BoxtuneError(f"seed {spec.seed!r} is not an integer", where="seed", hint="e.g. 0")


def _non_negative(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BoxtuneError(f"{value!r} is not a whole number >= 0", where=where, hint="e.g. 1")
    return value


def _check_inputs(spec: TuningSpec) -> None:
    if not spec.model_id and not spec.base_model:
        raise BoxtuneError(
            "a tuning job needs a model",
            where="model_id",
            hint="pass model_id (see `boxtune models list`) or base_model (a previous artifact)",
        )
    if spec.model_id:
        from boxtune import catalog

        catalog.get_spec(spec.model_id)  # an unknown id: a ModelError with close matches
    for label, location in (("training", spec.training), ("validation", spec.validation)):
        if (
            location
            and not storage.is_remote(location)
            and not Path(re.sub(r"^file://", "", str(location))).exists()
        ):
            raise BoxtuneError(
                f"the {label} dataset {location} does not exist",
                where=label,
                hint="give a dataset directory (images/ + annotations.json) or an s3:// prefix; "
                "`boxtune data sample DIR` writes a small one",
            )
    if not spec.output_path:
        raise BoxtuneError(
            "no output_path", where="output_path", hint="where the trials' models go"
        )


def _option_kind(name: str) -> str | None:
    from boxtune.train.hyperparameters import ALIASES, OPTIONS

    option = OPTIONS.get(ALIASES.get(name, name))
    return option.kind if option else None


def _problems(exc: HyperparameterError) -> str:
    """The lines of a HyperparameterError that say what is wrong, without its header."""
    lines = [line.strip().removeprefix("- ") for line in exc.message.splitlines()[1:]]
    return "; ".join(lines) or exc.message


def _check_hyperparameters(spec: TuningSpec) -> dict[str, str]:
    from boxtune.train.hyperparameters import ALIASES, OPTIONS, parse_hyperparameters

    try:
        defaults = parse_hyperparameters(spec.model_id, spec.hyperparameters).to_strings()
    except HyperparameterError as exc:
        raise BoxtuneError(
            f"invalid static hyperparameters: {_problems(exc)}",
            where="hyperparameters",
            hint="`boxtune hyperparameters MODEL_ID --describe` lists every name and its "
            "allowed values",
        ) from None
    fixed = {ALIASES.get(k, k) for k in spec.hyperparameters}
    for name, spec_range in spec.ranges.items():
        canonical = ALIASES.get(name, name)
        where = f"range of hyperparameter {name}"
        if canonical not in OPTIONS:
            close = difflib.get_close_matches(name, [*OPTIONS, *ALIASES], n=2, cutoff=0.6)
            raise BoxtuneError(
                f"unknown hyperparameter {name!r}"
                + (f" (did you mean {' or '.join(close)}?)" if close else ""),
                where=where,
                hint="`boxtune hyperparameters MODEL_ID` lists the names",
            )
        if canonical in fixed:
            raise BoxtuneError(
                f"{name} is both tuned and fixed",
                where=where,
                hint=f"remove {name} from the static hyperparameters (--hp), or its range",
            )
        kind = OPTIONS[canonical].kind
        if isinstance(spec_range, ContinuousRange) and kind != "float":
            suggestion = (
                f"use an IntegerRange (CLI: --range {name}=1:10)"
                if kind == "int"
                else f"use a CategoricalRange of its values (CLI: --range {name}=A,B)"
            )
            raise BoxtuneError(
                f"{name} takes {'whole numbers' if kind == 'int' else 'named values'}, "
                "not a continuous range",
                where=where,
                hint=suggestion,
            )
        if isinstance(spec_range, IntegerRange) and kind not in ("int", "float"):
            raise BoxtuneError(
                f"{name} is not numeric",
                where=where,
                hint=f"use a CategoricalRange of its values (CLI: --range {name}=A,B)",
            )
        for value in rng.endpoints(spec_range):
            try:
                parse_hyperparameters(spec.model_id, {**spec.hyperparameters, name: value})
            except HyperparameterError as exc:
                raise BoxtuneError(
                    f"{name}={value} is not allowed: {_problems(exc)}",
                    where=where,
                    hint=f"keep the range of {name} within its allowed values "
                    f"({OPTIONS[canonical].allowed()})",
                ) from None
    return defaults


def _baseline(spec: TuningSpec, defaults: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    from boxtune.train.hyperparameters import ALIASES

    params: dict[str, Any] = {}
    for name, spec_range in spec.ranges.items():
        value = defaults.get(ALIASES.get(name, name))
        param = None if value is None else rng.param_from_value(name, spec_range, value)
        if param is None:
            return None, (
                f"no baseline trial: the default {name}={value} is outside its range "
                f"({rng.describe_range(name, spec_range)})"
            )
        params[rng.param_name(name, spec_range)] = param
    return params, ""


def _enqueued(spec: TuningSpec, index: int, values: Mapping[str, Any]) -> dict[str, Any]:
    where = f"enqueue[{index}]"
    if not isinstance(values, Mapping) or not values:
        raise BoxtuneError(
            f"expected a dict of tuned names and values, got {values!r}",
            where=where,
            hint='e.g. {"learning_rate": "0.01"}',
        )
    params: dict[str, Any] = {}
    for name, value in values.items():
        spec_range = spec.ranges.get(str(name))
        if spec_range is None:
            raise BoxtuneError(
                f"{name} is not a tuned hyperparameter",
                where=where,
                hint=f"enqueue values of the tuned names only: {', '.join(spec.ranges)}",
            )
        param = rng.param_from_value(str(name), spec_range, str(value))
        if param is None or (isinstance(param, float) and not math.isfinite(param)):
            raise BoxtuneError(
                f"{name}={value} is outside its range ({rng.describe_range(name, spec_range)})",
                where=where,
                hint="enqueue a value within the range, or widen the range",
            )
        params[rng.param_name(str(name), spec_range)] = param
    return params


def describe_ranges(ranges: Mapping[str, Range]) -> str:
    return "; ".join(rng.describe_range(name, spec) for name, spec in ranges.items())


__all__ = [
    "STRATEGIES",
    "CategoricalRange",
    "CheckedSpec",
    "TuningSpec",
    "check_spec",
    "trial_job_name",
]
