"""Where boxtune keeps caches, weights and its job registry."""

from __future__ import annotations

import os
from pathlib import Path


def boxtune_home() -> Path:
    """``BOXTUNE_HOME``, default ``~/.cache/boxtune``; created on first use."""
    home = Path(os.environ.get("BOXTUNE_HOME") or Path.home() / ".cache" / "boxtune")
    home.mkdir(parents=True, exist_ok=True)
    return home
