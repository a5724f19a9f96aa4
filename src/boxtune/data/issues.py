"""Findings of dataset validation: each names the file, the record, the field and a fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from boxtune.errors import DatasetError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """One problem found in a dataset.

    ``code`` is a stable identifier (e.g. ``"duplicate-image-id"``) that tests and tools can
    match on; ``record`` reads like ``images[3] (id 7)`` or ``annotations[12] (image 7)``.
    """

    severity: Severity
    code: str
    message: str
    file: str
    record: str | None = None
    field: str | None = None
    hint: str | None = None

    def location(self) -> str:
        parts = [self.file]
        if self.record:
            parts.append(self.record)
        if self.field:
            parts.append(f"field '{self.field}'")
        return ", ".join(parts)

    def render(self) -> str:
        text = f"{self.severity}: {self.location()}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ValidationReport:
    """All findings for one dataset, errors and warnings together."""

    root: str
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self) -> set[str]:
        return {i.code for i in self.issues}

    def render(self, *, max_per_code: int | None = None) -> str:
        """Human-readable listing; ``max_per_code`` folds long runs of the same problem."""
        lines: list[str] = []
        shown: dict[str, int] = {}
        hidden: dict[str, int] = {}
        for issue in sorted(self.issues, key=lambda i: i.severity != "error"):
            count = shown.get(issue.code, 0)
            if max_per_code is not None and count >= max_per_code:
                hidden[issue.code] = hidden.get(issue.code, 0) + 1
                continue
            shown[issue.code] = count + 1
            lines.append(issue.render())
        for code, n in hidden.items():
            lines.append(f"... and {n} more '{code}' issue(s) (use --all to list every one)")
        lines.append(f"{self.root}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "root": self.root,
            "ok": self.ok,
            "errors": [i.to_json() for i in self.errors],
            "warnings": [i.to_json() for i in self.warnings],
        }

    def raise_for_errors(self) -> None:
        if self.errors:
            raise DatasetError(
                f"dataset is invalid: {len(self.errors)} error(s)\n"
                + "\n".join(i.render() for i in self.errors),
                where=self.root,
                hint="fix every error listed above; `boxtune data validate DIR` prints the same "
                "report without training",
            )
