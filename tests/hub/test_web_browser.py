"""The web view in a real browser: headless Chromium (Debian's) driven through Selenium.

Clicks from the repository list to a file, plays a WAV to its end, follows a commit's diff,
and signs in with a token to see a private repository (404 before). Each page's screenshot is
kept under ``test-artefacts/web/`` (git-ignored); the path is printed. Chromium runs with a
fresh profile and everything that would reach the network turned off.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures import missing, start_hub
from test_web_site import WAV_SECONDS, seed_site

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "web"
WAIT_S = 20.0


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chromium = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    driver_bin = shutil.which("chromedriver") or (
        CHROMEDRIVER if Path(CHROMEDRIVER).exists() else None
    )
    if not chromium or not driver_bin:
        missing("chromium and chromedriver are not installed (Debian: chromium, chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium  # type: ignore[assignment]
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(driver_bin))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(check: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_browse_play_diff_and_sign_in(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    hub = start_hub(tmp_path)
    try:
        site = seed_site(hub, tmp_path)
        shutil.rmtree(ARTEFACTS, ignore_errors=True)  # this run's pages only
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        shots: list[Path] = []

        def shot(name: str) -> None:
            path = ARTEFACTS / f"{len(shots) + 1:02d}-{name}.png"
            browser.save_screenshot(str(path))
            shots.append(path)

        b = browser
        b.get(hub.url + "/")
        assert b.title.startswith("Repositories")
        shot("index")
        b.find_element(By.LINK_TEXT, "alice/song").click()
        _wait(lambda: b.current_url.endswith("/alice/song"), "the repository page")
        readme = b.find_element(By.ID, "readme").text
        assert '<script>alert("readme")</script>' in readme  # shown as text, never run
        assert b.title.endswith("MuseHub") and "pwned" not in b.title
        shot("repository")

        # down to the WAV, and play it to its end
        b.find_element(By.LINK_TEXT, "audio/").click()
        b.find_element(By.LINK_TEXT, "tone.wav").click()
        audio = _wait(lambda: b.find_elements(By.ID, "audio"), "the audio element")[0]
        duration = _wait(
            lambda: b.execute_script(
                "const d = arguments[0].duration; return isFinite(d) && d > 0 ? d : null;", audio
            ),
            "the audio's metadata",
        )
        assert abs(duration - WAV_SECONDS) < 0.05, duration
        assert "Duration" in b.find_element(By.ID, "audio-info").text
        b.execute_script("arguments[0].muted = true; arguments[0].play();", audio)
        _wait(lambda: b.execute_script("return arguments[0].ended;", audio), "the audio's end")
        played = b.execute_script("return arguments[0].currentTime;", audio)
        assert abs(played - WAV_SECONDS) < 0.05, played
        shot("audio")

        # an image, shown (served inline as image/png under the page's CSP)
        b.get(hub.url + "/alice/song/blob/main/art/cover.png")
        image = b.find_element(By.ID, "image")
        width = _wait(
            lambda: b.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth;", image
            ),
            "the image",
        )
        assert width == 24
        shot("image")

        # a highlighted source file
        b.get(hub.url + "/alice/song/tree/main")
        b.find_element(By.LINK_TEXT, "src/").click()
        b.find_element(By.LINK_TEXT, "main.py").click()
        _wait(lambda: b.find_elements(By.CSS_SELECTOR, ".highlight"), "highlighted code")
        assert "print(hello())" in b.find_element(By.CSS_SELECTOR, ".code").text
        shot("file")

        # the log, then a commit's diff
        b.find_element(By.ID, "commits-link").click()
        _wait(lambda: b.find_elements(By.ID, "commits"), "the commit log")
        shot("commits")
        b.find_element(By.LINK_TEXT, "louder hello").click()
        _wait(lambda: b.find_elements(By.ID, "diff-summary"), "the commit page")
        assert site.main in b.page_source
        diff_text = b.find_element(By.TAG_NAME, "main").text
        assert "src/main.py" in diff_text and "data/blob.dat" in diff_text
        if importlib.util.find_spec("muse.core.textdiff") is not None:
            assert "print(hello())" in diff_text  # an added line of the unified diff
        shot("commit")

        # a raw HTML file never runs as the hub's page
        b.get(hub.url + "/alice/song/raw/main/web/evil.html")
        assert b.title != "pwned"
        assert "<script>" in b.find_element(By.TAG_NAME, "body").text

        # the private repository: 404, then signed in with the token
        b.get(hub.url + "/alice/secret")
        assert "404" in b.find_element(By.TAG_NAME, "h1").text
        assert "hidden.txt" not in b.page_source
        shot("private-404")
        b.find_element(By.ID, "sign-in").click()
        _wait(lambda: b.find_elements(By.ID, "token"), "the sign-in form")
        shot("sign-in")
        b.find_element(By.ID, "token").send_keys(site.token)
        b.find_element(By.ID, "login-submit").click()
        _wait(lambda: b.current_url.endswith("/alice/secret"), "the redirect after sign-in")
        # the URL changes before the new page is in: wait for its file list
        _wait(lambda: b.find_elements(By.ID, "files"), "the private repository's files")
        assert "hidden.txt" in b.find_element(By.ID, "files").text
        cookie = b.get_cookie("muse_session")
        assert cookie is not None and cookie["httpOnly"] and site.token not in cookie["value"]
        shot("private-signed-in")
        b.find_element(By.ID, "sign-out").click()
        _wait(lambda: b.find_elements(By.ID, "sign-in"), "signed out")
        b.get(hub.url + "/alice/secret")
        assert "404" in b.find_element(By.TAG_NAME, "h1").text

        print(f"\nscreenshots: {ARTEFACTS} ({len(shots)} pages)")
        assert all(p.stat().st_size > 1000 for p in shots)
        assert not hub.unhandled_errors()
    finally:
        hub.stop()
