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
    """--fail-rate answers 500 exactly when the draw falls under the rate."""
    draws = iter([0.1, 0.9])
    running = Listener(
        store, Checker(None), ListenOptions(port=0, fail_rate=0.5), rng=lambda: next(draws)
    )
    await running.start()
    try:
        statuses = []
        for _ in range(2):
            async with http.post(running.local_url + "/cb", data=FIELDS) as r:
                statuses.append(r.status)
    finally:
        await running.stop()
    assert statuses == [500, 200]


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
