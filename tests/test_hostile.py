"""Nothing a client sends gets a 5xx or stops the listener (hypothesis + raw sockets)."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import AUTH_TOKEN
from verifycli.listener import Listener, ListenOptions
from verifycli.signature import Checker, signed_headers
from verifycli.store import EventStore, StoreReader

FIELDS = {"SessionUUID": "s-1", "ChannelStatus": "sent", "ChannelErrorCode": ""}


class ThreadedListener:
    """A real listener on its own event loop in a thread, for synchronous clients."""

    def __init__(self, store_path: Path, options: ListenOptions) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = EventStore(store_path)
        self.listener = Listener(self.store, Checker(AUTH_TOKEN), options)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        base = asyncio.run_coroutine_threadsafe(self.listener.start(), self.loop).result(10)
        self.port = int(base.rsplit(":", 1)[1])

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.listener.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.store.close()

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            return conn.getresponse().status
        finally:
            conn.close()

    def raw(self, data: bytes) -> bytes:
        """Send raw bytes, return what came back before the server closed or went quiet."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            try:
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except (TimeoutError, ConnectionResetError):
                pass
        return b"".join(chunks)

    def valid_callback_status(self) -> int:
        url = f"http://127.0.0.1:{self.port}/verify/callback"
        body = "&".join(f"{k}={v}" for k, v in FIELDS.items()).encode()
        headers = signed_headers("POST", url, FIELDS, AUTH_TOKEN)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return self.request("POST", "/verify/callback", body, headers)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedListener]:
    running = ThreadedListener(
        tmp_path_factory.mktemp("hostile") / "events.sqlite3",
        ListenOptions(port=0, max_body=64 * 1024),
    )
    yield running
    running.close()


header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)
content_types = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/json",
        "multipart/form-data; boundary=abc",
        "multipart/form-data",
        "text/plain",
        "application/octet-stream",
        "",
        "application/json; charset=latin-1",
    ]
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["POST", "GET", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE", "REPORT"]),
    path=st.text(alphabet="abc/%?&=+;._-~19", max_size=60),
    content_type=content_types,
    body=st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=500).map(str.encode),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=30,
        ).map(lambda v: repr(v).encode()),
    ),
    signature=header_text,
    nonce=header_text,
)
def test_hostile_requests_never_get_5xx(
    served: ThreadedListener,
    method: str,
    path: str,
    content_type: str,
    body: bytes,
    signature: str,
    nonce: str,
) -> None:
    """Random methods, paths, content types, bodies and signature headers get a non-5xx answer."""
    headers = {
        "Content-Type": content_type,
        "X-Plivo-Signature-V3": signature,
        "X-Plivo-Signature-V3-Nonce": nonce,
        "X-Plivo-Signature-V2": signature,
    }
    status = served.request(
        method, "/" + path.lstrip("/"), body if method != "GET" else b"", headers
    )
    assert status < 500


@pytest.mark.parametrize(
    "raw",
    [
        b"NONSENSE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nabc",
        b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort",
        b"POST /cb HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n",
        b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"GET /cb HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"GET /%zz%%/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Encoding: gzip\r\n\r\nnotgz",
    ],
    ids=[
        "garbage",
        "version",
        "negative-length",
        "lying-length",
        "bad-chunk",
        "two-lengths",
        "70kb-header",
        "bad-percent",
        "bad-gzip",
    ],
)
def test_malformed_http_gets_no_5xx_and_listener_survives(
    served: ThreadedListener, raw: bytes
) -> None:
    """Malformed HTTP is answered 4xx or closed, and a valid callback right after gets 200."""
    answer = served.raw(raw)
    if answer:
        status_line = answer.split(b"\r\n", 1)[0]
        assert not status_line.split(b" ")[1].startswith(b"5"), status_line
    assert served.valid_callback_status() == 200


def test_every_hostile_request_that_got_200_is_stored(served: ThreadedListener) -> None:
    """What the listener acknowledged with 2xx, it has on disk."""
    before = StoreReader(served.store.path).count()
    statuses = [served.request("POST", f"/p{i}", b"\xff" * i) for i in range(20)]
    assert statuses == [200] * 20
    assert StoreReader(served.store.path).count() == before + 20
