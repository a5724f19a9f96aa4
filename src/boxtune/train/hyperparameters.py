"""Training hyperparameters: the managed algorithm's names, types, ranges and defaults, plus extras.

Everything travels as strings in the managed contract (``"True"``, ``"5"``); this module accepts
strings or native Python values, checks every value against its range, and reports all problems
at once in a single :class:`~boxtune.errors.HyperparameterError`.

Defaults come from three layers, later ones winning: the reference table below, the model's own
defaults from the catalog (``ModelSpec.default_hyperparameters``), then the user's overrides.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from boxtune.errors import HyperparameterError, ModelError

Kind = Literal["int", "float", "bool", "choice"]

OPTIMIZERS = ("adam", "sgd", "nesterov", "rmsprop", "adagrad", "adadelta")
AUGMENTATION_SWITCHES = ("True", "False")


@dataclass(frozen=True)
class Option:
    """One hyperparameter: its type, allowed range and table default (as a string)."""

    name: str
    kind: Kind
    default: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: bool = False
    choices: tuple[str, ...] = ()
    optimizers: tuple[str, ...] = ()  # empty: applies to every optimizer
    allow_auto: bool = False  # the string "auto" is accepted besides the typed values
    reference: bool = False  # part of the managed algorithm's own table

    def allowed(self, presets: tuple[str, ...] = ()) -> str:
        """The allowed values, as a user reads them in an error message."""
        if self.kind == "bool":
            text = '"True" or "False"'
        elif self.kind == "choice":
            extra = presets if self.name == "augmentation" else ()
            text = "one of " + ", ".join(self.choices + extra)
        else:
            low = "-inf" if self.minimum is None else _format_number(self.minimum)
            high = "inf" if self.maximum is None else _format_number(self.maximum)
            if self.minimum is not None and self.maximum is None:
                op = ">" if self.min_exclusive else ">="
                text = f"{'an integer' if self.kind == 'int' else 'a number'} {op} {low}"
            else:
                bracket = "(" if self.min_exclusive else "["
                noun = "an integer" if self.kind == "int" else "a number"
                text = f"{noun} in {bracket}{low}, {high}]"
        return text + (' or "auto"' if self.allow_auto else "")


def _format_number(value: float) -> str:
    """``value`` as a user reads it in a message: ``5`` rather than ``5.0``."""
    return str(int(value)) if float(value).is_integer() else repr(value)


_TABLE: tuple[Option, ...] = (
    # The managed algorithm's table (reference contract, section Hyperparameters).
    Option("batch_size", "int", "3", "images per training step", 1, None, reference=True),
    Option("epochs", "int", "5", "passes over the training data", 1, None, reference=True),
    Option("learning_rate", "float", "0.001", "peak learning rate", 0, 1, reference=True),
    Option("optimizer", "choice", "adam", "optimizer", choices=OPTIMIZERS, reference=True),
    Option(
        "momentum", "float", "0.9", "momentum", 0, 1, optimizers=("sgd", "nesterov"), reference=True
    ),
    Option("beta_1", "float", "0.9", "Adam beta_1", 0, 1, optimizers=("adam",), reference=True),
    Option("beta_2", "float", "0.999", "Adam beta_2", 0, 1, optimizers=("adam",), reference=True),
    Option(
        "epsilon",
        "float",
        "1e-07",
        "numerical stability term",
        0,
        1,
        optimizers=("adam", "rmsprop", "adadelta", "adagrad"),
        reference=True,
    ),
    Option(
        "rho",
        "float",
        "0.95",
        "decay of the squared-gradient average",
        0,
        1,
        optimizers=("adadelta", "rmsprop"),
        reference=True,
    ),
    Option(
        "initial_accumulator_value",
        "float",
        "0.1",
        "Adagrad's starting accumulator",
        0,
        1,
        optimizers=("adagrad",),
        reference=True,
    ),
    Option(
        "early_stopping",
        "bool",
        "False",
        "stop when the validation metric stops improving",
        reference=True,
    ),
    Option(
        "early_stopping_min_delta",
        "float",
        "0.0",
        "smallest change of the metric that counts as an improvement",
        0,
        1,
        reference=True,
    ),
    Option(
        "early_stopping_patience",
        "int",
        "5",
        "epochs without improvement before stopping",
        1,
        None,
        reference=True,
    ),
    Option(
        "reinitialize_top_layer",
        "choice",
        "Auto",
        "Auto: a new head for a pretrained model, the old head kept in incremental training",
        choices=("Auto", "True", "False"),
        reference=True,
    ),
    Option(
        "train_only_top_layer",
        "bool",
        "False",
        "True: only the detection head trains (the backbone is frozen)",
        reference=True,
    ),
    # Extras that users of the managed service had to work around.
    Option(
        "validation_split_ratio",
        "float",
        "0.2",
        "share of the training data held out when no validation channel is given",
        0,
        0.9,
        min_exclusive=True,
    ),
    Option(
        "image_size",
        "int",
        "320",
        "square input size in pixels (the engine may require a multiple of 32)",
        64,
        2048,
    ),
    Option(
        "seed", "int", "0", "random seed (data order, augmentation, initialisation)", 0, 2**31 - 1
    ),
    Option(
        "augmentation",
        "choice",
        "True",
        '"True" (the default preset), "False", or a preset name',
        choices=AUGMENTATION_SWITCHES,
    ),
    Option("num_workers", "int", "auto", "data-loading worker processes", 0, 64, allow_auto=True),
    Option("device", "choice", "auto", "where to train", choices=("auto", "cpu", "cuda")),
    Option(
        "score_threshold",
        "float",
        "0.001",
        "lowest score kept when predictions are evaluated (mAP)",
        0,
        1,
    ),
    Option(
        "warmup_epochs",
        "float",
        "1.0",
        "epochs of linear learning-rate warm-up (at most a third of the run)",
        0,
        None,
    ),
    Option("warmup_steps", "int", "0", "steps of warm-up; > 0 overrides warmup_epochs", 0, None),
    Option(
        "lr_schedule",
        "choice",
        "cosine",
        "learning rate after the warm-up",
        choices=("cosine", "constant"),
    ),
    Option(
        "gradient_clip_norm", "float", "10.0", "clip the gradient norm (0: no clipping)", 0, None
    ),
    Option(
        "early_stopping_metric",
        "choice",
        "map",
        "validation metric that picks the best epoch and drives early stopping",
        choices=("map", "map50", "loss", "localization_loss"),
    ),
    Option(
        "max_runtime_seconds",
        "float",
        "0",
        "stop training after this many seconds, schedule included (0: no limit)",
        0,
        None,
    ),
)

OPTIONS: dict[str, Option] = {option.name: option for option in _TABLE}
ALIASES: dict[str, str] = {"train_only_on_top_layer": "train_only_top_layer"}


def augmentation_presets() -> tuple[str, ...]:
    """Preset names of the data layer's augmentation (the data layer owns the presets)."""
    from boxtune.data.augment import PRESETS

    return tuple(PRESETS)


