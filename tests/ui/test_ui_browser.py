"""The console in headless Chromium, driven as a new user would: clicks and typing only.

One test walks the whole flow (sample data, validate, train the default model, watch the
curves, evaluate, deploy, try an image, stop); one feeds bad input and checks that each
precise message shows where the user looks and the console keeps working. Screenshots of
every page land in ``test-output/console-*.png``. See ``tests/chromium.py`` for skipping.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from chromium import CHROMIUM, CHROMIUM_ARGS, PageProblems, require_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PAGES = ("/models", "/data", "/train", "/jobs", "/endpoints")


def _shot(page, test_output: Path, name: str) -> None:
    page.screenshot(path=str(test_output / f"console-{name}.png"), full_page=True)


def _assert_fits(page) -> None:
    """Nothing sticks out sideways: the page scrolls vertically only."""
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{page.url} is {overflow} px wider than the window"


def _image_loaded(page, selector: str) -> bool:
    return page.eval_on_selector(selector, "img => img.complete && img.naturalWidth > 0")


def _chart_points(page, testid: str) -> int:
    """The number of points in the SVG chart the page shows (fetched as the page has it)."""
    svg = page.evaluate(
        "async (id) => { const img = document.querySelector(`[data-testid=${id}]`);"
        " return await (await fetch(img.src)).text(); }",
        testid,
    )
    match = re.search(r'data-points="(\d+)"', svg)
    assert match, svg[:200]
    return int(match.group(1))


def _run_snippets(page, image: Path, home: Path) -> None:
    """The curl and SDK snippets the page offers work as they are (the image path filled in)."""
    import os
    import shutil
    import subprocess
    import sys

    env = {**os.environ, "BOXTUNE_HOME": str(home)}
    sdk = page.get_by_test_id("sdk-snippet").inner_text().replace("image.jpg", str(image))
    done = subprocess.run(
        [sys.executable, "-c", sdk], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "circle" in done.stdout  # the labels of the sample dataset
    curl = page.get_by_test_id("curl-snippet").inner_text().replace("image.jpg", str(image))
    if shutil.which("curl"):
        done = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert '"normalized_boxes"' in done.stdout and '"labels"' in done.stdout


@pytest.fixture
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_new_user_trains_deploys_and_tries_a_model(console, browser, test_output):
    from playwright.sync_api import expect

    problems = PageProblems()
    page = browser.new_page(viewport=DESKTOP)
    problems.watch(page)
    page.set_default_timeout(30_000)

    # Models: the catalog, searchable; the default model's facts and defaults.
    page.goto(console.url)
    expect(page).to_have_url(re.compile(r"/models$"))
    rows = page.locator("[data-testid=models-table] tbody tr")
    expect(rows.first).to_be_visible()
    total = rows.count()
    assert total >= 10
    page.get_by_label("search").fill("efficientdet-lite")
    expect(rows).to_have_count(1)
    page.get_by_label("search").fill("")
    expect(rows).to_have_count(total)
    page.get_by_label("deployable as is").check()
    assert 0 < rows.count() < total
    page.get_by_label("deployable as is").uncheck()
    page.locator("tr", has_text="pytorch-od1-efficientdet-lite0-320").click()
    expect(page.get_by_test_id("model-title")).to_have_text("pytorch-od1-efficientdet-lite0-320")
    expect(page.get_by_test_id("model-defaults")).to_contain_text("learning_rate")
    expect(page.locator("#model-detail dl")).to_contain_text("EfficientDet-Lite0")
    _assert_fits(page)
    _shot(page, test_output, "models")

    # Data: generate the sample dataset; it is validated and drawn.
    page.get_by_role("link", name="Data", exact=True).click()
    page.get_by_label("Images (synthetic shapes, 4 classes)").fill("16")
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_test_id("validation-summary")).to_contain_text("Valid", timeout=60_000)
    expect(page.get_by_test_id("class-table")).to_contain_text("triangle")
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=contact-sheet]');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    _assert_fits(page)
    _shot(page, test_output, "data")

    # Train: the form is prefilled; set epochs, start.
    page.get_by_test_id("train-on-dataset").click()
    expect(page).to_have_url(re.compile(r"/train\?training="))
    expect(page.locator("#model-id")).to_have_value("pytorch-od1-efficientdet-lite0-320")
    epochs = page.locator("#hp-epochs")
    expect(epochs).to_have_value("5")
    expect(page.locator("#training")).to_have_value(re.compile(r"sample-16$"))
    epochs.fill("3")
    _shot(page, test_output, "train")
    page.get_by_role("button", name="Start training").click()

    # Job: live status; the curve appears after the first epoch.
    expect(page).to_have_url(re.compile(r"/jobs/pytorch-od1-efficientdet-lite0-320-"))
    job_url = page.url
    status = page.get_by_test_id("status").first
    expect(status).to_have_text(re.compile("queued|running"))
    assert _chart_points(page, "chart-loss") == 0
    expect(page.get_by_test_id("progress-text")).to_contain_text("epoch 1 of 3", timeout=240_000)
    assert _chart_points(page, "chart-loss") >= 2  # training and validation loss, epoch 0
    page.wait_for_function(
        "() => document.querySelector('[data-testid=chart-loss]').src.includes('epochs=1')"
    )
    _shot(page, test_output, "job-running")

    # Stop (it checkpoints), Resume: it continues, not from the start.
    page.get_by_test_id("stop-job").click()
    expect(status).to_have_text("stopped", timeout=60_000)
    epochs_when_stopped = int(
        re.search(r"epoch (\d) of 3", page.get_by_test_id("progress-text").inner_text()).group(1)
    )
    assert 1 <= epochs_when_stopped < 3
    page.get_by_test_id("resume-job").click()
    expect(status).to_have_text(re.compile("queued|running"))

    # Closing the page loses nothing: a new page finds the job running or done.
    page.close()
    page = browser.new_page(viewport=DESKTOP)
    problems.watch(page)
    page.set_default_timeout(30_000)
    page.goto(job_url)
    status = page.get_by_test_id("status").first
    expect(status).to_have_text("completed", timeout=240_000)
    expect(page.get_by_test_id("progress-text")).to_contain_text("epoch 3 of 3")
    expect(page.get_by_test_id("job-metrics")).to_contain_text("validation mAP")
    assert _chart_points(page, "chart-map") == 6  # 2 series x 3 epochs
    assert _image_loaded(page, "[data-testid=chart-map]")
    expect(page.get_by_test_id("log-tail")).to_contain_text("completed")

    # Evaluate: the report (per-class AP, PR curves, confusion matrix) shows in the page.
    page.get_by_test_id("evaluate-job").click()
    report = page.frame_locator("[data-testid=evaluation-report]")
    expect(report.locator("body")).to_contain_text("confusion", timeout=180_000)
    _shot(page, test_output, "job-completed")

    # Deploy, then try an image from the dataset: boxes are drawn; the slider filters them.
    page.get_by_test_id("deploy-job").click()
    expect(page).to_have_url(re.compile(r"/endpoints/"))
    expect(page.get_by_test_id("status").first).to_have_text("running", timeout=120_000)
    image = sorted((console.home / "datasets" / "sample-16" / "images").iterdir())[0]
    page.locator("#try-image").set_input_files(str(image))
    expect(page.get_by_test_id("raw-answer")).to_contain_text("HTTP 200", timeout=60_000)
    expect(page.get_by_test_id("raw-answer")).to_contain_text("normalized_boxes")
    slider = page.get_by_test_id("score-threshold")
    slider.focus()
    page.keyboard.press("Home")  # threshold 0: every box the model returned
    canvas = page.get_by_test_id("try-canvas")
    expect(canvas).to_be_visible()
    drawn_at_zero = int(canvas.get_attribute("data-boxes"))
    assert drawn_at_zero > 0
    page.keyboard.press("End")  # threshold 1: none
    expect(canvas).to_have_attribute("data-boxes", "0")
    page.keyboard.press("Home")
    expect(canvas).to_have_attribute("data-boxes", str(drawn_at_zero))
    _run_snippets(page, image, console.home)
    _shot(page, test_output, "endpoint-try")

    endpoint_url = page.url

    # Stop the endpoint; the Endpoints page shows it stopped.
    page.get_by_test_id("stop-endpoint").click()
    expect(page.get_by_test_id("status").first).to_have_text("stopped", timeout=60_000)
    page.get_by_role("link", name="Endpoints", exact=True).click()
    expect(page.get_by_test_id("endpoints-table")).to_contain_text("stopped")
    _shot(page, test_output, "endpoints")
    page.get_by_role("link", name="Jobs", exact=True).click()
    expect(page.get_by_test_id("jobs-table")).to_contain_text("completed")
    _shot(page, test_output, "jobs")
    _assert_fits(page)

    # Every page at phone width: usable, nothing wider than the window.
    phone = browser.new_page(viewport=PHONE)
    problems.watch(phone)
    for url in [console.url + path for path in PAGES] + [job_url, endpoint_url]:
        phone.goto(url)
        phone.wait_for_load_state("networkidle")
        _assert_fits(phone)
    _shot(phone, test_output, "phone-endpoint")
    phone.goto(job_url)
    expect(phone.get_by_test_id("job-metrics")).to_be_visible()
    _assert_fits(phone)
    _shot(phone, test_output, "phone-job")
    phone.goto(f"{console.url}/models")
    phone.locator("tr", has_text="pytorch-od1-efficientdet-lite0-320").click()
    expect(phone.get_by_test_id("model-title")).to_be_visible()
    _assert_fits(phone)
    _shot(phone, test_output, "phone-models")
    problems.assert_none()


def _broken_dataset(root: Path) -> Path:
    """Two problems a user makes: a box outside its image and an image file that is missing."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    Image.new("RGB", (64, 48), "white").save(root / "images" / "a.png")
    (root / "annotations.json").write_text(
        '{"images": [{"file_name": "a.png", "height": 48, "width": 64, "id": 1},'
        ' {"file_name": "missing.png", "height": 48, "width": 64, "id": 2}],'
        ' "annotations": [{"image_id": 1, "bbox": [10, 10, 90, 40], "category_id": 1}],'
        ' "categories": [{"id": 1, "name": "thing"}]}'
    )
    return root


