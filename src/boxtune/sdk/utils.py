"""Small helpers with the managed SDK's names (``from sagemaker.utils import name_from_base``)."""

from __future__ import annotations

from boxtune.jobs.store import name_from_base, validate_name

__all__ = ["name_from_base", "validate_name"]
