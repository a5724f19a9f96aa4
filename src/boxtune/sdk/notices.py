"""One-line notices for the managed platform's arguments that mean nothing on this machine.

Code written for the managed SDK passes roles, instance types, container images and sessions;
boxtune accepts them so the code runs unchanged, and says once which ones it ignored (a
:class:`~boxtune.errors.BoxtuneWarning`, pointing at the caller's line).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any

from boxtune.errors import BoxtuneWarning

# Arguments of the managed SDK's Estimator/Model/deploy that have no local meaning.
PLATFORM_ONLY = frozenset(
    {
        "role",
        "instance_type",
        "instance_count",
        "initial_instance_count",
        "sagemaker_session",
        "image_uri",
        "source_dir",
        "entry_point",
        "max_run",
        "max_wait",
        "volume_size",
        "volume_kms_key",
        "output_kms_key",
        "tags",
        "enable_network_isolation",
        "subnets",
        "security_group_ids",
        "use_spot_instances",
        "checkpoint_s3_uri",
        "checkpoint_local_path",
        "encrypt_inter_container_traffic",
        "debugger_hook_config",
        "disable_profiler",
        "profiler_config",
        "region",
        "tolerate_vulnerable_model",
        "tolerate_deprecated_model",
        "environment",
        "env",
        "predictor_cls",
        "model_name",
        "container_log_level",
        "code_location",
        "dependencies",
        "git_config",
        "framework_version",
        "py_version",
        "kms_key",
        "data_capture_config",
        "async_inference_config",
        "serverless_inference_config",
        "accelerator_type",
        "volume_size_in_gb",
        "model_data_download_timeout",
        "container_startup_health_check_timeout",
        "experiment_config",
        "vpc_config",
        "keep_alive_period_in_seconds",
        "distribution",
        "hub_name",
        "model_type",
        "hub_arn",
        "config_name",
        "inference_component_name",
        "max_retry_attempts",
        "framework",
        "image_scope",
        "script_scope",
        "model_scope",
        "base_job_name_",
        # The rest of the SDK v2's platform-only parameters (Estimator, Model, deploy, tuner,
        # transformer, Session), so code passing them gets the notice, not a spelling warning.
        "input_mode",
        "model_kms_key",
        "image_config",
        "resources",
        "additional_model_data_sources",
        "model_reference_arn",
        "use_compiled_model",
        "custom_attributes",
        "component_name",
        "rules",
        "tensorboard_output_config",
        "enable_sagemaker_metrics",
        "instance_groups",
        "training_repository_access_mode",
        "training_repository_credentials_provider_arn",
        "container_entry_point",
        "container_arguments",
        "disable_output_compression",
        "enable_infra_check",
        "enable_remote_debug",
        "enable_session_tag_chaining",
        "training_plan",
        "instance_placement_config",
        "endpoint_logging",
        "endpoint_type",
        "managed_instance_scaling",
        "routing_config",
        "inference_ami_version",
        "update_endpoint",
        "accept_eula",
        "inference_recommendation_id",
        "explainer_config",
        "model_access_configs",
        "callback",
        "extra_args",
        "include_cls_metadata",
        "estimator_kwargs",
        "max_runtime_in_seconds",
        "warm_start_config",
        "strategy_config",
        "completion_criteria_config",
        "estimator_name",
        "autotune",
        "hyperparameters_to_keep_static",
        "boto_session",
        "sagemaker_client",
        "sagemaker_runtime_client",
        "sagemaker_featurestore_runtime_client",
        "settings",
        "sagemaker_metrics_client",
        "sagemaker_config",
        "max_concurrent_transforms",
        "max_payload",
        "compression_type",
        "split_type",
        "input_filter",
        "output_filter",
        "join_source",
        "model_client_config",
        "batch_data_capture_config",
        "assemble_with",
        "model_package_arn",
        "inference_config_name",
        "vpc_config_override",
        "instance_type_",
        "profiler_rule_configs",
        "model_channel_name",
    }
)

_already_said: set[tuple[str, frozenset[str]]] = set()
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _is_set(value: Any) -> bool:
    return value is not None and value != {} and value != []


def _stacklevel_outside_boxtune() -> int:
    """The ``stacklevel`` that makes a warning issued by our caller name the first frame outside
    the boxtune package: the user's line, however deep inside boxtune the notice was raised."""
    level, frame = 2, sys._getframe(2)  # 2: the caller of the function calling warnings.warn
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        level, frame = level + 1, frame.f_back
    return level


def ignore_platform_arguments(owner: str, arguments: Mapping[str, Any]) -> list[str]:
    """Warn (once per owner and set of names) which arguments were ignored; returns them."""
    ignored = sorted(name for name, value in arguments.items() if _is_set(value))
    if not ignored:
        return []
    unknown = [name for name in ignored if name not in PLATFORM_ONLY]
    key = (owner, frozenset(ignored))
    if key not in _already_said:
        _already_said.add(key)
        line = (
            f"{owner} ignores {', '.join(ignored)} (managed-platform settings; "
            "boxtune runs on this machine)"
        )
        if unknown:
            line += f"; not platform arguments either, check the spelling: {', '.join(unknown)}"
        warnings.warn(line, BoxtuneWarning, stacklevel=_stacklevel_outside_boxtune())
    return ignored