@dataclass(frozen=True)
class Hyperparameters:
    """Validated, typed hyperparameters. Attribute names are the managed algorithm's names."""

    batch_size: int
    epochs: int
    learning_rate: float
    optimizer: str
    momentum: float
    beta_1: float
    beta_2: float
    epsilon: float
    rho: float
    initial_accumulator_value: float
    early_stopping: bool
    early_stopping_min_delta: float
    early_stopping_patience: int
    reinitialize_top_layer: str
    train_only_top_layer: bool
    validation_split_ratio: float
    image_size: int
    seed: int
    augmentation: str
    num_workers: int | None  # None: "auto", resolved by resolved_num_workers()
    device: str
    score_threshold: float
    warmup_epochs: float
    warmup_steps: int
    lr_schedule: str
    gradient_clip_norm: float
    early_stopping_metric: str
    max_runtime_seconds: float
    explicit: frozenset[str] = field(default=frozenset(), compare=False)

    # The spelling used in parts of the managed algorithm's documentation.
    @property
    def train_only_on_top_layer(self) -> bool:
        return self.train_only_top_layer

    def to_strings(self) -> dict[str, str]:
        """All values as the strings the managed contract uses (``"True"``, ``"0.001"``)."""
        return {name: _to_string(getattr(self, name)) for name in OPTIONS}

    def ignored_options(self) -> list[str]:
        """Names the user set explicitly that the chosen optimizer does not use."""
        return [
            name
            for name in OPTIONS
            if name in self.explicit
            and OPTIONS[name].optimizers
            and self.optimizer not in OPTIONS[name].optimizers
        ]

    def notes(self) -> list[str]:
        """Warning lines for the log: options set but ignored by the chosen optimizer."""
        return [
            f"note: hyperparameter {name}={_to_string(getattr(self, name))} is ignored by "
            f"optimizer {self.optimizer} (it applies to {', '.join(OPTIONS[name].optimizers)})"
            for name in self.ignored_options()
        ]

    def resolved_num_workers(self) -> int:
        """``auto``: no worker processes on small machines, where they steal the model's cores."""
        if self.num_workers is not None:
            return self.num_workers
        cpus = os.cpu_count() or 1
        return 0 if cpus <= 4 else min(4, cpus // 4)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, ALIASES.get(name, name), default)


def _to_string(value: Any) -> str:
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return repr(value) if not value.is_integer() or abs(value) >= 1e16 else str(value)
    return str(value)


class _Problems:
    """Collects every offending value so that the user sees them all in one error."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.by_name: dict[str, str] = {}

    def add(self, name: str, value: Any, message: str) -> None:
        self.lines.append(f"  - {name}={value!r}: {message}")
        self.by_name.setdefault(name, f"{name}={value!r}: {message}")

    def raise_if_any(self, source: str) -> None:
        if self.lines:
            count = len(self.lines)
            raise HyperparameterError(
                f"{count} invalid hyperparameter{'s' if count > 1 else ''}:\n"
                + "\n".join(self.lines),
                where=source,
                hint="`boxtune hyperparameters MODEL_ID` prints every name with its default; "
                'values may be strings ("True", "0.001") or numbers',
                problems=self.by_name,
            )


def _convert(option: Option, raw: Any, presets: tuple[str, ...]) -> Any:
    """The typed value of ``raw``; raises ValueError with the reason when it is not allowed."""
    if option.allow_auto and isinstance(raw, str) and raw.strip().lower() == "auto":
        return None
    if option.kind == "bool":
        return _to_bool(raw)
    if option.kind == "choice":
        return _to_choice(option, raw, presets)
    value = _to_int(raw) if option.kind == "int" else _to_float(raw)
    below = option.minimum is not None and (
        value <= option.minimum if option.min_exclusive else value < option.minimum
    )
    above = option.maximum is not None and value > option.maximum
    if below or above:
        raise ValueError("out of range")
    return value


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise ValueError("not a boolean")


def _to_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("a boolean is not an integer")
    try:
        value = float(raw) if isinstance(raw, str) else raw
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    except ValueError:
        pass
    raise ValueError("not an integer")


def _to_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError("a boolean is not a number")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError("not a number") from None
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _to_choice(option: Option, raw: Any, presets: tuple[str, ...]) -> str:
    if isinstance(raw, bool):
        raw = "True" if raw else "False"
    if not isinstance(raw, str):
        raise ValueError("not a string")
    choices = option.choices + (presets if option.name == "augmentation" else ())
    by_lower = {choice.lower(): choice for choice in choices}
    value = by_lower.get(raw.strip().lower())
    if value is None:
        raise ValueError("not one of the choices")
    return value


def _model_defaults(model_id: str | None, model_version: str) -> tuple[dict[str, str], str]:
    """The catalog's defaults for ``model_id`` (image_size included) and where they come from."""
    if model_id is None:
        return {}, "the reference table"
    from boxtune import catalog  # imported late: the catalog may pull in heavier modules

    spec = catalog.get_spec(model_id)
    # Catalog models carry no versions: only the "any version" spellings are accepted.
    if model_version not in ("*", None, ""):
        raise ModelError(
            f"model version {model_version!r} of {model_id} is not available",
            where="model_version",
            hint='use model_version="*" (the current version is unversioned)',
        )
    defaults = {"image_size": str(spec.image_size)}
    defaults.update({str(k): str(v) for k, v in spec.default_hyperparameters.items()})
    return defaults, f"the catalog defaults of {model_id}"


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, [*OPTIONS, *ALIASES], n=2, cutoff=0.6)
    if close:
        return "unknown name (did you mean " + " or ".join(close) + "?)"
    return "unknown name (see `boxtune hyperparameters MODEL_ID` for the list)"


