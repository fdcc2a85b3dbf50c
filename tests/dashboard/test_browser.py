"""The dashboard in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver, against a real `qwex serve`. What a person does: sign in, filter,
open a run, watch its log, cancel it, sign out; and what they must never get: a script
planted in a run's content running in their page, a viewer's cancel.

With QWEX_DASHBOARD_SCREENSHOTS=1 the tests save each page into docs/img/ (docs/dashboard.md
shows them); without it they write nothing into the checkout."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import cast

import pytest
from dash_support import job, root_url, signed_in
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait
from server_support import Server, gate_command, wait_final, wait_status

pytestmark = pytest.mark.serve

SHOTS = Path(__file__).parents[2] / "docs" / "img"
PAYLOAD = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def shot(browser: WebDriver, name: str) -> None:
    """The page as a PNG in docs/img/, when QWEX_DASHBOARD_SCREENSHOTS asks for it."""
    if os.environ.get("QWEX_DASHBOARD_SCREENSHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SHOTS / f"dashboard-{name}.png"))


def console(browser: Chrome) -> list[dict[str, str]]:
    """The console's entries since the last call (Chromium's log; Selenium leaves it untyped)."""
    read = cast(Callable[[str], list[dict[str, str]]], browser.get_log)
    return read("browser")


def until(browser: WebDriver, seconds: float = 10) -> WebDriverWait[WebDriver]:
    return WebDriverWait(browser, seconds, poll_frequency=0.02)


def text_of(browser: WebDriver, css: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def sign_in(browser: WebDriver, server: Server, who: str, then: str = "/") -> None:
    """Sign in on the form, as a person would (the form's `next` brings them back)."""
    browser.get(root_url(server) + then)
    field = browser.find_element(By.ID, "token")
    field.send_keys(server.tokens[who])
    browser.find_element(By.ID, "signin").click()
    until(browser).until(lambda b: "/signin" not in b.current_url)


def test_sign_in_filter_and_open_a_run(browser: WebDriver, server: Server) -> None:
    for i in range(3):
        job(server, "bob", f"b-flt-{i}", ["echo", f"bob-{i}"], name=f"bob-{i}")
    mine = job(server, "alice", "b-flt-a", ["sh", "-c", "exit 4"], name="alice-fails")
    wait_final(server.client("alice"), mine["id"])
    browser.get(root_url(server) + "/")
    assert "/signin" in browser.current_url
    shot(browser, "signin")
    sign_in(browser, server, "alice")
    assert browser.find_elements(By.CSS_SELECTOR, "tr.run-row")
    Select(browser.find_element(By.ID, "f-status")).select_by_value("failed")
    browser.find_element(By.ID, "f-submitter").send_keys("alice")
    browser.find_element(By.ID, "filter").click()
    until(browser).until(lambda b: "status=failed" in b.current_url)
    assert "submitter=alice" in browser.current_url  # the filters live in the URL
    names = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "tr.run-row td:nth-child(2)")]
    assert names and set(names) == {"alice-fails"}
    browser.find_element(By.LINK_TEXT, mine["id"].replace("-", "")[-12:]).click()
    until(browser).until(lambda b: f"/runs/{mine['id']}" in b.current_url)
    assert text_of(browser, "#run-status") == "failed"
    assert "exit code 4" in text_of(browser, "#timeline")


