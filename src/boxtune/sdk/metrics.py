"""Metric definitions (``{"Name": ..., "Regex": ...}``) applied to a job's log, as the platform
applies them to the container's output: each match is one data point, its first group the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from boxtune.errors import BoxtuneError

# A log line of the trainer names its epoch: "[Epoch 3], Val_localization=0.12, ...".
_EPOCH_MARK = re.compile(r"\[Epoch (\d+)\]")
_LINE_BREAK = re.compile(r"[\r\n]+")


@dataclass(frozen=True)
class MetricPoint:
    name: str
    value: float
    epoch: int  # the line's ``[Epoch N]``, else the match's position


def compile_definitions(
    definitions: Iterable[Mapping[str, str]], where: str
) -> list[tuple[str, re.Pattern]]:
    compiled = []
    for i, definition in enumerate(definitions):
        name, regex = definition.get("Name"), definition.get("Regex")
        if not name or not regex:
            raise BoxtuneError(
                f"metric definition {i} needs a 'Name' and a 'Regex': {dict(definition)}",
                where=where,
                hint='e.g. {"Name": "val_localization_loss", '
                '"Regex": "Val_localization=([0-9\\\\.]+)"}',
            )
        try:
            compiled.append((name, re.compile(regex)))
        except re.error as exc:
            raise BoxtuneError(
                f"metric {name!r}: the regex {regex!r} does not compile ({exc})",
                where=where,
                hint="fix the regex; its first group must capture the number",
            ) from exc
    return compiled


def values_from_log(text: str, regex: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` per match of ``regex`` in a job's log, in log order.

    Lines that carry the trainer's ``[Epoch N]`` mark give their epoch; when any such line
    matches, only those count (a progress bar's ``loss=`` in between is not an epoch's value).
    Otherwise every match is the next epoch, as the platform counts them.
    """
    pattern = re.compile(regex)
    marked: list[tuple[int, float]] = []
    plain: list[float] = []
    for segment in _LINE_BREAK.split(text):
        found = [_number(m) for m in pattern.finditer(segment)]
        found = [v for v in found if v is not None]
        if not found:
            continue
        mark = _EPOCH_MARK.search(segment)
        if mark:
            marked.append((int(mark.group(1)), found[-1]))
        plain.extend(found)
    if marked:
        return marked
    return list(enumerate(plain))


def _number(match: re.Match[str]) -> float | None:
    try:
        value = float(match.group(1))
    except (TypeError, ValueError, IndexError):
        return None
    return value if math.isfinite(value) else None


def metric_points(
    log_text: str, definitions: Iterable[Mapping[str, str]], where: str = "metric_definitions"
) -> list[MetricPoint]:
    """Every definition's values (see :func:`values_from_log`), definition by definition."""
    return [
        MetricPoint(name, value, epoch)
        for name, pattern in compile_definitions(definitions, where)
        for epoch, value in values_from_log(log_text, pattern.pattern)
    ]
