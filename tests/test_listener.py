"""The listener through real HTTP on loopback: capture, check, store, answer, publish."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import aiohttp
import pytest
from helpers.env import AUTH_TOKEN, Collect
from helpers.signing import DELIVERED as FIELDS

from verifycli.listener import Listener, ListenOptions
from verifycli.signature import Checker, signed_headers
from verifycli.store import EventStore, StoreReader

PUBLIC = "https://abcd.ngrok-free.app"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def public(listener: Listener, path: str = "/verify/callback") -> str:
    listener.public_url = PUBLIC
    return PUBLIC + path


async def post_public(
    http: aiohttp.ClientSession, listener: Listener, fields: dict[str, str] = FIELDS
) -> aiohttp.ClientResponse:
    """POST `fields` to the listener, signed for its public (ngrok) URL, as Plivo would."""
    headers = signed_headers("POST", public(listener), fields, AUTH_TOKEN)
    async with http.post(
        listener.local_url + "/verify/callback", data=fields, headers=headers
    ) as r:
        await r.read()
        return r


async def _post_twice(running: Listener, http: aiohttp.ClientSession) -> list[int]:
    """Start `running`, post the same callback to it twice, stop it: the two statuses."""
    await running.start()
    try:
        statuses = []
        for _ in range(2):
            async with http.post(running.local_url + "/cb", data=FIELDS) as r:
                statuses.append(r.status)
    finally:
        await running.stop()
    return statuses


async def test_signed_form_callback_is_valid_stored_and_published(
    listener: Listener, http: aiohttp.ClientSession, sink: Collect
) -> None:
    """A V3-signed form POST checked against the public URL is valid, on disk, and shown."""
    response = await post_public(http, listener)
    assert response.status == 200
    [event] = StoreReader(listener.store.path).iter_events()
    assert event.url == PUBLIC + "/verify/callback"
    assert event.signature.verdict == "valid"
    assert event.fields["ChannelErrorCode"] == ""
    assert event.response_status == 200
    assert [e.id for e in sink.events] == [event.id]


async def test_local_address_signature_is_diagnosed(
    listener: Listener, http: aiohttp.ClientSession
) -> None:
    """A callback signed for the local address is invalid, and the detail says so."""
    url = listener.local_url + "/verify/callback"
    headers = signed_headers("POST", url, FIELDS, AUTH_TOKEN)
    listener.public_url = PUBLIC
    async with http.post(url, data=FIELDS, headers=headers) as r:
        assert r.status == 200
    [event] = StoreReader(listener.store.path).iter_events()
    assert event.signature.verdict == "invalid"
    assert "local address" in event.signature.detail


async def test_get_callback_signed_over_query(
    listener: Listener, http: aiohttp.ClientSession
) -> None:
    """A GET callback's fields come from the query, and its V3 signature covers it."""
    url = public(listener) + "?" + urlencode(FIELDS)
    headers = signed_headers("GET", url, {}, AUTH_TOKEN)
    async with http.get(
        listener.local_url + "/verify/callback?" + urlencode(FIELDS), headers=headers
    ) as r:
        assert r.status == 200
    [event] = StoreReader(listener.store.path).iter_events()
    assert event.signature.verdict == "valid"
    assert event.fields == FIELDS


async def test_json_body(listener: Listener, http: aiohttp.ClientSession) -> None:
    """A JSON object body is stored with its fields."""
    async with http.post(listener.local_url + "/hook", json=FIELDS) as r:
        assert r.status == 200
    [event] = StoreReader(listener.store.path).iter_events()
    assert event.fields == FIELDS
    assert event.signature.verdict == "unsigned"


async def test_multipart_body(listener: Listener, http: aiohttp.ClientSession) -> None:
    """A multipart form (really sent as multipart/form-data) is parsed into fields."""
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("ChannelStatus", "sent")
    form.add_field("ChannelErrorCode", "")
    async with http.post(listener.local_url + "/hook", data=form(), headers={}) as r:
        assert r.status == 200
    [event] = StoreReader(listener.store.path).iter_events()
    assert (event.content_type or "").startswith("multipart/form-data; boundary=")
    assert event.fields == {"ChannelStatus": "sent", "ChannelErrorCode": ""}


async def test_oversized_body_gets_413_and_is_not_stored(
    store: EventStore, http: aiohttp.ClientSession
) -> None:
    """A body over --max-body is refused with 413."""
    small = Listener(store, Checker(AUTH_TOKEN), ListenOptions(port=0, max_body=1000))
    await small.start()
    try:
        async with http.post(small.local_url + "/x", data=b"a" * 5000) as r:
            assert r.status == 413
        async with http.post(small.local_url + "/x", data=b"a" * 10) as r:
            assert r.status == 200
    finally:
        await small.stop()
    assert StoreReader(store.path).count() == 1