def test_bad_input_gets_precise_messages_and_the_console_keeps_working(
    console, browser, test_output, tmp_path
):
    from playwright.sync_api import expect
    from skimage import data as photos

    problems = PageProblems()
    page = browser.new_page(viewport=DESKTOP)
    problems.watch(page)
    page.set_default_timeout(30_000)

    # An invalid dataset: every problem with its file, record and field.
    broken = _broken_dataset(tmp_path / "broken")
    page.goto(f"{console.url}/data")
    page.get_by_label("Local path or s3:// URI").fill(str(broken))
    page.get_by_role("button", name="Validate").click()
    summary = page.get_by_test_id("validation-summary")
    expect(summary).to_contain_text("Invalid: 2 error(s)")
    issues = page.get_by_test_id("issues-table")
    expect(issues).to_contain_text("missing.png")
    expect(issues).to_contain_text("annotations[0]")
    expect(issues).to_contain_text("bbox")
    expect(page.get_by_test_id("train-on-dataset")).to_have_count(0)
    _shot(page, test_output, "bad-dataset")
    page.get_by_label("Local path or s3:// URI").fill(str(tmp_path / "nowhere"))
    page.get_by_role("button", name="Validate").click()
    expect(issues).to_contain_text("dataset folder does not exist")

    # Out-of-range hyperparameters: the library's message next to each field; no job starts.
    page.get_by_role("link", name="Train", exact=True).click()
    epochs = page.locator("#hp-epochs")
    expect(epochs).to_have_value("5")
    page.locator("#training").fill(str(broken))
    epochs.fill("0")
    expect(page.get_by_test_id("hp-error-epochs")).to_have_text(
        "epochs='0': out of range; allowed: an integer >= 1"
    )
    page.locator("#hp-learning_rate").fill("abc")
    expect(page.get_by_test_id("hp-error-learning_rate")).to_contain_text("not a number")
    page.get_by_role("button", name="Start training").click()
    expect(page).to_have_url(re.compile(r"/train"))
    expect(epochs).to_have_class(re.compile("invalid"))
    _shot(page, test_output, "bad-hyperparameters")
    # Fixed values, but the dataset is still the broken one: the message sits by that field.
    epochs.fill("1")
    page.locator("#hp-learning_rate").fill("0.002")
    expect(page.get_by_test_id("hp-error-epochs")).to_have_text("")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_test_id("error-training")).to_contain_text("training dataset is invalid")
    page.get_by_role("link", name="Jobs", exact=True).click()
    expect(page.get_by_text("No jobs yet.")).to_be_visible()

    # Deploy the pretrained person detector as is, from the Models page; try a file that is
    # not an image, then a photo: the endpoint's precise message, then boxes.
    page.get_by_role("link", name="Models", exact=True).click()
    page.get_by_label("deployable as is").check()
    page.get_by_label("works offline").check()
    page.locator("tr", has_text="tensorflow-od1-ssdlite-mobilenet-v2-300x300-person").click()
    page.get_by_test_id("deploy-model").click()
    expect(page).to_have_url(re.compile(r"/endpoints/"))
    expect(page.get_by_test_id("status").first).to_have_text("running", timeout=180_000)
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("these are my notes, not a picture\n")
    page.locator("#try-image").set_input_files(str(not_an_image))
    message = page.get_by_test_id("try-error")
    expect(message).to_contain_text("notes.txt")
    expect(message).to_contain_text(re.compile("not (an|a supported) image", re.IGNORECASE))
    expect(page.get_by_test_id("raw-answer")).to_contain_text(re.compile(r"HTTP 4\d\d"))
    _shot(page, test_output, "bad-upload")

    from PIL import Image

    photo = tmp_path / "astronaut.png"
    buffer = io.BytesIO()
    Image.fromarray(photos.astronaut()).save(buffer, format="PNG")
    photo.write_bytes(buffer.getvalue())
    page.locator("#try-image").set_input_files(str(photo))
    expect(page.get_by_test_id("raw-answer")).to_contain_text("HTTP 200", timeout=60_000)
    expect(page.get_by_test_id("raw-answer")).to_contain_text('"person"')
    expect(message).to_have_count(0)
    canvas = page.get_by_test_id("try-canvas")
    expect(canvas).not_to_have_attribute("data-boxes", "0")
    _shot(page, test_output, "deployed-as-is")
    page.get_by_test_id("stop-endpoint").click()
    expect(page.get_by_test_id("status").first).to_have_text("stopped", timeout=60_000)
    problems.assert_none()
