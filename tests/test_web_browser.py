"""The one real-browser test: headless Chromium (Debian's `chromium` and `chromium-driver`, driven by selenium)
opens a circle's page served by the bot on 127.0.0.1, checks what a reader sees (the readings, the counts, the
attendance chart, the times in the circle's zone and, since the browser runs the page's script, in the reader's
own zone) and saves a screenshot as a test artifact (test-artifacts/circle-page.png, or $CIRCLEBOT_ARTIFACTS).

Elsewhere it skips, saying how to enable it: `apt-get install chromium chromium-driver` (`.ci/run` does that when
it runs as root) and the test extra (selenium)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, SEED, circle_config, make_settings
from drivers import FakeClock
from web_helpers import start_web_bot

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=412,1400")  # a phone's width
HOW = ("the real-browser test needs Debian's chromium and chromium-driver (apt-get install chromium "
       "chromium-driver; .ci/run installs them when it runs as root) and selenium (pip install -e '.[test]')")


def _browser_or_skip() -> Any:
    try:
        from selenium import webdriver
    except ImportError:
        pytest.skip(HOW)
    if not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)):
        pytest.skip(HOW)
    return webdriver


@pytest.mark.timeout(90)
async def test_a_reader_sees_the_circles_page_in_chromium(tmp_path: Path, clock: FakeClock) -> None:
    webdriver = _browser_or_skip()
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    settings = make_settings(tmp_path, web={"port": 0}, circles=[circle_config()])
    bot = await start_web_bot(settings, clock)
    try:
        d = bot.driver
        await d.say("alice", "rsvp yes")
        await d.say("olga", f"schedule {SEED} 2026-12-03")
        clock.set(datetime(2026, 11, 26, 19, 15, tzinfo=UTC))
        for name in ("alice", "bob"):
            await d.say(name, "here")
        clock.set(datetime(2026, 11, 27, 9, tzinfo=UTC))
        await d.say("carol", "rsvp maybe 2")
        assert bot.app.web is not None
        url = str(bot.client.make_url(bot.path(bot.app.web.page_url(bot.slug))))
        artifacts = Path(os.environ.get("CIRCLEBOT_ARTIFACTS") or REPO / "test-artifacts")
        shot = artifacts / "circle-page.png"

        def browse() -> dict[str, Any]:
            artifacts.mkdir(parents=True, exist_ok=True)
            options = webdriver.ChromeOptions()
            options.binary_location = CHROMIUM
            profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
            for flag in (*FLAGS, f"--user-data-dir={profile}"):
                options.add_argument(flag)
            # the reader is in New York: the page adds their time beside the circle's (London)
            service = Service(executable_path=DRIVER, env={**os.environ, "TZ": "America/New_York"})
            browser = webdriver.Chrome(service=service, options=options)
            try:
                browser.set_page_load_timeout(30)
                browser.get(url)
                seen = {
                    "title": browser.title,
                    "h1": browser.find_element(By.TAG_NAME, "h1").text,
                    "coming": [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#coming ~ ol article")],
                    "past": [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#past ~ ol article")],
                    "bars": len(browser.find_elements(By.CSS_SELECTOR, "svg rect.bar")),
                    "chart": browser.find_element(By.TAG_NAME, "svg").size,
                    "reader": [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".reader-time")],
                    "footer": browser.find_element(By.TAG_NAME, "footer").text,
                    "width": browser.execute_script("return document.documentElement.scrollWidth"),
                    "viewport": browser.execute_script("return window.innerWidth"),
                }
                assert browser.save_screenshot(str(shot))
                seen["shot"] = shot.stat().st_size
                return seen
            finally:
                browser.quit()

        seen = await asyncio.to_thread(browse)  # the page is served by this loop meanwhile
    finally:
        await bot.close()
    assert seen["title"] == seen["h1"] == "Test study circle"
    assert len(seen["coming"]) == 1 and "Thursday 3 December 2026, 19:00 GMT" in seen["coming"][0]
    assert "(your time: Thu, Dec 3, 02:00 PM EST)" in seen["coming"][0]
    assert "RSVPs: 0 coming, 1 maybe, 0 not coming." in seen["coming"][0]
    assert "A revolutionary party was missing" in seen["coming"][0]
    assert len(seen["past"]) == 1 and "2 came." in seen["past"][0]
    assert "alice" not in " ".join(seen["coming"] + seen["past"])  # no names by default
    assert seen["bars"] == 1 and seen["chart"]["width"] > 0
    assert "your own time (America/New_York) is shown beside each" in seen["footer"]
    assert seen["width"] <= seen["viewport"], "the page fits a phone's width"
    assert seen["shot"] > 10_000