async def test_health_is_not_stored(listener: Listener, http: aiohttp.ClientSession) -> None:
    """GET /_verifycli/health answers 200 and stores nothing."""
    async with http.get(listener.local_url + "/_verifycli/health") as r:
        assert r.status == 200
        assert (await r.json())["status"] == "ok"
    assert StoreReader(listener.store.path).count() == 0


async def test_unknown_method_is_stored(listener: Listener, http: aiohttp.ClientSession) -> None:
    """Any method on any path is captured."""
    async with http.request("PURGE", listener.local_url + "/any/path?x=1") as r:
        assert r.status == 200
    [event] = StoreReader(listener.store.path).iter_events()
    assert (event.method, event.path, event.query) == ("PURGE", "/any/path", "x=1")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (ListenOptions(port=0, respond_status=204), 204),
        (ListenOptions(port=0, respond_status=410), 410),
        (ListenOptions(port=0, fail_rate=1.0), 500),
    ],
)
async def test_answer_status_options(
    store: EventStore, http: aiohttp.ClientSession, options: ListenOptions, expected: int
) -> None:
    """--respond-status and --fail-rate decide the answer, and the stored status matches."""
    running = Listener(store, Checker(AUTH_TOKEN), options)
    await running.start()
    try:
        async with http.post(running.local_url + "/cb", data=FIELDS) as r:
            assert r.status == expected
    finally:
        await running.stop()
    [event] = StoreReader(store.path).iter_events()
    assert event.response_status == expected


async def test_fail_rate_uses_the_random_draw(
    store: EventStore, http: aiohttp.ClientSession
) -> None:
    """--fail-rate answers 500 exactly when the draw falls under the rate (a draw equal to
    the rate is not under it)."""
    draws = iter([0.1, 0.5])
    running = Listener(
        store, Checker(None), ListenOptions(port=0, fail_rate=0.5), rng=lambda: next(draws)
    )
    assert await _post_twice(running, http) == [500, 200]


async def test_reject_invalid_answers_403_but_stores(
    store: EventStore, http: aiohttp.ClientSession
) -> None:
    """--reject-invalid answers 403 to a bad signature and still keeps the event."""
    running = Listener(store, Checker(AUTH_TOKEN), ListenOptions(port=0, reject_invalid=True))
    await running.start()
    try:
        headers = signed_headers("POST", running.local_url + "/cb", FIELDS, "wrong-token")
        async with http.post(running.local_url + "/cb", data=FIELDS, headers=headers) as r:
            assert r.status == 403
    finally:
        await running.stop()
    [event] = StoreReader(store.path).iter_events()
    assert (event.signature.verdict, event.response_status) == ("invalid", 403)


async def test_replayed_nonce_with_forged_body(
    listener: Listener, http: aiohttp.ClientSession
) -> None:
    """Reusing a valid V2 header on another body is `replayed`; the original stays valid."""
    url = public(listener)
    headers = signed_headers("POST", url, FIELDS, AUTH_TOKEN, schemes=("v2",))
    forged = {**FIELDS, "SessionStatus": "verified"}
    for body in (FIELDS, forged):
        async with http.post(
            listener.local_url + "/verify/callback", data=body, headers=headers
        ) as r:
            assert r.status == 200
    verdicts = [e.signature.verdict for e in StoreReader(listener.store.path).iter_events()]
    assert verdicts == ["valid", "replayed"]


async def test_retry_is_marked(
    listener: Listener, http: aiohttp.ClientSession, sink: Collect
) -> None:
    """A second delivery of the same callback is shown and stored as a retry of the first."""
    await post_public(http, listener)
    await post_public(http, listener)
    assert [e.retry_of for e in sink.events] == [None, sink.events[0].id]
    assert listener.stats.retries == 1


async def test_write_failure_answers_503_and_warns(
    listener: Listener, http: aiohttp.ClientSession, sink: Collect
) -> None:
    """When the store cannot write, the callback gets 503 (never 200) and the user is told."""
    listener.store._conn.execute("PRAGMA query_only = 1")
    response = await post_public(http, listener)
    assert response.status == 503
    assert sink.warnings and "503" in sink.warnings[0]
    listener.store._conn.execute("PRAGMA query_only = 0")
    assert (await post_public(http, listener)).status == 200
    assert StoreReader(listener.store.path).count() == 1


