"""Hyperparameter ranges, as the managed SDK describes them, and their Optuna distributions.

A range says which values a tuned hyperparameter may take; every value reaches the training
job as a string, like the hyperparameters of any job. Optuna is imported only by the functions
that build distributions, so the range types are cheap to import (the SDK, the CLI).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxtune.errors import BoxtuneError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
# "Auto" picks a log scale when the range spans two orders of magnitude or more.
AUTO_LOG_RATIO = 100.0
# Optuna holds a reverse-logarithmic value x as 1 - x, on a log scale, under this name.
REVERSE_PREFIX = "1-"


@dataclass(frozen=True)
class ContinuousRange:
    min_value: float
    max_value: float
    scaling_type: str = "Auto"  # Auto | Linear | Logarithmic | ReverseLogarithmic


@dataclass(frozen=True)
class IntegerRange:
    min_value: int
    max_value: int
    scaling_type: str = "Auto"  # Auto | Linear | Logarithmic


@dataclass(frozen=True)
class CategoricalRange:
    values: tuple[str, ...]


Range = ContinuousRange | IntegerRange | CategoricalRange


def _error(name: str, message: str, hint: str) -> BoxtuneError:
    return BoxtuneError(message, where=f"range of hyperparameter {name}", hint=hint)


def scaling_of(name: str, spec: Range) -> str:
    """The scale a numeric range is sampled on: Linear, Logarithmic or ReverseLogarithmic."""
    if isinstance(spec, CategoricalRange):
        return "Linear"
    by_lower = {s.lower(): s for s in SCALING_TYPES}
    scaling = by_lower.get(str(spec.scaling_type).strip().lower())
    if scaling is None:
        raise _error(
            name,
            f"unknown scaling_type {spec.scaling_type!r}",
            f"use one of {', '.join(SCALING_TYPES)}",
        )
    if scaling == "Auto":
        low, high = spec.min_value, spec.max_value
        return "Logarithmic" if low > 0 and high / low >= AUTO_LOG_RATIO else "Linear"
    return scaling


def check_range(name: str, spec: Range) -> Range:
    """``spec`` with its values normalised (numbers as numbers, strings as strings); raises a
    BoxtuneError naming the hyperparameter and the way to fix the range when it is unusable."""
    if isinstance(spec, CategoricalRange):
        values = tuple(str(v) for v in spec.values) if not isinstance(spec.values, str) else ()
        if not values:
            raise _error(
                name,
                "a categorical range needs at least one value",
                f"give the values as a list, e.g. CategoricalRange(('adam', 'sgd')) "
                f"(CLI: --range {name}=adam,sgd)",
            )
        if len(set(values)) != len(values):
            raise _error(name, f"repeated values in {list(values)}", "give each value once")
        return CategoricalRange(values)
    if not isinstance(spec, ContinuousRange | IntegerRange):
        raise _error(
            name,
            f"{type(spec).__name__} is not a range",
            "use ContinuousRange, IntegerRange or CategoricalRange",
        )
    integer = isinstance(spec, IntegerRange)
    low, high = (
        _number(name, "min_value", spec.min_value, integer),
        _number(name, "max_value", spec.max_value, integer),
    )
    if low >= high:
        raise _error(
            name,
            f"min_value {low} must be less than max_value {high}",
            "swap them, or fix the hyperparameter to one value instead of tuning it "
            f"(CLI: --hp {name}={low})",
        )
    checked: Range = type(spec)(low, high, spec.scaling_type)  # type: ignore[arg-type]
    scaling = scaling_of(name, checked)
    if scaling == "Logarithmic" and low <= 0:
        raise _error(
            name,
            f"a logarithmic scale needs min_value > 0 (it is {low})",
            "raise min_value above 0, or use scaling_type Linear",
        )
    if scaling == "ReverseLogarithmic":
        if integer:
            raise _error(
                name,
                "ReverseLogarithmic applies to continuous ranges only",
                "use Linear or Logarithmic for an integer range",
            )
        if not (low >= 0 and high < 1):
            raise _error(
                name,
                f"a reverse logarithmic scale needs 0 <= min_value < max_value < 1 "
                f"(the range is {low}..{high})",
                "use it for values close to 1 (momentum, beta_2), or choose another scale",
            )
    return checked


def _number(name: str, field: str, value: Any, integer: bool) -> float | int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise _error(name, f"{field} {value!r} is not a finite number", f"give {field} as a number")
    if integer:
        if not number.is_integer():
            raise _error(
                name,
                f"{field} {value!r} is not an integer",
                "use whole numbers in an IntegerRange, or a ContinuousRange",
            )
        return int(number)
    return number


def endpoints(spec: Range) -> list[str]:
    """The values that bound the range, as strings: what must be allowed for the whole range
    to be (numeric ranges are checked at both ends, categorical ones at every value)."""
    if isinstance(spec, CategoricalRange):
        return list(spec.values)
    return [format_value(spec, spec.min_value), format_value(spec, spec.max_value)]


def format_value(spec: Range, value: Any) -> str:
    """A sampled value as the string a training job receives."""
    if isinstance(spec, CategoricalRange):
        return str(value)
    if isinstance(spec, IntegerRange):
        return str(int(value))
    value = float(value)
    text = f"{value:.6g}"
    # Rounding must not leave the range (a max_value of 0.1234567 sampled at its very end).
    if not spec.min_value <= float(text) <= spec.max_value:
        text = repr(value)
    return text


# -- Optuna ----------------------------------------------------------------------------------------
def param_name(name: str, spec: Range) -> str:
    """The name Optuna knows the hyperparameter by (``1-momentum`` for a reverse-log range)."""
    if scaling_of(name, spec) == "ReverseLogarithmic":
        return REVERSE_PREFIX + name
    return name


def distribution(name: str, spec: Range) -> BaseDistribution:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    scaling = scaling_of(name, spec)
    if isinstance(spec, CategoricalRange):
        return CategoricalDistribution(list(spec.values))
    if isinstance(spec, IntegerRange):
        return IntDistribution(spec.min_value, spec.max_value, log=scaling == "Logarithmic")
    if scaling == "ReverseLogarithmic":
        # 1 - x on a log scale: values crowd towards max_value, as the SDK's reverse-log does.
        return FloatDistribution(1.0 - spec.max_value, 1.0 - spec.min_value, log=True)
    return FloatDistribution(spec.min_value, spec.max_value, log=scaling == "Logarithmic")


def distributions(ranges: Mapping[str, Range]) -> dict[str, BaseDistribution]:
    """Optuna's distributions keyed by :func:`param_name`: what every trial asks for."""
    return {param_name(name, spec): distribution(name, spec) for name, spec in ranges.items()}


