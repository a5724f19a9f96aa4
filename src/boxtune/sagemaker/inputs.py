"""``sagemaker.inputs.TrainingInput``: a channel's location with the platform's options."""

from __future__ import annotations

from typing import Any

from boxtune.sdk.notices import ignore_platform_arguments


class TrainingInput:
    def __init__(
        self,
        s3_data: str,
        distribution: str | None = None,
        compression: str | None = None,
        content_type: str | None = None,
        record_wrapping: str | None = None,
        s3_data_type: str = "S3Prefix",
        instance_groups: Any = None,
        input_mode: str | None = None,
        attribute_names: Any = None,
        target_attribute_name: str | None = None,
        shuffle_config: Any = None,
        hub_access_config: Any = None,
        model_access_config: Any = None,
    ):
        ignore_platform_arguments(
            "TrainingInput",
            {
                "distribution": distribution,
                "compression": compression,
                "record_wrapping": record_wrapping,
                "instance_groups": instance_groups,
                "input_mode": input_mode,
                "attribute_names": attribute_names,
                "target_attribute_name": target_attribute_name,
                "shuffle_config": shuffle_config,
            },
        )
        self.s3_data = s3_data
        self.content_type = content_type
        self.config = {
            "DataSource": {"S3DataSource": {"S3DataType": s3_data_type, "S3Uri": s3_data}}
        }
