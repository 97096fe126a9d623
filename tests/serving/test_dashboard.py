"""The clinician dashboard (/ui): in a real browser, and its security rules over HTTP.

The browser tests drive Debian's Chromium (``apt-get install chromium``; ``make test``
installs it) through Playwright against a real uvicorn server on a loopback port,
SQLite storage and the suite's trained champion: sign in, open the caseload, open a
client, record a session, see the risk change, sign out; and "what changed since the
last session" as the API gives it. The HTTP tests run on the ``api`` fixture, SQLite
and PostgreSQL.

``DROPOUT_RISK_SCREENSHOTS=1`` also writes the README's screenshots to docs/.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn

from dropout_risk.serving.app import create_app
from dropout_risk.serving.db import transaction
from dropout_risk.serving.keys import create_key, revoke_key
from dropout_risk.serving.ui import auth
from tests.support.mlflow_store import active_store
from tests.support.serving import login, serving_settings

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DROPOUT_RISK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = os.environ.get("DROPOUT_RISK_SCREENSHOTS")
SEED_CLIENTS = 12
SEED_SESSIONS = 7


# --- a real server with a seeded caseload --------------------------------------------------


@dataclass
class Server:
    url: str
    key: str
    app: object

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)


def _seed(server: Server, sessions_csv: Path, episodes_csv: Path) -> None:
    """A caseload from the simulated cohort: the first sessions of a dozen clients, through /v1."""
    sessions = pd.read_csv(sessions_csv)
    episodes = pd.read_csv(episodes_csv).set_index("client_id")
    counts = sessions.groupby("client_id").size()
    # Half who dropped out, half who did not: a caseload with some risk in it.
    long_enough = episodes.loc[counts[counts >= 5].index]
    dropped = list(long_enough.index[long_enough["status"] == "dropout"][: SEED_CLIENTS // 2])
    stayed = list(long_enough.index[long_enough["status"] != "dropout"][: SEED_CLIENTS - len(dropped)])
    chosen = sorted(dropped + stayed)
    today = dt.date.today()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=30) as http:
        for i, client_id in enumerate(chosen):
            episode = episodes.loc[client_id]
            body = {"age": float(episode["age"]), "gender": str(episode["gender"])}
            assert http.put(f"/v1/clients/{client_id}", json=body).status_code == 200
            rows = sessions[sessions["client_id"] == client_id].head(SEED_SESSIONS - i % 3)
            # Dates moved so the latest session was in the past fortnight, as on a live caseload.
            offset = today - dt.timedelta(days=2 + i % 12) - pd.Timestamp(rows["session_date"].max()).date()
            for row in rows.itertuples():
                date = pd.Timestamp(row.session_date).date() + offset
                scores = {k: float(getattr(row, k)) for k in ("ors", "srs") if pd.notna(getattr(row, k))}
                body = {
                    "session_number": int(row.session_number),
                    "session_date": date.isoformat(),
                    "scores": scores,
                    "missed_since_last": int(row.missed_since_last),
                }
                response = http.post(f"/v1/clients/{client_id}/sessions", json=body)
                assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def server(champion, tmp_path_factory) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard')}/dropout_risk.db"
    with active_store(champion.store):
        app = create_app(serving_settings(url), poll=False)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not uv.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        with transaction(app.state.sessions) as db:
            key, _ = create_key(db, "Riverside Counselling")
        running = Server(f"http://127.0.0.1:{port}", key, app)
        _seed(running, champion.data["sessions"], champion.data["episodes"])
        try:
            yield running
        finally:
            uv.should_exit = True
            thread.join(timeout=10)
            sock.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        reason = f"Chromium not found at {CHROMIUM}: apt-get install chromium (make test does, as root)"
        if os.environ.get("DROPOUT_RISK_REQUIRE_BROWSER"):
            pytest.fail(f"{reason} (required here: DROPOUT_RISK_REQUIRE_BROWSER is set)")
        pytest.skip(reason)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _page(browser, width: int = 768, height: int = 1024):
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
    context.set_default_timeout(15_000)
    return context, context.new_page()


def _sign_in(page, server: Server, key: str | None = None) -> None:
    page.goto(server.url + "/ui/clients")
    assert page.url.endswith("/ui/login")
    page.get_by_label("Clinic API key").fill(key or server.key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/ui/clients$"))


# --- the browser test ----------------------------------------------------------------------


@pytest.mark.browser
def test_sign_in_caseload_client_record_and_see_the_risk_change(server, browser):
    context, page = _page(browser)  # a tablet's width
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    # Signing in: a wrong key is refused without being shown back, the right one lands on the caseload.
    page.goto(server.url + "/ui")
    assert page.url.endswith("/ui/login")
    page.get_by_label("Clinic API key").fill("drk_not-a-real-key")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "That key is unknown or has been revoked."
    assert "not-a-real-key" not in page.content()
    page.get_by_label("Clinic API key").fill(server.key)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/ui/clients$"))
    cookie = next(c for c in context.cookies() if c["name"] == auth.COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert server.key not in cookie["value"]
    assert page.get_by_text("Riverside Counselling").is_visible()

    # The caseload: every client, highest risk first, band in colour and words, a sparkline, flags.
    rows = page.locator("#caseload tbody tr")
    assert rows.count() == SEED_CLIENTS
    risks = [float(p) for p in rows.evaluate_all("rows => rows.map(r => r.dataset.probability)")]
    assert risks == sorted(risks, reverse=True)
    first = rows.first
    assert re.search(r"\d+%\s+(Low|Moderate|High) risk", first.locator(".badge").inner_text())
    assert first.locator("svg.sparkline circle").count() == 1
    assert page.locator("#caseload .chips li").count() > 0  # some flags fire in a simulated caseload
    _check_accessible(page)

    # Keyboard: the first Tab reaches the skip link, which moves focus to the main content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    # Filter the page, then open the lowest-risk client (room for its risk to rise).
    page.get_by_label("Filter this page").fill("no such client")
    assert page.locator("#caseload tbody tr:visible").count() == 0
    page.get_by_label("Filter this page").fill("")
    client_id = rows.last.get_attribute("data-client")
    page.get_by_role("link", name=client_id, exact=True).click()
    page.wait_for_url(re.compile(rf"/ui/clients/{client_id}$"))
    if SCREENSHOTS:
        _screenshot(browser, server, "/ui/clients", ROOT / "docs" / "dashboard-caseload.png")

    # The client: scores with cutoffs and the expected band, risk by session, factors and next steps.
    scores = page.locator("svg.scores-chart")
    assert scores.locator("line.cutoff").count() == 2  # ORS 25 and SRS 36
    assert scores.locator("polygon.expected-band").count() == 1
    assert "ORS cutoff 25" in scores.text_content() and "SRS cutoff 36" in scores.text_content()
    sessions_before = page.locator(".sessions tbody tr").count()
    assert page.locator("svg.risk-chart circle").count() == sessions_before
    assert page.locator(".factors li").count() >= 3
    before = float(page.locator("#current-risk").get_attribute("data-probability"))
    _check_accessible(page)

    # Record a bad session: low ORS and SRS after missed appointments. The risk rises at once.
    page.get_by_role("textbox", name=re.compile(r"^ORS\b")).fill("6")
    page.get_by_role("textbox", name=re.compile(r"^SRS\b")).fill("19,5")  # a decimal comma reads as a point
    page.get_by_label("Missed appointments since the last session").fill("2")
    page.get_by_role("button", name=re.compile(r"^Record session \d+")).click()
    page.wait_for_url(re.compile(rf"/ui/clients/{client_id}\?recorded={sessions_before + 1}$"))
    flash = page.locator("#flash")
    assert flash.is_visible() and f"Session {sessions_before + 1} recorded." in flash.inner_text()
    assert page.evaluate("document.activeElement.id") == "flash"
    after = float(page.locator("#current-risk").get_attribute("data-probability"))
    assert after > before
    assert f"Risk now {round(after * 100)}%" in flash.inner_text()
    assert "up from" in flash.inner_text()
    assert page.locator(".sessions tbody tr").count() == sessions_before + 1
    assert page.locator("svg.risk-chart circle").count() == sessions_before + 1
    assert page.locator(".sessions tbody tr").last.inner_text().split("\t")[3:5] == ["6", "19.5"]

    # The API serves the same risk the page shows.
    api_risk = server.api("GET", f"/v1/clients/{client_id}/risk").json()["risk"]
    assert abs(api_risk["probability"] - after) < 1e-9
    if SCREENSHOTS:
        _screenshot(browser, server, page.url.removeprefix(server.url), ROOT / "docs" / "dashboard-client.png")

    # Everything came from this server, and the key never appeared in a URL.
    assert requested and all(url.startswith(server.url) for url in requested)
    assert not any(server.key in url for url in requested)

    # Signing out ends the session.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/ui/login$"))
    page.goto(server.url + "/ui/clients")
    assert page.url.endswith("/ui/login")
    # ...on the server too: the cookie copied at sign-in, put back, opens nothing (issue 12, item 5).
    context.add_cookies([cookie])
    page.goto(server.url + "/ui/clients")
    assert page.url.endswith("/ui/login")
    page.goto(server.url + f"/ui/clients/{client_id}")
    assert page.url.endswith("/ui/login")
    context.close()


@pytest.mark.browser
def test_what_changed_since_the_last_session_is_the_apis(server, browser):
    """None after session 1; after session 2 the API's steps for it, in its order, with its words and points."""
    with transaction(server.app.state.sessions) as db:
        key, _ = create_key(db, "Northside Therapy")  # a clinic of its own: the seeded caseload stays as it is
    context, page = _page(browser)  # a tablet's width
    _sign_in(page, server, key)
    page.goto(server.url + "/ui/clients/changes-1")
    today = dt.date.today()

    def record(number: int, date: dt.date, ors: str, srs: str, missed: str) -> dict:
        page.get_by_label("Session date").fill(date.isoformat())
        page.get_by_role("textbox", name=re.compile(r"^ORS\b")).fill(ors)
        page.get_by_role("textbox", name=re.compile(r"^SRS\b")).fill(srs)
        page.get_by_label("Missed appointments since the last session").fill(missed)
        page.get_by_role("button", name=f"Record session {number} and update the risk").click()
        page.wait_for_url(re.compile(rf"/ui/clients/changes-1\?recorded={number}$"))
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.get(server.url + "/v1/clients/changes-1/risk", headers=headers, timeout=30).json()

    first = record(1, today - dt.timedelta(days=14), "18", "38", "")
    assert first["risk"]["changes"] == []
    assert page.locator("#changes").count() == 0
    assert page.get_by_role("heading", name="What changed since the last session").count() == 0

    # Session 2, a fortnight's gap with a missed appointment: outcome and alliance both fell.
    second = record(2, today, "15", "31", "1")
    changes, (before, now) = second["risk"]["changes"], second["history"]
    assert [c["concept"] for c in changes] == ["returned", "alliance", "outcome", "attendance"]
    section = page.locator("#changes")
    assert section.is_visible()
    assert page.get_by_role("heading", name="What changed since the last session").is_visible()
    total = section.locator(".change-total").inner_text()
    assert f"Risk {_percent(before['probability'])} after session 1, now {_percent(now['probability'])}" in total
    assert f"{_points(100 * (now['probability'] - before['probability']))} points" in total
    items = section.locator(".change-steps li")
    assert items.count() == len(changes)
    for item, change in zip(items.all(), changes, strict=True):
        assert item.get_attribute("data-concept") == change["concept"]
        assert float(item.get_attribute("data-points")) == change["points"]
        assert item.locator(".change-text").inner_text() == change["text"]
        assert item.locator(".points").inner_text().endswith(f"{_points(change['points'])} points")
    assert "alliance score (SRS) from 38 to 31" in section.inner_text()
    assert "came back for session 2" in section.inner_text()
    _check_accessible(page)
    context.close()


