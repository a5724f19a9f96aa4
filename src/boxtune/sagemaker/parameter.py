"""``sagemaker.parameter``: the ranges a ``HyperparameterTuner`` searches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from boxtune.errors import BoxtuneError
from boxtune.tuning import CategoricalRange, ContinuousRange, IntegerRange, Range

SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")


def _check_scaling(scaling_type: str, where: str) -> str:
    if scaling_type not in SCALING_TYPES:
        raise BoxtuneError(
            f"unknown scaling_type {scaling_type!r}",
            where=where,
            hint=f"use one of {', '.join(SCALING_TYPES)}",
        )
    return scaling_type


class ParameterRange:
    """A numeric range ``[min_value, max_value]`` with a scaling type."""

    __all_types__ = ("Continuous", "Categorical", "Integer")
    __name__ = "Parameter"

    def __init__(self, min_value: Any, max_value: Any, scaling_type: str = "Auto"):
        self.min_value = min_value
        self.max_value = max_value
        self.scaling_type = _check_scaling(scaling_type, type(self).__name__)

    def is_valid(self, value: Any) -> bool:
        return self.min_value <= value <= self.max_value

    @classmethod
    def cast_to_type(cls, value: Any) -> Any:
        return float(value)

    def as_tuning_range(self, name: str) -> dict[str, str]:
        return {
            "Name": name,
            "MinValue": str(self.min_value),
            "MaxValue": str(self.max_value),
            "ScalingType": self.scaling_type,
        }

    def to_range(self) -> Range:
        raise NotImplementedError


class ContinuousParameter(ParameterRange):
    __name__ = "Continuous"

    def to_range(self) -> ContinuousRange:
        return ContinuousRange(float(self.min_value), float(self.max_value), self.scaling_type)


class IntegerParameter(ParameterRange):
    __name__ = "Integer"

    @classmethod
    def cast_to_type(cls, value: Any) -> int:
        return int(value)

    def to_range(self) -> IntegerRange:
        return IntegerRange(int(self.min_value), int(self.max_value), self.scaling_type)


class CategoricalParameter(ParameterRange):
    __name__ = "Categorical"

    def __init__(self, values: Iterable[Any] | Any):
        if isinstance(values, list | tuple | set):
            self.values = [str(v) if not isinstance(v, str) else v for v in values]
        else:
            self.values = [str(values)]

    def is_valid(self, value: Any) -> bool:
        return str(value) in self.values

    @classmethod
    def cast_to_type(cls, value: Any) -> str:
        return str(value)

    def as_tuning_range(self, name: str) -> dict[str, Any]:
        return {"Name": name, "Values": list(self.values)}

    def to_range(self) -> CategoricalRange:
        return CategoricalRange(tuple(self.values))


__all__ = ["CategoricalParameter", "ContinuousParameter", "IntegerParameter", "ParameterRange"]
