"""The inspector over plain HTTP: who gets in (token, Host, origin), the headers that keep
callback content inert, and the JSON API, live stream, replay and downloads over a real
listener's store."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers.env import AUTH_TOKEN
from helpers.receiver import Receiver
from helpers.signing import DELIVERED as FIELDS
from yarl import URL

from verifycli.errors import ConfigError
from verifycli.inspector import InspectorOptions, RunningInspector, serve_inspector
from verifycli.inspector.app import as_curl
from verifycli.inspector.guard import CSP, Guard
from verifycli.listener import Listener
from verifycli.signature import signed_headers
from verifycli.store import StoreReader

TOKEN = "test-inspector-token-0123456789"


@pytest.fixture
async def inspector(listener: Listener) -> AsyncIterator[RunningInspector]:
    """An inspector on a free port over the listener's store, fed by the listener."""
    handle = await serve_inspector(
        listener.store.path, InspectorOptions(port=0, token=TOKEN, listener_port=None)
    )
    listener.sinks.extend(handle.sinks)
    yield handle
    await handle.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # A cookie jar that keeps cookies for IP hosts, as browsers do.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


async def post_callback(
    http: aiohttp.ClientSession, listener: Listener, **changes: str
) -> dict[str, Any]:
    """A signed Verify callback posted to the real listener; returns the stored record."""
    fields = {**FIELDS, **changes}
    url = listener.local_url + "/verify/callback"
    headers = signed_headers("POST", url, fields, AUTH_TOKEN)
    async with http.post(url, data=fields, headers=headers) as response:
        assert response.status == 200
    return next(StoreReader(listener.store.path).iter_records(limit=1))


async def get(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, str, Any]:
    async with http.get(url, allow_redirects=False, **kw) as response:
        return response.status, await response.text(), response.headers


# -- who gets in ---------------------------------------------------------------------------


async def test_no_token_gets_401_and_no_data(
    inspector: RunningInspector, http: aiohttp.ClientSession
) -> None:
    """Without the token, neither the page nor any API answers with content."""
    for path in ("/", "/static/app.js", "/api/events", "/api/events/1", "/api/export"):
        status, text, _ = await get(http, inspector.base + path)
        assert status == 401, path
        assert "token" in text and "<html" not in text


async def test_wrong_token_gets_403(
    inspector: RunningInspector, http: aiohttp.ClientSession
) -> None:
    """A wrong token, in the URL, a header or a cookie, is refused."""
    status, _, _ = await get(http, inspector.base + "/?token=not-the-token")
    assert status == 403
    status, _, _ = await get(
        http, inspector.base + "/api/events", headers={"Authorization": "Bearer nope"}
    )
    assert status == 403
    name = f"verifycli_ui_{URL(inspector.base).port}"
    status, _, _ = await get(http, inspector.base + "/api/events", cookies={name: "nope"})
    assert status == 403


async def test_token_is_traded_for_a_strict_httponly_cookie(
    inspector: RunningInspector, http: aiohttp.ClientSession
) -> None:
    """The printed URL sets an HttpOnly SameSite=Strict cookie and drops the token from the
    address bar; the cookie then opens the page."""
    status, _, headers = await get(http, inspector.url)
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, text, _ = await get(http, inspector.base + "/")
    assert status == 200 and '<script type="module" src="/static/app.js">' in text


async def test_foreign_host_is_refused_even_with_the_token(
    inspector: RunningInspector, http: aiohttp.ClientSession
) -> None:
    """A page on a rebinding domain (evil.example → 127.0.0.1) gets 403, token or not."""
    port = URL(inspector.base).port
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}", ""):
        status, _, _ = await get(
            http, inspector.base + "/api/events", headers={**auth(), "Host": host}
        )
        assert status == 403, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        status, _, _ = await get(
            http, inspector.base + "/api/events", headers={**auth(), "Host": host}
        )
        assert status == 200, host


