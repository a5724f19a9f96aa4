"""``sagemaker.utils.name_from_base``: ``<base>-<timestamp>`` names, unique on this machine."""

from __future__ import annotations

from boxtune.jobs.store import name_from_base as _name_from_base


def name_from_base(base: str, max_length: int = 63, short: bool = False) -> str:
    """``base`` with a millisecond timestamp, at most ``max_length`` long (``short`` is
    accepted; the stamp stays the long form, which keeps names unique)."""
    return _name_from_base(base, max_length=max_length)


__all__ = ["name_from_base"]
