"""Open the HTML report in headless Chromium: it loads, every image renders, no console errors
(see ``tests/chromium.py`` for when the test is skipped)."""

from __future__ import annotations

import pytest

from chromium import CHROMIUM, CHROMIUM_ARGS, PageProblems, require_chromium

pytestmark = pytest.mark.browser


def test_report_renders_in_headless_chromium(report_dir, test_output):
    require_chromium()
    from playwright.sync_api import sync_playwright

    problems = PageProblems()
    screenshot = test_output / "evaluate-report.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems.watch(page)
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
    problems.assert_none()
    assert screenshot.stat().st_size > 50_000
