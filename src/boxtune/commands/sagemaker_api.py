"""``boxtune sagemaker-api``: a local endpoint for boto3's SageMaker client."""

from __future__ import annotations

import argparse
import time


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sagemaker-api",
        help="answer boto3's SageMaker calls (describe jobs and tuning jobs) locally",
        description="Serve the SageMaker API calls that notebooks make with boto3 directly "
        "(DescribeTrainingJob, DescribeHyperParameterTuningJob, ListTrainingJobs, Stop...), "
        "from boxtune's job registry. Point boto3 at it with "
        "AWS_ENDPOINT_URL_SAGEMAKER=http://HOST:PORT.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8089, help="port (default: %(default)s)")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from boxtune.sagemaker.api_server import start_api_server

    server = start_api_server(args.host, args.port)
    host, port = server.server_address[:2]
    print(f"serving the SageMaker API on http://{host}:{port}", flush=True)
    print(f"export AWS_ENDPOINT_URL_SAGEMAKER=http://{host}:{port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
    return 0
