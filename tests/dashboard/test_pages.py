"""The dashboard over plain HTTP: who may see and do what, the headers that keep a browser
safe, and what each page shows. The same pages in a real browser: test_browser.py."""

from __future__ import annotations

import re
import statistics
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from dash_support import csrf_of, job, root_url, signed_in
from server_support import Server, gate_command, wait_final, wait_status

pytestmark = pytest.mark.serve


def test_signed_out_requests_get_the_sign_in_page_never_data(server: Server) -> None:
    made = job(server, "alice", "so-1", ["echo", "secret-plan-7"], name="secret-plan")
    wait_final(server.client("alice"), made["id"])
    root = root_url(server)
    for path in ("/", "/queue", f"/runs/{made['id']}", f"/runs/{made['id']}/logs/stdout"):
        answer = httpx.get(root + path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/signin"), path
        assert "secret-plan" not in answer.text
        page = httpx.get(root + path, follow_redirects=True)
        assert page.status_code == 200 and 'name="token"' in page.text
        assert "secret-plan" not in page.text
    for path in (f"/runs/{made['id']}/follow", f"/runs.json?id={made['id']}"):
        answer = httpx.get(root + path)
        assert answer.status_code == 401 and "secret-plan" not in answer.text
    forged = httpx.get(root + "/", cookies={"qwex_session": "made-up"})
    assert forged.status_code == 303


def test_sign_in_gives_a_strict_http_only_cookie_and_a_wrong_token_none(server: Server) -> None:
    root = root_url(server)
    wrong = httpx.post(root + "/signin", data={"token": "qwex_" + "x" * 43})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    assert "set-cookie" not in wrong.headers
    answer = httpx.post(root + "/signin", data={"token": server.tokens["alice"]})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("qwex_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert server.tokens["alice"] not in cookie
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        away = httpx.post(root + "/signin", data={"token": server.tokens["bob"], "next": elsewhere})
        assert away.headers["location"] == "/", elsewhere  # never sent to another site
    back = httpx.post(root + "/signin", data={"token": server.tokens["bob"], "next": "/queue"})
    assert back.headers["location"] == "/queue"
    foreign = httpx.post(
        root + "/signin",
        data={"token": server.tokens["bob"]},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    empty = httpx.post(root + "/signin", data={})
    assert empty.status_code == 422 and "Traceback" not in empty.text


def test_every_page_forbids_inline_scripts(server: Server) -> None:
    made = job(server, "alice", "csp-1", ["true"])
    with signed_in(server, "alice") as alice:
        anonymous = httpx.Client(base_url=root_url(server))
        pages = ("/", "/queue", f"/runs/{made['id']}", f"/runs/{made['id']}/cancel", "/signin")
        for path in pages:
            page = (anonymous if path == "/signin" else alice).get(path)
            assert page.status_code == 200, path
            policy = page.headers["content-security-policy"]
            scripts = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
            assert "'self'" in scripts and "unsafe-inline" not in scripts
            assert "unsafe-eval" not in policy
            assert page.headers["x-content-type-options"] == "nosniff"
            # Every script is a file of the server; no inline script, no handler attribute.
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text), path
            assert not re.search(r"<[^>]*\son[a-z]+=", page.text), path


def test_cancel_needs_the_sessions_csrf_token_and_confirms(server: Server, tmp_path: Path) -> None:
    made = job(server, "alice", "csrf-1", gate_command(str(tmp_path / "gate"), "a", "b"))
    with server.client("alice") as api:
        wait_status(api, made["id"], "running")
    with signed_in(server, "alice") as alice, signed_in(server, "bob") as bob:
        run_page = alice.get(f"/runs/{made['id']}")
        assert f'action="/runs/{made["id"]}/cancel"' in run_page.text
        confirm = alice.get(f"/runs/{made['id']}/cancel")
        assert confirm.status_code == 200 and "Cancel this run?" in confirm.text
        token = csrf_of(confirm)
        target = f"/runs/{made['id']}/cancel"
        assert alice.post(target, data={}).status_code == 403
        assert alice.post(target, data={"csrf": "0" * 64}).status_code == 403
        bobs = csrf_of(bob.get("/"))
        assert alice.post(target, data={"csrf": bobs}).status_code == 403
        assert bob.post(target, data={"csrf": bobs}).status_code == 403  # not his job
        with server.client("alice") as api:
            assert api.get(f"/jobs/{made['id']}").json()["status"] == "running"
        done = alice.post(target, data={"csrf": token})
        assert done.status_code == 303 and done.headers["location"] == f"/runs/{made['id']}"
        with server.client("alice") as api:
            final = wait_final(api, made["id"])
        assert final["status"] == "cancelled" and final["reason"] == "cancelled by alice"


def test_a_viewer_sees_runs_and_cannot_cancel(server: Server, tmp_path: Path) -> None:
    made = job(server, "alice", "view-1", gate_command(str(tmp_path / "gate"), "a", "b"))
    with server.client("alice") as api:
        wait_status(api, made["id"], "running")
    with signed_in(server, "vera") as vera:
        listed = vera.get("/")
        assert made["id"][-12:] in listed.text
        page = vera.get(f"/runs/{made['id']}")
        assert page.status_code == 200
        assert f'action="/runs/{made["id"]}/cancel"' not in page.text
        assert "viewer" in page.text
        refused = vera.post(f"/runs/{made['id']}/cancel", data={"csrf": csrf_of(listed)})
        assert refused.status_code == 403 and "viewer" in refused.text
    with server.client("alice") as api:
        assert api.get(f"/jobs/{made['id']}").json()["status"] == "running"


def test_sign_out_ends_the_session(server: Server) -> None:
    with signed_in(server, "bob") as bob:
        cookie = bob.cookies["qwex_session"]
        page = bob.get("/")
        assert bob.post("/signout", data={}).status_code == 403  # CSRF protected too
        out = bob.post("/signout", data={"csrf": csrf_of(page)})
        assert out.status_code == 303 and out.headers["location"] == "/signin"
        assert (
            'qwex_session=""' in out.headers["set-cookie"]
            or "Max-Age=0" in out.headers["set-cookie"]
        )
    again = httpx.get(root_url(server) + "/", cookies={"qwex_session": cookie})
    assert again.status_code == 303 and again.headers["location"].startswith("/signin")


def test_a_revoked_token_ends_its_sessions(server: Server) -> None:
    server.add_token("tmp-user", "user")
    with signed_in(server, "tmp-user") as tmp:
        assert tmp.get("/").status_code == 200
        revoked = server.cli("serve", "token", "revoke", "tmp-user", *server.db_args())
        assert revoked.returncode == 0, revoked.stderr
        assert tmp.get("/").status_code == 303


def test_the_runs_page_filters_and_pages_in_the_url(server: Server) -> None:
    for i in range(5):
        job(
            server,
            "bob",
            f"flt-{i}",
            ["echo", f"flt-{i}"],
            labels={"team": "ml" if i % 2 else "db"},
        )
    quoted = job(server, "alice", "flt-q", ["sh", "-c", 'echo "say cheese"'])
    last = job(server, "alice", "flt-x", ["echo", "needle-42"], name="needle")
    wait_final(server.client("alice"), last["id"])
    with signed_in(server, "alice") as alice:
        only_bob = alice.get("/", params={"submitter": "bob", "label": "team=ml"})
        assert "echo flt-1" in only_bob.text and "echo flt-3" in only_bob.text
        assert "echo flt-0" not in only_bob.text and "needle" not in only_bob.text
        text = alice.get("/", params={"q": "needle-42"})
        assert "needle-42" in text.text and "flt-1" not in text.text
        assert 'value="needle-42"' in text.text  # the filter stays in the form
        said = alice.get("/", params={"q": 'echo "SAY cheese'})  # as typed: quotes, any case
        assert quoted["id"][-12:] in said.text and "needle-42" not in said.text
        none = alice.get("/", params={"status": "running", "submitter": "bob", "backend": "local"})
        assert "flt-" not in none.text and "No runs" in none.text
        first = alice.get("/", params={"submitter": "bob", "limit": 2})
        assert first.text.count('class="run-row') == 2
        assert "echo flt-4" in first.text and "echo flt-3" in first.text
        older = re.search(r'href="(/\?[^"]*cursor=[0-9]+[^"]*)"[^>]*>Older', first.text)
        assert older, "no link to the older page"
        second = alice.get(older.group(1).replace("&amp;", "&"))
        assert "echo flt-2" in second.text and "echo flt-4" not in second.text
        assert alice.get("/", params={"limit": 100000}).status_code == 200  # capped, not refused
        bad = alice.get("/", params={"label": "no-equals-sign", "status": "bogus"})
        assert bad.status_code == 200 and "Traceback" not in bad.text


def test_statuses_poll_as_small_json(server: Server, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    made = job(server, "alice", "poll-1", gate_command(str(gate), "a", "b"))
    with server.client("alice") as api:
        wait_status(api, made["id"], "running")
    with signed_in(server, "alice") as alice:
        running = alice.get("/runs.json", params={"id": made["id"]}).json()
        assert running[made["id"]]["status"] == "running"
        gate.touch()
        with server.client("alice") as api:
            wait_final(api, made["id"])
        ended = alice.get("/runs.json", params={"id": made["id"]}).json()
        assert ended[made["id"]]["status"] == "succeeded"
        assert ended[made["id"]]["reason"]


def test_one_run_shows_its_timeline_spec_and_logs(server: Server) -> None:
    made = job(
        server,
        "alice",
        "one-1",
        ["sh", "-c", "echo out-line; echo err-line >&2; exit 3"],
        name="the-one",
        labels={"team": "ml"},
        resources={"cpu": 1.5, "memory": "256Mi"},
    )
    wait_final(server.client("alice"), made["id"])
    with signed_in(server, "alice") as alice:
        page = alice.get(f"/runs/{made['id']}").text
        for text in ("the-one", "team", "ml", "1.5", "256Mi", "exit code 3", "echo out-line"):
            assert text in page, text
        timeline = page[page.index('id="timeline"') :]
        assert timeline.index("submitted") < timeline.index("running") < timeline.index("failed")
        out = alice.get(f"/runs/{made['id']}/logs/stdout")
        assert out.status_code == 200 and out.text == "out-line\n"
        assert "attachment" in out.headers["content-disposition"]
        assert alice.get(f"/runs/{made['id']}/logs/stderr").text == "err-line\n"
        assert alice.get(f"/runs/{made['id']}/logs/index").status_code == 404
        missing = alice.get("/runs/no-such-job")
        assert missing.status_code == 404 and "no job no-such-job" in missing.text


def test_the_queue_page_shows_what_waits_and_why(server: Server, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    blockers = [
        job(server, "alice", f"q-block-{i}", gate_command(str(gate), "a", "b")) for i in range(2)
    ]
    with server.client("alice") as api:
        for blocker in blockers:
            wait_status(api, blocker["id"], "running")
    waiting = job(server, "bob", "q-wait", ["echo", "waits"], name="waiter")
    time.sleep(0.3)
    with signed_in(server, "vera") as vera:
        page = vera.get("/queue").text
    assert "waiter" in page and waiting["id"][-12:] in page
    assert "local" in page and "worker" in page  # why: every slot of the workers is taken
    assert "waited" in page.lower()
    gate.touch()


def test_hostile_content_is_text(server: Server) -> None:
    payload = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
    made = job(
        server,
        "alice",
        "xss-1",
        ["sh", "-c", f"echo '{payload}'", payload],
        name="xss",
        labels={"evil": payload},
    )
    wait_final(server.client("alice"), made["id"])
    with signed_in(server, "alice") as alice:
        for path in ("/", f"/runs/{made['id']}", "/?q=<script>"):
            page = alice.get(path).text
            assert "<script>window" not in page and "<img src=x" not in page, path
        assert (
            "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in alice.get(f"/runs/{made['id']}").text
        )


SHAPE = re.compile(
    r'<(?:rect|line) class="(?P<css>[^"]+)" (?:x="[\d.]+" y="(?P<y>[\d.]+)" width="[\d.]+" '
    r'height="(?P<height>[\d.]+)"|x1="[\d.]+" x2="[\d.]+" y1="(?P<y1>[\d.]+)" y2="[\d.]+") '
    r'data-hour="(?P<hour>\d\d:00)" data-key="(?P<key>\w+)" data-value="(?P<value>[\d.]+)"'
)
BASE, TALL = 176.0, 168.0
"""The charts' baseline and plot height in SVG units (services/charts.py)."""


def _shapes(svg: str) -> list[dict[str, str]]:
    return [m.groupdict() for m in SHAPE.finditer(svg)]


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def test_the_queue_charts_draw_the_jobs_numbers(server: Server, tmp_path: Path) -> None:
    """Every bar stands for the jobs the API lists: per hour, submitted by status (stacked,
    each as tall as its count) and the median and longest wait of those that started."""
    gate = tmp_path / "gate"
    made = [job(server, "alice", f"ch-hold-{i}", gate_command(str(gate), "a", "b")) for i in (0, 1)]
    with server.client("alice") as api:
        for held in made:
            wait_status(api, held["id"], "running")
    made += [job(server, "bob", "ch-ok", ["true"]), job(server, "bob", "ch-bad", ["false"])]
    time.sleep(0.5)  # the last two wait half a second for a slot
    gate.touch()
    for each in made:
        wait_final(server.client("alice" if each in made[:2] else "bob"), each["id"])
    with signed_in(server, "vera") as vera:
        page = vera.get("/queue").text
    window = re.search(r'data-from="([^"]+)"', page)
    assert window, "the page says not which hours its charts show"
    start = datetime.fromisoformat(window.group(1))
    with server.client("root") as root:
        listed = root.get("/jobs", params={"limit": 500}).json()["items"]
    counts: dict[tuple[str, str], int] = Counter()
    waits: dict[str, list[float]] = {}
    for item in listed:
        created, started = _when(item["created_at"]), _when(item["started_at"])
        assert created is not None
        if start <= created < start + timedelta(hours=24):
            counts[(created.strftime("%H:00"), item["status"])] += 1
        if started and start <= started < start + timedelta(hours=24):
            waits.setdefault(started.strftime("%H:00"), []).append(
                (started - created).total_seconds()
            )
    assert counts[(made[3]["created_at"][11:13] + ":00", "failed")] >= 1
    assert max(max(w) for w in waits.values()) >= 0.4  # the two that waited for a slot

    runs_svg, waits_svg = page.split('id="chart-runs"')[1].split('id="chart-waits"')
    bars = _shapes(runs_svg)
    assert Counter({(b["hour"], b["key"]): int(b["value"]) for b in bars}) == counts
    scale = {float(b["height"]) / float(b["value"]) for b in bars}
    assert max(scale) - min(scale) < 0.02, "a bar's height is not its count"
    for hour in {b["hour"] for b in bars}:
        stack = [b for b in bars if b["hour"] == hour]
        top = BASE
        for bar in stack:  # stacked from the baseline up, without gap or overlap
            assert abs(float(bar["y"]) + float(bar["height"]) - top) < 0.02
            top = float(bar["y"])

    drawn = _shapes(waits_svg.split("</svg>")[0])
    medians = {d["hour"]: float(d["value"]) for d in drawn if d["key"] == "median"}
    longest = {d["hour"]: float(d["value"]) for d in drawn if d["key"] == "longest"}
    assert medians.keys() == longest.keys() == waits.keys()
    for hour, seconds in waits.items():
        assert abs(medians[hour] - statistics.median(seconds)) < 0.001
        assert abs(longest[hour] - max(seconds)) < 0.001
    highest = min(drawn, key=lambda d: float(d["y1"] or BASE))  # the longest wait's tick
    per_second = (BASE - float(highest["y1"])) / float(highest["value"])
    for d in drawn:  # every median as tall as its seconds, every tick as high, on one scale
        drawn_at = float(d["height"]) if d["key"] == "median" else BASE - float(d["y1"])
        assert abs(drawn_at - float(d["value"]) * per_second) < 0.02, d

    table = page.split('id="activity-table"')[1].split("</table>")[0]
    for (hour, status), count in counts.items():
        row = table.split(f'data-hour="{hour}"')[1].split("</tr>")[0]
        assert f'data-key="{status}">{count}<' in row
    for text in ("Runs submitted per hour", "Queue wait", "<desc", "<title", 'role="img"'):
        assert text in page
    assert "style=" not in page.split('id="activity-section"')[1]  # the CSP allows none
