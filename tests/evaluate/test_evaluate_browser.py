"""Open the HTML report in headless Chromium: it loads, every image renders, no console errors.

Needs /usr/bin/chromium (Debian package ``chromium``; ``make browser`` installs it). Without it
the test is skipped, except under CI (``CI=true``), where a missing browser is a failure.
"""

from __future__ import annotations

import os
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

pytestmark = pytest.mark.browser


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = (
        f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (or `make browser`)"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI is set and {message}")
    pytest.skip(message)


def test_report_renders_in_headless_chromium(report_dir, test_output):
    _require_chromium()
    from playwright.sync_api import sync_playwright

    console_errors: list[str] = []
    page_errors: list[str] = []
    failed_requests: list[str] = []
    screenshot = test_output / "evaluate-report.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("requestfailed", lambda r: failed_requests.append(r.url[:80]))
            response = page.goto((report_dir / "report.html").as_uri(), wait_until="load")
            assert response is not None and response.ok
            assert "evaluation report" in page.title()
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.alt, e.complete, e.naturalWidth])"
            )
            assert len(images) == 5 + 16
            broken = [alt for alt, complete, width in images if not complete or width <= 0]
            assert not broken, f"images that did not render: {broken}"
            # The per-class table lists every shape class present in the data.
            rows = page.eval_on_selector_all("table tr", "rows => rows.length")
            assert rows > 10
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert not console_errors, console_errors
    assert not page_errors, page_errors
    assert not failed_requests, failed_requests
    assert screenshot.stat().st_size > 50_000
