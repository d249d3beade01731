"""Nothing a client sends gets a 5xx or stops the listener: random requests under hypothesis,
malformed HTTP on raw sockets (each must be answered with a status line), no traceback shown."""

from __future__ import annotations

import json
import signal
import socket
import threading
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from helpers.env import cli_env
from helpers.listeners import MAX_BODY, ThreadedListener, ask, status_of
from helpers.procs import Cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifycli.store import StoreReader

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


def test_every_hostile_request_that_got_200_is_stored(served: ThreadedListener) -> None:
    """What the listener acknowledged with 2xx, it has on disk."""
    before = StoreReader(served.store.path).count()
    statuses = [served.request("POST", f"/p{i}", b"\xff" * i) for i in range(20)]
    assert statuses == [200] * 20
    assert StoreReader(served.store.path).count() == before + 20


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


# -- raw malformed HTTP: every request gets a status line --------------------------------

RAW = {
    "garbage": b"NONSENSE\r\n\r\n",
    "version": b"GET / HTTP/9.9\r\n\r\n",
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
    "two-lengths": b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"
    b"abcd",
    "bad-percent": b"GET /%zz%%/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
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
    """Each malformed request gets a status line below 500 within 3 s (a silent close or a stall
    fails), and the next callback gets 200."""
    answer = ask(served.port, RAW[name])
    assert status_of(answer) < 500, answer[:200]
    assert served.valid_callback_status() == 200


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


def test_ask_fails_on_a_silent_close_and_on_a_stall() -> None:
    """The raw-socket client above counts a close without a status line, and silence, as
    failures: a listener that hung up on hostile input or hung would not pass."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def hang_up() -> None:
            conn, _ = server.accept()
            conn.close()

        closer = threading.Thread(target=hang_up)
        closer.start()
        with pytest.raises(AssertionError, match="closed without a status line"):
            ask(port, RAW["garbage"], timeout=5)
        closer.join(5)
        # Nobody accepts this one: the kernel completes the connection, nothing ever answers.
        with pytest.raises(AssertionError, match="no answer within"):
            ask(port, RAW["garbage"], timeout=0.3)


def test_a_json_body_with_lone_surrogates_is_stored_not_503(served: ThreadedListener) -> None:
    """JSON escapes for lone surrogates (\\ud800) are kept as U+FFFD and answered 200."""
    body = b'{"SessionUUID": "\\ud800x", "\\udfff": "v"}'
    status = served.request("POST", "/cb", body, {"Content-Type": "application/json"})
    assert status == 200
    last = list(StoreReader(served.store.path).iter_records(limit=1))[0]
    assert last["session_uuid"] == "\ufffdx" and last["fields"]["\ufffd"] == "v"
