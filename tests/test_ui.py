"""The inspector page in a real browser: Debian's chromium driven by selenium through Debian's
chromedriver (nothing is downloaded). Screenshots of each view go to var/ui-*.png (CI artifacts)."""

from __future__ import annotations

import json
import os
import shutil

import httpx
import pytest

from conftest import REPO, ScriptedJudge, serving_in_thread
from scribe_rm.api.app import create_app
from scribe_rm.settings import Settings

os.environ["SE_OFFLINE"] = "true"  # selenium manager must never fetch a driver or a browser
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [pytest.mark.model, pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver: scripts/install_system_tools.sh (SCRIBE_TEST_INSTALL_SYSTEM=1)")]
SHOTS = REPO / "var"
XSS = 'Step 1: <img src=x onerror="window.__pwned = 1"> was checked.\nStep 2: <script>window.__pwned = 2</script> done.'


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def base_url():
    with serving_in_thread(create_app(Settings(), judge=ScriptedJudge())) as url:
        yield url


def wait(driver, condition, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def score_in_page(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "trajectory")
    box.clear()
    driver.execute_script("arguments[0].value = arguments[1];", box, text)
    driver.find_element(By.ID, "score-button").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#steps .step") or d.find_element(By.ID, "score-error").text)


def test_the_score_view_shows_what_the_api_answers(browser, base_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{base_url}/ui/")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#example-select option")) > 1)
    Select(browser.find_element(By.ID, "example-select")).select_by_index(1)  # the first example item
    item = json.loads(browser.find_element(By.ID, "trajectory").get_attribute("value"))
    score_in_page(browser, json.dumps(item))
    api = httpx.post(f"{base_url}/score", json={"items": [item]}, timeout=60).json()["results"][0]
    steps = browser.find_elements(By.CSS_SELECTOR, "#steps .step")
    assert len(steps) == api["n_steps"] > 1
    assert [s.find_element(By.CLASS_NAME, "card-name").text for s in steps] == [s["prototype_name"] for s in api["steps"]]
    assert [s.find_element(By.CLASS_NAME, "score").text for s in steps] == \
        [f"score {s['score']:.2f} / 3" for s in api["steps"]]
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=reward]").text == f"reward {api['reward']:.3f}"
    steps[0].click()
    wait(browser, lambda d: "Rubric" in d.find_element(By.ID, "step-detail").text)
    detail = browser.find_element(By.ID, "step-detail").text
    assert "Skill card:" in detail and "Failure modes" in detail  # the judge's system message and the card
    SHOTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(SHOTS / "ui-score.png"))


def test_trajectory_text_is_shown_as_text_and_runs_nothing(browser, base_url):
    from selenium.webdriver.common.by import By

    browser.get(f"{base_url}/ui/")
    score_in_page(browser, XSS)
    assert browser.execute_script("return window.__pwned === undefined")
    shown = browser.find_element(By.ID, "response-view").text
    assert '<img src=x onerror="window.__pwned = 1">' in shown and "<script>window.__pwned = 2</script>" in shown
    assert not browser.find_elements(By.CSS_SELECTOR, "#response-view img, #response-view script")
    headers = httpx.get(f"{base_url}/ui/", timeout=10).headers
    assert "script-src 'self'" in headers["content-security-policy"] and "unsafe" not in headers["content-security-policy"]


def test_library_and_health_views(browser, base_url):
    from selenium.webdriver.common.by import By

    browser.get(f"{base_url}/ui/")
    browser.find_element(By.CSS_SELECTOR, "[data-view=library]").click()
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#card-list li")) >= 40)
    search = browser.find_element(By.ID, "card-search")
    search.send_keys("modular")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#card-list li")) == 1)
    browser.find_element(By.CSS_SELECTOR, "#card-list li").click()
    wait(browser, lambda d: "Anchors" in d.find_element(By.ID, "card-detail").text)
    browser.find_element(By.ID, "route-text").send_keys("Reduce 7^100 modulo 13 with Fermat's little theorem.")
    browser.find_element(By.ID, "route-button").click()
    wait(browser, lambda d: "chosen: math.modular_arithmetic" in d.find_element(By.ID, "route-result").text)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#route-result tr")) == 5  # header, top-3, chosen
    browser.save_screenshot(str(SHOTS / "ui-library.png"))
    browser.find_element(By.CSS_SELECTOR, "[data-view=health]").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-metric='items ok']"))
    assert browser.find_element(By.CSS_SELECTOR, "[data-metric=ready] td").text == "true"
    assert browser.find_element(By.CSS_SELECTOR, "[data-metric='library version'] td").text == \
        httpx.get(f"{base_url}/prototypes").json()["library_version"]
    browser.save_screenshot(str(SHOTS / "ui-health.png"))


def test_with_keys_the_page_asks_for_one_and_works_with_it(browser):
    from selenium.webdriver.common.by import By

    with serving_in_thread(create_app(Settings(api_keys=["ui-key"]), judge=ScriptedJudge())) as url:
        assert httpx.post(f"{url}/score", json={"items": [{"id": "a", "response": "x"}]}).status_code == 401
        browser.get(f"{url}/ui/")
        wait(browser, lambda d: d.find_element(By.ID, "key-form").is_displayed())
        score_in_page(browser, "Step 1: GOOD check.\nStep 2: done.")
        assert "401" in browser.find_element(By.ID, "score-error").text
        browser.find_element(By.ID, "key-input").send_keys("ui-key")
        browser.find_element(By.ID, "key-submit").click()
        score_in_page(browser, "Step 1: GOOD check.\nStep 2: done.")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#steps .step")) == 2
