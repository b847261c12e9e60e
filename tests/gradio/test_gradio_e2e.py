"""The Gradio page in headless Chromium: an example classified by clicking, an error shown as a message."""

from __future__ import annotations

import os
import shutil

import pytest

from app.gradio_app import load_examples

CHROMIUM = os.environ.get("CLAREL_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def page(gradio_url):
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"headless Chromium not found at {CHROMIUM}: apt-get install -y chromium "
                    "(or set CLAREL_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # Playwright gives the browser a fresh temporary profile of its own.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            page.goto(gradio_url + "/", timeout=60_000)
            yield page
        finally:
            browser.close()


def test_click_example_and_classify(page):
    example = load_examples()[0]
    stem = os.path.splitext(os.path.basename(example["image"]))[0]
    page.locator(f"img[src*='{stem}']").first.click()
    # The example fills the description box; the bundled demo run is the default model.
    page.wait_for_function(
        "t => [...document.querySelectorAll('textarea')].some(a => a.value.includes(t))",
        arg=example["expected"] + ":", timeout=60_000,
    )
    page.get_by_role("button", name="Classify").click()
    verdict = page.get_by_text(f"{example['expected']} (", exact=False).last
    verdict.wait_for(timeout=60_000)
    assert "demo-run" in verdict.locator("xpath=..").inner_text()


def test_error_is_shown_as_a_message(page):
    page.locator("textarea").first.fill("Only one: a red bird")
    page.get_by_role("button", name="Classify").click()
    page.get_by_text("at least two are needed", exact=False).first.wait_for(timeout=60_000)
    assert "Traceback" not in page.content()