def test_host_rule_for_other_bindings() -> None:
    """Bound to all interfaces, IP literals pass and names other than localhost do not."""
    wild = Guard(TOKEN, "0.0.0.0", 4050)
    assert wild.host_allowed("192.168.1.20:4050") and wild.host_allowed("localhost:4050")
    assert not wild.host_allowed("rebind.example:4050")
    assert not wild.host_allowed("192.168.1.20:4051")
    six = Guard(TOKEN, "::1", 4050)
    assert six.host_allowed("[::1]:4050") and not six.host_allowed("[::2]:4050")


async def test_cross_site_writes_are_refused(
    inspector: RunningInspector, http: aiohttp.ClientSession, listener: Listener
) -> None:
    """A replay carrying the cookie but sent from another origin is refused before it runs."""
    record = await post_callback(http, listener)
    await get(http, inspector.url)  # the cookie
    url = f"{inspector.base}/api/events/{record['id']}/replay"
    for headers in (
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {},
    ):
        async with http.post(url, json={"url": "http://127.0.0.1:9/"}, headers=headers) as r:
            assert r.status == 403, headers
            assert "cross-site" in await r.text()


async def test_every_answer_carries_a_strict_csp(
    inspector: RunningInspector, http: aiohttp.ClientSession
) -> None:
    """The page, the API and refusals all say default-src 'self' and no framing or sniffing."""
    for path, headers in (("/", auth()), ("/api/events", auth()), ("/", {})):
        _, _, got = await get(http, inspector.base + path, headers=headers)
        assert got["Content-Security-Policy"] == CSP
        assert "default-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert got["X-Content-Type-Options"] == "nosniff"
        assert got["X-Frame-Options"] == "DENY"


async def test_page_has_no_inline_script(
    inspector: RunningInspector, http: aiohttp.ClientSession
) -> None:
    """The only script is the packaged app.js, and it never writes data through innerHTML."""
    _, page, _ = await get(http, inspector.base + "/", headers=auth())
    assert page.count("<script") == 1 and "onload" not in page
    _, script, headers = await get(http, inspector.base + "/static/app.js", headers=auth())
    assert headers["Content-Type"].startswith("text/javascript")
    assert "innerHTML" not in script and "outerHTML" not in script
    assert "insertAdjacentHTML" not in script and "eval(" not in script


async def test_listener_port_does_not_serve_the_inspector(
    inspector: RunningInspector, listener: Listener, http: aiohttp.ClientSession
) -> None:
    """The tunnel's port captures /api/events like any callback: it never answers with data."""
    async with http.get(listener.local_url + "/api/events", headers=auth()) as r:
        assert "stored event" in await r.text()
    assert URL(inspector.base).port != URL(listener.local_url).port


def test_options_are_checked() -> None:
    """A short VERIFYCLI_UI_TOKEN, a bad port, or the listener's own port are refused."""
    with pytest.raises(ConfigError, match="at least 16"):
        InspectorOptions(token="short")
    with pytest.raises(ConfigError, match="0-65535"):
        InspectorOptions(port=70000)
    with pytest.raises(ConfigError, match="listener's port"):
        InspectorOptions(port=8080, listener_port=8080)
    assert len(InspectorOptions().token or "") >= 40
    assert InspectorOptions().token != InspectorOptions().token


async def test_busy_port_is_a_config_error(inspector: RunningInspector, store_path: Path) -> None:
    """A --ui-port already in use says to pick another."""
    port = URL(inspector.base).port
    assert port is not None
    with pytest.raises(ConfigError, match="--ui-port"):
        await serve_inspector(store_path, InspectorOptions(port=port, token=TOKEN))


# -- what it serves ------------------------------------------------------------------------


