"""More hostile input: query strings, nesting and raw header bytes under hypothesis; malformed
HTTP read back in full; idle, half-sent and slow clients; signature edge cases."""

from __future__ import annotations

import asyncio
import http.client
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from procs import Cli

from tests.conftest import AUTH_TOKEN, MAIN_TOKEN, Collect, cli_env
from tests.test_hostile import FIELDS, ThreadedListener
from verifycli.callbacks import CallbackEvent
from verifycli.errors import StoreWriteError
from verifycli.listener import IDLE_TIMEOUT, Listener, ListenOptions
from verifycli.signature import (
    HEADER,
    NONCE_HEADER,
    Checker,
    Scheme,
    SignatureResult,
    sign_v2,
    sign_v3,
    signed_headers,
)
from verifycli.store import EventStore, StoreReader

MAX_BODY = 16 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedListener]:
    running = ThreadedListener(
        tmp_path_factory.mktemp("hostile-more") / "events.sqlite3",
        ListenOptions(port=0, max_body=MAX_BODY, idle_timeout=0.5, body_timeout=0.5),
    )
    yield running
    running.close()


def ask(port: int, raw: bytes, timeout: float = 3.0) -> bytes:
    """Send raw bytes without closing our side, and read what comes back until the server
    closes, goes quiet for `timeout`, or has sent one whole answer."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading and answered: read that answer
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/"):
        return None
    return int(answer.split(b" ", 2)[1])


# -- hypothesis: query strings, nesting, header bytes, sizes ------------------------------

keys = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
values = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
queries = st.one_of(
    st.lists(st.tuples(keys, values), max_size=6).map(urlencode),
    st.text(alphabet="%&=+;?/#[]abc19\u00e9", max_size=60).map(lambda q: quote(q, safe="%&=+;/[]")),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | values,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=40,
)
nested_form = st.lists(st.tuples(st.lists(keys, min_size=1, max_size=4), values), max_size=6).map(
    lambda pairs: urlencode([(k[0] + "".join(f"[{p}]" for p in k[1:]), v) for k, v in pairs])
)
# Header values as the bytes http.client puts on the wire (latin-1): 0x80-0xFF are not UTF-8.
header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=120,
)


def multipart(parts: list[tuple[str, str]]) -> bytes:
    out = b""
    for name, value in parts:
        out += (
            b'--bnd\r\nContent-Disposition: form-data; name="'
            + name.encode("utf-8", "replace")
            + b'"\r\n\r\n'
            + value.encode()
            + b"\r\n"
        )
    return out + b"--bnd--\r\n"


bodies = st.one_of(
    json_values.map(lambda v: ("application/json", json.dumps(v).encode())),
    json_values.map(lambda v: ("application/json", json.dumps(v, ensure_ascii=False).encode())),
    st.integers(1, 3000).map(  # nesting deeper than json.loads will follow
        lambda depth: ("application/json", b'{"a":' + b"[" * depth + b"]" * depth + b"}")
    ),
    nested_form.map(lambda body: ("application/x-www-form-urlencoded", body.encode())),
    st.lists(st.tuples(keys, values), max_size=5).map(
        lambda parts: ("multipart/form-data; boundary=bnd", multipart(parts))
    ),
    st.binary(max_size=512).map(lambda body: ("application/x-www-form-urlencoded", body)),
    st.integers(MAX_BODY - 2, MAX_BODY + 2).map(lambda n: ("text/plain", b"x" * n)),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH"]),
    query=queries,
    body=bodies,
    header=header_values,
    nonce=header_values,
)
def test_hostile_queries_nesting_and_header_bytes_never_get_5xx(
    served: ThreadedListener,
    method: str,
    query: str,
    body: tuple[str, bytes],
    header: str,
    nonce: str,
) -> None:
    """No query, nesting, size or header byte gets a 5xx; a 2xx is stored; a valid one follows."""
    content_type, data = body
    headers = {
        "Content-Type": content_type,
        "X-Anything": header,
        "X-Plivo-Signature-V3": header or "x",
        "X-Plivo-Signature-V3-Nonce": nonce,
    }
    before = StoreReader(served.store.path).count()
    status = served.request(method, f"/verify/callback?{query}", data, headers)
    assert status < 500
    stored = StoreReader(served.store.path).count() - before
    assert stored == (1 if 200 <= status < 300 else 0)
    assert served.valid_callback_status() == 200


# -- raw malformed HTTP, answers read in full ---------------------------------------------

RAW = {
    "bad-request-line": b"GET\r\n\r\n",
    "no-version": b"GET /cb\r\nHost: x\r\n\r\n",
    "negative-length": b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nabc",
    "huge-length": b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
    "lying-length": b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort",
    "bad-chunk": b"POST /cb HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"ZZ\r\nab\r\n0\r\n\r\n",
    "huge-chunk": b"POST /cb HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"f" * 40
    + b"\r\nab\r\n",
    "unfinished-chunks": b"POST /cb HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n",
    "chunked-and-length": b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "70kb-header": b"GET /cb HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    "many-headers": b"GET /cb HTTP/1.1\r\n"
    + b"".join(b"X-%d: v\r\n" % i for i in range(500))
    + b"\r\n",
    "header-no-colon": b"GET /cb HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n",
    "nul-in-header": b"GET /cb HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "latin1-header": b"POST /cb HTTP/1.1\r\nHost: x\r\nX-Plivo-Signature-V3: \xff\r\n"
    b"X-Plivo-Signature-V3-Nonce: \xe9\xe8\r\nContent-Length: 0\r\n\r\n",
    "bad-gzip": b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Content-Encoding: gzip\r\n\r\nnotgz",
    "bad-deflate-chunked": b"POST /cb HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Encoding: deflate\r\n\r\n5\r\nnotzz\r\n0\r\n\r\n",
    "bare-lf": b"GET /cb HTTP/1.1\nHost: x\n\n",
    "absolute-url": b"GET http://evil.example/cb?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "connect": b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    "non-utf8-path": b"GET /\xed\xa0\x80?q=\xff HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", list(RAW))
def test_malformed_http_is_answered_below_500_and_the_next_callback_gets_200(
    served: ThreadedListener, name: str
) -> None:
    """Each malformed request gets a 4xx (or 2xx) or a closed socket, never a 5xx or a hang."""
    started = time.monotonic()
    answer = ask(served.port, RAW[name])
    assert time.monotonic() - started < 3.0, "the listener neither answered nor closed"
    status = status_of(answer)
    assert status is None or status < 500, answer[:200]
    assert served.valid_callback_status() == 200


def test_a_lying_content_length_is_timed_out_with_408(served: ThreadedListener) -> None:
    """A body that never finishes arriving is answered 408 once the body timeout passes."""
    started = time.monotonic()
    answer = ask(served.port, RAW["lying-length"])
    assert status_of(answer) == 408
    assert 0.4 < time.monotonic() - started < 2.5


def test_malformed_requests_print_no_traceback(tmp_path: Path) -> None:
    """`listen` keeps aiohttp's tracebacks for malformed requests off the user's terminal."""
    cli = Cli(
        ["listen", "--no-tunnel", "--port", "0", "--store", str(tmp_path / "e.sqlite3")],
        cli_env(),
    )
    try:
        port = cli.port()
        for name in ("bad-request-line", "non-utf8-path", "bad-chunk", "header-no-colon"):
            assert status_of(ask(port, RAW[name])) == 400
        cli.proc.send_signal(signal.SIGTERM)
        assert cli.finish() == 0
    finally:
        cli.stop()
    assert "Traceback" not in cli.stderr and "Error handling request" not in cli.stderr


# -- idle, half-sent and slow clients ------------------------------------------------------


def test_200_idle_or_half_sent_connections_do_not_delay_a_real_callback(
    served: ThreadedListener,
) -> None:
    """With 200 connections idle or stuck mid-headers, a real callback is answered in < 2 s."""
    held: list[socket.socket] = []
    try:
        for i in range(200):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            if i % 2:
                sock.sendall(b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Len")
            held.append(sock)
        started = time.monotonic()
        assert served.valid_callback_status() == 200
        assert time.monotonic() - started < 2.0
        # The listener closes them all once the idle timeout (0.5 s here) has passed.
        deadline = time.monotonic() + 5
        for sock in held:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                assert sock.recv(1024) == b""
            except ConnectionResetError:
                pass
    finally:
        for sock in held:
            sock.close()
    assert served.valid_callback_status() == 200


def test_slow_body_clients_are_timed_out(served: ThreadedListener) -> None:
    """Clients that trickle a body get 408 after the body timeout and are disconnected."""
    socks = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            sock.sendall(
                b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nSessionUUID="
            )
            socks.append(sock)
        started = time.monotonic()
        for sock in socks:
            sock.sendall(b"a")  # a trickle: not enough to finish, enough to look alive
        answers = []
        for sock in socks:
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            answers.append(data)
        assert all(status_of(a) == 408 for a in answers), answers[0][:100]
        assert time.monotonic() - started < 3.0
    finally:
        for sock in socks:
            sock.close()
    assert served.valid_callback_status() == 200


def test_the_default_timeouts_close_stalled_clients_within_a_minute() -> None:
    """Out of the box, idle connections and unfinished bodies are not kept for ever."""
    options = ListenOptions()
    assert 0 < options.idle_timeout <= 60 and options.idle_timeout == IDLE_TIMEOUT
    assert 0 < options.body_timeout <= 60


# -- signature edge cases -----------------------------------------------------------------


async def post(
    base: str, headers: dict[str, str], data: dict[str, str] | bytes = FIELDS, path: str = "/cb"
) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(base + path, data=data, headers=headers) as response:
            return response.status


def v3_headers(
    url: str, nonce: str, token: str = AUTH_TOKEN, data: dict[str, str] = FIELDS
) -> dict[str, str]:
    return {
        HEADER["v3"]: sign_v3("POST", url, data, nonce, token),
        NONCE_HEADER["v3"]: nonce,
    }


async def test_an_empty_nonce_is_judged_as_plivo_utils_judges_it(
    listener: Listener, sink: Collect
) -> None:
    """An empty V3 nonce is checked as the empty string, as plivo.utils does: a signature made
    with it is valid; one made with another nonce is invalid and the detail names the empty
    header."""
    from plivo.utils.signature_v3 import validate_v3_signature

    url = listener.base_url + "/cb"
    good = v3_headers(url, "")
    sig = good[HEADER["v3"]]
    assert validate_v3_signature("POST", url, "", AUTH_TOKEN, sig, dict(FIELDS))
    assert await post(listener.base_url, good) == 200
    forged = {**v3_headers(url, "other"), NONCE_HEADER["v3"]: ""}
    assert await post(listener.base_url, forged) == 200
    first, second = sink.events
    assert first.signature.verdict == "valid"
    assert second.signature.verdict == "invalid"
    assert "Nonce is empty" in second.signature.detail


def test_a_non_ascii_nonce_signed_as_utf8_is_valid(served: ThreadedListener) -> None:
    """A nonce with non-ASCII characters, signed over its UTF-8 bytes, checks as valid."""
    url = f"http://127.0.0.1:{served.port}/cb"
    nonce = "nöncé-✓-42"
    headers = v3_headers(url, nonce)
    # http.client sends header text as latin-1: this puts the nonce's UTF-8 bytes on the wire.
    headers[NONCE_HEADER["v3"]] = nonce.encode().decode("latin-1")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    assert served.request("POST", "/cb", urlencode(FIELDS).encode(), headers) == 200
    last = list(StoreReader(served.store.path).iter_records(limit=1))[0]
    assert last["headers"][NONCE_HEADER["v3"]] == nonce
    assert last["signature"]["verdict"] == "valid", last["signature"]


def test_a_nonce_that_is_not_utf8_is_stored_as_invalid(served: ThreadedListener) -> None:
    """Nonce bytes that are not UTF-8 are answered 200 and stored as invalid, never a 5xx."""
    before = StoreReader(served.store.path).count()
    answer = ask(served.port, RAW["latin1-header"])
    assert status_of(answer) == 200
    last = list(StoreReader(served.store.path).iter_records(limit=1))[0]
    assert StoreReader(served.store.path).count() == before + 1
    assert last["signature"]["verdict"] == "invalid"
    assert last["headers"]["X-Plivo-Signature-V3-Nonce"] == "\ufffd\ufffd"


@pytest.mark.parametrize("where", ["first", "absent"])
async def test_a_thousand_signatures_in_one_header_are_checked_quickly(
    listener: Listener, sink: Collect, where: str
) -> None:
    """1,000 comma-separated candidates: a valid one up front counts, junk is invalid, fast."""
    url = listener.base_url + "/cb"
    good = v3_headers(url, "1234567890")
    junk = ["AAAA"] * 999
    candidates = [good[HEADER["v3"]], *junk] if where == "first" else [*junk, "BBBB"]
    headers = {HEADER["v3"]: ",".join(candidates), NONCE_HEADER["v3"]: "1234567890"}
    started = time.perf_counter()
    assert await post(listener.base_url, headers) == 200
    assert time.perf_counter() - started < 1.0
    [event] = sink.events
    assert event.signature.verdict == ("valid" if where == "first" else "invalid")


async def test_a_replayed_v2_nonce_on_a_forged_body_is_flagged_and_refused(
    tmp_path: Path,
) -> None:
    """A captured V2 signature reused on another body is `replayed`, and 403 with
    --reject-invalid; the same body again is only a duplicate delivery."""
    sink = Collect()
    with EventStore(tmp_path / "e.sqlite3") as store:
        options = ListenOptions(port=0, reject_invalid=True)
        listener = Listener(store, Checker(AUTH_TOKEN), options, sinks=[sink])
        base = await listener.start()
        try:
            url = base + "/cb"
            headers = signed_headers("POST", url, FIELDS, AUTH_TOKEN, schemes=("v2",))
            assert await post(base, headers) == 200
            assert await post(base, headers) == 200  # Plivo's own retry
            forged = {**FIELDS, "ChannelStatus": "delivered"}
            assert await post(base, headers, forged) == 403
        finally:
            await listener.stop()
    first, again, forged_event = sink.events
    assert first.signature.verdict == "valid"
    assert again.signature.verdict == "valid" and again.retry_of == first.id
    assert forged_event.signature.verdict == "replayed"
    assert f"event #{first.id}" in forged_event.signature.detail


async def test_a_forged_body_under_a_v3_signature_is_invalid(
    listener: Listener, sink: Collect
) -> None:
    """V3 signs the body: the same headers on a changed body do not check."""
    url = listener.base_url + "/cb"
    headers = v3_headers(url, "555")
    assert await post(listener.base_url, headers, {**FIELDS, "ChannelStatus": "delivered"}) == 200
    [event] = sink.events
    assert event.signature.verdict == "invalid"


@pytest.mark.parametrize("scheme", ["v3", "v2"])
async def test_a_token_with_unicode_checks_both_schemes(tmp_path: Path, scheme: Scheme) -> None:
    """An auth token with non-ASCII characters signs and checks, V3 and V2, both ways round."""
    token = "tökén-✓-秘密"
    sink = Collect()
    with EventStore(tmp_path / "e.sqlite3") as store:
        listener = Listener(store, Checker(token, MAIN_TOKEN), ListenOptions(port=0), sinks=[sink])
        base = await listener.start()
        try:
            url = base + "/cb"
            for key in (token, AUTH_TOKEN):  # the right token, then another one
                nonce = "98765"
                if scheme == "v3":
                    signature = sign_v3("POST", url, FIELDS, nonce, key)
                else:
                    signature = sign_v2(url, nonce, key)
                headers = {HEADER[scheme]: signature, NONCE_HEADER[scheme]: nonce}
                assert await post(base, headers) == 200
        finally:
            await listener.stop()
    assert [e.signature.verdict for e in sink.events] == ["valid", "invalid"]


# -- the store: one bad record does not sink the batch it was committed with ---------------


async def test_a_record_sqlite_cannot_take_fails_alone(store: EventStore) -> None:
    """Text SQLite refuses (a lone surrogate) fails only its own append, not its batch-mates."""

    def event(session: str) -> CallbackEvent:
        return CallbackEvent(
            method="POST",
            url="http://x/cb",
            path="/cb",
            query="",
            headers={},
            content_type="",
            body="",
            body_encoding="utf-8",
            fields={"SessionUUID": session},
            signature=SignatureResult("unsigned", None, ""),
        )

    results = await asyncio.gather(
        *(store.append(event(s)) for s in ["a", "b", "\ud800", "c", "d"]),
        return_exceptions=True,
    )
    assert isinstance(results[2], StoreWriteError)
    good = [r for i, r in enumerate(results) if i != 2]
    assert all(isinstance(r, CallbackEvent) and r.id is not None for r in good)
    assert [r["session_uuid"] for r in StoreReader(store.path).iter_records()] == list("abcd")


def test_a_json_body_with_lone_surrogates_is_stored_not_503(served: ThreadedListener) -> None:
    """JSON escapes for lone surrogates (\\ud800) are kept as U+FFFD and answered 200."""
    body = b'{"SessionUUID": "\\ud800x", "\\udfff": "v"}'
    status = served.request("POST", "/cb", body, {"Content-Type": "application/json"})
    assert status == 200
    last = list(StoreReader(served.store.path).iter_records(limit=1))[0]
    assert last["session_uuid"] == "\ufffdx" and last["fields"]["\ufffd"] == "v"


def test_the_idle_timeout_leaves_keep_alive_working(served: ThreadedListener) -> None:
    """A keep-alive client still gets two 200s on one connection, with the idle timeout on."""
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    try:
        for _ in range(2):
            conn.request("POST", "/cb", body=b"a=1", headers={"Content-Type": "text/plain"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
    finally:
        conn.close()
