"""Run the console with uvicorn (the ASGI server ``boxtune serve`` uses)."""

from __future__ import annotations

import ipaddress
import logging
import os

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
DEFAULT_MAX_UPLOAD_BYTES = 512 << 20
TOKEN_ENV = "BOXTUNE_UI_TOKEN"

log = logging.getLogger("boxtune.ui")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def startup_lines(host: str, port: int, token: str | None) -> list[str]:
    """What ``boxtune ui`` says when it starts: the address (with the token) and a warning
    when other machines can reach it."""
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    address = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    lines = [f"boxtune console at {address}"]
    if not is_loopback(host):
        lines.append(
            f"warning: --host {host} makes the console reachable from other machines: anyone "
            "who reaches it can read your datasets and start jobs"
            + ("" if token else f"; set --token or {TOKEN_ENV} to require a token")
        )
    return lines


def run_console(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
) -> int:
    import uvicorn

    from boxtune.jobs.endpoints import check_port_free
    from boxtune.ui.app import create_app

    check_port_free(host, port)  # before the banner: a busy port says so plainly
    token = token or os.environ.get(TOKEN_ENV) or None
    for line in startup_lines(host, port, token):
        print(line, flush=True)
    app = create_app(token=token, max_upload_bytes=max_upload_bytes)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0
