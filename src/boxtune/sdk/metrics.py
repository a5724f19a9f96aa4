"""Metric definitions (``{"Name": ..., "Regex": ...}``) applied to a job's log, as the platform
applies them to the container's output: each match is one data point, its first group the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from boxtune.errors import BoxtuneError

_EPOCH = re.compile(r"\[Epoch (\d+)\]")


@dataclass(frozen=True)
class MetricPoint:
    name: str
    value: float
    epoch: int | None  # the ``[Epoch N]`` of the line, when it has one
    index: int  # the match's position among this metric's matches


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


def metric_points(
    log_text: str, definitions: Iterable[Mapping[str, str]], where: str = "metric_definitions"
) -> list[MetricPoint]:
    """Every match of every definition, line by line in log order."""
    compiled = compile_definitions(definitions, where)
    counts = {name: 0 for name, _ in compiled}
    points = []
    for line in log_text.splitlines():
        epoch_match = _EPOCH.search(line)
        epoch = int(epoch_match.group(1)) if epoch_match else None
        for name, pattern in compiled:
            for match in pattern.finditer(line):
                raw = match.group(1) if pattern.groups else match.group(0)
                try:
                    value = float(raw.rstrip("."))
                except ValueError:
                    continue  # the platform drops values that are not numbers, too
                points.append(MetricPoint(name, value, epoch, counts[name]))
                counts[name] += 1
    return points
