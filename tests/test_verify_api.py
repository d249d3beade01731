"""VerifyApi: the real plivo SDK against the real simulator, and every way a call can fail."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
from helpers.net import free_port

from verifycli.config import Secret
from verifycli.errors import ConfigError, ExitCode, FlowFailed, PlivoApiError
from verifycli.simulator import Simulator
from verifycli.verify_api import VerifyApi

AUTH_ID = "SAVERIFYAPITEST00001"
TOKEN = "SENTINEL-api-token-6d1f8e"
RECIPIENT = "+447700900123"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    running = Simulator(AUTH_ID, TOKEN, time_factor=0.0005, expiry_seconds=20)
    await running.start()
    yield running
    await running.close()


@pytest.fixture
def api(sim: Simulator) -> Iterator[VerifyApi]:
    with VerifyApi(AUTH_ID, Secret(TOKEN), sim.api_url, timeout=5.0) as client:
        yield client


def assert_one_clean_line(error: Exception) -> str:
    """The message is one line, names no secret, and is returned for further checks."""
    message = str(error)
    assert message and "\n" not in message
    assert TOKEN not in message
    return message


async def test_create_get_validate_through_the_sdk(sim: Simulator, api: VerifyApi) -> None:
    """create returns the session uuid, get a plain dict, validate True for the right code."""
    session = await api.create(RECIPIENT, channel="voice", locale="en_GB", code_length=5)
    details = await api.get(session)
    assert details["session_uuid"] == session
    assert details["channel"] == "voice"
    assert details["destination_country_iso2"] == "GB"
    assert "client" not in details
    assert isinstance(details["charges"], dict)
    assert isinstance(details["attempt_details"], list)
    assert len(sim.code_for(session)) == 5
    assert await api.validate(session, sim.code_for(session)) is True


async def test_a_wrong_code_is_false_not_an_error(sim: Simulator, api: VerifyApi) -> None:
    """Plivo's 400 for a wrong code becomes False, so the caller can ask again."""
    session = await api.create(RECIPIENT)
    wrong = "9" * 6 if sim.code_for(session) != "9" * 6 else "8" * 6
    assert await api.validate(session, wrong) is False


async def test_an_expired_session_fails_the_flow() -> None:
    """A code for an expired session is a FlowFailed (exit 1), not an API error."""
    expiring = Simulator(AUTH_ID, TOKEN, scenario="expired", time_factor=0.0005, expiry_seconds=1)
    await expiring.start()
    try:
        with VerifyApi(AUTH_ID, Secret(TOKEN), expiring.api_url) as client:
            session = await client.create(RECIPIENT)
            await expiring.wait_done(session, timeout=5)
            with pytest.raises(FlowFailed) as caught:
                await client.validate(session, expiring.code_for(session))
    finally:
        await expiring.close()
    assert caught.value.exit_code == ExitCode.FLOW_FAILED
    assert "expired" in assert_one_clean_line(caught.value)


async def test_validating_twice_is_an_api_error_with_plivos_reason(
    sim: Simulator, api: VerifyApi
) -> None:
    """A 400 that is not about the code itself is raised, quoting Plivo."""
    session = await api.create(RECIPIENT)
    assert await api.validate(session, sim.code_for(session)) is True
    with pytest.raises(PlivoApiError, match="session already verified"):
        await api.validate(session, sim.code_for(session))


async def test_server_side_refusal_quotes_plivo(api: VerifyApi) -> None:
    """A create the SDK lets through but Plivo refuses names Plivo's reason."""
    with pytest.raises(PlivoApiError) as caught:
        await api.create(RECIPIENT, code_length=3)
    message = assert_one_clean_line(caught.value)
    assert "400 bad request: code_length must be an integer from 4 to 8" in message


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (400, "recipient is blocked", "400 bad request: recipient is blocked"),
        (401, None, "Plivo rejected the credentials (401)"),
        (403, "geo permission denied", "Plivo forbade this account"),
        (404, None, "Plivo answered 404 to the request"),
        (429, None, "rate limiting this account (429)"),
        (500, None, "server error (500)"),
        (503, None, "server error (503)"),
        (418, None, "answered HTTP 418"),
    ],
)
async def test_api_faults_become_one_line_plivo_errors(
    sim: Simulator, api: VerifyApi, status: int, error: str | None, expected: str
) -> None:
    """Each HTTP failure is a PlivoApiError (exit 3) saying what happened and what to do."""
    sim.fail_next(status, error=error)
    with pytest.raises(PlivoApiError) as caught:
        await api.create(RECIPIENT)
    assert caught.value.exit_code == ExitCode.PLIVO_API
    message = assert_one_clean_line(caught.value)
    assert expected in message
    assert "create the Verify session" in message
    assert ":" in message.rsplit(")", 1)[-1]  # a next step follows the reason