async def test_list_filters_and_detail(
    inspector: RunningInspector, http: aiohttp.ClientSession, listener: Listener
) -> None:
    """Newest first; session prefix, status, verdict and free text select; one event comes whole
    with its retry chain and a curl command."""
    first = await post_callback(http, listener, ChannelStatus="sent")
    await post_callback(http, listener, SessionUUID="ffff0000-other", Recipient="14155559999")
    retry = await post_callback(http, listener, ChannelStatus="sent")

    async def ids(**query: str) -> list[int]:
        async with http.get(inspector.base + "/api/events", params=query, headers=auth()) as r:
            return [e["id"] for e in (await r.json())["events"]]

    assert await ids() == [3, 2, 1]
    assert await ids(session="4124e5") == [3, 1]
    assert await ids(status="sent", session="ffff") == []
    assert await ids(q="14155559999") == [2]
    assert await ids(verdict="valid") == [3, 2, 1]
    async with http.get(f"{inspector.base}/api/events/{retry['id']}", headers=auth()) as r:
        whole = await r.json()
    assert whole["chain"] == [first["id"], retry["id"]]
    assert whole["record"]["retry_of"] == first["id"]
    assert whole["record"]["signature"]["verdict"] == "valid"
    assert whole["curl"].startswith("curl -X POST ")
    async with http.get(f"{inspector.base}/api/events/99", headers=auth()) as r:
        assert r.status == 404


def test_curl_command_round_trips_the_body() -> None:
    """The curl text quotes hostile values for the shell and keeps non-UTF-8 bodies exact."""
    from verifycli.callbacks import CallbackEvent
    from verifycli.signature import SignatureResult

    event = CallbackEvent(
        method="POST",
        url="https://x.example/cb?a=1",
        path="/cb",
        query="a=1",
        headers={"X-Evil": "'; rm -rf / #", "Host": "x.example"},
        content_type="text/plain",
        body="aGk=",
        body_encoding="base64",
        fields={},
        signature=SignatureResult("unsigned", None, ""),
    )
    curl = as_curl(event)
    assert "Host:" not in curl
    assert "'X-Evil: '\"'\"'; rm -rf / #'" in curl
    assert curl.startswith("printf %s aGk= | base64 -d | curl -X POST")


async def test_new_callbacks_and_forward_outcomes_stream_live(
    inspector: RunningInspector, http: aiohttp.ClientSession, listener: Listener
) -> None:
    """An open event stream gets each new callback as it is stored."""
    async with http.get(inspector.base + "/api/stream", headers=auth()) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        await stream.content.readuntil(b"\n\n")  # retry + connected
        await post_callback(http, listener, ChannelStatus="queued")
        got = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5)
    event, data = got.decode().strip().split("\n")
    assert event == "event: callback"
    row = json.loads(data.removeprefix("data: "))
    assert row["channel_status"] == "queued" and "headers" not in row


async def test_forward_outcome_is_pushed_again(
    listener: Listener, http: aiohttp.ClientSession
) -> None:
    """With a forwarder, the page gets the event at once and again when the forward is known."""
    from verifycli.inspector.live import Hub, sinks

    hub = Hub()
    listener.sinks.extend(sinks(hub))
    with Receiver(status=201) as app:
        from verifycli.relay import Forwarder

        listener._forwarder = Forwarder(app.url + "/hook", 5)
        async with hub.subscribe() as queue:
            await post_callback(http, listener)
            early = json.loads(await asyncio.wait_for(queue.get(), 5) or "")
            late = json.loads(await asyncio.wait_for(queue.get(), 5) or "")
        await listener.stop()
    assert early["forward"] is None
    assert late["forward"]["status"] == 201 and late["id"] == early["id"]


