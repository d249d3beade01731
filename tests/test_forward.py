"""--forward-to: every callback also goes to the user's app, which never holds up Plivo's answer."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from helpers.env import AUTH_TOKEN, Collect, Published
from helpers.net import free_port
from helpers.receiver import Receiver
from rich.console import Console
from typer.testing import CliRunner
from yarl import URL

from verifycli import listener as listener_module
from verifycli.cli import app
from verifycli.errors import ConfigError
from verifycli.listener import Listener, ListenOptions
from verifycli.relay import HOP_BY_HOP
from verifycli.signature import Checker, signed_headers
from verifycli.store import EventStore, StoreReader
from verifycli.ui import events_table

PUBLIC = "https://abcd.ngrok-free.app"
FIELDS = {
    "SessionUUID": "4124e518-a8c9-4feb-8cff-d86636ba9234",
    "AttemptUUID": "9a0c1d2e-0000-4feb-8cff-d86636ba9234",
    "ChannelStatus": "delivered",
    "SessionStatus": "in-progress",
    "ChannelErrorCode": "",
}


@pytest.fixture
def app_server() -> Iterator[Receiver]:
    with Receiver(status=201, body="app got it\n") as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def published() -> Published:
    return Published()


async def serve(store: EventStore, sink: Published, **options: object) -> Listener:
    running = Listener(
        store,
        Checker(AUTH_TOKEN),
        ListenOptions(port=0, **options),
        sinks=[sink],  # type: ignore[arg-type]
    )
    await running.start()
    running.public_url = PUBLIC
    return running


async def post_callback(
    http: aiohttp.ClientSession, running: Listener, query: str = ""
) -> tuple[int, float]:
    """A signed callback to the listener; returns its answer and how long that took (s)."""
    path = "/verify/callback" + (f"?{query}" if query else "")
    headers = signed_headers("POST", PUBLIC + path, FIELDS, AUTH_TOKEN)
    started = asyncio.get_running_loop().time()
    target = URL(running.local_url + path, encoded=True)  # the query goes out byte for byte
    async with http.post(target, data=FIELDS, headers=headers) as answer:
        await answer.read()
        return answer.status, asyncio.get_running_loop().time() - started


async def test_forward_sends_method_body_headers_and_query_as_received(
    store: EventStore, http: aiohttp.ClientSession, app_server: Receiver, published: Published
) -> None:
    """The app gets the same method, body bytes, end-to-end headers and raw query string."""
    running = await serve(store, published, forward_to=app_server.url + "/app/hook")
    try:
        status, _ = await post_callback(http, running, query="tag=a%7Eb&x=")
        event = await published.next()
    finally:
        await running.stop()
    assert status == 200 and event.query == "tag=a%7Eb&x="
    [got] = await asyncio.to_thread(app_server.wait, 1)
    assert (got.method, got.target) == ("POST", "/app/hook?tag=a%7Eb&x=")
    assert got.body == event.raw_body()
    sent = {k.lower(): v for k, v in event.headers.items() if k.lower() not in HOP_BY_HOP}
    received = {k.lower(): v for k, v in got.headers}
    assert {k: received.get(k) for k in sent} == sent
    # The one header added names this listener, so a forward loop stops at its first hop.
    assert set(received) - set(sent) == {"host", "content-length", "x-verifycli-forwarded-by"}
    assert received["content-length"] == str(len(got.body))


async def test_forward_outcome_is_stored_and_shown(
    store: EventStore, http: aiohttp.ClientSession, app_server: Receiver, published: Published
) -> None:
    """The app's status, time and no error are kept on the event and shown in the table."""
    running = await serve(store, published, forward_to=app_server.url + "/hook")
    try:
        await post_callback(http, running)
        await published.next()
    finally:
        await running.stop()
    [event] = StoreReader(store.path).iter_events()
    forward = event.forward or {}
    assert forward["url"] == app_server.url + "/hook"
    assert (forward["status"], forward["error"]) == (201, None)
    assert isinstance(forward["elapsed_ms"], float) and forward["elapsed_ms"] >= 0
    assert event.response_status == 200
    out = io.StringIO()
    Console(file=out, width=200).print(events_table([event]))
    assert "forwarded" in out.getvalue() and "201 in" in out.getvalue()


async def test_slow_app_does_not_hold_up_storing_or_answering(
    store: EventStore, http: aiohttp.ClientSession, published: Published
) -> None:
    """While the app has not answered, Plivo already has 200 and the event is on disk."""
    with Receiver(status=204, hold=True) as slow:
        running = await serve(store, published, forward_to=slow.url + "/hook")
        try:
            status, _ = await post_callback(http, running)
            assert status == 200
            await asyncio.to_thread(slow.wait, 1)
            [stored] = StoreReader(store.path).iter_events()
            assert stored.forward is None and published.events == []
            slow.release()
            event = await published.next()
        finally:
            await running.stop()
    assert event.forward is not None and event.forward["status"] == 204
    [stored] = StoreReader(store.path).iter_events()
    assert stored.forward == event.forward


async def test_live_sinks_see_the_event_before_the_forward_settles(
    store: EventStore, http: aiohttp.ClientSession, published: Published
) -> None:
    """The live table shows a callback at once; the forward's outcome appears on it later."""
    live = Collect()
    with Receiver(status=204, hold=True) as slow:
        running = await serve(store, published, forward_to=slow.url + "/hook")
        running.sinks.append(live)
        try:
            await post_callback(http, running)
            await asyncio.to_thread(slow.wait, 1)
            assert [e.forward for e in live.events] == [None]
            slow.release()
            whole = await published.next()
        finally:
            await running.stop()
    assert live.events[0] is whole
    assert whole.forward is not None and whole.forward["status"] == 204


async def test_dead_app_error_is_recorded(
    store: EventStore, http: aiohttp.ClientSession, published: Published
) -> None:
    """An app that is not running: Plivo still gets 200; the event says why the forward failed."""
    port = free_port()
    running = await serve(store, published, forward_to=f"http://127.0.0.1:{port}/hook")
    try:
        status, _ = await post_callback(http, running)
        event = await published.next()
    finally:
        await running.stop()
    assert status == 200
    forward = event.forward or {}
    assert forward["status"] is None
    assert f"cannot connect to 127.0.0.1:{port}" in forward["error"]
    result = CliRunner().invoke(app, ["events", "--store", str(store.path)], env={"COLUMNS": "250"})
    assert f"forward=✗ cannot connect to 127.0.0.1:{port} (connection refused)" in result.stdout
    show = CliRunner().invoke(
        app, ["events", "show", "1", "--store", str(store.path)], env={"COLUMNS": "250"}
    )
    assert f"cannot connect to 127.0.0.1:{port} (connection refused)" in show.stdout


async def test_forward_times_out(
    store: EventStore,
    http: aiohttp.ClientSession,
    published: Published,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An app that never answers is given up on after the forward timeout, and it is recorded."""
    monkeypatch.setattr(listener_module, "FORWARD_TIMEOUT", 0.2)
    with Receiver(hold=True) as stuck:
        running = await serve(store, published, forward_to=stuck.url + "/hook")
        try:
            status, _ = await post_callback(http, running)
            event = await published.next()
        finally:
            await running.stop()
    assert status == 200
    assert (event.forward or {})["error"] == "no answer within 0.2 s"


async def test_answer_from_forward_gives_plivo_the_apps_status(
    store: EventStore, http: aiohttp.ClientSession, published: Published
) -> None:
    """--answer-from-forward: Plivo gets what the app answered, and that is what is stored."""
    with Receiver(status=503) as failing:
        running = await serve(
            store, published, forward_to=failing.url + "/hook", answer_from_forward=True
        )
        try:
            status, _ = await post_callback(http, running)
            await published.next()
        finally:
            await running.stop()
    assert status == 503
    [event] = StoreReader(store.path).iter_events()
    assert event.response_status == 503


async def test_answer_from_dead_app_is_502(
    store: EventStore, http: aiohttp.ClientSession, published: Published
) -> None:
    """--answer-from-forward with the app down answers 502, so Plivo retries later."""
    running = await serve(
        store,
        published,
        forward_to=f"http://127.0.0.1:{free_port()}/hook",
        answer_from_forward=True,
    )
    try:
        status, _ = await post_callback(http, running)
        await published.next()
    finally:
        await running.stop()
    assert status == 502
    [event] = StoreReader(store.path).iter_events()
    assert event.response_status == 502


async def test_get_callback_forwards_without_a_body(
    store: EventStore, http: aiohttp.ClientSession, app_server: Receiver, published: Published
) -> None:
    """A GET callback reaches the app as a GET with its query and no body or Content-Length."""
    running = await serve(store, published, forward_to=app_server.url + "/hook")
    try:
        async with http.get(running.local_url + "/cb?SessionUUID=s-1&ChannelErrorCode=") as r:
            assert r.status == 200
        await published.next()
    finally:
        await running.stop()
    [got] = await asyncio.to_thread(app_server.wait, 1)
    assert (got.method, got.target, got.body) == (
        "GET",
        "/hook?SessionUUID=s-1&ChannelErrorCode=",
        b"",
    )
    assert "content-length" not in got.header_names()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"forward_to": "ftp://example.com/x"}, "needs an http:// or https:// URL"),
        ({"forward_to": "localhost:3000"}, "needs an http:// or https:// URL"),
        ({"forward_to": "http:///x"}, "needs an http:// or https:// URL"),
        ({"forward_to": "http://example.com:99999/x"}, "is not a valid URL"),
        ({"forward_to": "http://127.0.0.1:8080/x", "port": 8080}, "is this listener"),
        ({"forward_to": "http://localhost:9000/x", "port": 9000, "host": "0.0.0.0"}, "is this"),
    ],
)
def test_bad_forward_url_is_refused_up_front(options: dict[str, object], message: str) -> None:
    """A --forward-to that cannot work is a ConfigError before anything starts."""
    with pytest.raises(ConfigError, match=message):
        ListenOptions(**options)  # type: ignore[arg-type]


def test_forward_to_another_port_is_accepted() -> None:
    """The loop check leaves an app on another port, or any port with port 0, alone."""
    assert ListenOptions(port=8080, forward_to="http://127.0.0.1:3000/x").forward_to
    assert ListenOptions(port=0, forward_to="http://127.0.0.1:8080/x").forward_to


def test_listen_with_a_bad_forward_url_exits_2(tmp_path: Path) -> None:
    """`listen --forward-to ftp://…` stops with one line and exit 2, before listening."""
    result = CliRunner().invoke(
        app,
        [
            "listen",
            "--no-tunnel",
            "--port",
            "0",
            "--store",
            str(tmp_path / "s.sqlite3"),
            "--forward-to",
            "ftp://example.com/x",
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --forward-to needs an http:// or https:// URL, like "
        "http://127.0.0.1:3000/plivo/verify; not 'ftp://example.com/x'"
    ]
    assert not (tmp_path / "s.sqlite3").exists()