async def test_no_token_is_unchecked(store: EventStore, http: aiohttp.ClientSession) -> None:
    """Without a configured token, signed requests are `unchecked`, not invalid."""
    running = Listener(store, Checker(None), ListenOptions(port=0))
    await running.start()
    try:
        headers = signed_headers("POST", running.local_url + "/cb", FIELDS, AUTH_TOKEN)
        async with http.post(running.local_url + "/cb", data=FIELDS, headers=headers) as r:
            assert r.status == 200
    finally:
        await running.stop()
    [event] = StoreReader(store.path).iter_events()
    assert event.signature.verdict == "unchecked"


async def test_stored_record_never_holds_the_token(
    listener: Listener, http: aiohttp.ClientSession
) -> None:
    """The auth token is in no stored byte, whatever the verdict."""
    await post_public(http, listener)
    async with http.post(listener.local_url + "/x", data={"a": "b"}) as r:
        assert r.status == 200
    lines = list(StoreReader(listener.store.path).iter_json())
    assert len(lines) == 2
    assert all(AUTH_TOKEN not in line for line in lines)
    assert AUTH_TOKEN.encode() not in listener.store.path.read_bytes()
    assert json.loads(lines[0])["signature"]["verdict"] == "valid"


def test_bad_options_are_config_errors() -> None:
    """Out-of-range flags are rejected before anything starts."""
    from verifycli.errors import ConfigError

    for bad in (
        {"fail_rate": 1.5},
        {"respond_status": 42},
        {"max_body": 0},
        {"port": 70000},
        {"answer_from_forward": True},
    ):
        with pytest.raises(ConfigError):
            ListenOptions(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"fail_rate": -0.1}, "--fail-rate must be between 0 and 1, not -0.1"),
        ({"fail_rate": 1.01}, "--fail-rate must be between 0 and 1, not 1.01"),
        ({"respond_status": 99}, "--respond-status must be an HTTP status (100-599), not 99"),
        ({"respond_status": 600}, "--respond-status must be an HTTP status (100-599), not 600"),
        ({"max_body": 0}, "--max-body must be at least 1 byte"),
        ({"port": -1}, "--port must be 0-65535, not -1"),
        ({"port": 65536}, "--port must be 0-65535, not 65536"),
        (
            {"host": " "},
            "--host '' would listen on every interface: give 0.0.0.0 for that, or 127.0.0.1 "
            "for this machine only",
        ),
        ({"answer_from_forward": True}, "--answer-from-forward needs --forward-to URL"),
        (
            {"port": 8080, "forward_to": "http://127.0.0.1:8080/cb"},
            "--forward-to http://127.0.0.1:8080/cb is this listener: every callback would be "
            "forwarded to itself without end; give your app's address",
        ),
    ],
)
def test_each_bad_option_is_refused_in_its_own_sentence(
    bad: dict[str, object], message: str
) -> None:
    """An out-of-range flag is a ConfigError that names the flag, the range and the value."""
    from verifycli.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        ListenOptions(**bad)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_the_edges_of_each_range_are_accepted() -> None:
    """0 and 1, 100 and 599, 1 byte, ports 0 and 65535, and a forward to another port are fine."""
    for good in (
        {"fail_rate": 0.0, "respond_status": 100, "max_body": 1, "port": 0},
        {"fail_rate": 1.0, "respond_status": 599, "port": 65535},
        {"port": 8080, "forward_to": "http://127.0.0.1:8081/cb", "answer_from_forward": True},
    ):
        ListenOptions(**good)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "path", ["/_verifycli/health", "/_verifycli/health/", "/_verifycli/health?x=1"]
)
def test_the_health_path_cannot_be_the_callback_path(path: str) -> None:
    """--path on the health check (any slash or query) is refused, naming the path."""
    from verifycli.errors import ConfigError
    from verifycli.listener import check_callback_path

    with pytest.raises(ConfigError) as caught:
        check_callback_path(path)
    assert str(caught.value) == (
        f"--path {path} is the listener's health check, whose requests are not stored; "
        "choose another path, such as /verify/callback"
    )


def test_any_other_callback_path_is_kept_as_given() -> None:
    """A path beside the health check is returned unchanged."""
    from verifycli.listener import check_callback_path

    assert check_callback_path("/_verifycli/healthz?a=1") == "/_verifycli/healthz?a=1"


def test_stats_count_each_verdict_and_retry_under_its_label() -> None:
    """valid counts as valid, invalid and replayed as invalid, a retry as a retry."""
    from helpers.events import form_event

    from verifycli.listener import Stats
    from verifycli.signature import SignatureResult

    stats = Stats(write_errors=4)
    for verdict, retry_of in (
        ("valid", None),
        ("valid", 1),
        ("invalid", None),
        ("replayed", 1),
        ("replayed", None),
        ("unsigned", 1),
        ("unchecked", None),
    ):
        stats.count(form_event({}, SignatureResult(verdict, None, ""), retry_of=retry_of))  # type: ignore[arg-type]
    assert stats.by_label() == {
        "received": 7,
        "valid": 2,
        "invalid": 3,
        "retries": 3,
        "write errors": 4,
    }


