"""The listener's edges that mutation testing found unpinned: the health path's spelling, which
addresses count as this listener, how the server is set up, the connection cap, the open-files
limit, and the warnings that must reach (or spare) the user."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from helpers.env import Collect
from helpers.listeners import FIELDS
from helpers.net import free_port
from helpers.receiver import Receiver

from verifycli.errors import ConfigError
from verifycli.listener import (
    BACKLOG,
    HEALTH_PATH,
    ConnectionCap,
    Listener,
    ListenOptions,
    _is_local,
    _quiet_aiohttp,
    check_callback_path,
    forwards_to_itself,
    raise_open_files,
)
from verifycli.signature import Checker
from verifycli.store import EventStore, StoreReader

# Documentation addresses (RFC 5737, RFC 3849): on no machine's interfaces, unless stood in for.
ELSEWHERE_V4 = "198.51.100.7"
ELSEWHERE_V6 = "2001:db8::7"
SHED_WARNING = (
    "more than 8 connections open at once: closing the longest idle ones (someone may be "
    "flooding this listener)"
)
ACCEPT_WARNING = "no file descriptors left to accept connections: some were refused"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def port_of(listener: Listener) -> int:
    return int(listener.local_url.rsplit(":", 1)[1])


# -- the health path -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [HEALTH_PATH + "?a=1?b=2", HEALTH_PATH + "//?x"])
def test_the_health_path_is_refused_whatever_follows_its_first_question_mark(path: str) -> None:
    """Only what comes before the first "?" (less its trailing slashes) is the path."""
    with pytest.raises(ConfigError, match="is the listener's health check"):
        check_callback_path(path)


def test_only_slashes_are_trimmed_from_the_end_of_a_callback_path() -> None:
    """A path that is the health path plus other characters is a different path, kept."""
    assert check_callback_path(HEALTH_PATH + "X") == HEALTH_PATH + "X"


async def test_a_head_request_to_the_health_path_is_captured(
    listener: Listener, http: aiohttp.ClientSession
) -> None:
    """Only GET is the health check: a HEAD sent there is stored like any other request."""
    async with http.head(listener.local_url + HEALTH_PATH) as r:
        assert r.status == 200
    [event] = StoreReader(listener.store.path).iter_events()
    assert (event.method, event.path) == ("HEAD", HEALTH_PATH)


# -- which addresses are this listener -------------------------------------------------------


@contextlib.contextmanager
def no_descriptors_left() -> Iterator[None]:
    """For the block, this process cannot open one more file descriptor (a real EMFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class _WithInterface(socket.socket):
    """A socket on a machine that also has ELSEWHERE_V4 and ELSEWHERE_V6 on an interface: a
    bind to one of them (in its own family) binds the loopback address of that family."""

    def bind(self, address: Any) -> None:
        host, *rest = address
        stand_in = {
            (socket.AF_INET, ELSEWHERE_V4): "127.0.0.1",
            (socket.AF_INET6, ELSEWHERE_V6): "::1",
        }.get((self.family, host))
        super().bind((stand_in or host, *rest))


@pytest.fixture
def with_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine has one more interface, carrying ELSEWHERE_V4 and ELSEWHERE_V6."""
    if not socket.has_ipv6:
        pytest.skip("needs IPv6 on the loopback interface")
    monkeypatch.setattr(socket, "socket", _WithInterface)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "0.0.0.0", "::"])
def test_loopback_and_unspecified_addresses_are_local_without_a_probe(address: str) -> None:
    """Loopback and unspecified addresses are this machine's even when no socket can be
    opened to try them (no descriptors left)."""
    with no_descriptors_left():
        with pytest.raises(OSError):
            socket.socket().close()
        assert _is_local(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [ELSEWHERE_V4, ELSEWHERE_V6])
def test_an_address_of_another_machine_is_not_local(address: str) -> None:
    """An address on none of this machine's interfaces cannot be bound: not local."""
    assert _is_local(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", [ELSEWHERE_V4, ELSEWHERE_V6])
def test_an_address_on_another_interface_of_this_machine_is_local(
    with_interface: None, address: str
) -> None:
    """A non-loopback address this machine has (IPv4 or IPv6) binds in its family: local."""
    assert _is_local(ipaddress.ip_address(address)) is True


def test_a_local_address_is_local_whichever_of_its_ports_are_taken(with_interface: None) -> None:
    """The probe asks for any free port: a taken (or privileged) low port does not matter."""
    with socket.socket() as holder:
        with contextlib.suppress(OSError):  # not root, or taken already: out of reach either way
            holder.bind((ELSEWHERE_V4, 1))
        assert _is_local(ipaddress.ip_address(ELSEWHERE_V4)) is True


@pytest.mark.parametrize(
    ("target", "host", "port"),
    [("http://127.0.0.1/cb", "127.0.0.1", 80), ("https://[::1]/", "::1", 443)],
)
def test_a_target_without_a_port_means_its_schemes_default_port(
    target: str, host: str, port: int
) -> None:
    """http:// without a port is port 80, https:// is 443: a listener there is the target."""
    assert forwards_to_itself(target, host, port) is True


def test_a_target_whose_host_does_not_resolve_is_not_this_listener() -> None:
    """A target host that names no address cannot reach this listener."""
    assert forwards_to_itself("http://a..b:8080/", "127.0.0.1", 8080) is False


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_another_address_on_the_same_port_is_not_this_listener(host: str) -> None:
    """A listener bound to one loopback address is not reached through another one."""
    assert forwards_to_itself("http://127.0.0.2:8080/", host, 8080) is False


# -- how the server is set up ----------------------------------------------------------------


async def test_starting_puts_one_null_handler_on_aiohttps_logger(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp's log records stop at a NullHandler on its own logger, added once however
    often a listener starts (or the quieting is asked for again)."""
    logger = logging.getLogger("aiohttp")
    monkeypatch.setattr(logger, "handlers", [])
    for _ in range(2):
        running = Listener(store, Checker(None), ListenOptions(port=0))
        await running.start()
        await running.stop()
    _quiet_aiohttp()
    assert [type(h) for h in logger.handlers] == [logging.NullHandler]


async def test_requests_are_not_access_logged(
    listener: Listener, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """No access-log line per request: the live table is the log."""
    caplog.set_level(logging.DEBUG)
    async with http.post(listener.local_url + "/cb", data=FIELDS) as r:
        assert r.status == 200
    assert [r.name for r in caplog.records if r.name.startswith("aiohttp")] == []


async def read_until_closed(reader: asyncio.StreamReader, within: float) -> float:
    """Seconds until the server closed the connection (read everything it sent meanwhile);
    fails if it is still open after `within` seconds."""
    started = time.monotonic()
    deadline = started + within
    with contextlib.suppress(ConnectionResetError):
        while await asyncio.wait_for(reader.read(65536), max(deadline - time.monotonic(), 0)):
            pass
    return time.monotonic() - started


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    store: EventStore,
) -> None:
    """--idle-timeout is the server's keep-alive timeout: a silent connection is closed then."""
    running = Listener(store, Checker(None), ListenOptions(port=0, idle_timeout=0.2))
    await running.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(running))
        try:
            assert await read_until_closed(reader, within=3.0) < 3.0
        finally:
            writer.close()
    finally:
        await running.stop()


async def test_after_an_early_413_the_rest_of_the_body_is_awaited_for_one_second(
    store: EventStore,
) -> None:
    """A body refused part-way gets its 413, then the connection is closed once the rest has
    not come for a second (aiohttp would wait ten)."""
    running = Listener(store, Checker(None), ListenOptions(port=0, max_body=100))
    await running.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(running))
        try:
            writer.write(b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            writer.write(b"a" * 1000)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 413 ")
            assert await read_until_closed(reader, within=3.0) < 1.6
        finally:
            writer.close()
    finally:
        await running.stop()


async def test_stop_gives_a_stalled_request_five_seconds_and_no_more(store: EventStore) -> None:
    """stop() lets a callback still arriving finish for 5 s, then ends it: a client stalled
    mid-body cannot hold up the end of the command."""
    running = Listener(store, Checker(None), ListenOptions(port=0, body_timeout=30))
    await running.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(running))
    try:
        writer.write(
            b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        # 100 Continue: the listener is reading this request's body.
        assert (await asyncio.wait_for(reader.readline(), 2)).startswith(b"HTTP/1.1 100 ")
        started = time.monotonic()
        # Bounds wide enough for a loaded machine: aiohttp's own default would be 60 s.
        await asyncio.wait_for(running.stop(), 8)
        assert time.monotonic() - started > 4.9
    finally:
        writer.close()


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read the backlog")
async def test_the_listening_socket_has_the_backlog_the_connection_cap_reserves_for(
    listener: Listener,
) -> None:
    """The kernel queues up to BACKLOG connections for the listener, the number of descriptors
    the connection cap keeps back for connections asyncio accepts in one go."""
    line = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port_of(listener)}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.split()
    assert line[0] == "LISTEN" and int(line[2]) == BACKLOG == 64


async def test_a_loop_found_once_bound_is_refused_naming_the_target_and_leaves_nothing_open(
    store: EventStore,
) -> None:
    """The refusal at start names the --forward-to URL; the port is let go, and stop() after
    it has nothing left to do."""
    port = free_port()
    target = f"http://localhost:{port}/cb"
    running = Listener(store, Checker(None), ListenOptions(port=port))
    running.options.forward_to = target  # as if --port 0 had chosen this very port
    with pytest.raises(ConfigError) as caught:
        await running.start()
    assert str(caught.value) == (
        f"--forward-to {target} is this listener: every callback would be "
        "forwarded to itself without end; give your app's address"
    )
    await running.stop()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))