def values_from_params(ranges: Mapping[str, Range], params: Mapping[str, Any]) -> dict[str, str]:
    """Optuna's sampled params -> the hyperparameter strings of the trial's job."""
    values: dict[str, str] = {}
    for name, spec in ranges.items():
        key = param_name(name, spec)
        raw = params[key]
        if key != name:
            raw = 1.0 - float(raw)
        values[name] = format_value(spec, raw)
    return values


def param_from_value(name: str, spec: Range, value: str) -> Any | None:
    """A hyperparameter string -> Optuna's value for it, or None when outside the range."""
    if isinstance(spec, CategoricalRange):
        by_lower = {v.lower(): v for v in spec.values}
        return by_lower.get(str(value).strip().lower())
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not spec.min_value <= number <= spec.max_value:
        return None
    if isinstance(spec, IntegerRange):
        return int(number) if number.is_integer() else None
    if scaling_of(name, spec) == "ReverseLogarithmic":
        return 1.0 - number
    return number


def grid_space(ranges: Mapping[str, Range]) -> dict[str, list[Any]]:
    """The Grid strategy's search space: every value of each range (no continuous ones)."""
    space: dict[str, list[Any]] = {}
    for name, spec in ranges.items():
        if isinstance(spec, ContinuousRange):
            raise BoxtuneError(
                f"the Grid strategy cannot enumerate the continuous range of {name}",
                where=f"range of hyperparameter {name}",
                hint="give its values as a categorical range (CLI: "
                f"--range {name}={_example_grid(spec)}), or use strategy Bayesian or Random",
            )
        if isinstance(spec, IntegerRange):
            space[name] = list(range(spec.min_value, spec.max_value + 1))
        else:
            space[name] = list(spec.values)
    return space


def grid_size(ranges: Mapping[str, Range]) -> int:
    return math.prod(len(values) for values in grid_space(ranges).values())


def _example_grid(spec: ContinuousRange) -> str:
    low, high = spec.min_value, spec.max_value
    middle = math.sqrt(low * high) if low > 0 else (low + high) / 2
    return ",".join(f"{v:.3g}" for v in (low, middle, high))


