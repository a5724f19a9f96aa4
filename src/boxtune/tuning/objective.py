"""The tuning objective: which number of a trial's training job is optimised, and reading it.

As on the managed platform, a metric is either a regex over the job's log (each match is one
epoch's value, its first group the number) or, boxtune's own way, a key of the trainer's
``metrics.jsonl`` records (``val_map``, ``val_localization`` ...). The final value of a finished
job is its last value.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from boxtune.errors import BoxtuneError
from boxtune.sdk.metrics import values_from_log

__all__ = ["values_from_log"]  # re-exported: the objective's reading of a log

DIRECTIONS = ("minimize", "maximize")

# The managed algorithm's metric definitions (its log lines; reference contract, "Log lines").
PLATFORM_METRIC_DEFINITIONS: tuple[dict[str, str], ...] = (
    {"Name": "train:loss", "Regex": r"loss=([0-9\.]+)."},
    {"Name": "validation:localization_loss", "Regex": r"Val_localization=([0-9\.]+)"},
    {"Name": "validation:classification_loss", "Regex": r"Val_classification=([0-9\.]+)"},
)
# Platform-style names and the metrics.jsonl key that holds the same number, unrounded.
METRIC_ALIASES: dict[str, str] = {
    "train:loss": "loss",
    "validation:loss": "val_loss",
    "validation:localization_loss": "val_localization",
    "validation:classification_loss": "val_classification",
    "validation:mAP": "val_map",
    "validation:mAP50": "val_map50",
}
# Numeric keys of the trainer's per-epoch records (boxtune.train.loop) worth optimising.
METRIC_KEYS: dict[str, str] = {
    "val_map": "maximize",
    "val_map50": "maximize",
    "val_loss": "minimize",
    "val_localization": "minimize",
    "val_classification": "minimize",
    "loss": "minimize",
    "localization": "minimize",
    "classification": "minimize",
}


@dataclass(frozen=True)
class Objective:
    name: str  # "validation:localization_loss", or a metrics.jsonl key such as "val_map"
    direction: str  # "minimize" | "maximize"
    regex: str | None = None  # over the job's log; None: the metrics.jsonl key named `name`

    def to_json(self) -> dict[str, str | None]:
        return {"name": self.name, "direction": self.direction, "regex": self.regex}

    @classmethod
    def from_json(cls, data: Mapping[str, str | None]) -> Objective:
        return cls(str(data["name"]), str(data["direction"]), data.get("regex"))

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a < b if self.direction == "minimize" else a > b


def default_direction(name: str) -> str | None:
    """The direction a metric is obviously optimised in (a loss down, an mAP up), else None."""
    key = METRIC_ALIASES.get(name, name)
    if key in METRIC_KEYS:
        return METRIC_KEYS[key]
    lowered = name.lower()
    if "loss" in lowered or "error" in lowered:
        return "minimize"
    if "map" in lowered or "accuracy" in lowered:
        return "maximize"
    return None


def normalise_direction(direction: str) -> str:
    value = str(direction).strip().lower()
    if value not in DIRECTIONS:
        raise BoxtuneError(
            f"unknown objective direction {direction!r}",
            where="objective.direction",
            hint="use minimize or maximize (the SDK's objective_type Minimize / Maximize; "
            "CLI: --objective-type)",
        )
    return value


def check_regex(regex: str, where: str) -> re.Pattern[str]:
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise BoxtuneError(
            f"the regex {regex!r} does not compile: {exc}",
            where=where,
            hint=r"e.g. Val_localization=([0-9\.]+) (the first group is the number)",
        ) from None
    if pattern.groups < 1:
        raise BoxtuneError(
            f"the regex {regex!r} has no group to capture the number",
            where=where,
            hint=r"put the number in parentheses, e.g. Val_mAP=([0-9\.]+)",
        )
    return pattern


@dataclass(frozen=True)
class MetricSource:
    """Where a metric's values come from: a log regex or a metrics.jsonl key."""

    label: str  # for messages: "the regex '...'" or "the metrics.jsonl key 'val_map'"
    regex: str | None = None
    key: str | None = None

    def values(self, log_text: str, records: Iterable[Mapping]) -> list[tuple[int, float]]:
        if self.regex is not None:
            return values_from_log(log_text, self.regex)
        return values_from_records(records, self.key or "")

    def missing(self) -> str:
        if self.regex is not None:
            return f"the job's log has no match of the objective regex {self.regex!r}"
        return f"the job's metrics.jsonl has no value of {self.key!r} (per-epoch records)"


def resolve(
    objective: Objective, metric_definitions: Iterable[Mapping[str, str]] = ()
) -> MetricSource:
    """How to read ``objective``: its own regex; else a metric definition of the same name;
    else a platform name (``validation:localization_loss``) or a metrics.jsonl key."""
    if objective.regex:
        check_regex(objective.regex, "objective.regex")
        return MetricSource(f"the regex {objective.regex!r}", regex=objective.regex)
    for definition in metric_definitions:
        if definition.get("Name") == objective.name and definition.get("Regex"):
            check_regex(definition["Regex"], f"metric definition {objective.name}")
            return MetricSource(f"the regex {definition['Regex']!r}", regex=definition["Regex"])
    key = METRIC_ALIASES.get(objective.name, objective.name)
    if key in METRIC_KEYS:
        return MetricSource(f"the metrics.jsonl key {key!r}", key=key)
    known = [*METRIC_ALIASES, *METRIC_KEYS]
    close = difflib.get_close_matches(objective.name, known, n=2, cutoff=0.5)
    raise BoxtuneError(
        f"unknown objective metric {objective.name!r}"
        + (f" (did you mean {' or '.join(close)}?)" if close else ""),
        where="objective.name",
        hint=f"use one of {', '.join(known)}, or give a regex over the job's log "
        r"(objective regex / metric_definitions; CLI: --metric-regex 'Val_mAP=([0-9\.]+)')",
    )


def values_from_records(records: Iterable[Mapping], key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` of ``key`` in the trainer's per-epoch records."""
    values: list[tuple[int, float]] = []
    for index, record in enumerate(records):
        raw = record.get(key)
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            continue
        epoch = record.get("epoch", index)
        values.append((int(epoch) if isinstance(epoch, int) else index, float(raw)))
    return values


def last_value(values: list[tuple[int, float]]) -> float | None:
    return values[-1][1] if values else None
