"""A local endpoint for boto3's SageMaker client: the JSON-protocol calls that notebooks make
directly (``boto3.client("sagemaker").describe_hyper_parameter_tuning_job(...)``), answered
from the job registry and the tuning studies.

``boxtune sagemaker-api --port 8089`` serves it; point boto3 at it with
``AWS_ENDPOINT_URL_SAGEMAKER=http://127.0.0.1:8089`` (botocore reads that variable). Dummy AWS
credentials are enough: requests are signed by boto3 and not checked here (bind it to
127.0.0.1, the default).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from boxtune.errors import BoxtuneError
from boxtune.sagemaker.control_plane import LocalSageMakerClient

TARGET_PREFIX = "SageMaker."
# API operation -> the client method answering it (keyword arguments as boto3 sends them).
OPERATIONS = {
    "DescribeTrainingJob": "describe_training_job",
    "DescribeHyperParameterTuningJob": "describe_hyper_parameter_tuning_job",
    "ListTrainingJobs": "list_training_jobs",
    "StopTrainingJob": "stop_training_job",
    "StopHyperParameterTuningJob": "stop_hyper_parameter_tuning_job",
}
MAX_BODY_BYTES = 1 << 20


def _wire(value: Any) -> Any:
    """The JSON protocol's form: timestamps as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def answer(target: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """The status and JSON answer for one call (errors in the protocol's ``__type`` form)."""
    operation = target.removeprefix(TARGET_PREFIX)
    method = OPERATIONS.get(operation) if target.startswith(TARGET_PREFIX) else None
    if method is None:
        return 400, {
            "__type": "UnknownOperationException",
            "message": f"boxtune's local SageMaker API does not answer {target or 'this call'}; "
            f"it answers {', '.join(OPERATIONS)}",
        }
    try:
        arguments = json.loads(body or b"{}")
        if not isinstance(arguments, dict):
            raise ValueError("the body is not a JSON object")
    except ValueError as exc:
        return 400, {"__type": "SerializationException", "message": str(exc)}
    try:
        result = getattr(LocalSageMakerClient(), method)(**arguments)
    except TypeError as exc:
        return 400, {"__type": "ValidationException", "message": f"{operation}: {exc}"}
    except BoxtuneError as exc:
        return 400, {"__type": "ValidationException", "message": str(exc)}
    return 200, _wire(result)


class _Handler(BaseHTTPRequestHandler):
    server_version = "boxtune-sagemaker-api"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(413, {"__type": "ValidationException", "message": "request too large"})
            return
        status, data = answer(self.headers.get("X-Amz-Target", ""), self.rfile.read(length))
        self._send(status, data)

    def _send(self, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: notebooks poll


def start_api_server(host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve in a daemon thread; ``server.server_address`` has the port. ``shutdown()`` stops."""
    server = ThreadingHTTPServer((host, port), _Handler)
    threading.Thread(target=server.serve_forever, name="sagemaker-api", daemon=True).start()
    return server
