"""What a run tells the user: the managed algorithm's log lines, mAP lines, metrics.jsonl, memory.

The two line formats are parsed by the reference's metric regexes (``loss=([0-9\\.]+).``,
``Val_localization=([0-9\\.]+)``, ``Val_classification=([0-9\\.]+)``), so numbers are printed in
plain decimal notation, and no other line contains ``loss=``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
from collections.abc import Iterable
from pathlib import Path


def _decimal(value: float, digits: int = 4) -> str:
    """Plain decimal (never ``1e-05``), which the reference regexes require."""
    return f"{max(0.0, float(value)):.{digits}f}"


def epoch_line(epoch: int, samples_per_second: float, loss: float) -> str:
    return f"[Epoch {epoch}], Speed: {samples_per_second:.3f} samples/sec, loss={_decimal(loss)}."


def validation_line(epoch: int, localization: float, classification: float) -> str:
    return (
        f"[Epoch {epoch}], Val_localization={_decimal(localization)}, "
        f"Val_classification={_decimal(classification)}"
    )


def map_line(epoch: int, map_value: float | None, map50: float | None) -> str:
    def show(value: float | None) -> str:
        return "n/a" if value is None else _decimal(value)

    return f"[Epoch {epoch}], Val_mAP={show(map_value)}, Val_mAP50={show(map50)}"


class MetricsLog:
    """``metrics.jsonl``: one JSON object per finished epoch, appended as the run goes."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, record: dict) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def rewrite(self, records: Iterable[dict]) -> None:
        """Replace the file with ``records`` (on resume, the checkpoint's history is the truth)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        os.replace(tmp, self.path)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


class MemoryProbe:
    """Resident memory of this process, with a peak that can be reset per epoch on Linux."""

    _STATUS = Path("/proc/self/status")

    def reset_peak(self) -> None:
        with contextlib.suppress(OSError):  # writing 5 resets VmHWM (Linux >= 4.0)
            Path("/proc/self/clear_refs").write_text("5")

    def _status_mb(self, key: str) -> float | None:
        try:
            for line in self._STATUS.read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def rss_mb(self) -> float | None:
        return self._status_mb("VmRSS")

    def peak_mb(self) -> float:
        peak = self._status_mb("VmHWM")
        if peak is None:  # not Linux: the lifetime peak (ru_maxrss is in KiB on Linux, B on macOS)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak
