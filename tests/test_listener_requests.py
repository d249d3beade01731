"""One request's way through the listener, at the edges mutation testing found unpinned: large
bodies read off the event loop, bodies that cannot be read or do not arrive, odd headers, paths
and bodies, a signature that cannot be checked, answers without a body, and forwards that loop
back or finish."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import http_parser, web_protocol
from helpers.env import AUTH_TOKEN, Collect, Published
from helpers.listeners import FIELDS
from helpers.receiver import Receiver

from verifycli.callbacks import CallbackEvent
from verifycli.listener import INLINE_BODY, Listener, ListenOptions
from verifycli.relay import FORWARDED_BY
from verifycli.signature import Checker, Params, SignatureResult, signed_headers
from verifycli.store import EventStore, StoreReader


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def running(store: EventStore, sink: Collect) -> AsyncIterator[Listener]:
    """A listener checking with AUTH_TOKEN and a short body timeout, stopped after the test."""
    started = Listener(
        store, Checker(AUTH_TOKEN), ListenOptions(port=0, body_timeout=0.3), sinks=[sink]
    )
    await started.start()
    yield started
    await started.stop()


async def exchange(port: int, head: bytes, rest: bytes | None = None) -> bytes:
    """Send `head`; with `rest`, wait for 100 Continue (the listener is reading the body) and
    send `rest`. Returns all the listener sent until it closed the connection (within 5 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        if rest is not None:
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert interim.startswith(b"HTTP/1.1 100 "), interim
            writer.write(rest)
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def split_answer(answer: bytes) -> tuple[int, set[str], bytes]:
    """An answer's status, its header names (lower case), and its body."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    names = {line.split(":", 1)[0].lower() for line in lines}
    return int(status_line.split(" ", 2)[1]), names, body


def stored(listener: Listener) -> list[CallbackEvent]:
    return list(StoreReader(listener.store.path).iter_events())


# -- bodies larger than INLINE_BODY --------------------------------------------------------


async def test_a_body_over_the_inline_size_is_stored_whole_with_its_fields_and_signature(
    running: Listener, http: aiohttp.ClientSession
) -> None:
    """A form larger than INLINE_BODY (read on a worker thread) is stored byte for byte, its
    fields parsed and its V3 signature, which covers them, valid."""
    form = {**FIELDS, "Padding": "x" * INLINE_BODY}
    url = running.local_url + "/cb"
    headers = signed_headers("POST", url, form, AUTH_TOKEN, schemes=("v3",))
    async with http.post(url, data=form, headers=headers) as r:
        assert (r.status, await r.text()) == (200, "verifycli stored event #1\n")
    [event] = stored(running)
    assert event.body == urlencode(form) and len(event.body) > INLINE_BODY
    assert event.fields == form
    assert (event.signature.verdict, event.signature.scheme) == ("valid", "v3")


class ThreadNoting(Checker):
    """A real checker (no tokens) that notes the thread each request is checked on."""

    def __init__(self) -> None:
        super().__init__(None)
        self.threads: list[int] = []

    def check(
        self,
        method: str,
        url: str,
        headers: Any,
        params: Params,
        local_url: str | None = None,
    ) -> SignatureResult:
        self.threads.append(threading.get_ident())
        return super().check(method, url, headers, params, local_url)


async def test_a_body_of_the_inline_size_is_read_on_the_loop_and_one_byte_more_off_it(
    store: EventStore, http: aiohttp.ClientSession
) -> None:
    """INLINE_BODY bytes are still read on the event loop's thread; one byte more goes to a
    worker thread, so that it cannot hold up other callbacks."""
    checker = ThreadNoting()
    listening = Listener(store, checker, ListenOptions(port=0))
    await listening.start()
    try:
        for size in (INLINE_BODY, INLINE_BODY + 1):
            async with http.post(listening.local_url + "/cb", data=b"a" * size) as r:
                assert r.status == 200
    finally:
        await listening.stop()
    loop_thread = threading.get_ident()
    assert [t == loop_thread for t in checker.threads] == [True, False]


# -- bodies that cannot be read ------------------------------------------------------------


async def test_a_body_arriving_after_its_headers_is_waited_for_and_stored(
    running: Listener,
) -> None:
    """A body not yet there when the request is handled is read once it comes, and stored."""
    answer = await exchange(
        running.port,
        b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n"
        b"Connection: close\r\n\r\n",
        b"a=1",
    )
    assert split_answer(answer)[::2] == (200, b"verifycli stored event #1\n")
    assert [(e.body, e.fields) for e in stored(running)] == [("a=1", {"a": "1"})]


async def test_a_body_that_cannot_be_decoded_gets_400_naming_the_encoding(
    running: Listener,
) -> None:
    """A gzip body that is not gzip is answered 400 with aiohttp's reason, and not stored."""
    answer = await exchange(
        running.port,
        b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Encoding: gzip\r\n"
        b"Connection: close\r\n\r\nnotgz",
    )
    assert split_answer(answer)[::2] == (
        400,
        b"unreadable request body: Can not decode content-encoding: gzip\n",
    )
    assert stored(running) == []


@pytest.fixture
def pure_python_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests are parsed by aiohttp's own pure-Python parser, the one it runs where its C
    parser is not built (AIOHTTP_NO_EXTENSIONS=1, PyPy)."""
    monkeypatch.setattr(web_protocol, "HttpRequestParser", http_parser.HttpRequestParserPy)


async def test_a_bad_chunk_size_gets_400_naming_it(
    pure_python_parser: None, running: Listener
) -> None:
    """With aiohttp's Python parser, a chunk size that is not hex, sent while the body is being
    read, is answered 400 naming what came instead, and nothing is stored."""
    answer = await exchange(
        running.port,
        b"POST /cb HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\n",
        b"zz\r\n",
    )
    assert split_answer(answer)[::2] == (400, b"unreadable request body: zz\n")
    assert stored(running) == []


async def test_a_body_that_stops_arriving_gets_408_saying_how_long_was_waited(
    running: Listener,
) -> None:
    """Three bytes of ten, then nothing: 408 once the body timeout (0.3 s) has passed, the
    answer says so, and the connection is closed."""
    answer = await exchange(
        running.port,
        b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
        b"a=1",
    )
    assert split_answer(answer)[::2] == (408, b"the body did not arrive within 0.3 s\n")
    assert stored(running) == []


# -- what is stored ------------------------------------------------------------------------


async def test_header_bytes_that_are_not_utf8_are_stored_as_replacement_characters(
    running: Listener,
) -> None:
    """A header value with bytes that are not UTF-8 is kept, each such byte as U+FFFD."""
    answer = await exchange(
        running.port,
        b"POST /cb HTTP/1.1\r\nHost: x\r\nX-Odd: v\xff\xe9z\r\nContent-Length: 3\r\n"
        b"Connection: close\r\n\r\na=1",
    )
    assert split_answer(answer)[0] == 200
    [event] = stored(running)
    assert event.headers["X-Odd"] == "v\ufffd\ufffdz"


async def test_a_request_without_a_content_type_is_stored_with_an_empty_one(
    running: Listener,
) -> None:
    """No Content-Type header: the content type is "", and a body with "=" is read as a form."""
    answer = await exchange(
        running.port,
        b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=1",
    )
    assert split_answer(answer)[0] == 200
    [event] = stored(running)
    assert (event.content_type, event.fields) == ("", {"a": "1"})


async def test_the_first_question_mark_ends_the_path(
    running: Listener, http: aiohttp.ClientSession
) -> None:
    """In /p?a=1?b=2 the path is /p and the query a=1?b=2, as URLs are read."""
    async with http.get(running.local_url + "/p?a=1?b=2") as r:
        assert r.status == 200
    [event] = stored(running)
    assert (event.path, event.query, event.fields) == ("/p", "a=1?b=2", {"a": "1?b=2"})


async def test_a_body_that_cannot_be_parsed_is_stored_with_the_reason(
    running: Listener, http: aiohttp.ClientSession, sink: Collect
) -> None:
    """A JSON body that is not JSON is kept as sent, with why it was not read, on disk and in
    what the views are shown."""
    headers = {"Content-Type": "application/json"}
    async with http.post(running.local_url + "/cb", data=b"{", headers=headers) as r:
        assert r.status == 200
    [event] = stored(running)
    assert event.body == "{"
    assert (event.parse_error or "").startswith(
        "body could not be parsed as application/json: Expecting property name"
    )
    assert [e.parse_error for e in sink.events] == [event.parse_error]


async def test_a_signature_that_cannot_be_checked_is_invalid_and_says_why(
    running: Listener,
) -> None:
    """A signed request whose URL the checker cannot read (an absolute-form target glued to the
    listener's address) is stored as invalid, with no scheme and the checker's reason."""
    answer = await exchange(
        running.port,
        b"POST http://evil.example/cb HTTP/1.1\r\nHost: x\r\nX-Plivo-Signature-V3: abc\r\n"
        b"X-Plivo-Signature-V3-Nonce: 1\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=1",
    )
    assert split_answer(answer)[0] == 200
    [event] = stored(running)
    assert (event.signature.verdict, event.signature.scheme) == ("invalid", None)
    assert event.signature.detail.startswith(
        f"signature could not be checked: Port could not be cast to integer value as "
        f"'{running.port}http:'"
    )


# -- answers -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [101, 199, 204, 205, 304])
async def test_an_answer_without_content_has_no_body_and_no_content_type(
    store: EventStore, status: int
) -> None:
    """1xx, 204, 205 (RFC 9110: a server MUST NOT send content with it) and 304 are answered
    with nothing after the head, and no Content-Type for content that is not there."""
    listening = Listener(store, Checker(None), ListenOptions(port=0, respond_status=status))
    await listening.start()
    try:
        answer = await exchange(
            listening.port,
            b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
    finally:
        await listening.stop()
    got, names, body = split_answer(answer)
    assert (got, body) == (status, b"")
    assert "content-type" not in names


@pytest.mark.parametrize("status", [200, 203, 206, 305])
async def test_other_answers_name_the_stored_event(store: EventStore, status: int) -> None:
    """Every status that may carry content (the ones next to 204 and 304 too) says which event
    was stored."""
    listening = Listener(store, Checker(None), ListenOptions(port=0, respond_status=status))
    await listening.start()
    try:
        answer = await exchange(
            listening.port,
            b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
    finally:
        await listening.stop()
    assert split_answer(answer)[::2] == (status, b"verifycli stored event #1\n")


# -- forwards ------------------------------------------------------------------------------


async def test_a_forward_that_comes_back_is_stored_not_forwarded_again_and_warned_once(
    store: EventStore, http: aiohttp.ClientSession, sink: Collect
) -> None:
    """The app sends the forwarded callback back, twice: each is stored, answered and shown,
    none is forwarded again, and the user is told once, naming the --forward-to URL."""
    with Receiver() as app:
        target = app.url + "/hook"
        listening = Listener(
            store, Checker(None), ListenOptions(port=0, forward_to=target), sinks=[sink]
        )
        await listening.start()
        try:
            async with http.post(listening.local_url + "/cb", data=FIELDS) as r:
                assert r.status == 200
            [forwarded] = await asyncio.to_thread(app.wait, 1)
            back = {name: forwarded.header(name) or "" for name in (FORWARDED_BY, "Content-Type")}
            for ident in (2, 3):
                async with http.post(
                    listening.local_url + "/cb", data=forwarded.body, headers=back
                ) as r:
                    assert (r.status, await r.text()) == (200, f"verifycli stored event #{ident}\n")
        finally:
            await listening.stop()  # waits for every forward begun
        assert len(app.requests) == 1
    assert [e.id for e in sink.events] == [1, 2, 3]
    assert sink.warnings == [
        f"a callback forwarded to {target} came back to this listener: it is stored, not "
        "forwarded again; check --forward-to"
    ]


async def test_a_finished_forward_is_not_kept(store: EventStore) -> None:
    """Once a forward has settled, the listener holds nothing of it: a long run of callbacks
    does not pile up finished forwards."""
    whole = Published()
    with Receiver() as app:
        listening = Listener(
            store, Checker(None), ListenOptions(port=0, forward_to=app.url + "/"), sinks=[whole]
        )
        await listening.start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(listening.local_url + "/cb", data=FIELDS) as r:
                    assert r.status == 200
            await asyncio.wait_for(whole.arrived.wait(), 10)
            deadline = time.monotonic() + 5
            while listening._tasks and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # polls for the task's done callback, with a deadline
            assert listening._tasks == set()
        finally:
            await listening.stop()
    assert [e.forward is not None for e in whole.events] == [True]


# -- the connection cap --------------------------------------------------------------------


async def post_on(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """POST on this kept-alive connection; returns the status once the whole answer is read."""
    writer.write(b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await asyncio.wait_for(reader.readexactly(length), 5)
    return int(head.split(b" ", 2)[1])


async def closed_by_listener(reader: asyncio.StreamReader) -> bool:
    """Whether the listener closed this connection, on which it was sent nothing (waits 2 s)."""
    try:
        return await asyncio.wait_for(reader.read(1), 2) == b""
    except ConnectionResetError:
        return True


async def test_a_connection_that_served_three_requests_still_counts_against_the_cap(
    listener: Listener,
) -> None:
    """A connection used three times stays counted, as the most recently active: when one more
    connection takes the count past the cap, the two longest idle are closed, not it."""
    assert listener._connections is not None
    listener._connections.cap = 8
    streams = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(8)]
    try:
        for _ in range(3):
            assert await post_on(*streams[0]) == 200
        streams.append(await asyncio.open_connection("127.0.0.1", listener.port))
        assert [await closed_by_listener(r) for r, _ in streams[1:3]] == [True, True]
        assert await post_on(*streams[0]) == 200
    finally:
        for _, writer in streams:
            writer.close()
