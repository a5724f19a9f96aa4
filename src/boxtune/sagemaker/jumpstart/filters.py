"""``sagemaker.jumpstart.filters``: ``And``/``Or``/``Not`` over filter expressions such as
``"task == od1"`` or ``"framework == tensorflow"`` (the fields of ``boxtune models show``),
for ``list_jumpstart_models(filter=...)``.

Each operator is a callable on a catalog entry, so it also works as
``boxtune.list_models(filter=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from boxtune.sdk.listing import compile_filter


class BooleanValues(StrEnum):
    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"
    UNEVALUATED = "unevaluated"


class Operand:
    """A filter term: a string expression, or an operator over terms."""

    def __call__(self, entry: dict[str, Any]) -> bool:
        raise NotImplementedError

    @staticmethod
    def validate_operand(operand: Any) -> Operand:
        if isinstance(operand, Operand):
            return operand
        if isinstance(operand, str):
            return Identity(operand)
        raise TypeError(
            f"a filter operand must be a string such as 'task == od1' or a filter operator, "
            f"not a {type(operand).__name__}"
        )


class Identity(Operand):
    def __init__(self, operand: str | Operand):
        self.operand = operand
        self._test: Callable[[dict], bool] = (
            compile_filter(operand) if isinstance(operand, str) else operand
        )

    def __call__(self, entry: dict[str, Any]) -> bool:
        return bool(self._test(entry))

    def __repr__(self) -> str:
        return f"Identity({self.operand!r})"


class Constant(Operand):
    def __init__(self, constant: BooleanValues | bool | str):
        value = constant.value if isinstance(constant, BooleanValues) else str(constant)
        self.value = value.lower()

    def __call__(self, entry: dict[str, Any]) -> bool:
        return self.value == BooleanValues.TRUE.value

    def __repr__(self) -> str:
        return f"Constant({self.value!r})"


class Operator(Operand):
    def __init__(self, *operands: str | Operand):
        if not operands:
            raise ValueError(f"{type(self).__name__}() needs at least one operand")
        self.operands = [Operand.validate_operand(op) for op in operands]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.operands))})"


class And(Operator):
    def __call__(self, entry: dict[str, Any]) -> bool:
        return all(op(entry) for op in self.operands)


class Or(Operator):
    def __call__(self, entry: dict[str, Any]) -> bool:
        return any(op(entry) for op in self.operands)


class Not(Operator):
    def __init__(self, operand: str | Operand):
        super().__init__(operand)

    def __call__(self, entry: dict[str, Any]) -> bool:
        return not self.operands[0](entry)


class ModelFilter(Identity):
    """``ModelFilter(key, value, operator)``, the SDK's parsed form of ``"key operator value"``."""

    def __init__(self, key: str, value: str, operator: str):
        super().__init__(f"{key} {operator} {value}")
        self.key, self.value, self.operator = key, value, operator


__all__ = ["And", "BooleanValues", "Constant", "Identity", "ModelFilter", "Not", "Operand", "Or"]