async def test_each_answer_names_the_stored_event(
    listener: Listener, http: aiohttp.ClientSession
) -> None:
    """200's text says which event it stored; the health check counts what was received."""
    for expected in ("verifycli stored event #1\n", "verifycli stored event #2\n"):
        async with http.post(listener.local_url + "/cb", data=FIELDS) as r:
            assert (r.status, await r.text()) == (200, expected)
    async with http.get(listener.local_url + "/_verifycli/health") as r:
        assert await r.json() == {"status": "ok", "received": 2}


async def test_a_get_callback_to_the_health_path_is_stored(
    listener: Listener, http: aiohttp.ClientSession
) -> None:
    """The health path with a query is a GET callback sent there: stored like any other."""
    async with http.get(listener.local_url + "/_verifycli/health?SessionUUID=s") as r:
        assert (r.status, await r.text()) == (200, "verifycli stored event #1\n")
    [event] = StoreReader(listener.store.path).iter_events()
    assert (event.path, event.fields) == ("/_verifycli/health", {"SessionUUID": "s"})


@pytest.mark.parametrize("status", [204, 304, 101])
async def test_a_status_without_a_body_is_answered_without_one(
    store: EventStore, http: aiohttp.ClientSession, status: int
) -> None:
    """--respond-status 204, 304 or a 1xx answers that status with no body."""
    running = Listener(store, Checker(None), ListenOptions(port=0, respond_status=status))
    await running.start()
    try:
        async with http.post(running.local_url + "/cb", data=FIELDS) as r:
            assert (r.status, await r.read()) == (status, b"")
    finally:
        await running.stop()


async def test_fail_first_answers_500_to_a_first_delivery_and_200_to_its_retry(
    store: EventStore, http: aiohttp.ClientSession
) -> None:
    """--fail-first: 500 to the first delivery of a callback, the respond status to the retry."""
    running = Listener(store, Checker(None), ListenOptions(port=0, fail_first=True))
    assert await _post_twice(running, http) == [500, 200]


async def test_reject_invalid_refuses_a_replay_before_fail_first_sees_it(
    store: EventStore, http: aiohttp.ClientSession
) -> None:
    """--reject-invalid answers 403 to a replayed nonce, even where --fail-first would 500."""
    options = ListenOptions(port=0, reject_invalid=True, fail_first=True, respond_status=202)
    running = Listener(store, Checker(AUTH_TOKEN), options)
    await running.start()
    try:
        url = running.local_url + "/cb"
        headers = signed_headers("POST", url, FIELDS, AUTH_TOKEN)
        statuses = []
        for body in (FIELDS, FIELDS, {**FIELDS, "SessionStatus": "verified"}):
            async with http.post(url, data=body, headers=headers) as r:
                statuses.append(r.status)
    finally:
        await running.stop()
    assert statuses == [500, 202, 403]


async def test_repeated_headers_are_joined_and_the_url_is_the_public_one(
    listener: Listener, http: aiohttp.ClientSession
) -> None:
    """A header sent twice is stored once, its values joined by ", "; the URL is the tunnel's."""
    listener.public_url = PUBLIC + "/"
    headers = [("X-Twice", "a"), ("X-Twice", "b"), ("Content-Type", "text/plain; x=1")]
    async with http.post(listener.local_url + "/p/q?z=1", data=b"raw", headers=headers) as r:
        assert r.status == 200
    [event] = StoreReader(listener.store.path).iter_events()
    assert event.headers["X-Twice"] == "a, b"
    assert (event.url, event.path, event.query) == (PUBLIC + "/p/q?z=1", "/p/q", "z=1")
    assert (event.content_type, event.body, event.body_encoding) == (
        "text/plain; x=1",
        "raw",
        "utf-8",
    )


async def test_a_write_failure_is_counted_and_warned_about_once(
    listener: Listener, http: aiohttp.ClientSession, sink: Collect
) -> None:
    """Two failed writes: two write errors, one warning, and the 503 says why."""
    listener.store._conn.execute("PRAGMA query_only = 1")
    for _ in range(2):
        async with http.post(listener.local_url + "/cb", data=FIELDS) as r:
            assert (r.status, await r.text()) == (503, "verifycli could not store this callback\n")
    listener.store._conn.execute("PRAGMA query_only = 0")
    assert listener.stats.write_errors == 2
    assert len(sink.warnings) == 1
    assert sink.warnings[0].startswith(f"could not store a callback in {listener.store.path} (")
    assert sink.warnings[0].endswith(
        "): check the disk has room and the file is writable; answered 503 so Plivo retries"
    )