def _percent(probability: float) -> str:
    return f"{round(probability * 100)}%"


def _points(value: float) -> str:
    """Signed, one decimal, as a clinician reads a change: "+8.1", "-4.0", and "0.0" for no visible move."""
    return "0.0" if round(value, 1) == 0 else f"{value:+.1f}"


def _check_accessible(page) -> None:
    """Labelled inputs and no sideways scrolling at this width (768 px, a tablet)."""
    unlabelled = page.evaluate("""() => Array.from(document.querySelectorAll('input:not([type=hidden])'))
        .filter(i => !i.labels || i.labels.length === 0).map(i => i.name || i.id)""")
    assert unlabelled == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator("h1").count() == 1
    images = page.evaluate("""() => Array.from(document.querySelectorAll('svg[role=img]'))
        .filter(s => !s.querySelector('title') || !s.querySelector('desc')).length""")
    assert images == 0


def _screenshot(browser, server: Server, path: str, out: Path) -> None:
    """The README's screenshots: a laptop-width window, signed in, the whole page."""
    context, page = _page(browser, width=1240, height=900)
    _sign_in(page, server)
    page.goto(server.url + path)
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    context.close()
    from PIL import Image  # matplotlib's dependency: a 256-colour palette keeps the file small

    with Image.open(out) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    assert out.stat().st_size < 300_000