# -- warnings --------------------------------------------------------------------------------


class BrokenWarnings(Collect):
    """A sink whose warnings cannot be shown (its stderr is full): warn() raises."""

    def warn(self, message: str) -> None:
        raise OSError(28, "No space left on device")


class BrokenEvents(Collect):
    """A sink that cannot show a callback (stdout closed by `| head`): event() raises."""

    def event(self, event: Any) -> None:
        super().event(event)
        raise BrokenPipeError(32, "Broken pipe")


async def test_a_sink_that_cannot_show_a_callback_is_dropped_and_the_others_told(
    listener: Listener, http: aiohttp.ClientSession, sink: Collect
) -> None:
    """The failing output is tried once and then left out; the others show every callback and
    one warning naming the failure, and the sender gets 200 each time."""
    broken = BrokenEvents()
    listener.sinks.insert(0, broken)
    for _ in range(2):
        async with http.post(listener.local_url + "/cb", data=FIELDS) as r:
            assert r.status == 200
    assert (len(broken.events), len(sink.events)) == (1, 2)
    assert listener.sinks == [sink]
    assert sink.warnings == ["stopped showing callbacks on one output ([Errno 32] Broken pipe)"]


async def test_a_sink_that_cannot_show_a_warning_changes_nothing(
    listener: Listener, http: aiohttp.ClientSession, sink: Collect
) -> None:
    """A warning that one sink fails to show still reaches the others, and the sender gets
    the answer it would have got (503 for a failed write)."""
    listener.sinks.insert(0, BrokenWarnings())
    listener.store._conn.execute("PRAGMA query_only = 1")
    try:
        async with http.post(listener.local_url + "/cb", data=FIELDS) as r:
            assert r.status == 503
    finally:
        listener.store._conn.execute("PRAGMA query_only = 0")
    assert len(sink.warnings) == 1 and "answered 503" in sink.warnings[0]