# -- the CLI's spelling: NAME=MIN:MAX[:SCALE] or NAME=A,B,C ---------------------------------
_SCALE_WORDS = {
    "auto": "Auto",
    "linear": "Linear",
    "lin": "Linear",
    "log": "Logarithmic",
    "logarithmic": "Logarithmic",
    "reverselog": "ReverseLogarithmic",
    "reverse-log": "ReverseLogarithmic",
    "reverselogarithmic": "ReverseLogarithmic",
}
_INTEGER_TEXT = re.compile(r"^[+-]?\d+$")


def parse_range(text: str, kind: str | None = None) -> tuple[str, Range]:
    """``learning_rate=0.0001:0.1:log`` -> ``("learning_rate", ContinuousRange(...))``;
    ``optimizer=adam,sgd`` -> a categorical range. ``kind`` ("int", "float", ...) is the
    hyperparameter's type when known; without it, whole numbers make an integer range."""
    name, sep, body = text.partition("=")
    name, body = name.strip(), body.strip()
    if not sep or not name or not body:
        raise BoxtuneError(
            f"expected NAME=MIN:MAX[:SCALE] or NAME=A,B,..., got {text!r}",
            where="--range",
            hint="e.g. --range learning_rate=0.0001:0.1:log --range optimizer=adam,sgd",
        )
    if ":" not in body:
        return name, CategoricalRange(tuple(v.strip() for v in body.split(",") if v.strip()))
    parts = [p.strip() for p in body.split(":")]
    if len(parts) not in (2, 3):
        raise BoxtuneError(
            f"expected MIN:MAX or MIN:MAX:SCALE for {name}, got {body!r}",
            where="--range",
            hint="e.g. --range learning_rate=0.0001:0.1:log (scales: linear, log, reverselog)",
        )
    scaling = "Auto"
    if len(parts) == 3:
        scaling = _SCALE_WORDS.get(parts[2].lower().replace("_", ""), "")
        if not scaling:
            raise BoxtuneError(
                f"unknown scale {parts[2]!r} for {name}",
                where="--range",
                hint="use auto, linear, log or reverselog",
            )
    low, high = parts[0], parts[1]
    integer = kind == "int" or (
        kind is None and bool(_INTEGER_TEXT.match(low) and _INTEGER_TEXT.match(high))
    )
    if integer:
        return name, IntegerRange(
            _cli_number(name, low, int), _cli_number(name, high, int), scaling
        )
    return name, ContinuousRange(
        _cli_number(name, low, float), _cli_number(name, high, float), scaling
    )


def _cli_number(name: str, text: str, kind: type) -> Any:
    try:
        value = float(text)
        if kind is int:
            if not value.is_integer():
                raise ValueError
            return int(value)
        return value
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise BoxtuneError(
            f"{text!r} is not {noun} (range of {name})",
            where="--range",
            hint=f"e.g. --range {name}=1:10" if kind is int else f"e.g. --range {name}=0.001:0.1",
        ) from None


# -- JSON (the detached driver's spec file) --------------------------------------------------------
def range_to_json(spec: Range) -> dict[str, Any]:
    if isinstance(spec, CategoricalRange):
        return {"type": "Categorical", "values": list(spec.values)}
    kind = "Integer" if isinstance(spec, IntegerRange) else "Continuous"
    return {
        "type": kind,
        "min_value": spec.min_value,
        "max_value": spec.max_value,
        "scaling_type": spec.scaling_type,
    }


def range_from_json(data: Mapping[str, Any]) -> Range:
    kind = data.get("type")
    if kind == "Categorical":
        return CategoricalRange(tuple(str(v) for v in data["values"]))
    cls = IntegerRange if kind == "Integer" else ContinuousRange
    return cls(data["min_value"], data["max_value"], data.get("scaling_type", "Auto"))


def describe_range(name: str, spec: Range) -> str:
    """``learning_rate in [0.0001, 0.1] (log)`` for progress lines and tables."""
    if isinstance(spec, CategoricalRange):
        return f"{name} in {{{', '.join(spec.values)}}}"
    scaling = {"Linear": "linear", "Logarithmic": "log", "ReverseLogarithmic": "reverse log"}
    return f"{name} in [{spec.min_value}, {spec.max_value}] ({scaling[scaling_of(name, spec)]})"
