"""The local job registry: training jobs and endpoints as background processes, in SQLite.

Public API (the SDK and the CLI go through it)::

    submit_training_job(training=..., output_path=..., model_id=..., hyperparameters=...)
    get_job(name) / list_jobs() / wait_for_job(name) / stop_job(name) / stream_logs(name, out)
    start_endpoint(model, port=...) / get_endpoint(name) / list_endpoints() / stop_endpoint(name)
"""

from boxtune.jobs.endpoints import (
    check_startup,
    free_port,
    get_endpoint,
    list_endpoints,
    ping,
    start_endpoint,
    stop_endpoint,
)
from boxtune.jobs.store import (
    COMPLETED,
    FAILED,
    JOB_STATUSES,
    QUEUED,
    RUNNING,
    STARTING,
    STOPPED,
    EndpointRecord,
    JobRecord,
    Registry,
    name_from_base,
    validate_name,
)
from boxtune.jobs.training import (
    get_job,
    list_jobs,
    model_data_uri,
    read_metric_definitions,
    read_metrics,
    resume_job,
    stop_job,
    stream_logs,
    submit_job,
    submit_training_job,
    wait_for_job,
)

__all__ = [
    "COMPLETED",
    "FAILED",
    "JOB_STATUSES",
    "QUEUED",
    "RUNNING",
    "STARTING",
    "STOPPED",
    "EndpointRecord",
    "JobRecord",
    "Registry",
    "check_startup",
    "free_port",
    "get_endpoint",
    "get_job",
    "list_endpoints",
    "list_jobs",
    "model_data_uri",
    "name_from_base",
    "ping",
    "read_metric_definitions",
    "read_metrics",
    "resume_job",
    "start_endpoint",
    "stop_endpoint",
    "stop_job",
    "stream_logs",
    "submit_job",
    "submit_training_job",
    "validate_name",
    "wait_for_job",
]