async def test_a_forward_that_cannot_be_recorded_is_warned_about(
    store: EventStore, http: aiohttp.ClientSession, sink: Collect
) -> None:
    """When the store refuses a forward's outcome, the user is told which event it was."""
    with Receiver(hold=True) as app:
        running = Listener(
            store, Checker(None), ListenOptions(port=0, forward_to=app.url + "/"), sinks=[sink]
        )
        await running.start()
        try:
            async with http.post(running.local_url + "/cb", data=FIELDS) as r:
                assert r.status == 200
            await asyncio.to_thread(app.wait, 1)
            store.close()
            app.release()
        finally:
            await running.stop()
    assert sink.warnings == ["could not record the forward of event #1: the store is closed"]


async def test_other_exceptions_go_to_the_handler_that_was_there_before_with_the_loop(
    store: EventStore,
) -> None:
    """An exception report that is not a failed accept reaches the previous handler, which is
    given the loop as asyncio would give it."""
    loop = asyncio.get_running_loop()
    seen: list[tuple[asyncio.AbstractEventLoop, str]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda given, context: seen.append((given, context["message"])))
    running = Listener(store, Checker(None), ListenOptions(port=0))
    await running.start()
    try:
        loop.call_exception_handler({"message": "something else"})
    finally:
        await running.stop()
        loop.set_exception_handler(previous)
    assert seen == [(loop, "something else")]