# --- the rules, over HTTP (SQLite and PostgreSQL) ------------------------------------------


S1 = {"session_number": 1, "session_date": "2025-03-03", "scores": {"ors": 14.5, "srs": 33.0}}


def test_pages_need_a_session_and_a_form_needs_its_csrf_token(api):
    api.client.cookies.clear()
    for path in ("/ui/clients", "/ui/clients/anyone", "/ui/open?client_id=x"):
        response = api.client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    response = api.client.post("/ui/clients/anyone/sessions", data={"session_number": "1"}, follow_redirects=False)
    assert response.headers["location"] == "/ui/login"
    # Sign-in itself needs the login page's token (no login CSRF).
    response = api.client.post("/ui/login", data={"key": "whatever", "csrf_token": "forged"})
    assert response.status_code == 403
    headers = api.new_clinic()
    login(api, headers)
    response = api.client.post(
        "/ui/clients/x-1/sessions",
        data={"csrf_token": "forged", "session_number": "1", "session_date": "2025-03-03", "score_ors": "14"},
    )
    assert response.status_code == 403
    assert api.client.get("/v1/clients/x-1", headers=headers).status_code == 404  # nothing stored
    api.client.cookies.clear()


def test_a_recorded_session_is_the_apis_and_errors_never_echo_values(api, caplog):
    headers = api.new_clinic()
    csrf = login(api, headers)
    form = {
        "csrf_token": csrf,
        "session_number": "1",
        "session_date": "2025-03-03",
        "score_ors": "14.5",
        "score_srs": "33",
        "missed_since_last": "",
    }
    with caplog.at_level(logging.INFO):
        response = api.client.post("/ui/clients/priv-77/sessions", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/clients/priv-77?recorded=1"
    stored = api.client.get("/v1/clients/priv-77/risk", headers=headers).json()
    assert len(stored["history"]) == 1
    page = api.client.get(response.headers["location"])
    assert "Session 1 recorded." in page.text and f'data-probability="{stored["risk"]["probability"]}"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    server_logs = [r.getMessage() for r in caplog.records if r.name.startswith("dropout_risk")]
    assert "POST /ui/clients/{client_id}/sessions 303" in " ".join(server_logs)
    assert not any("priv-77" in message for message in server_logs)  # route templates only
    # Out of range, not a number, a date going back: field and rule, never the value typed.
    bad = {
        **form,
        "session_number": "2",
        "session_date": "2025-02-01",
        "score_ors": "40.5",
        "score_srs": "lots",
        "missed_since_last": "-3",
    }
    response = api.client.post("/ui/clients/priv-77/sessions", data=bad)
    assert response.status_code == 422
    alert = re.search(r'<div class="alert error" role="alert".*?</div>', response.text, re.S).group(0)
    assert "SRS: Input should be a valid number" in alert
    assert "Missed appointments since the last session: Input should be greater than or equal to 0" in alert
    assert "ORS: must be within 0-40" in alert  # listed with the others, not after they are fixed
    for value in ("40.5", "lots", "-3", "2025-02-01"):
        assert value not in alert
    response = api.client.post("/ui/clients/priv-77/sessions", data={**bad, "score_srs": "30", "missed_since_last": ""})
    alert = re.search(r'<div class="alert error" role="alert".*?</div>', response.text, re.S).group(0)
    assert "ORS: must be within 0-40" in alert and "40.5" not in alert
    response = api.client.post(
        "/ui/clients/priv-77/sessions", data={**bad, "score_ors": "20", "score_srs": "30", "missed_since_last": ""}
    )
    assert "Session date: date is earlier than this client&#39;s previous session" in response.text
    assert len(api.client.get("/v1/clients/priv-77/risk", headers=headers).json()["history"]) == 1
    api.client.cookies.clear()


def test_a_clinic_sees_only_its_own_clients_and_revoking_the_key_signs_out(api):
    other = api.new_clinic()
    assert api.client.post("/v1/clients/theirs/sessions", json=S1, headers=other).status_code == 201
    name, headers = api.add_clinic()
    assert api.client.post("/v1/clients/mine/sessions", json=S1, headers=headers).status_code == 201
    login(api, headers)
    caseload = api.client.get("/ui/clients").text
    assert "mine" in caseload and "theirs" not in caseload and name in caseload
    assert "<li>alliance below cutoff</li>" in caseload  # the latest stored risk's flags (SRS 33 < 36)
    assert caseload.count('class="sparkline"') == 1
    assert "No sessions recorded" in api.client.get("/ui/clients/theirs").text  # as if absent
    # Revoking the key ends the dashboard session at the next request.
    prefix = headers["Authorization"].removeprefix("Bearer ")[:12]
    with transaction(api.app.state.sessions) as db:
        assert revoke_key(db, prefix) == 1
    response = api.client.get("/ui/clients", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    api.client.cookies.clear()


def test_a_tampered_cookie_is_not_a_session(api):
    headers = api.new_clinic()
    login(api, headers)
    value = api.client.cookies.get(auth.COOKIE)
    api.client.cookies.clear()
    api.client.cookies.set(auth.COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path="/ui")
    response = api.client.get("/ui/clients", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    api.client.cookies.clear()


def test_assets_are_local_and_the_page_names_bands_in_words(api):
    for asset in ("app.css", "app.js"):
        response = api.client.get(f"/ui/static/{asset}")
        assert response.status_code == 200
    templates = (ROOT / "serving" / "ui" / "templates").glob("*.html")
    static = (ROOT / "serving" / "ui" / "static").glob("*")
    for path in [*templates, *static]:
        text = path.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path
        assert "@import" not in text and "url(http" not in text, path
    headers = api.new_clinic()
    assert api.client.post("/v1/clients/w-1/sessions", json=S1, headers=headers).status_code == 201
    login(api, headers)
    page = api.client.get("/ui/clients").text
    assert re.search(r'<span class="pct">\d+%</span> (Low|Moderate|High) risk', page)
    api.client.cookies.clear()
