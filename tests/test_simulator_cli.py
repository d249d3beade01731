"""`verifycli simulator` as a user's integration tests meet it: a real process, the real plivo
SDK pointed at it, callbacks to the app checked with an HMAC written here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import plivo
import plivo.rest.client
import pytest
from helpers.env import cli_env
from helpers.procs import Cli
from helpers.receiver import Received, Receiver
from plivo.exceptions import PlivoRestError

AUTH_ID = "MASIMULATORCLITEST01"
TOKEN = "SENTINEL-simcli-token-41d0"
MAIN = "SENTINEL-simcli-main-77aa"
RECIPIENT = "+14155550100"


def events_of(cli: Cli) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cli.stdout.splitlines() if line.strip()]


def wait_event(
    cli: Cli, wanted: Callable[[dict[str, Any]], bool], timeout: float = 15.0
) -> dict[str, Any]:
    """The first --json event line that `wanted` accepts, polling stdout with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in events_of(cli):
            if wanted(event):
                return event
        if cli.proc.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"no such event; stdout:\n{cli.stdout}\nstderr:\n{cli.stderr}")


def v2(url: str, nonce: str, token: str) -> str:
    """Plivo's V2: Base64(HMAC-SHA256(token, URL without query + nonce))."""
    mac = hmac.new(token.encode(), (url.split("?", 1)[0] + nonce).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


@pytest.fixture
def simulator() -> Iterator[Cli]:
    env = cli_env(PLIVO_AUTH_ID=AUTH_ID, PLIVO_AUTH_TOKEN=TOKEN, PLIVO_MAIN_AUTH_TOKEN=MAIN)
    cli = Cli(["simulator", "--port", "0", "--json", "--time-factor", "0.001"], env)
    try:
        yield cli
    finally:
        cli.stop()


def test_an_app_drives_the_simulator_with_the_plivo_sdk(
    simulator: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Create, a second create joining the session, read the code, wrong and right validate,
    get and list, all through the plivo SDK; every callback carries V2 and Ma-V2 that match an
    HMAC computed here; Ctrl-C ends the simulator with exit 0."""
    api_url = wait_event(simulator, lambda e: e["event"] == "listening")["api_url"]
    # What the README tells users to do: point the SDK's API base at the simulator.
    monkeypatch.setattr(plivo.rest.client, "PLIVO_API_BASE_URI", api_url + "/v1/Account")
    client = plivo.RestClient(AUTH_ID, TOKEN)
    with Receiver(status=200) as app:
        hook = app.url + "/verify/status"
        first = client.verify_session.create(recipient=RECIPIENT, url=hook, channel="sms")
        session = first.session_uuid
        app.wait(3)
        again = client.verify_session.create(recipient=RECIPIENT, url=hook, channel="sms")
        assert again.session_uuid == session
        app.wait(6)  # both attempts delivered before the code is typed
        with urllib.request.urlopen(f"{api_url}/_simulator/sessions/{session}") as answer:
            peek = json.load(answer)
        code = peek["otp"]
        assert [a["attempt_sequence"] for a in peek["attempts"]] == [1, 2]
        with pytest.raises(PlivoRestError):
            client.verify_session.validate(session, otp="0" if code != "0" * len(code) else "1")
        validated = client.verify_session.validate(session, otp=code)
        assert validated.message == "session validated successfully."
        got = app.wait(7)
        details = client.verify_session.get(session)
        assert (details.status, details.count) == ("verified", 2)
        listed = client.verify_session.list(limit=5)
        assert [s["session_uuid"] for s in listed.sessions] == [session]
        assert listed.meta["limit"] == 5
    check_callbacks(app.url, got, session)
    kinds = [e["event"] for e in events_of(simulator)]
    for kind in ("created", "attempt", "callback", "validated"):
        assert kind in kinds
    assert kinds.count("created") == 1 and kinds.count("attempt") == 2
    simulator.proc.send_signal(signal.SIGINT)
    assert simulator.finish() == 0
    assert TOKEN not in simulator.stdout + simulator.stderr


def check_callbacks(base: str, got: list[Received], session: str) -> None:
    seen = []
    for request in got:
        fields = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        url = base + request.target
        nonce = request.header("X-Plivo-Signature-V2-Nonce") or ""
        assert request.header("X-Plivo-Signature-V2") == v2(url, nonce, TOKEN)
        assert request.header("X-Plivo-Signature-Ma-V2") == v2(url, nonce, MAIN)
        assert request.header("X-Plivo-Signature-V3") is None
        seen.append((fields["AttemptSequence"], fields["ChannelStatus"], fields["SessionStatus"]))
        assert fields["SessionUUID"] == session
    assert sorted(seen) == sorted(
        [(n, s, "in-progress") for n in "12" for s in ("queued", "sent", "delivered")]
        + [("2", "delivered", "verified")]
    )


def test_plain_lines_and_bad_flags() -> None:
    """Without --json each event is a line a person reads; a bad flag is exit 2 (the parser)."""
    bad = Cli(["simulator", "--port", "0", "--scenario", "lost"], cli_env())
    assert bad.finish() == 2
    assert "Invalid value for '--scenario'" in bad.stderr
    plain = Cli(["simulator", "--port", "0"], cli_env())
    try:
        deadline = time.monotonic() + 15
        while "listening on http://127.0.0.1:" not in plain.stdout:
            assert time.monotonic() < deadline and plain.proc.poll() is None, plain.stderr
            time.sleep(0.02)
        assert "the demo account" in plain.stdout
        plain.proc.send_signal(signal.SIGTERM)
        assert plain.finish() == 0
    finally:
        plain.stop()