async def test_without_a_previous_handler_other_exceptions_get_asyncios_report(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """With no handler before it, another report is logged by asyncio's default handler,
    exactly as it would have been without the listener."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(None)
    running = Listener(store, Checker(None), ListenOptions(port=0))
    await running.start()
    try:
        loop.call_exception_handler({"message": "something else"})
    finally:
        await running.stop()
        loop.set_exception_handler(previous)
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == ["something else"]


# -- the connection cap ----------------------------------------------------------------------


async def connect_at_once(port: int, count: int) -> list[tuple[asyncio.StreamReader, Any]]:
    """`count` connections that the kernel has all queued before the listener accepts any, so
    that the listener takes them in one go."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    streams = []
    for sock in socks:
        sock.setblocking(False)
        streams.append(await asyncio.open_connection(sock=sock))
    return streams


async def is_closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed this connection (it never sent anything on it): waits 2 s."""
    try:
        return await asyncio.wait_for(reader.read(1), 2) == b""
    except ConnectionResetError:
        return True


async def answers(reader: asyncio.StreamReader, writer: Any) -> bytes:
    """The status line the listener gives a POST on this connection."""
    writer.write(b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    return await asyncio.wait_for(reader.readline(), 2)


@pytest.mark.parametrize(
    ("cap", "closed"),
    [(8, 2), (33, 3)],
    ids=["cap 8: one too many, one more", "cap 33: one too many, two more"],
)
async def test_the_cap_closes_one_sixteenth_of_it_more_than_needed_and_no_more(
    listener: Listener, cap: int, closed: int
) -> None:
    """Past the cap, the oldest connections are closed: the excess plus cap // 16 (at least
    one), and the next oldest is still served."""
    assert listener._connections is not None
    listener._connections.cap = cap
    streams = await connect_at_once(port_of(listener), cap + 1)
    try:
        assert [await is_closed(r) for r, _ in streams[:closed]] == [True] * closed
        reader, writer = streams[closed]
        assert (await answers(reader, writer)).startswith(b"HTTP/1.1 200 ")
    finally:
        for _, w in streams:
            w.close()


async def test_connections_closed_by_the_cap_are_not_counted_again(
    listener: Listener, sink: Collect
) -> None:
    """Connections accepted in one go right after a shedding find the closed ones gone from the
    count: nothing more is closed."""
    assert listener._connections is not None
    listener._connections.cap = 8
    streams = await connect_at_once(port_of(listener), 10)
    try:
        assert [await is_closed(r) for r, _ in streams[:2]] == [True, True]
        for reader, writer in streams[2:4]:
            assert (await answers(reader, writer)).startswith(b"HTTP/1.1 200 ")
    finally:
        for _, w in streams:
            w.close()
    assert sink.warnings == [SHED_WARNING]


@pytest.mark.parametrize(
    ("open_files", "cap"),
    [(8, 8), (17, 9), (100, 50), (1024, 832)],
    ids=["never under 8", "half of a small limit", "half of 100", "the reserve off 1024"],
)
async def test_the_cap_keeps_back_the_reserve_or_half_the_limit(open_files: int, cap: int) -> None:
    """The cap is the open-files limit less FD_RESERVE + BACKLOG descriptors, or less half of
    it when that is smaller (rounded down), and never under 8."""

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response()

    assert ConnectionCap(web.Server(handler), open_files, lambda *a, **k: None).cap == cap


async def test_closed_connections_leave_the_cap_and_the_server(
    listener: Listener, sink: Collect
) -> None:
    """Connections that came and went are not counted, by the cap or by aiohttp: after twelve
    have closed, eight open at once are all kept and answered, with no warning."""
    assert listener._connections is not None and listener._runner is not None
    listener._connections.cap = 8
    for _ in range(12):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(listener))
        assert (await answers(reader, writer)).startswith(b"HTTP/1.1 200 ")
        writer.close()
    server = listener._runner.server
    assert server is not None
    deadline = time.monotonic() + 5
    while server.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.01)  # polls the server's own count, with a deadline
    assert server.connections == []
    streams = [await asyncio.open_connection("127.0.0.1", port_of(listener)) for _ in range(8)]
    try:
        for reader, writer in streams:
            assert (await answers(reader, writer)).startswith(b"HTTP/1.1 200 ")
    finally:
        for _, writer in streams:
            writer.close()
    assert sink.warnings == []


async def test_a_connection_that_served_a_request_is_shed_after_the_idle_ones(
    listener: Listener, sink: Collect
) -> None:
    """A connection counts from its last request, not from when it opened: the first one
    opened but the latest used (twice) is kept, and the two idle after it are closed."""
    assert listener._connections is not None
    listener._connections.cap = 8
    streams = [await asyncio.open_connection("127.0.0.1", port_of(listener)) for _ in range(8)]
    first_reader, first = streams[0]
    try:
        for _ in range(2):  # used twice: still counted, from its last use
            assert (await answers(first_reader, first)).startswith(b"HTTP/1.1 200 ")
            head = await asyncio.wait_for(first_reader.readuntil(b"\r\n\r\n"), 2)
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await asyncio.wait_for(first_reader.readexactly(length), 2)  # the whole answer
        streams.append(await asyncio.open_connection("127.0.0.1", port_of(listener)))
        assert [await is_closed(r) for r, _ in streams[1:3]] == [True, True]
        assert (await answers(first_reader, first)).startswith(b"HTTP/1.1 200 ")
    finally:
        for _, writer in streams:
            writer.close()
    assert sink.warnings == [SHED_WARNING]


async def test_shedding_reports_no_error_to_the_loop(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing connections the cap has already let go of is not an error: nothing is logged
    by asyncio (a protocol callback that raised would be)."""
    assert listener._connections is not None
    listener._connections.cap = 8
    caplog.set_level(logging.ERROR)
    streams = [await asyncio.open_connection("127.0.0.1", port_of(listener)) for _ in range(9)]
    try:
        assert [await is_closed(r) for r, _ in streams[:2]] == [True, True]
        assert (await answers(*streams[8])).startswith(b"HTTP/1.1 200 ")
    finally:
        for _, writer in streams:
            writer.close()
    assert [r.getMessage() for r in caplog.records] == []


