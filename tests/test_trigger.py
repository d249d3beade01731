"""trigger: made-up Verify callbacks whose signatures a reference HMAC, written here, accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from helpers.env import AUTH_TOKEN, MAIN_TOKEN
from helpers.listeners import ThreadedListener
from helpers.net import free_port
from helpers.receiver import Received, Receiver
from helpers.signing import ref_v2, ref_v3
from typer.testing import CliRunner, Result

from verifycli.callbacks import PLIVO_FIELDS
from verifycli.cli import app
from verifycli.errors import ConfigError
from verifycli.listener import ListenOptions
from verifycli.signature import Checker
from verifycli.store import StoreReader
from verifycli.trigger import TriggerSpec

runner = CliRunner()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(status=200, body="handled\n") as running:
        yield running


def trigger(*args: str, token: str | None = AUTH_TOKEN, main: str | None = None) -> Result:
    env = {"COLUMNS": "200"}
    if token:
        env["PLIVO_AUTH_TOKEN"] = token
    if main:
        env["PLIVO_MAIN_AUTH_TOKEN"] = main
    result = runner.invoke(app, ["trigger", *args], env=env)
    for secret in (AUTH_TOKEN, MAIN_TOKEN):
        assert secret not in result.stdout + result.stderr
    return result


def seen_url(receiver: Receiver, got: Received) -> str:
    return receiver.url + got.target


def post_params(got: Received) -> dict[str, str]:
    return dict(parse_qsl(got.body.decode(), keep_blank_values=True))


def test_post_carries_every_plivo_field_signed_v2(receiver: Receiver) -> None:
    """A POST is a form of all nine Plivo fields signed as the Verify guide documents: V2, Ma-V2
    (with the auth token when there is no main token) and the V2 nonce; no V3 unless asked."""
    result = trigger("--to", receiver.url + "/plivo/status")
    assert result.exit_code == 0, result.stderr
    [got] = receiver.wait(1)
    assert (got.method, got.target) == ("POST", "/plivo/status")
    assert got.header("Content-Type") == "application/x-www-form-urlencoded"
    fields = post_params(got)
    assert set(fields) == set(PLIVO_FIELDS.values())
    assert fields["ChannelStatus"] == "delivered" and fields["Channel"] == "sms"
    assert fields["ChannelErrorCode"] == "" and fields["AttemptSequence"] == "1"
    url = seen_url(receiver, got)
    v2_nonce = got.header("X-Plivo-Signature-V2-Nonce") or ""
    assert got.header("X-Plivo-Signature-V2") == ref_v2(url, v2_nonce, AUTH_TOKEN)
    assert got.header("X-Plivo-Signature-Ma-V2") == ref_v2(url, v2_nonce, AUTH_TOKEN)
    assert not any(name.startswith("x-plivo-signature-v3") for name in got.header_names())
    assert "x-plivo-signature-ma-v3" not in got.header_names()
    assert "200 OK" in result.stderr and "handled" in result.stderr


def test_get_puts_fields_in_the_query_and_signs_it(receiver: Receiver) -> None:
    """A GET sends the fields as the query, no body, and the V3 signature covers that query."""
    result = trigger("--to", receiver.url + "/cb?tenant=a", "--method", "get", "--scheme", "v3")
    assert result.exit_code == 0, result.stderr
    [got] = receiver.wait(1)
    assert got.method == "GET" and got.body == b""
    assert got.header("Content-Type") is None
    query = dict(parse_qsl(urlsplit(got.target).query, keep_blank_values=True))
    assert query["tenant"] == "a" and query["ChannelStatus"] == "delivered"
    nonce = got.header("X-Plivo-Signature-V3-Nonce") or ""
    expected = ref_v3("GET", seen_url(receiver, got), {}, nonce, AUTH_TOKEN)
    assert got.header("X-Plivo-Signature-V3") == expected
    assert "x-plivo-signature-v2" not in got.header_names()


def test_main_token_adds_ma_signatures(receiver: Receiver) -> None:
    """With PLIVO_MAIN_AUTH_TOKEN set, Ma-V3 and Ma-V2 are signed with the main token."""
    result = trigger("--to", receiver.url + "/cb", "--scheme", "all", main=MAIN_TOKEN)
    assert result.exit_code == 0, result.stderr
    [got] = receiver.wait(1)
    url, fields = seen_url(receiver, got), post_params(got)
    v3_nonce = got.header("X-Plivo-Signature-V3-Nonce") or ""
    v2_nonce = got.header("X-Plivo-Signature-V2-Nonce") or ""
    assert got.header("X-Plivo-Signature-Ma-V3") == ref_v3(
        "POST", url, fields, v3_nonce, MAIN_TOKEN
    )
    assert got.header("X-Plivo-Signature-Ma-V2") == ref_v2(url, v2_nonce, MAIN_TOKEN)


def test_scheme_v2_sends_only_v2(receiver: Receiver) -> None:
    """--scheme v2 sends the V2 headers and no V3 ones."""
    assert trigger("--to", receiver.url + "/cb", "--scheme", "v2").exit_code == 0
    [got] = receiver.wait(1)
    names = got.header_names()
    assert {"x-plivo-signature-v2", "x-plivo-signature-v2-nonce"} <= names
    assert not any(name.startswith("x-plivo-signature-v3") for name in names)


def test_count_status_channel_and_session(receiver: Receiver) -> None:
    """--count sends that many attempts of one session, each with its own nonce and sequence."""
    result = trigger(
        "--to",
        receiver.url + "/cb",
        "--channel",
        "voice",
        "--status",
        "no-answer",
        "--session",
        "sess-42",
        "--session-status",
        "expired",
        "--count",
        "3",
    )
    assert result.exit_code == 0, result.stderr
    got = receiver.wait(3)
    fields = [post_params(g) for g in got]
    assert [f["AttemptSequence"] for f in fields] == ["1", "2", "3"]
    assert {f["SessionUUID"] for f in fields} == {"sess-42"}
    assert {(f["Channel"], f["ChannelStatus"], f["ChannelErrorCode"]) for f in fields} == {
        ("voice", "no-answer", "3020")
    }
    assert {f["SessionStatus"] for f in fields} == {"expired"}
    assert len({g.header("X-Plivo-Signature-V2-Nonce") for g in got}) == 3


def test_verifycli_listener_finds_every_scheme_valid(tmp_path: Path) -> None:
    """Sent to verifycli's own listener, each scheme (and Ma-) checks out as valid."""
    served = ThreadedListener(tmp_path / "events.sqlite3", ListenOptions(port=0))
    served.listener.checker = Checker(AUTH_TOKEN, MAIN_TOKEN)
    try:
        url = f"http://127.0.0.1:{served.port}/verify"
        for scheme in ("v3", "v2"):
            assert trigger("--to", url, "--scheme", scheme, main=MAIN_TOKEN).exit_code == 0
            assert trigger("--to", url, "--scheme", scheme, "--method", "GET").exit_code == 0
    finally:
        served.close()
    events = list(StoreReader(tmp_path / "events.sqlite3").iter_events())
    assert [(e.method, e.signature.verdict, e.signature.scheme) for e in events] == [
        ("POST", "valid", "v3"),
        ("GET", "valid", "v3"),
        ("POST", "valid", "v2"),
        ("GET", "valid", "v2"),
    ]