def test_a_printed_line_shows_within_a_second(
    browser: WebDriver, server: Server, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    script = (
        f"echo started; until [ -e {gate} ]; do sleep 0.01; done; "
        'echo "printed at $(date +%s.%N)"; sleep 30'
    )
    made = job(server, "alice", "b-live", ["sh", "-c", script], name="live")
    with server.client("alice") as api:
        wait_status(api, made["id"], "running")
    sign_in(browser, server, "alice", f"/runs/{made['id']}")
    until(browser).until(lambda b: "started" in text_of(b, "#log"))
    gate.touch()
    until(browser).until(lambda b: "printed at" in text_of(b, "#log"))
    seen = time.time()
    line = next(x for x in text_of(browser, "#log").splitlines() if x.startswith("printed at"))
    printed = float(line.split()[-1])
    assert seen - printed < 1.0, (
        f"the line reached the page {seen - printed:.2f} s after it was printed"
    )


def test_stdout_and_stderr_show_in_the_order_written(browser: WebDriver, server: Server) -> None:
    script = (
        "echo out-1; sleep 0.1; echo err-1 >&2; sleep 0.1; echo out-2; sleep 0.1; echo err-2 >&2"
    )
    made = job(server, "alice", "b-order", ["sh", "-c", script])
    wait_final(server.client("alice"), made["id"])
    # Opened after the end: the stream sends each file's backlog whole, stdout first; the
    # page puts the pieces back in the order the job wrote them.
    sign_in(browser, server, "alice", f"/runs/{made['id']}")
    until(browser).until(lambda b: "err-2" in text_of(b, "#log"))
    assert text_of(browser, "#log").split() == ["out-1", "err-1", "out-2", "err-2"]
    errors = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#log .stderr")]
    assert [e.strip() for e in errors] == ["err-1", "err-2"]
    shot(browser, "run")


def test_a_long_log_shows_its_last_part_and_downloads_whole(
    browser: WebDriver, server: Server
) -> None:
    script = "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo the-end; echo err-end >&2"
    made = job(server, "alice", "b-long", ["sh", "-c", script])
    wait_final(server.client("alice"), made["id"])
    sign_in(browser, server, "alice", f"/runs/{made['id']}")
    until(browser).until(lambda b: "err-end" in text_of(b, "#log"))
    shown = browser.execute_script("return document.getElementById('log').textContent")
    assert shown.endswith("the-end\nerr-end\n") and len(shown) < 300_000
    assert "the downloads hold all of it" in text_of(browser, "#log-cut")
    with signed_in(server, "alice") as alice:
        whole = alice.get(f"/runs/{made['id']}/logs/stdout")
    assert len(whole.content) == 3_000_000 + len("\nthe-end\n")


def test_cancel_a_run_and_see_it_end(browser: WebDriver, server: Server, tmp_path: Path) -> None:
    made = job(server, "alice", "b-cancel", gate_command(str(tmp_path / "gate"), "a", "b"))
    with server.client("alice") as api:
        wait_status(api, made["id"], "running")
    sign_in(browser, server, "alice", f"/runs/{made['id']}")
    assert text_of(browser, "#run-status") == "running"
    browser.find_element(By.ID, "cancel").click()
    until(browser).until(lambda b: b.find_elements(By.ID, "confirm-cancel"))
    assert "Cancel this run?" in text_of(browser, "h1")
    shot(browser, "cancel")
    browser.find_element(By.ID, "confirm-cancel").click()
    until(browser).until(lambda b: b.current_url.endswith(f"/runs/{made['id']}"))
    until(browser, 20).until(lambda b: text_of(b, "#run-status") == "cancelled")
    assert "cancelled by alice" in text_of(browser, "#run-reason")
    # The history follows without a reload too, with the reason.
    until(browser).until(lambda b: "cancelled by alice" in text_of(b, "#timeline"))
    assert not browser.find_element(By.ID, "cancel-form").is_displayed()


def test_statuses_change_without_a_reload(
    browser: WebDriver, server: Server, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    made = job(server, "alice", "b-live-status", gate_command(str(gate), "a", "b"), name="flips")
    with server.client("alice") as api:
        wait_status(api, made["id"], "running")
    sign_in(browser, server, "alice")
    cell = f"tr[data-id='{made['id']}'] [data-field='status']"
    assert text_of(browser, cell) == "running"
    browser.execute_script("window.__samePage = true")
    gate.touch()
    until(browser).until(lambda b: text_of(b, cell) == "succeeded")
    assert browser.execute_script("return window.__samePage") is True
    shot(browser, "runs")


def test_the_queue_page(browser: WebDriver, server: Server, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    busy = [job(server, "alice", f"b-q-{i}", gate_command(str(gate), "a", "b")) for i in range(2)]
    with server.client("alice") as api:
        for made in busy:
            wait_status(api, made["id"], "running")
    job(server, "bob", "b-q-wait", ["echo", "hi"], name="waits-its-turn")
    sign_in(browser, server, "vera", "/queue")
    assert "waits-its-turn" in text_of(browser, "main")
    assert "free worker slot" in text_of(browser, "main")
    shot(browser, "queue")
    gate.touch()


def test_sign_out_and_be_refused(browser: WebDriver, server: Server) -> None:
    sign_in(browser, server, "bob")
    browser.find_element(By.ID, "signout").click()
    until(browser).until(lambda b: b.current_url.endswith("/signin"))
    browser.get(root_url(server) + "/")
    assert browser.find_elements(By.ID, "token")
    assert not browser.find_elements(By.CSS_SELECTOR, "tr.run-row")


def test_a_page_says_when_its_session_ended(
    browser: WebDriver, server: Server, tmp_path: Path
) -> None:
    made = job(server, "alice", "b-ended", gate_command(str(tmp_path / "gate"), "a", "b"))
    with server.client("alice") as api:
        wait_status(api, made["id"], "running")
    server.add_token("temp-viewer", "viewer")
    sign_in(browser, server, "temp-viewer")
    assert not browser.find_element(By.ID, "signed-out").is_displayed()
    revoked = server.cli("serve", "token", "revoke", "temp-viewer", *server.db_args())
    assert revoked.returncode == 0, revoked.stderr
    until(browser).until(lambda b: b.find_element(By.ID, "signed-out").is_displayed())
    assert "sign in again" in text_of(browser, "#signed-out")


def test_the_pages_break_none_of_their_own_rules(browser: Chrome, server: Server) -> None:
    """The console of every page stays clean: no script, style or request the page's own
    Content-Security-Policy refuses, no script error (a page would be broken silently)."""
    made = job(server, "alice", "b-console", ["sh", "-c", "echo out; echo err >&2"])
    wait_final(server.client("alice"), made["id"])
    browser.get(root_url(server) + "/signin")
    sign_in(browser, server, "alice")
    console(browser)  # what came before
    for path in ("/", "/queue", f"/runs/{made['id']}", f"/runs/{made['id']}/cancel", "/?q=x"):
        browser.get(root_url(server) + path)
        time.sleep(1.2)  # a status poll and the log stream have run
        problems = [e["message"] for e in console(browser) if e["level"] != "INFO"]
        assert not problems, (path, problems)


def test_hostile_content_stays_text(browser: WebDriver, server: Server) -> None:
    made = job(
        server,
        "alice",
        "b-xss",
        ["sh", "-c", f"echo '{PAYLOAD}'; echo '{PAYLOAD}' >&2", PAYLOAD],
        labels={"evil": PAYLOAD},
    )
    # A reason holding the payload: the workdir the job names is not in its snapshot.
    refused = job(
        server, "alice", "b-xss-reason", ["true"], workdir="<script>window.__pwned=3</script>"
    )
    wait_final(server.client("alice"), made["id"])
    assert "<script>" in (wait_final(server.client("alice"), refused["id"])["reason"] or "")
    sign_in(browser, server, "alice")
    for path in ("/", f"/runs/{made['id']}", f"/runs/{refused['id']}"):
        browser.get(root_url(server) + path)
        if path == f"/runs/{made['id']}":
            until(browser).until(lambda b: text_of(b, "#log").count("__pwned=1") == 2)
            assert PAYLOAD in text_of(browser, "#log")
            assert PAYLOAD in text_of(browser, ".details")
        time.sleep(0.3)  # anything planted would have run by now
        assert browser.execute_script("return window.__pwned") is None, path
        assert "<script>window.__pwned" in text_of(browser, "main"), path
        assert not browser.find_elements(By.CSS_SELECTOR, "main img"), path


def test_a_viewer_cannot_cancel(browser: WebDriver, server: Server, tmp_path: Path) -> None:
    made = job(server, "alice", "b-viewer", gate_command(str(tmp_path / "gate"), "a", "b"))
    with server.client("alice") as api:
        wait_status(api, made["id"], "running")
    sign_in(browser, server, "vera", f"/runs/{made['id']}")
    assert text_of(browser, "#run-status") == "running"
    assert not browser.find_elements(By.ID, "cancel")
    assert "viewer" in text_of(browser, "main")
    browser.get(root_url(server) + f"/runs/{made['id']}/cancel")
    assert "cannot cancel" in text_of(browser, "main")
    with server.client("alice") as api:
        assert api.get(f"/jobs/{made['id']}").json()["status"] == "running"


def test_the_keyboard_reaches_everything_in_order_with_focus_shown(
    browser: WebDriver, server: Server
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    job(server, "alice", "b-keys", ["true"])
    sign_in(browser, server, "alice")
    reached = []
    for _ in range(9):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused = browser.switch_to.active_element
        outline = browser.execute_script(
            "return getComputedStyle(arguments[0]).outlineStyle", focused
        )
        assert outline not in ("none", ""), focused.get_attribute("outerHTML")
        reached.append(focused.get_attribute("id") or focused.text)
    assert reached == [
        "Skip to content",
        "Runs",
        "Queue",
        "signout",
        "f-status",
        "f-backend",
        "f-submitter",
        "f-label",
        "f-q",
    ]


AXE = files("axe_selenium_python") / "node_modules" / "axe-core" / "axe.min.js"
"""axe-core as the pinned axe-selenium-python-nhsuk wheel ships it (TEST_DEPS): read from the
installed package and injected into the page, nothing fetched."""
SERIOUS = ("serious", "critical")


def axe_violations(browser: WebDriver) -> list[str]:
    """axe-core's serious and critical findings on the page shown, one line each."""
    browser.execute_script(AXE.read_text(encoding="utf-8"))
    browser.set_script_timeout(30)
    results = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document).then(r => done(r.violations), e => done([{id: 'axe-error',"
        " impact: 'critical', help: String(e), nodes: []}]));"
    )
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at "
        + "; ".join(str(n.get("target")) for n in v["nodes"][:3])
        for v in results
        if v.get("impact") in SERIOUS
    ]


def test_every_page_passes_the_accessibility_check(browser: WebDriver, server: Server) -> None:
    made = job(server, "alice", "b-axe", ["sh", "-c", "echo out; echo err >&2"], labels={"k": "v"})
    wait_final(server.client("alice"), made["id"])
    browser.get(root_url(server) + "/signin")
    found = {"/signin": axe_violations(browser)}
    sign_in(browser, server, "alice")
    for path in ("/", f"/runs/{made['id']}", f"/runs/{made['id']}/cancel", "/queue"):
        browser.get(root_url(server) + path)
        if path == f"/runs/{made['id']}":
            until(browser).until(lambda b: "err" in text_of(b, "#log"))
        if path == "/queue":  # the charts' table is checked open (axe skips hidden parts)
            browser.find_element(By.CSS_SELECTOR, ".numbers summary").click()
            assert browser.find_element(By.ID, "activity-table").is_displayed()
        found[path] = axe_violations(browser)
    assert not any(found.values()), found