async def test_a_connection_with_a_request_in_progress_is_not_shed(
    store: EventStore, sink: Collect
) -> None:
    """The oldest connection, in the middle of a request, is passed over; the idle ones
    after it are closed instead, and its request is answered."""
    running = Listener(store, Checker(None), ListenOptions(port=0), sinks=[sink])
    await running.start()
    assert running._connections is not None
    running._connections.cap = 8
    busy_reader, busy = await asyncio.open_connection("127.0.0.1", port_of(running))
    streams = []
    try:
        busy.write(
            b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        # 100 Continue: the listener is reading this request's body.
        assert (await asyncio.wait_for(busy_reader.readline(), 2)).startswith(b"HTTP/1.1 100 ")
        await asyncio.wait_for(busy_reader.readline(), 2)
        for _ in range(8):
            streams.append(await asyncio.open_connection("127.0.0.1", port_of(running)))
        busy.write(b"a=1")
        assert (await asyncio.wait_for(busy_reader.readline(), 2)).startswith(b"HTTP/1.1 200 ")
        assert [await is_closed(r) for r, _ in streams[:2]] == [True, True]
    finally:
        busy.close()
        for _, w in streams:
            w.close()
        await running.stop()


async def test_shedding_after_a_failed_accept_warns_no_more(
    listener: Listener, sink: Collect
) -> None:
    """Running short of connections is said once: a shedding after a failed accept adds
    no second warning."""
    assert listener._connections is not None
    listener._connections.cap = 8
    asyncio.get_running_loop().call_exception_handler(
        {"message": "socket.accept() out of system resource"}
    )
    streams = await connect_at_once(port_of(listener), 9)
    try:
        assert await is_closed(streams[0][0])
    finally:
        for _, w in streams:
            w.close()
    assert sink.warnings == [ACCEPT_WARNING]


async def test_a_failed_accept_after_a_shedding_warns_no_more(
    listener: Listener, sink: Collect
) -> None:
    """Running short of connections is said once: a failed accept after a shedding adds no
    second warning."""
    assert listener._connections is not None
    listener._connections.cap = 8
    streams = await connect_at_once(port_of(listener), 9)
    try:
        assert await is_closed(streams[0][0])
    finally:
        for _, w in streams:
            w.close()
    asyncio.get_running_loop().call_exception_handler(
        {"message": "socket.accept() out of system resource"}
    )
    assert sink.warnings == [SHED_WARNING]


# -- the open-files limit --------------------------------------------------------------------


class Limits:
    """RLIMIT_NOFILE as the OS would keep it, set to what a test needs; `refuse` is what
    setrlimit raises (the OS saying no)."""

    def __init__(self, soft: int, hard: int, refuse: Exception | None = None) -> None:
        self.soft, self.hard, self.refuse = soft, hard, refuse
        self.set_to: list[tuple[int, int]] = []

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        self.set_to.append(limits)
        if self.refuse is not None:
            raise self.refuse
        self.soft, self.hard = limits

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Limits:
        monkeypatch.setattr(resource, "getrlimit", self.getrlimit)
        monkeypatch.setattr(resource, "setrlimit", self.setrlimit)
        return self


INFINITY = resource.RLIM_INFINITY


def test_without_the_resource_module_the_limit_is_taken_as_65536(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where no limit can be read (no `resource` module), 65536 descriptors are assumed."""
    monkeypatch.setitem(sys.modules, "resource", None)
    assert raise_open_files() == 65536


def test_with_no_hard_limit_the_soft_one_is_raised_to_65536(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unlimited hard limit raises a low soft one to 65536, not to infinity."""
    limits = Limits(1024, INFINITY).install(monkeypatch)
    assert raise_open_files() == 65536
    assert limits.set_to == [(65536, INFINITY)]


@pytest.mark.parametrize(
    ("soft", "hard"), [(INFINITY, INFINITY), (4096, 4096)], ids=["unlimited", "at the hard"]
)
def test_a_soft_limit_that_cannot_go_higher_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int
) -> None:
    """An unlimited soft limit, or one at the hard limit already, is not set again."""
    limits = Limits(soft, hard).install(monkeypatch)
    assert raise_open_files() == (65536 if soft == INFINITY else soft)
    assert limits.set_to == []


@pytest.mark.parametrize("refusal", [ValueError("bad limit"), PermissionError(1, "refused")])
def test_a_refused_raise_keeps_the_old_limit(
    monkeypatch: pytest.MonkeyPatch, refusal: Exception
) -> None:
    """When the OS refuses the new limit (ValueError or OSError), the old one is returned."""
    limits = Limits(1024, 4096, refuse=refusal).install(monkeypatch)
    assert raise_open_files() == 1024
    assert limits.set_to == [(4096, 4096)]