async def test_a_new_write_failure_after_a_success_is_warned_about_again(
    listener: Listener, http: aiohttp.ClientSession, sink: Collect
) -> None:
    """Once a write succeeds, the next failure is news: warned again."""
    for query_only in (1, 0, 1):
        listener.store._conn.execute(f"PRAGMA query_only = {query_only}")
        async with http.post(listener.local_url + "/cb", data=FIELDS) as r:
            assert r.status == (503 if query_only else 200)
    listener.store._conn.execute("PRAGMA query_only = 0")
    assert len(sink.warnings) == 2


def test_raise_open_files_lifts_the_soft_limit_to_the_hard_one() -> None:
    """The soft open-files limit is raised to the hard one, and the limit in force returned."""
    import resource

    from verifycli.listener import raise_open_files

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip("needs a finite hard limit above 256")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        assert raise_open_files() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 256), hard))


async def test_running_out_of_descriptors_to_accept_is_said_once(
    store: EventStore, sink: Collect
) -> None:
    """asyncio's failed-accept report becomes one warning; other reports go to the handler
    that was there before."""
    import asyncio

    loop = asyncio.get_running_loop()
    before: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: before.append(context["message"]))
    running = Listener(store, Checker(None), ListenOptions(port=0), sinks=[sink])
    await running.start()
    try:
        for _ in range(2):
            loop.call_exception_handler({"message": "socket.accept() out of system resource"})
        loop.call_exception_handler({"message": "something else"})
    finally:
        await running.stop()
        loop.set_exception_handler(previous)
    assert sink.warnings == ["no file descriptors left to accept connections: some were refused"]
    assert before == ["something else"]


async def test_past_the_cap_the_longest_idle_connections_are_closed(
    listener: Listener, sink: Collect
) -> None:
    """Past the connection cap the oldest idle connections are closed (cap/16 more than
    needed, at least one), the user is warned once, and a new callback still gets 200."""
    import asyncio

    assert listener._connections is not None
    listener._connections.cap = 8
    port = int(listener.local_url.rsplit(":", 1)[1])
    streams = []
    for _ in range(9):
        streams.append(await asyncio.open_connection("127.0.0.1", port))

    async def closed(reader: asyncio.StreamReader) -> bool:
        return await asyncio.wait_for(reader.read(1), 5) == b""

    try:
        assert [await closed(r) for r, _ in streams[:2]] == [True, True]
        writer = streams[8][1]
        writer.write(b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        head = await asyncio.wait_for(streams[8][0].readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
    finally:
        for _, w in streams:
            w.close()
    assert sink.warnings == [
        "more than 8 connections open at once: closing the longest idle ones (someone may be "
        "flooding this listener)"
    ]


async def test_start_ignores_sigxfsz_and_leaves_ctrl_c_to_the_command(store: EventStore) -> None:
    """A write past the file-size limit must fail (503), not kill the process; SIGINT and
    SIGTERM stay the command's (its handler exits 130), not aiohttp's."""
    import asyncio
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    running = Listener(store, Checker(None), ListenOptions(port=0))
    await running.start()
    try:
        assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
        loop = asyncio.get_running_loop()
        assert not loop.remove_signal_handler(signal.SIGINT)
        assert not loop.remove_signal_handler(signal.SIGTERM)
    finally:
        await running.stop()


async def test_a_port_in_use_is_refused_naming_the_flag(store: EventStore) -> None:
    """A busy --port is a ConfigError that says which flag to change."""
    from helpers.net import busy_port

    from verifycli.errors import ConfigError

    with busy_port() as port:
        running = Listener(store, Checker(None), ListenOptions(port=port))
        with pytest.raises(ConfigError) as caught:
            await running.start()
    message = str(caught.value)
    assert message.startswith(f"cannot listen on 127.0.0.1:{port}: ")
    assert message.endswith("; pick another --port (0 chooses a free one)")


async def test_the_local_url_is_the_bound_address(listener: Listener) -> None:
    """local_url is http://HOST:PORT with the port really bound; base_url drops a slash."""
    port = int(listener.local_url.rsplit(":", 1)[1])
    assert listener.local_url == f"http://127.0.0.1:{port}" and port == listener.port > 0
    listener.public_url = PUBLIC + "/"
    assert listener.base_url == PUBLIC
