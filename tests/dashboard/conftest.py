"""Fixtures for the dashboard tests: a real `qwex serve` on loopback, and Debian's headless
Chromium driven through Debian's chromedriver (no browser or driver is downloaded).

Without Chromium the browser tests skip on a laptop and FAIL under CI (env `CI`), like the
other real components (`bash .ci/setup-browser.sh` as root installs it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

# The server helpers of tests/remote (a real `qwex serve`), shared rather than copied.
sys.path.insert(0, str(Path(__file__).parents[1] / "remote"))

from dash_support import started
from server_support import CONFIG, FINAL, Server, wait_final

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOW_TO = "run `bash .ci/setup-browser.sh` as root"
SLOTS = 2
"""The server's worker runs two jobs at a time: a third one waits in its queue."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One started server per module (local backend), with alice and bob (users), root
    (admin) and vera (viewer): its tests use jobs of their own, told apart by their
    submission ids."""
    config = CONFIG.replace("[server]\n", f"[server]\nconcurrency = {SLOTS}\n")
    with started(tmp_path_factory.mktemp("dash"), config) as srv:
        yield srv


@pytest.fixture(autouse=True)
def cancel_leftovers(server: Server) -> Iterator[None]:
    """Each test ends the jobs it left running (the module's server is shared), and waits
    for their end: a run that holds a queue's quota holds it for the next test too."""
    yield
    with server.client("root") as root:
        left = []
        for item in root.get("/jobs", params={"limit": 500}).json()["items"]:
            if item["status"] not in FINAL:
                root.post(f"/jobs/{item['id']}/cancel")
                left.append(item["id"])
        for job_id in left:
            wait_final(root, job_id, timeout=120)


@pytest.fixture(scope="session")
def chromium() -> Iterator[webdriver.Chrome]:
    """One headless Chromium for the session (each test signs in afresh: `browser`)."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        message = f"no {CHROMIUM} and {CHROMEDRIVER} ({HOW_TO})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; under CI this is an error", pytrace=False)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, read by tests
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium: webdriver.Chrome, server: Server) -> Iterator[webdriver.Chrome]:
    """The session's Chromium with no cookie of an earlier test."""
    chromium.get(f"http://127.0.0.1:{server.port}/signin")
    chromium.delete_all_cookies()
    yield chromium
    chromium.delete_all_cookies()
