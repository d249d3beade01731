"""The inspector in a real browser, used as a person would: `listen --ui` as a real process,
callbacks posted to its real listener, Chromium driven by Playwright."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers.browser import CHROMIUM_ARGS, REBIND_HOST, require_browser
from helpers.env import AUTH_TOKEN, cli_env
from helpers.procs import Cli
from helpers.receiver import Receiver
from helpers.signing import fields, post_signed

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # require_browser() fails or skips, saying what to install
    pass

pytestmark = pytest.mark.slow
TOKEN = "browser-test-token-abcdefghijkl"
INSPECTOR = re.compile(r"inspector: (http://127\.0\.0\.1:(\d+))/\?token=(\S+)")
LOCAL = re.compile(r"local\s+(http://127\.0\.0\.1:(\d+))")
STORED_SESSION = "5a7e0000-0000-4000-8000-000000000001"


@dataclass
class Stack:
    """A running `verifycli listen --ui --forward-to APP` and what it talks to."""

    cli: Cli
    base: str
    url: str
    listener: str
    listener_port: int
    app: Receiver

    def post(self, form: dict[str, str]) -> None:
        assert post_signed(("127.0.0.1", self.listener_port), "/verify/callback", form, AUTH_TOKEN)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    executable = require_browser()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("inspector")
    with Receiver(status=200, body="your app says ok\n") as app:
        cli = Cli(
            [
                "listen",
                "--no-tunnel",
                "--port",
                "0",
                "--ui",
                "--ui-port",
                "0",
                "--store",
                str(folder / "events.sqlite3"),
                "--forward-to",
                app.url + "/hook",
            ],
            cli_env(VERIFYCLI_UI_TOKEN=TOKEN, PLIVO_AUTH_TOKEN=AUTH_TOKEN),
            cwd=folder,
        )
        try:
            found = cli.wait_for(INSPECTOR)
            local = cli.wait_for(LOCAL)
            running = Stack(
                cli, found.group(1), found.group(0)[11:], local.group(1), int(local.group(2)), app
            )
            # One callback is stored before any page opens.
            running.post(fields(STORED_SESSION, "sent"))
            yield running
        finally:
            cli.stop()


@pytest.fixture
def page(chromium: Browser, stack: Stack) -> Iterator[Page]:
    """A fresh browser profile (no cookie yet) at 1280×800."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


def open_inspector(page: Page, stack: Stack) -> None:
    """Open the printed URL, as a person pastes it."""
    response = page.goto(stack.url)
    assert response is not None and response.status == 200
    assert "token" not in page.url  # traded for the cookie, gone from the address bar
    expect(page.locator("#live")).to_have_text(re.compile("live"))


def row(page: Page, session: str) -> Any:
    return page.locator("#events tbody tr", has_text=session[:8])


def test_stored_callback_shows_and_a_new_one_arrives_without_reload(
    page: Page, stack: Stack
) -> None:
    """The stored callback is listed; a callback posted to the listener appears within a
    second, at the top, in the same page (no navigation)."""
    open_inspector(page, stack)
    expect(row(page, STORED_SESSION)).to_be_visible()
    expect(row(page, STORED_SESSION)).to_contain_text("✓ valid")
    page.evaluate("window.stillTheSamePage = true")
    fresh = "f0e50000-0000-4000-8000-000000000002"
    stack.post(fields(fresh, "delivered"))
    expect(row(page, fresh)).to_be_visible(timeout=1_000)
    first = page.locator("#events tbody tr").first
    expect(first).to_contain_text(fresh[:8])
    expect(first).to_contain_text("delivered")
    # The forward's outcome fills in on the same row.
    expect(row(page, fresh)).to_contain_text(re.compile(r"200 in \d+ ms"))
    assert page.evaluate("window.stillTheSamePage") is True


def test_one_event_whole_and_replay_to_a_real_receiver(page: Page, stack: Stack) -> None:
    """Clicking a row shows the request, signature, answer, forward and curl; Replay sends it to
    a typed URL and shows the receiver's answer."""
    open_inspector(page, stack)
    row(page, STORED_SESSION).click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(page.locator("#request-line")).to_have_text(f"POST {stack.listener}/verify/callback")
    expect(detail).to_contain_text("valid (v2)")
    expect(detail).to_contain_text(STORED_SESSION)
    expect(detail).to_contain_text("first and only delivery")
    expect(detail).to_contain_text(re.compile(rf"{re.escape(stack.app.url)}/hook\s+200 in"))
    expect(page.locator("#curl")).to_contain_text("curl -X POST")
    with Receiver(status=202, body="replay accepted\n") as other:
        page.locator("#replay-url").fill(other.url + "/plivo/verify")
        page.locator("#replay").click()
        expect(page.locator("#replay-status")).to_have_text("202 Accepted")
        expect(page.locator("#replay-body")).to_have_text("replay accepted")
        got = other.wait(1)[0]
    assert got.target == "/plivo/verify"
    assert f"SessionUUID={STORED_SESSION}" in got.body.decode()


