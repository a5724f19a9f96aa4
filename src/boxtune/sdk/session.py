"""``Session`` and ``get_execution_role``: the managed SDK's session helpers, locally.

Notebooks start with ``sess = Session(); bucket = sess.default_bucket()`` and upload data with
``sess.upload_data(path, bucket, key_prefix)``; these keep working against any S3-compatible
server (``BOXTUNE_S3_ENDPOINT_URL``) or, without a bucket configured, a local directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from boxtune import storage

DEFAULT_BUCKET_ENV = "BOXTUNE_DEFAULT_BUCKET"
LOCAL_ROLE = "boxtune-local-role"


def get_execution_role(sagemaker_session: Any = None) -> str:
    """There are no roles here; a placeholder that Estimator(role=...) accepts and ignores."""
    return LOCAL_ROLE


class Session:
    def __init__(self, *args: Any, **kwargs: Any):
        self.boto_region_name = os.environ.get("AWS_REGION") or os.environ.get(
            "AWS_DEFAULT_REGION", "local"
        )

    def default_bucket(self) -> str:
        """``BOXTUNE_DEFAULT_BUCKET`` (an existing S3 bucket), else "boxtune-local"."""
        return os.environ.get(DEFAULT_BUCKET_ENV, "boxtune-local")

    def _base(self, bucket: str | None) -> str:
        bucket = bucket or self.default_bucket()
        if bucket == "boxtune-local" and DEFAULT_BUCKET_ENV not in os.environ:
            from boxtune.paths import boxtune_home

            return str(boxtune_home() / "local-bucket")
        return f"s3://{bucket}"

    def upload_data(
        self, path: str, bucket: str | None = None, key_prefix: str = "data", **kwargs: Any
    ) -> str:
        """Upload a file or directory; returns its URI (s3://bucket/key_prefix[/name])."""
        source = Path(path).expanduser()
        target = storage.join(self._base(bucket), key_prefix)
        if source.is_file():
            target = storage.join(target, source.name)
        storage.upload(source, target)
        return target
