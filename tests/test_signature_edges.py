"""Signature edge cases through a real listener: empty, non-ASCII and non-UTF-8 nonces, a
thousand candidates in one header, replayed and forged bodies, a token with Unicode."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from helpers.env import AUTH_TOKEN, MAIN_TOKEN, Collect
from helpers.listeners import FIELDS, ThreadedListener, ask, post, status_of

from verifycli.listener import Listener, ListenOptions
from verifycli.signature import (
    HEADER,
    NONCE_HEADER,
    Checker,
    Scheme,
    sign_v2,
    sign_v3,
    signed_headers,
)
from verifycli.store import EventStore, StoreReader

# Nonce and signature bytes that are not UTF-8, as a raw request (http.client would not send it).
LATIN1_NONCE = (
    b"POST /cb HTTP/1.1\r\nHost: x\r\nX-Plivo-Signature-V3: \xff\r\n"
    b"X-Plivo-Signature-V3-Nonce: \xe9\xe8\r\nContent-Length: 0\r\n\r\n"
)


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


def test_a_nonce_that_is_not_utf8_is_stored_as_invalid(served: ThreadedListener) -> None:
    """Nonce bytes that are not UTF-8 are answered 200 and stored as invalid, never a 5xx."""
    before = StoreReader(served.store.path).count()
    answer = ask(served.port, LATIN1_NONCE)
    assert status_of(answer) == 200
    last = list(StoreReader(served.store.path).iter_records(limit=1))[0]
    assert StoreReader(served.store.path).count() == before + 1
    assert last["signature"]["verdict"] == "invalid"
    assert last["headers"]["X-Plivo-Signature-V3-Nonce"] == "\ufffd\ufffd"