def test_replay_defaults_to_the_forward_target(page: Page, stack: Stack) -> None:
    """With --forward-to, the replay box starts with that URL."""
    open_inspector(page, stack)
    row(page, STORED_SESSION).click()
    expect(page.locator("#replay-url")).to_have_value(stack.app.url + "/hook")


def test_filter_by_session_prefix_and_download_the_export(page: Page, stack: Stack) -> None:
    """Typing a session prefix leaves only its callbacks; the download holds just those."""
    other = "0dd50000-0000-4000-8000-000000000003"
    stack.post(fields(other, "queued"))
    open_inspector(page, stack)
    expect(row(page, other)).to_be_visible()
    page.locator("#f-session").fill(STORED_SESSION[:6])
    expect(row(page, other)).to_have_count(0)
    expect(row(page, STORED_SESSION)).to_be_visible()
    with page.expect_download() as waiting:
        page.locator("#dl-jsonl").click()
    download = waiting.value
    assert download.suggested_filename == "verifycli-events.jsonl"
    path = download.path()
    records = [json.loads(line) for line in Path(path).read_text("utf-8").splitlines()]
    assert records and {r["session_uuid"] for r in records} == {STORED_SESSION}


def test_sessions_timeline(page: Page, stack: Stack) -> None:
    """The Sessions tab shows each session with its statuses in order."""
    session = "7177e000-0000-4000-8000-000000000004"
    for status in ("queued", "sent", "delivered"):
        stack.post(fields(session, status))
    open_inspector(page, stack)
    page.locator("#tab-sessions").click()
    card = page.locator(".session", has_text=session)
    expect(card).to_contain_text("3 callbacks · 1 attempt · 0 retries")
    expect(card.locator("tr")).to_have_count(3)
    expect(card.locator("tr").nth(2)).to_contain_text("delivered")


def test_hostile_markup_shows_as_text_and_runs_nothing(page: Page, stack: Stack) -> None:
    """Fields carrying <script> and onerror= markup are shown literally; nothing executes."""
    script = "<script>window.pwned = 'script'</script>"
    image = "<img src=x onerror=\"window.pwned='onerror'\">"
    form = fields("ba5e0000-<b>bold</b>", "sent")
    form.update(Recipient=script, ChannelErrorCode=image, Extra=image)
    stack.post(form)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_inspector(page, stack)
    hostile = page.locator("#events tbody tr", has_text="ba5e0000")
    expect(hostile).to_contain_text(image)
    hostile.click()
    detail = page.locator("#detail")
    expect(detail).to_contain_text(script)
    expect(detail).to_contain_text(image)
    expect(detail).to_contain_text("ba5e0000-<b>bold</b>")
    assert page.locator("img").count() == 0 and page.locator("#detail b").count() == 0
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert errors == []


def test_no_token_and_wrong_token_are_refused(page: Page, stack: Stack) -> None:
    """Without the printed URL's token the browser gets 401 and no page; a wrong one 403."""
    response = page.goto(stack.base + "/")
    assert response is not None and response.status == 401
    assert page.locator("table").count() == 0
    response = page.goto(stack.base + "/api/events")
    assert response is not None and response.status == 401
    response = page.goto(stack.base + "/?token=wrong-token-wrong-token")
    assert response is not None and response.status == 403


def test_a_rebinding_host_is_refused(page: Page, stack: Stack) -> None:
    """A name that resolves to 127.0.0.1 (DNS rebinding) gets 403 even with the token."""
    port = stack.base.rsplit(":", 1)[1]
    response = page.goto(f"http://{REBIND_HOST}:{port}/?token={TOKEN}")
    assert response is not None and response.status == 403
    assert "Host is not allowed" in page.content()


def test_the_listener_port_does_not_serve_the_page(page: Page, stack: Stack) -> None:
    """The port the tunnel exposes captures requests; it never serves the inspector."""
    response = page.goto(stack.listener + "/")
    assert response is not None
    assert "verifycli stored event" in page.content()
    assert page.locator("#events").count() == 0


def test_retry_chain_links_to_the_other_delivery(page: Page, stack: Stack) -> None:
    """A retry's detail links to the first delivery; one click opens it."""
    session = "4e7400000-0000-4000-8000-000000000005"
    stack.post(fields(session, "sent"))
    stack.post(fields(session, "sent"))  # the same callback again: Plivo's retry
    open_inspector(page, stack)
    rows = row(page, session)
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("↻ #")
    rows.first.click()
    detail = page.locator("#detail")
    expect(detail).to_contain_text("this is a retry of #")
    first_id = rows.last.locator("td").first.inner_text()
    detail.locator("button.link", has_text=f"#{first_id}").click()
    expect(detail.locator("h2")).to_contain_text(f"event #{first_id}")
    expect(detail).to_contain_text("this is the first delivery; 1 retries")
