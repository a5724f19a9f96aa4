"""``boxtune ui``: the web console (models, data, training, jobs, endpoints) in a browser."""

from __future__ import annotations

import argparse

from boxtune.commands import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    from boxtune.ui.server import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_PORT, TOKEN_ENV

    parser = subparsers.add_parser(
        "ui",
        help="the web console: pick a model, point at data, train, deploy and try it",
        description="A local web console over the same jobs and endpoints as the CLI and the "
        "SDK. Closing the page never stops a job.",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    parser.add_argument(
        "--token",
        default=None,
        help=f"require this token on every page and API route (or set {TOKEN_ENV})",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=positive_int,
        default=DEFAULT_MAX_UPLOAD_BYTES >> 20,
        help="largest dataset zip or image accepted for upload (default %(default)s MB)",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from boxtune.ui.server import run_console

    return run_console(
        host=args.host, port=args.port, token=args.token, max_upload_bytes=args.max_upload_mb << 20
    )
