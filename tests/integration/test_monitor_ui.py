"""The monitor's web UI in a real headless Chromium (selenium + Debian's chromium-driver).

Run with ``make test-ui`` (installs chromium and chromium-driver via scripts/setup_browser.sh)
or ``pytest -m browser``. The real service runs under uvicorn on a free loopback port with
the tiny FunASR emotion2vec+ model; a rule summing all nine classes makes the alert certain.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from test_monitor_service import CLASSES, TOKEN, make_settings, wav_bytes, write_rules

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def service(tmp_path, tiny_e2v_dir):
    import uvicorn

    from mmemo.inference.predictor import Predictor
    from mmemo.monitor.service import create_app

    write_rules(tmp_path / "rules.yaml")
    app = create_app(make_settings(tmp_path), Predictor.from_source(tiny_e2v_dir))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("chromium and chromedriver are needed: run scripts/setup_browser.sh (make test-ui does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_upload_shows_result_and_alert(service, browser, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    clip = tmp_path / "customer_call.wav"
    clip.write_bytes(wav_bytes(1.5, seed=7))

    browser.get(service + "/")
    assert browser.current_url.endswith("/ui/index.html")
    # without a token the API refuses and the UI asks for it
    wait.until(ec.text_to_be_present_in_element((By.ID, "token-status"), "token missing or wrong"))
    browser.find_element(By.ID, "token-input").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "model-info"), "9 classes"))

    browser.find_element(By.ID, "analyze-channel").clear()
    browser.find_element(By.ID, "analyze-channel").send_keys("line-3")
    browser.find_element(By.ID, "file-input").send_keys(str(clip))
    browser.find_element(By.ID, "analyze-btn").click()

    wait.until(ec.visibility_of_element_located((By.ID, "result")))
    label = browser.find_element(By.ID, "result-label").text
    assert label in CLASSES
    bars = browser.find_elements(By.CSS_SELECTOR, "#score-bars .bar")
    assert len(bars) == len(CLASSES) and bars[0].find_element(By.CLASS_NAME, "bar-label").text == label
    assert "customer_call.wav" in browser.find_element(By.ID, "result-meta").text
    wait.until(ec.text_to_be_present_in_element((By.ID, "result-alerts"), "anything"))
    # the timeline canvas was drawn on (not blank)
    drawn = browser.execute_script(
        "const c = document.getElementById('timeline-canvas');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;")
    assert drawn > 1000

    # the alert appears in the alert log and raises the header badge
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab='alerts']").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "alert-log"), "anything"))
    assert "line-3" in browser.find_element(By.ID, "alert-log").text
    wait.until(lambda driver: driver.find_element(By.ID, "alert-badge").text.startswith(("1 ", "2 ")))

    # history shows the stored record; charts count it
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab='history']").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "history-rows"), "customer_call.wav"))
    assert label in browser.find_element(By.ID, "history-rows").text
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab='charts']").click()
    time.sleep(1)
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None
    # no JavaScript errors; the only failed request is the deliberate one without a token
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]]
    assert severe == []


def test_live_stream_view_streams_a_file_over_the_websocket(service, browser, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    clip = tmp_path / "live.wav"
    clip.write_bytes(wav_bytes(2.0, seed=9))
    browser.get(service + "/ui/index.html")
    browser.execute_script(f"localStorage.setItem('mmemo-token', '{TOKEN}');")  # as if saved earlier
    browser.refresh()
    wait.until(ec.text_to_be_present_in_element((By.ID, "model-info"), "9 classes"))
    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab='live']").click()
    browser.find_element(By.ID, "live-file").send_keys(str(clip))
    browser.find_element(By.ID, "live-file-btn").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "live-alerts"), "anything"))
    assert browser.find_element(By.ID, "live-label").text.split(" ")[0] in CLASSES
    wait.until(ec.text_to_be_present_in_element((By.ID, "live-status"), "stored as record"))
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None