async def test_api_faults_reach_get_and_validate_too(sim: Simulator, api: VerifyApi) -> None:
    """get and validate map faults the same way as create."""
    session = await api.create(RECIPIENT)
    sim.fail_next(500)
    with pytest.raises(PlivoApiError, match=r"server error \(500\) on trying to read session"):
        await api.get(session)
    sim.fail_next(429)
    with pytest.raises(PlivoApiError, match="rate limiting"):
        await api.validate(session, "1234")
    with pytest.raises(PlivoApiError, match="Plivo has no Verify session 00000000-0000"):
        await api.get("00000000-0000-4000-8000-000000000000")


async def test_wrong_credentials_are_rejected_by_the_server(sim: Simulator) -> None:
    """A token the simulator does not know gets Plivo's 401, reported without the token."""
    other = "SENTINEL-wrong-token-0a9b8c"
    with VerifyApi(AUTH_ID, Secret(other), sim.api_url) as client:
        with pytest.raises(PlivoApiError) as caught:
            await client.create(RECIPIENT)
    message = assert_one_clean_line(caught.value)
    assert "401" in message and other not in message


async def test_a_token_echoed_by_the_server_is_scrubbed(sim: Simulator, api: VerifyApi) -> None:
    """Even if an answer quotes the auth token, the message shows asterisks instead."""
    sim.fail_next(400, error=f"token {TOKEN} is not allowed here")
    with pytest.raises(PlivoApiError) as caught:
        await api.create(RECIPIENT)
    assert "token ******** is not allowed" in assert_one_clean_line(caught.value)


async def test_a_hanging_api_times_out(sim: Simulator) -> None:
    """An API that does not answer within the timeout is reported as such, promptly."""
    sim.fail_next(None, hang=30)
    started = time.monotonic()
    with VerifyApi(AUTH_ID, Secret(TOKEN), sim.api_url, timeout=0.2) as client:
        with pytest.raises(PlivoApiError) as caught:
            await client.create(RECIPIENT)
    assert time.monotonic() - started < 5
    message = assert_one_clean_line(caught.value)
    assert "did not answer within 0.2 s" in message
    assert "check your network" in message


async def test_connection_refused_is_named() -> None:
    """Nothing listening at the API URL is a connection-refused PlivoApiError."""
    port = free_port()
    with VerifyApi(AUTH_ID, Secret(TOKEN), f"http://127.0.0.1:{port}") as client:
        with pytest.raises(PlivoApiError) as caught:
            await client.get("00000000-0000-4000-8000-000000000000")
    message = assert_one_clean_line(caught.value)
    assert "connection refused" in message
    assert f"http://127.0.0.1:{port}" in message


@pytest.mark.parametrize(
    ("auth_id", "token", "expected"),
    [
        (None, TOKEN, "PLIVO_AUTH_ID is not set"),
        ("", TOKEN, "PLIVO_AUTH_ID is not set"),
        ("MA123", TOKEN, "PLIVO_AUTH_ID is malformed"),
        ("XA" + "1" * 18, TOKEN, "PLIVO_AUTH_ID is malformed"),
        ("MA" + "-" * 18, TOKEN, "PLIVO_AUTH_ID is malformed"),
        (AUTH_ID, None, "PLIVO_AUTH_TOKEN is not set"),
        (AUTH_ID, "", "PLIVO_AUTH_TOKEN is not set"),
    ],
)
def test_credentials_are_checked_before_any_request(
    auth_id: str | None, token: str | None, expected: str
) -> None:
    """A missing or malformed auth id or token is a ConfigError (exit 2) up front."""
    with pytest.raises(ConfigError, match=expected) as caught:
        VerifyApi(auth_id, Secret(token) if token is not None else None, "http://127.0.0.1:9")
    assert caught.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    "api_url", ["127.0.0.1:8080", "ftp://example.com", "http://", "http://x/?a=b"]
)
def test_a_bad_api_url_is_a_config_error(api_url: str) -> None:
    """VERIFYCLI_PLIVO_API_URL must be an http(s) base URL."""
    with pytest.raises(ConfigError, match="VERIFYCLI_PLIVO_API_URL"):
        VerifyApi(AUTH_ID, Secret(TOKEN), api_url)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"recipient": ""}, "the recipient must be a phone number in E.164 format"),
        (
            {"recipient": RECIPIENT, "url": "ftp://example.com/x"},
            "the callback URL must be a full http:// or https:// URL, not 'ftp://example.com/x'",
        ),
        ({"recipient": RECIPIENT, "channel": "fax"}, "the channel must be sms or voice, not 'fax'"),
    ],
)
async def test_sdk_argument_checks_become_config_errors(
    sim: Simulator, api: VerifyApi, arguments: dict[str, str], expected: str
) -> None:
    """Arguments the plivo SDK refuses locally are the user's to fix: ConfigError, one line."""
    rest = dict(arguments)  # the parameter is shared by every run of this test: don't change it
    recipient = rest.pop("recipient")
    with pytest.raises(ConfigError) as caught:
        await api.create(recipient, **rest)  # type: ignore[arg-type]
    assert expected in assert_one_clean_line(caught.value)
    assert sim.deliveries == []


async def test_production_default_is_plivo() -> None:
    """Without an API URL the client talks to https://api.plivo.com."""
    with VerifyApi(AUTH_ID, Secret(TOKEN)) as client:
        assert client.api_url == "https://api.plivo.com"