def _canonical(
    values: Mapping[str, Any], problems: _Problems, spelled: dict[str, str] | None = None
) -> dict[str, Any]:
    """Map aliases to their canonical names; report unknown names and conflicting spellings.

    ``spelled`` receives, per canonical name, the spelling the caller used (for messages).
    """
    result: dict[str, Any] = {}
    for raw_name, value in values.items():
        name = ALIASES.get(str(raw_name).strip(), str(raw_name).strip())
        if name not in OPTIONS:
            problems.add(str(raw_name), value, _suggest(str(raw_name)))
            continue
        if name in result and str(result[name]).lower() != str(value).lower():
            problems.add(str(raw_name), value, f"conflicts with {name}={result[name]!r}; give one")
            continue
        result[name] = value
        if spelled is not None:
            spelled[name] = str(raw_name).strip()
    return result


def parse_hyperparameters(
    model_id: str | None,
    overrides: Mapping[str, Any] | None = None,
    model_version: str = "*",
) -> Hyperparameters:
    """Validated hyperparameters for ``model_id``: table, then catalog defaults, then overrides.

    ``model_id=None`` uses the reference table only. Raises one ``HyperparameterError`` that lists
    every unknown name and every value outside its range.
    """
    presets = augmentation_presets()
    model_defaults, source = _model_defaults(model_id, model_version)

    catalog_problems = _Problems()
    merged: dict[str, Any] = {name: option.default for name, option in OPTIONS.items()}
    merged.update(_canonical(model_defaults, catalog_problems))
    catalog_problems.raise_if_any(f"catalog defaults of {model_id}")

    problems = _Problems()
    spelled: dict[str, str] = {}
    user = _canonical(dict(overrides or {}), problems, spelled)
    merged.update(user)

    typed: dict[str, Any] = {}
    for name, option in OPTIONS.items():
        try:
            typed[name] = _convert(option, merged[name], presets)
        except ValueError as exc:
            shown = spelled[name] if name in user else f"{name} (from {source})"
            problems.add(shown, merged[name], f"{exc}; allowed: {option.allowed(presets)}")
    problems.raise_if_any("hyperparameters")
    return Hyperparameters(**typed, explicit=frozenset(user))


def retrieve_default(model_id: str | None, model_version: str = "*") -> dict[str, str]:
    """The default hyperparameters of ``model_id`` as strings, like the managed SDK's function."""
    return parse_hyperparameters(model_id, {}, model_version).to_strings()


def describe_options() -> list[dict[str, str]]:
    """One row per option (name, allowed values, default, description) for help output."""
    return [
        {
            "name": option.name,
            "allowed": option.allowed(),
            "default": option.default,
            "optimizers": ", ".join(option.optimizers) or "all",
            "reference": "yes" if option.reference else "extra",
            "help": option.help,
        }
        for option in _TABLE
    ]


def hyperparameter_names() -> list[str]:
    return [f.name for f in fields(Hyperparameters) if f.name != "explicit"]