def test_missing_token_exits_2_and_sends_nothing(receiver: Receiver) -> None:
    """Without PLIVO_AUTH_TOKEN nothing is sent and the exit code is 2."""
    result = trigger("--to", receiver.url + "/cb", token=None)
    assert result.exit_code == 2
    assert "PLIVO_AUTH_TOKEN is not set" in result.stderr
    assert receiver.requests == []


def test_error_answer_exits_1() -> None:
    """A handler that answers 500 makes trigger exit 1, after showing the answer."""
    with Receiver(status=500, body="signature mismatch\n") as failing:
        result = trigger("--to", failing.url + "/cb")
    assert result.exit_code == 1
    assert "500 Internal Server Error" in result.stderr
    assert "signature mismatch" in result.stderr


def test_connection_failure_is_one_line_exit_1() -> None:
    """Nothing listening: one error line, exit 1, and --count stops there."""
    port = free_port()
    result = trigger("--to", f"http://127.0.0.1:{port}/cb", "--count", "3")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ") and f"127.0.0.1:{port}" in lines[0]
    assert "connection refused" in lines[0]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--status", "completed"], "--status for sms must be one of"),
        (["--channel", "fax"], "Invalid value for '--channel'"),
        (["--method", "PUT"], "Invalid value for '--method'"),
        (["--scheme", "v4"], "Invalid value for '--scheme'"),
        (["--count", "0"], "Invalid value for '--count'"),
        (["--session-status", "done"], "Invalid value for '--session-status'"),
    ],
)
def test_bad_flags_exit_2(receiver: Receiver, flags: list[str], message: str) -> None:
    """Each bad flag is a one-line usage error, exit 2, with nothing sent."""
    result = trigger("--to", receiver.url + "/cb", *flags)
    assert result.exit_code == 2
    assert message in result.stderr
    assert receiver.requests == []


@pytest.mark.parametrize("url", ["ftp://host/x", "localhost:3000/x", "http://", "http://a b/"])
def test_bad_target_is_a_config_error(url: str) -> None:
    """--to must be an absolute http(s) URL."""
    with pytest.raises(ConfigError, match="--to"):
        TriggerSpec(to=url)


def test_json_is_one_object_per_answer(receiver: Receiver) -> None:
    """--json: one JSON object per answer on stdout, with what was sent and what came back."""
    result = trigger("--to", receiver.url + "/cb", "--count", "2", "--json")
    assert result.exit_code == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["status"] for a in answers] == [200, 200]
    assert [a["fields"]["AttemptSequence"] for a in answers] == ["1", "2"]
    assert answers[0]["method"] == "POST" and answers[0]["schemes"]
    assert answers[0]["body_head"] == "handled\n"
