"""``list_models(filter=...)``: the catalog's model ids, filtered like the managed SDK's
``list_jumpstart_models``.

A filter is ``None`` (everything), a substring of the model id, an expression
``"<field> <op> <value>"`` with ``==``, ``!=``, ``in``, ``not in``, ``contains``, ``>=``... over
the fields of a catalog entry (``task`` and ``framework`` as the platform names them:
``tensorflow-od1-...`` is task ``od1``, framework ``tensorflow``; ``engine`` is boxtune's
engine), several expressions joined by `` and ``, or a callable taking the entry as a dict
(``boxtune.sagemaker.jumpstart.filters.And``/``Or`` are such callables).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from boxtune.errors import BoxtuneError

_EXPRESSION = re.compile(
    r"^\s*(?P<field>[A-Za-z_][\w.]*)\s*(?P<op>==|!=|>=|<=|>|<|not in|in|contains|=)\s*"
    r"(?P<value>.+?)\s*$"
)
_ORDER = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def catalog_entry(spec) -> dict[str, Any]:
    """A catalog record as the platform lists it (task, framework) plus boxtune's facts."""
    data = spec.to_json()
    framework, task = [*spec.model_id.split("-"), "", ""][:2]
    data["task"] = task  # od1: fine-tunable; od: inference only
    data["framework"] = framework
    data["training_supported"] = spec.fine_tunable
    data["model_type"] = "open_weights"
    return data


def _coerce(raw: str) -> Any:
    text = raw.strip().strip("'\"")
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text


def _as_text(value: Any) -> str:
    return str(value).lower()


def compile_filter(expression: str) -> Callable[[dict], bool]:
    """A test of catalog entries for a filter expression (see the module's docstring)."""
    clauses = re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE)
    tests = []
    for clause in clauses:
        match = _EXPRESSION.match(clause)
        if not match:
            needle = clause.strip().lower()
            tests.append(lambda entry, needle=needle: needle in entry["model_id"].lower())
            continue
        field, op, raw = match["field"], match["op"], match["value"]
        tests.append(_clause(field, op, raw, expression))
    return lambda entry: all(test(entry) for test in tests)


def _clause(field: str, op: str, raw: str, expression: str) -> Callable[[dict], bool]:
    def value_of(entry: dict) -> Any:
        if field not in entry:
            raise BoxtuneError(
                f"unknown field {field!r} in filter {expression!r}",
                where="list_models(filter=...)",
                hint="fields: " + ", ".join(sorted(entry)),
            )
        return entry[field]

    if op in ("in", "not in"):
        options = {_as_text(_coerce(v)) for v in raw.strip("()[] ").split(",") if v.strip()}
        wanted = op == "in"
        return lambda entry: (_as_text(value_of(entry)) in options) == wanted
    if op == "contains":
        needle = _as_text(_coerce(raw))
        return lambda entry: needle in _as_text(value_of(entry))
    target = _coerce(raw)
    if op in _ORDER:
        compare = _ORDER[op]
        return lambda entry: value_of(entry) is not None and compare(value_of(entry), target)
    equal = op in ("==", "=")
    return lambda entry: (_as_text(value_of(entry)) == _as_text(target)) == equal


def list_models(
    filter: str | Callable[[dict], bool] | None = None,
    **platform: Any,
) -> list[str]:
    """Model ids of the catalog that pass ``filter``, sorted."""
    from boxtune.catalog import list_specs
    from boxtune.sdk.notices import ignore_platform_arguments

    ignore_platform_arguments("list_models", platform)
    entries = [catalog_entry(spec) for spec in list_specs()]
    if filter is None:
        keep = entries
    elif callable(filter):
        keep = [entry for entry in entries if filter(entry)]
    else:
        test = compile_filter(str(filter))
        keep = [entry for entry in entries if test(entry)]
    return sorted(entry["model_id"] for entry in keep)
