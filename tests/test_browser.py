"""The web page in a real browser: headless Chromium driven by selenium, against a uvicorn server
on 127.0.0.1. Skips with one line where selenium, Chromium or chromedriver is missing
(apt-get install chromium chromium-driver; pip install -r requirements-serve.txt).

MELODY_SCREENSHOT=docs/web_page.png also writes the laptop-width screenshot there."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import HOSTILE_TRACK, ROOT, serving_rows

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")
MISSING = ("the serving extra (pip install -r requirements-serve.txt)"
           if any(importlib.util.find_spec(m) is None for m in ("fastapi", "fastapi_offline", "uvicorn", "selenium"))
           else "Chromium and its driver (apt-get install chromium chromium-driver)" if not (CHROMIUM and DRIVER)
           else None)
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"needs {MISSING}")
WAIT = 20  # seconds a step may take on a busy machine


@pytest.fixture(scope="module")
def server(serving_checkpoint):
    """The app served by uvicorn on 127.0.0.1 and a free port, in a thread; yields its URL."""
    import uvicorn

    from melody_map.server import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(serving_checkpoint, say=lambda line: None), host="127.0.0.1", port=port,
                            log_level="warning", access_log=False)
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.time() + WAIT
    while not running.started and time.time() < deadline:
        time.sleep(0.05)
    assert running.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(10)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)  # Debian's driver, not selenium-manager
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


def wait_for(driver, test, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(lambda d: test(d), message=f"waiting for {what}")


def pick(driver, input_id: str, text: str, suggestion: str | None = None) -> None:
    """Type ``text`` into a combo box and click its suggestion (the one reading ``suggestion``, or the first)."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, input_id)
    box.clear()
    box.send_keys(text)
    items = wait_for(driver, lambda d: [i for i in d.find_elements(By.CSS_SELECTOR, f"#{input_id} + ul li")
                                         if i.is_displayed()], "suggestions")
    chosen = next(i for i in items if suggestion is None or i.text == suggestion)
    chosen.click()


def titles(driver, list_id: str, k: int) -> list[str]:
    from selenium.webdriver.common.by import By

    wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, f"#{list_id} li.rec")) == k, f"{k} results")
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, f"#{list_id} li.rec .title")]


def test_pick_a_user_then_a_new_listener(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server)
    wait_for(browser, lambda d: "GCN+ChebyCF" in d.find_element(By.ID, "model").text, "the model's line")
    k = browser.find_element(By.ID, "k")
    k.clear()
    k.send_keys("6")
    user = next(r[0] for r in serving_rows() if r[0].startswith("01"))
    pick(browser, "user-input", user[:8], user)
    names = titles(browser, "user-recs", 6)
    assert all(names) and all(n.startswith("Song ") for n in names)
    reasons = browser.find_elements(By.CSS_SELECTOR, "#user-recs li.rec .why")
    assert reasons and all("Artist 1-" in r.text for r in reasons)  # the user's own community's tracks
    assert browser.find_element(By.ID, "user-info").text.startswith("user ")

    pick(browser, "track-input", "artist 0-3 - song 1", "Artist 0-3 - Song 13")
    pick(browser, "track-input", "artist 0-4 - song", None)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chosen li")) == 2
    browser.find_element(By.ID, "new-button").click()
    assert len(titles(browser, "new-recs", 6)) == 6
    artists = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#new-recs li.rec .artist")]
    assert sum(a.startswith(("Artist 0-", "<script>")) for a in artists) >= 5, artists

    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("MELODY_SCREENSHOT"):
        target = Path(os.environ["MELODY_SCREENSHOT"])
        target = target if target.is_absolute() else ROOT / target
        browser.set_window_size(1280, max(900, browser.execute_script("return document.body.scrollHeight") + 120))
        browser.save_screenshot(str(target))


def test_phone_width_fits_and_continues_a_playlist(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.set_window_size(390, 844)
    browser.get(server)
    user = next(r[0] for r in serving_rows() if r[0].startswith("00"))
    pick(browser, "user-input", user[:10], user)
    assert len(titles(browser, "user-recs", 10)) == 10
    Select(browser.find_element(By.ID, "playlist-select")).select_by_visible_text("Mix 0")
    browser.find_element(By.ID, "continue-button").click()
    assert len(titles(browser, "continue-recs", 10)) == 10
    browser.find_element(By.CSS_SELECTOR, "#plot-box summary").click()
    wait_for(browser, lambda d: d.execute_script("const i = document.getElementById('plot');"
                                                 "return i.complete && i.naturalWidth > 0"), "the picture")
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than a phone's screen"
    assert browser.save_screenshot(str(tmp_path / "phone.png"))


def test_a_hostile_track_name_shows_as_text(server, browser):
    """A track named like an image tag with an onerror handler is shown literally and runs nothing."""
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    have = {r[0] for r in serving_rows() if r[2] == HOSTILE_TRACK}
    victim = next(r[0] for r in serving_rows() if r[0].startswith("00") and r[0] not in have)
    browser.get(server)
    pick(browser, "user-input", victim, victim)
    names = titles(browser, "user-recs", 10)
    assert HOSTILE_TRACK in names
    pick(browser, "track-input", "onerror", f"<script>alert('artist')</script> - {HOSTILE_TRACK}")
    assert HOSTILE_TRACK in browser.find_element(By.ID, "chosen").text
    assert not browser.find_elements(By.CSS_SELECTOR, "img[src='x'], main script")
    time.sleep(0.3)  # an onerror would have fired by now
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text


def test_the_api_docs_render_without_outside_network(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{server}/docs")
    title = lambda d: " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, ".info .title"))  # noqa: E731
    wait_for(browser, lambda d: "Melody Map" in title(d), "the API docs' title")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".opblock")) >= 10  # every endpoint listed