async def test_replay_reaches_a_real_receiver(
    inspector: RunningInspector, http: aiohttp.ClientSession, listener: Listener
) -> None:
    """Replay (same-origin) sends the stored callback and answers with what came back."""
    record = await post_callback(http, listener)
    url = f"{inspector.base}/api/events/{record['id']}/replay"
    origin = {"Origin": inspector.base}
    await get(http, inspector.url)
    with Receiver(status=202, body="accepted by the app\n") as app:
        async with http.post(url, json={"url": app.url + "/plivo"}, headers=origin) as r:
            outcome = await r.json()
        got = app.wait(1)[0]
    assert outcome["status"] == 202 and outcome["body_head"] == "accepted by the app\n"
    assert got.target == "/plivo" and got.body.decode() == record["body"]
    async with http.post(url, json={}, headers=origin) as r:
        assert r.status == 400 and "type the URL" in await r.text()


async def test_download_follows_the_filter(
    inspector: RunningInspector, http: aiohttp.ClientSession, listener: Listener
) -> None:
    """The export endpoint writes through export.py, for the filter the page shows."""
    await post_callback(http, listener)
    await post_callback(http, listener, SessionUUID="ffff0000-other")
    query = {"session": "ffff", "format": "csv"}
    async with http.get(inspector.base + "/api/export", params=query, headers=auth()) as r:
        assert "attachment" in r.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(await r.text())))
    assert [row["session_uuid"] for row in rows] == ["ffff0000-other"]
    query["format"] = "jsonl"
    async with http.get(inspector.base + "/api/export", params=query, headers=auth()) as r:
        lines = (await r.text()).splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["session_uuid"] == "ffff0000-other"


async def test_sessions_timeline(
    inspector: RunningInspector, http: aiohttp.ClientSession, listener: Listener
) -> None:
    """Sessions come newest first, each with its callbacks in order."""
    await post_callback(http, listener, ChannelStatus="sent")
    await post_callback(http, listener, ChannelStatus="delivered")
    await post_callback(http, listener, SessionUUID="later-session")
    async with http.get(inspector.base + "/api/sessions", headers=auth()) as r:
        found = (await r.json())["sessions"]
    assert [s["session_uuid"] for s in found] == ["later-session", FIELDS["SessionUUID"]]
    assert [e["channel_status"] for e in found[1]["events"]] == ["sent", "delivered"]


async def test_standalone_inspector_watches_the_store(
    listener: Listener, http: aiohttp.ClientSession
) -> None:
    """`verifycli ui` beside another process's listener: new rows in the file are pushed."""
    handle = await serve_inspector(
        listener.store.path, InspectorOptions(port=0, token=TOKEN, live=False)
    )
    try:
        assert handle.sinks == []
        async with handle.hub.subscribe() as queue:
            record = await post_callback(http, listener)
            row = json.loads(await asyncio.wait_for(queue.get(), 5) or "")
        assert row["id"] == record["id"]
    finally:
        await handle.stop()


async def test_auth_token_never_reaches_the_page(
    inspector: RunningInspector, http: aiohttp.ClientSession, listener: Listener
) -> None:
    """Nothing the inspector serves holds the Plivo auth token."""
    record = await post_callback(http, listener)
    for path in ("/api/meta", "/api/events", f"/api/events/{record['id']}", "/api/export"):
        _, text, _ = await get(http, inspector.base + path, headers=auth())
        assert AUTH_TOKEN not in text, path


def test_missing_browser_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """The browser tests may not quietly skip in CI when Chromium is missing."""
    from helpers import browser

    monkeypatch.setattr(browser, "chromium_path", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run in CI"):
        browser.require_browser()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        browser.require_browser()


async def test_stop_ends_open_streams_at_once(
    listener: Listener, http: aiohttp.ClientSession
) -> None:
    """Ctrl-C with a page still open does not wait on its live stream."""
    handle = await serve_inspector(listener.store.path, InspectorOptions(port=0, token=TOKEN))
    async with http.get(handle.base + "/api/stream", headers=auth()) as stream:
        await stream.content.readuntil(b"\n\n")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(handle.stop(), 5)
        assert loop.time() - started < 0.9  # under the runner's 1 s shutdown timeout
        assert await stream.content.read() == b""
