"""Plivo's vocabulary: what each status means, a callback's fields and URL, and flag checks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from helpers.env import local_zone

from verifycli.errors import ConfigError
from verifycli.plivo import (
    callback_fields,
    callback_url,
    check_channel,
    check_method,
    http_base,
    meaning,
    request_time,
)

MOMENT = datetime(2026, 12, 3, 1, 2, 3, 45, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("delivered", "done"),
        ("completed", "done"),
        ("verified", "done"),
        ("queued", "on its way"),
        ("sent", "on its way"),
        ("ringing", "on its way"),
        ("in-progress", "on its way"),
        ("failed", "failed"),
        ("undelivered", "failed"),
        ("no-answer", "failed"),
        ("busy", "failed"),
        ("cancel", "failed"),
        ("timeout", "failed"),
        ("expired", "failed"),
        ("accepted", None),
        (None, None),
    ],
)
def test_each_status_has_its_meaning(status: str | None, expected: str | None) -> None:
    """Every documented status maps to its one meaning; an undocumented one to None."""
    assert meaning(status) == expected


def test_request_time_is_utc_with_microseconds_and_a_z() -> None:
    """A RequestTime spells the moment with six fraction digits and a Z."""
    assert request_time(MOMENT) == "2026-12-03T01:02:03.000045Z"


@pytest.fixture
def india_time() -> Iterator[None]:
    """The process's local zone set to UTC+05:30 for the test, then put back."""
    with local_zone("IST-05:30"):
        yield


def test_request_time_defaults_to_now_in_utc(india_time: None) -> None:
    """Without a moment, RequestTime is the current UTC time, whatever the local zone."""
    before = datetime.now(timezone.utc)
    stamp = datetime.strptime(request_time(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(timezone.utc)


def test_callback_fields_are_named_and_ordered_as_plivo_sends_them() -> None:
    """Each argument lands in its own field, in the guide's order, the sequence as text."""
    fields = callback_fields(
        session_uuid="s-1",
        session_status="in-progress",
        recipient="14155550100",
        channel="voice",
        channel_status="busy",
        error_code="3010",
        attempt_uuid="a-1",
        attempt_sequence=2,
        moment=MOMENT,
    )
    assert list(fields.items()) == [
        ("SessionUUID", "s-1"),
        ("SessionStatus", "in-progress"),
        ("RequestTime", "2026-12-03T01:02:03.000045Z"),
        ("Recipient", "14155550100"),
        ("ChannelErrorCode", "3010"),
        ("Channel", "voice"),
        ("AttemptUUID", "a-1"),
        ("AttemptSequence", "2"),
        ("ChannelStatus", "busy"),
    ]


def test_callback_fields_defaults_blank_code_first_attempt_fresh_uuid() -> None:
    """Left out: a blank ChannelErrorCode, AttemptSequence 1 and a new UUID per callback."""
    one, two = (
        callback_fields(
            session_uuid="s",
            session_status="verified",
            recipient="1",
            channel="sms",
            channel_status="delivered",
        )
        for _ in range(2)
    )
    assert (one["ChannelErrorCode"], one["AttemptSequence"]) == ("", "1")
    assert str(uuid.UUID(one["AttemptUUID"])) == one["AttemptUUID"]
    assert one["AttemptUUID"] != two["AttemptUUID"]


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("POST", "https://x.example/cb?k=1", "https://x.example/cb?k=1"),
        ("post", "https://x.example/cb", "https://x.example/cb"),
        ("GET", "https://x.example/cb", "https://x.example/cb?A=1&B=x+y"),
        ("GET", "https://x.example/cb?k=1", "https://x.example/cb?k=1&A=1&B=x+y"),
    ],
)
def test_callback_url_puts_fields_in_the_query_only_for_get(
    method: str, url: str, expected: str
) -> None:
    """POST (any case) is sent to the URL as given; GET appends the fields with ? or &."""
    assert callback_url(method, url, {"A": "1", "B": "x y"}) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080"),
        ("::1", "http://[::1]:8080"),
        ("[::1]", "http://[::1]:8080"),
        ("localhost", "http://localhost:8080"),
    ],
)
def test_http_base_brackets_ipv6_hosts_once(host: str, expected: str) -> None:
    """An IPv6 host is bracketed (once); other hosts are used as given."""
    assert http_base(host, 8080) == expected


def test_channel_and_method_checks_accept_any_case() -> None:
    """--channel reads as lower case, --method as upper case."""
    assert (check_channel("SMS"), check_channel("Voice")) == ("sms", "voice")
    assert (check_method("get"), check_method("Post")) == ("GET", "POST")


def test_channel_and_method_checks_name_the_flag_and_the_value() -> None:
    """A value outside the choices is a ConfigError that names the flag and quotes the value."""
    with pytest.raises(ConfigError) as channel:
        check_channel("Fax")
    with pytest.raises(ConfigError) as method:
        check_method("put")
    assert str(channel.value) == "--channel must be sms or voice, not 'Fax'"
    assert str(method.value) == "--method must be POST or GET, not 'put'"
