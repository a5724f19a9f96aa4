"""Headless Chromium for the browser tests: the Debian ``chromium`` driven by Playwright.

Needs /usr/bin/chromium (``make browser`` installs it). Without it a browser test is skipped,
except under CI (``CI=true``), where a missing browser is a failure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = (
        f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (or `make browser`)"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI is set and {message}")
    pytest.skip(message)


@dataclass
class PageProblems:
    """Everything a page reported that a user would call broken: console errors, uncaught
    exceptions, requests that failed outright."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def watch(self, page) -> None:
        page.on(
            "console",
            lambda m: (
                self.console_errors.append(f"{page.url}: {m.text}") if m.type == "error" else None
            ),
        )
        page.on("pageerror", lambda e: self.page_errors.append(f"{page.url}: {e}"))
        page.on("requestfailed", self._request_failed)

    def _request_failed(self, request) -> None:
        # The browser cancels a page's in-flight polls when it navigates or closes (a click on
        # Deploy, a closed tab): net::ERR_ABORTED is that, not a failure of the server.
        if request.failure == "net::ERR_ABORTED":
            return
        self.failed_requests.append(f"{request.url[:100]} ({request.failure})")

    def assert_none(self) -> None:
        assert not self.console_errors, self.console_errors
        assert not self.page_errors, self.page_errors
        assert not self.failed_requests, self.failed_requests
