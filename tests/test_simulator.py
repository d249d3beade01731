"""The offline Plivo, driven through the real plivo SDK, delivering to a real receiver."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import aiohttp
import pytest
from aiohttp import web
from helpers.net import free_port
from plivo.utils import validate_signature, validate_v3_signature
from pytest_aiohttp import AiohttpServer

from verifycli.config import Secret, check_auth_id
from verifycli.errors import FlowFailed
from verifycli.simulator import (
    DEMO_AUTH_ID,
    DEMO_AUTH_TOKEN,
    MAX_VALIDATIONS,
    RETRY_DELAYS,
    Delivery,
    Simulator,
)
from verifycli.verify_api import VerifyApi

AUTH_ID = "MASIMULATORTEST00001"
TOKEN = "SENTINEL-sim-token-3e7d1a"
MAIN = "SENTINEL-sim-main-token-9b2c4f"
RECIPIENT = "+14155550100"
FACTOR = 0.0005  # 60 s of Plivo's retry schedule becomes 30 ms
# What the Verify guide documents on every callback, and all the simulator sends by default.
SIGNATURE_HEADERS = (
    "X-Plivo-Signature-V2",
    "X-Plivo-Signature-Ma-V2",
    "X-Plivo-Signature-V2-Nonce",
)
V3_HEADERS = (
    "X-Plivo-Signature-V3",
    "X-Plivo-Signature-Ma-V3",
    "X-Plivo-Signature-V3-Nonce",
)
FIELDS = (
    "SessionUUID",
    "SessionStatus",
    "RequestTime",
    "Recipient",
    "ChannelErrorCode",
    "Channel",
    "AttemptUUID",
    "AttemptSequence",
    "ChannelStatus",
)


@dataclass
class Seen:
    """One request as the receiver got it."""

    method: str
    url: str
    headers: dict[str, str]
    fields: dict[str, str]
    params: dict[str, str]  # the form, as V3 signs it: empty for GET


class CallbackEndpoint:
    """The simulator's callback target, in the test's own loop: records each callback and
    answers per attempt what the test scripts (retries), unlike helpers.receiver's fixed answer."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.answer: Callable[[Seen, int], int] = lambda seen, nth: 200
        self.url = ""
        self._changed = asyncio.Event()
        self._tries: Counter[tuple[str, str, str]] = Counter()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        query = dict(parse_qsl(request.query_string, keep_blank_values=True))
        form = dict(parse_qsl(body, keep_blank_values=True))
        seen = Seen(
            request.method,
            f"http://{request.host}{request.raw_path}",
            dict(request.headers),
            form or query,
            form,
        )
        self.seen.append(seen)
        key = (
            seen.fields["AttemptUUID"],
            seen.fields["ChannelStatus"],
            seen.fields["SessionStatus"],
        )
        self._tries[key] += 1
        self._changed.set()
        return web.Response(status=self.answer(seen, self._tries[key]), text="ok")

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Seen]:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count:
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                statuses = [s.fields.get("ChannelStatus") for s in self.seen]
                raise AssertionError(f"wanted {count} callbacks, got {statuses}")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass
        return self.seen


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> CallbackEndpoint:
    rec = CallbackEndpoint()
    app = web.Application()
    app.router.add_route("*", "/hooks/verify", rec.handle)
    server = await aiohttp_server(app)
    rec.url = str(server.make_url("/hooks/verify"))
    return rec


MakeSim = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    made: list[Simulator] = []

    async def make(**options: Any) -> Simulator:
        options.setdefault("time_factor", FACTOR)
        sim = Simulator(AUTH_ID, TOKEN, MAIN, **options)
        made.append(sim)
        await sim.start()
        return sim

    yield make
    for sim in made:
        await sim.close()


@pytest.fixture
def api_for() -> Iterator[Callable[[Simulator], VerifyApi]]:
    made: list[VerifyApi] = []

    def make(sim: Simulator) -> VerifyApi:
        api = VerifyApi(AUTH_ID, Secret(TOKEN), sim.api_url, timeout=5.0)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


def statuses(seen: list[Seen]) -> list[tuple[str, str]]:
    return [(s.fields["SessionStatus"], s.fields["ChannelStatus"]) for s in seen]


def v2(url: str, nonce: str, token: str) -> str:
    """V2 as Plivo's signature guide defines it, written here rather than taken from our code:
    Base64(HMAC-SHA256(token, URL without query + nonce))."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    mac = hmac.new(token.encode(), (base + nonce).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def assert_signed(seen: Seen) -> None:
    """V2 and Ma-V2 match an HMAC computed here and the plivo SDK's validator; V3, only when
    sent, validates with the SDK."""
    h = seen.headers
    v2_nonce = h["X-Plivo-Signature-V2-Nonce"]
    for header, token in (("X-Plivo-Signature-V2", TOKEN), ("X-Plivo-Signature-Ma-V2", MAIN)):
        assert h[header] == v2(seen.url, v2_nonce, token), header
        assert validate_signature(seen.url, v2_nonce, h[header], token), header
    assert h["X-Plivo-Signature-V2"] != v2(seen.url, v2_nonce, "another-token")
    if "X-Plivo-Signature-V3" not in h:
        return
    v3_nonce = h["X-Plivo-Signature-V3-Nonce"]
    for header, token in (("X-Plivo-Signature-V3", TOKEN), ("X-Plivo-Signature-Ma-V3", MAIN)):
        assert validate_v3_signature(
            seen.method, seen.url, v3_nonce, token, h[header], params=dict(seen.params)
        ), header


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


async def test_sms_post_callbacks_arrive_signed_in_order(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """An SMS session POSTs queued, sent, delivered as signed forms with a blank error code."""
    sim = await make_sim()
    session = await api_for(sim).create(RECIPIENT, url=receiver.url, method="POST")
    seen = await receiver.wait_for(3)
    assert statuses(seen) == [
        ("in-progress", "queued"),
        ("in-progress", "sent"),
        ("in-progress", "delivered"),
    ]
    for one in seen:
        assert one.method == "POST"
        assert one.url == receiver.url
        assert set(one.fields) == set(FIELDS)
        assert one.fields["SessionUUID"] == session
        assert one.fields["ChannelErrorCode"] == ""
        assert one.fields["Channel"] == "sms"
        assert one.fields["Recipient"] == RECIPIENT.lstrip("+")
        assert one.fields["AttemptSequence"] == "1"
        assert set(SIGNATURE_HEADERS) <= set(one.headers)
        assert not set(V3_HEADERS) & set(one.headers)
        assert_signed(one)
    assert len({s.fields["AttemptUUID"] for s in seen}) == 1
    assert len({s.fields["RequestTime"] for s in seen}) == 1  # the attempt's time
    nonces = [s.headers[n] for s in seen for n in SIGNATURE_HEADERS if n.endswith("Nonce")]
    assert len(set(nonces)) == len(nonces)


async def test_voice_get_callbacks_carry_fields_in_a_signed_query(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """A voice session GETs ringing, in-progress, completed, V2-signed over the URL."""
    sim = await make_sim()
    await api_for(sim).create(RECIPIENT, channel="voice", url=receiver.url, method="GET")
    seen = await receiver.wait_for(3)
    assert [s.fields["ChannelStatus"] for s in seen] == ["ringing", "in-progress", "completed"]
    for one in seen:
        assert one.method == "GET"
        assert one.params == {}
        assert "ChannelErrorCode=&" in one.url or one.url.endswith("ChannelErrorCode=")
        assert one.fields["Channel"] == "voice"
        assert_signed(one)


async def test_right_code_verifies_and_sends_one_more_callback(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """A right code answers True and adds a SessionStatus=verified callback last."""
    messages: list[tuple[str, str]] = []
    sim = await make_sim(on_message=lambda to, text: messages.append((to, text)))
    api = api_for(sim)
    session = await api.create(RECIPIENT, url=receiver.url, brand_name="Acme", code_length=8)
    await receiver.wait_for(3)
    code = sim.code_for(session)
    assert len(code) == 8 and code.isdigit()
    assert messages == [(RECIPIENT, f"Your Acme verification code is {code}")]
    assert await api.validate(session, code) is True
    await sim.wait_done(session, timeout=5)
    assert statuses(receiver.seen)[-1] == ("verified", "delivered")
    assert len(receiver.seen) == 4
    assert_signed(receiver.seen[-1])
    assert (await api.get(session))["status"] == "verified"


async def test_voice_message_reads_the_code_digit_by_digit(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi]
) -> None:
    """A voice call 'speaks' the code once answered, with no callback URL needed."""
    messages: list[str] = []
    sim = await make_sim(on_message=lambda to, text: messages.append(text))
    session = await api_for(sim).create(RECIPIENT, channel="voice", code_length=4)
    await _poll(lambda: bool(messages))
    assert messages == [f"(voice call) Your verification code is {' '.join(sim.code_for(session))}"]
    assert sim.deliveries == []


async def test_wrong_code_is_false_and_sends_no_callback(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """A wrong code answers False, keeps the session open, and a right one still works."""
    sim = await make_sim()
    api = api_for(sim)
    session = await api.create(RECIPIENT, url=receiver.url)
    await receiver.wait_for(3)
    wrong = "1" * len(sim.code_for(session))
    if wrong == sim.code_for(session):
        wrong = "2" * len(wrong)
    assert await api.validate(session, wrong) is False
    assert (await api.get(session))["status"] == "in-progress"
    assert len(receiver.seen) == 3
    assert await api.validate(session, sim.code_for(session)) is True


async def test_too_many_wrong_codes_end_the_flow(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi]
) -> None:
    """After MAX_VALIDATIONS wrong codes the session refuses more, and that is a flow failure."""
    sim = await make_sim()
    api = api_for(sim)
    session = await api.create(RECIPIENT)
    wrong = "0000" if sim.code_for(session) != "000000" else "1111"
    for _ in range(MAX_VALIDATIONS):
        assert await api.validate(session, wrong) is False
    with pytest.raises(FlowFailed, match="too many validations.*maximum validation"):
        await api.validate(session, sim.code_for(session))


@pytest.mark.parametrize(
    ("scenario", "channel", "expected", "error_code"),
    [
        ("undelivered", "sms", ["queued", "sent", "undelivered"], "20"),
        ("failed", "sms", ["queued", "failed"], "50"),
        ("failed", "voice", ["failed"], "2010"),
        ("no-answer", "voice", ["ringing", "no-answer"], "3020"),
        ("no-answer", "sms", ["queued", "sent", "undelivered"], "20"),
        ("undelivered", "voice", ["ringing", "no-answer"], "3020"),
    ],
)
async def test_failure_scenarios_end_with_an_error_code(
    make_sim: MakeSim,
    api_for: Callable[[Simulator], VerifyApi],
    receiver: CallbackEndpoint,
    scenario: str,
    channel: str,
    expected: list[str],
    error_code: str,
) -> None:
    """Each failure scenario plays Plivo's statuses and only the last carries an error code."""
    messages: list[str] = []
    sim = await make_sim(scenario=scenario, on_message=lambda to, text: messages.append(text))
    api = api_for(sim)
    session = await api.create(RECIPIENT, channel=channel, url=receiver.url)
    await sim.wait_done(session, timeout=5)
    assert [s.fields["ChannelStatus"] for s in receiver.seen] == expected
    assert [s.fields["ChannelErrorCode"] for s in receiver.seen] == [""] * (len(expected) - 1) + [
        error_code
    ]
    assert {s.fields["SessionStatus"] for s in receiver.seen} == {"in-progress"}
    assert messages == []
    details = await api.get(session)
    assert details["attempt_details"][0]["status"] == expected[-1]


async def test_expired_scenario_sends_expired_and_refuses_the_code(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """The session expires after its scaled timeout, says so in a callback, and refuses codes."""
    sim = await make_sim(scenario="expired", expiry_seconds=20)
    api = api_for(sim)
    session = await api.create(RECIPIENT, url=receiver.url)
    await sim.wait_done(session, timeout=5)
    assert statuses(receiver.seen) == [
        ("in-progress", "queued"),
        ("in-progress", "sent"),
        ("in-progress", "delivered"),
        ("expired", "delivered"),
    ]
    with pytest.raises(FlowFailed, match="expired"):
        await api.validate(session, sim.code_for(session))
    assert (await api.get(session))["status"] == "expired"


async def test_code_given_before_expiry_wins(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """In the expired scenario a code given in time verifies, and no expired callback follows."""
    sim = await make_sim(scenario="expired", expiry_seconds=1_000_000)
    api = api_for(sim)
    session = await api.create(RECIPIENT, url=receiver.url)
    await receiver.wait_for(3)
    assert await api.validate(session, sim.code_for(session)) is True
    await sim.wait_done(session, timeout=5)
    assert [s.fields["SessionStatus"] for s in receiver.seen][-1] == "verified"
    assert "expired" not in {s.fields["SessionStatus"] for s in receiver.seen}


async def test_non_200_answers_are_retried_three_times_on_plivos_schedule(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """A callback answered 500 is sent again 60, 120, 240 s (scaled) apart, then given up."""
    receiver.answer = lambda seen, nth: 500
    sim = await make_sim(scenario="retries")
    api = api_for(sim)
    session = await api.create(RECIPIENT, url=receiver.url)
    await receiver.wait_for(3)
    assert await api.validate(session, sim.code_for(session)) is True
    await sim.wait_done(session, timeout=5)
    assert len(receiver.seen) == 16
    by_callback: dict[tuple[str, str], list[Delivery]] = {}
    for delivery in sim.deliveries:
        key = (delivery.fields["SessionStatus"], delivery.fields["ChannelStatus"])
        by_callback.setdefault(key, []).append(delivery)
    assert list(by_callback) == [
        ("in-progress", "queued"),
        ("in-progress", "sent"),
        ("in-progress", "delivered"),
        ("verified", "delivered"),
    ]
    for attempts in by_callback.values():
        assert [d.attempt for d in attempts] == [0, 1, 2, 3]
        assert all(d.status == 500 and not d.ok for d in attempts)
        assert all(d.fields == attempts[0].fields for d in attempts)
        nonces = {d.headers["X-Plivo-Signature-V2-Nonce"] for d in attempts}
        assert len(nonces) == 4
        gaps = [after.sent_at - before.sent_at for before, after in pairwise(attempts)]
        for gap, delay in zip(gaps, RETRY_DELAYS, strict=True):
            assert gap >= delay * FACTOR * 0.9
    for one in receiver.seen:
        assert_signed(one)


async def test_retrying_stops_once_the_answer_is_200(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """A callback answered 500 and then 200 is delivered exactly twice."""
    receiver.answer = lambda seen, nth: 500 if nth == 1 else 200
    sim = await make_sim()
    api = api_for(sim)
    session = await api.create(RECIPIENT, url=receiver.url, method="GET")
    await receiver.wait_for(3)
    assert await api.validate(session, sim.code_for(session)) is True
    await sim.wait_done(session, timeout=5)
    assert Counter(d.fields["ChannelStatus"] for d in sim.deliveries if d.ok) == {
        "queued": 1,
        "sent": 1,
        "delivered": 2,  # the second is the verified callback
    }
    assert [d.attempt for d in sim.deliveries].count(1) == 4
    assert max(d.attempt for d in sim.deliveries) == 1


async def test_unreachable_callback_url_is_retried_then_given_up(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi]
) -> None:
    """A refused connection counts as a failed delivery and is retried like a 500."""
    sim = await make_sim(scenario="failed")
    url = f"http://127.0.0.1:{free_port()}/nobody"
    session = await api_for(sim).create(RECIPIENT, url=url)
    await sim.wait_done(session, timeout=5)
    tried = sorted((d.fields["ChannelStatus"], d.attempt) for d in sim.deliveries)
    assert tried == [(status, n) for status in ("failed", "queued") for n in range(4)]
    assert all(d.status is None and d.error for d in sim.deliveries)


async def test_session_details_have_plivos_shape(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """GET session answers the fields of Plivo's Retrieve a session, as a plain dict."""
    sim = await make_sim()
    api = api_for(sim)
    session = await api.create(RECIPIENT, url=receiver.url)
    await receiver.wait_for(3)
    details = await api.get(session)
    assert set(details) == {
        "api_id",
        "session_uuid",
        "app_uuid",
        "alias",
        "recipient",
        "channel",
        "status",
        "count",
        "requestor_ip",
        "destination_country_iso2",
        "destination_network",
        "locale",
        "attempt_details",
        "charges",
        "created_at",
        "updated_at",
    }
    assert details["session_uuid"] == session
    assert details["destination_country_iso2"] == "US"
    assert details["requestor_ip"] == "127.0.0.1"
    assert details["count"] == 1
    attempt = details["attempt_details"][0]
    assert attempt["status"] == "delivered"
    assert attempt["attempt_uuid"] == receiver.seen[0].fields["AttemptUUID"]
    assert set(details["charges"]) == {"total_charge", "validation_charge", "attempt_charges"}


async def _raw(
    sim: Simulator,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    auth: str | None = None,
) -> tuple[int, Any]:
    """Call the simulator without the SDK, to reach what the SDK's own checks would stop."""
    headers = {"Authorization": auth or basic(AUTH_ID, TOKEN)}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, sim.api_url + path, json=body, headers=headers) as answer,
    ):
        return answer.status, await answer.json()


CREATE = f"/v1/Account/{AUTH_ID}/Verify/Session/"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "recipient is required"),
        ({"recipient": "12345"}, "invalid recipient"),
        ({"recipient": "+999123456789"}, "invalid recipient"),
        ({"recipient": RECIPIENT, "channel": "fax"}, "channel must be one of"),
        ({"recipient": RECIPIENT, "method": "PUT"}, "method must be one of"),
        ({"recipient": RECIPIENT, "code_length": 3}, "code_length"),
        ({"recipient": RECIPIENT, "code_length": 9}, "code_length"),
        ({"recipient": RECIPIENT, "code_length": "six"}, "code_length"),
        ({"recipient": RECIPIENT, "url": "ftp://example.com/x"}, "url must be"),
        ({"recipient": RECIPIENT, "url": "https://"}, "url must be"),
        ({"recipient": RECIPIENT, "app_uuid": "my-app"}, "invalid app_uuid"),
        ({"recipient": RECIPIENT, "locale": "english"}, "invalid locale"),
    ],
)
async def test_create_refuses_what_plivo_refuses(
    make_sim: MakeSim, body: dict[str, Any], error: str
) -> None:
    """Bad create arguments get a 400 with Plivo's {api_id, error} body and start nothing."""
    sim = await make_sim()
    status, answer = await _raw(sim, "POST", CREATE, body)
    assert status == 400
    assert set(answer) == {"api_id", "error"}
    assert error in answer["error"]
    assert sim.deliveries == []


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        (CREATE, basic(AUTH_ID, "wrong-token")),
        (CREATE, basic("MAOTHERACCOUNT000000", TOKEN)),
        ("/v1/Account/MAOTHERACCOUNT000000/Verify/Session/", None),
    ],
)
async def test_credentials_are_checked(make_sim: MakeSim, path: str, auth: str | None) -> None:
    """A wrong token, a wrong auth id, or another account's path is answered 401."""
    sim = await make_sim()
    status, answer = await _raw(sim, "POST", path, {"recipient": RECIPIENT}, auth)
    assert status == 401
    assert "Authentication credentials invalid".lower() in answer["error"].lower()
    assert TOKEN not in str(answer)


async def test_unknown_session_is_404(make_sim: MakeSim) -> None:
    """Reading or validating a session that does not exist is answered 404."""
    sim = await make_sim()
    path = CREATE + "00000000-0000-4000-8000-000000000000/"
    assert (await _raw(sim, "GET", path))[0] == 404
    status, answer = await _raw(sim, "POST", path, {"otp": "1234"})
    assert (status, answer["error"]) == (404, "session not found")


async def test_injected_faults_answer_once_then_the_api_recovers(make_sim: MakeSim) -> None:
    """fail_next makes exactly the next request fail with the given status and error."""
    sim = await make_sim()
    sim.fail_next(429)
    sim.fail_next(503, error="maintenance")
    assert (await _raw(sim, "GET", CREATE + "x/"))[1]["error"] == "too many requests"
    assert (await _raw(sim, "GET", CREATE + "x/"))[1]["error"] == "maintenance"
    assert (await _raw(sim, "GET", CREATE + "x/"))[0] == 404


async def test_close_cancels_pending_retries_and_hanging_requests(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """Closing with retries a minute away and a request hanging returns at once, warning-free."""
    receiver.answer = lambda seen, nth: 500
    sim = await make_sim(time_factor=1.0)
    await api_for(sim).create(RECIPIENT, url=receiver.url)
    await _poll(lambda: len(sim.deliveries) == 1)
    sim.fail_next(None, hang=60)
    hanging = asyncio.ensure_future(_raw(sim, "GET", CREATE + "x/"))
    await _poll(lambda: not sim._faults)  # the request is inside the simulator, hanging
    started = time.monotonic()
    await sim.close()
    assert time.monotonic() - started < 5
    await asyncio.gather(hanging, return_exceptions=True)
    assert {d.attempt for d in sim.deliveries} == {0}  # no retry came after close


async def test_wait_done_times_out_while_waiting_for_the_code(make_sim: MakeSim) -> None:
    """A delivered session is not done until someone validates it."""
    sim = await make_sim()
    status, answer = await _raw(sim, "POST", CREATE, {"recipient": RECIPIENT})
    assert status == 202 and answer["message"] == "Session initiated"
    with pytest.raises(TimeoutError, match="still busy"):
        await sim.wait_done(answer["session_uuid"], timeout=0.05)


def test_demo_credentials_pass_the_auth_id_check() -> None:
    """The demo account is well formed, so the demo runs the same checks as real use."""
    assert check_auth_id(DEMO_AUTH_ID) == DEMO_AUTH_ID
    assert DEMO_AUTH_TOKEN


def test_unknown_scenario_is_refused() -> None:
    """A scenario name that the simulator cannot play is refused up front."""
    with pytest.raises(ValueError, match="unknown scenario"):
        Simulator(AUTH_ID, TOKEN, scenario="lost")  # type: ignore[arg-type]


async def _poll(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def test_a_second_create_joins_the_open_session(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """A send to the same app and recipient while the session is open is a new attempt in it:
    same session and code, AttemptSequence 2, its own AttemptUUID and RequestTime."""
    messages: list[str] = []
    sim = await make_sim(on_message=lambda to, text: messages.append(text))
    api = api_for(sim)
    first = await api.create(RECIPIENT, url=receiver.url)
    await receiver.wait_for(3)
    second = await api.create(RECIPIENT, url=receiver.url)
    assert second == first
    seen = await receiver.wait_for(6)
    by_attempt: dict[str, list[Seen]] = {}
    for one in seen:
        by_attempt.setdefault(one.fields["AttemptUUID"], []).append(one)
        assert_signed(one)
    assert len(by_attempt) == 2
    sequences = [[s.fields["AttemptSequence"] for s in group] for group in by_attempt.values()]
    assert sequences == [["1"] * 3, ["2"] * 3]
    times = [{s.fields["RequestTime"] for s in group} for group in by_attempt.values()]
    assert all(len(t) == 1 for t in times) and times[0] != times[1]
    code = sim.code_for(first)
    assert messages == [f"Your verification code is {code}"] * 2
    details = await api.get(first)
    assert details["count"] == 2
    assert [a["attempt_uuid"] for a in details["attempt_details"]] == list(by_attempt)
    assert len(details["charges"]["attempt_charges"]) == 2
    assert await api.validate(first, code) is True
    await sim.wait_done(first, timeout=5)
    last = receiver.seen[-1].fields
    assert (last["SessionStatus"], last["AttemptSequence"]) == ("verified", "2")
    assert (await api.get(first))["charges"]["validation_charge"] != "0.0000"
    third = await api.create(RECIPIENT, url=receiver.url)
    assert third != first  # a verified session is closed: the next send starts a new one


async def test_a_session_before_any_attempt_status_has_null_details(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi]
) -> None:
    """attempt_details and attempt_charges are null, as in the SDK fixtures, until a status."""
    sim = await make_sim(time_factor=1.0)
    api = api_for(sim)
    details = await api.get(await api.create(RECIPIENT, locale="en_US"))
    assert details["attempt_details"] is None
    assert details["charges"] == {
        "total_charge": "0",
        "validation_charge": "0.0000",
        "attempt_charges": None,
    }
    assert details["count"] == 0 and details["locale"] == "en_US"


async def test_v3_headers_only_when_asked(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """With schemes v3 and v2 every callback carries both families, each valid."""
    sim = await make_sim(schemes=("v3", "v2"))
    await api_for(sim).create(RECIPIENT, url=receiver.url)
    for one in await receiver.wait_for(3):
        assert set(SIGNATURE_HEADERS) | set(V3_HEADERS) <= set(one.headers)
        assert_signed(one)


async def test_ma_v2_is_signed_with_the_auth_token_without_a_main_token(
    receiver: CallbackEndpoint,
) -> None:
    """A main account signs Ma-V2 with its own token: the same token as V2."""
    async with Simulator(AUTH_ID, TOKEN, None, time_factor=FACTOR) as sim:
        api = VerifyApi(AUTH_ID, Secret(TOKEN), sim.api_url, timeout=5.0)
        try:
            await api.create(RECIPIENT, url=receiver.url)
        finally:
            api.close()
        one = (await receiver.wait_for(1))[0]
    nonce = one.headers["X-Plivo-Signature-V2-Nonce"]
    assert one.headers["X-Plivo-Signature-Ma-V2"] == v2(one.url, nonce, TOKEN)


async def test_list_pages_and_filters_like_plivo(make_sim: MakeSim) -> None:
    """GET …/Verify/Session/ answers `meta` and `sessions`, newest first, paged by limit and
    offset, filtered by recipient; a bad limit is a 400."""
    sim = await make_sim()
    made = []
    for n in range(3):
        status, answer = await _raw(sim, "POST", CREATE, {"recipient": f"+1415555010{n}"})
        made.append(answer["session_uuid"])
    status, page = await _raw(sim, "GET", CREATE + "?limit=2")
    assert status == 200 and set(page) == {"api_id", "meta", "sessions"}
    assert [s["session_uuid"] for s in page["sessions"]] == made[::-1][:2]
    assert page["meta"]["limit"] == 2 and page["meta"]["offset"] == 0
    assert page["meta"]["previous"] is None and "offset=2" in page["meta"]["next"]
    status, rest = await _raw(sim, "GET", CREATE + "?limit=2&offset=2")
    assert [s["session_uuid"] for s in rest["sessions"]] == made[:1]
    assert rest["meta"]["next"] is None
    status, one = await _raw(sim, "GET", CREATE + "?recipient=%2B14155550101")
    assert [s["session_uuid"] for s in one["sessions"]] == [made[1]]
    assert (await _raw(sim, "GET", CREATE + "?limit=21"))[0] == 400


async def test_list_is_rate_limited_to_20_a_minute(make_sim: MakeSim) -> None:
    """The 21st list call within a minute is answered 429 with Plivo's error shape."""
    sim = await make_sim()
    for _ in range(20):
        assert (await _raw(sim, "GET", CREATE))[0] == 200
    status, answer = await _raw(sim, "GET", CREATE)
    assert status == 429 and set(answer) == {"api_id", "error"}


async def test_the_test_helper_shows_the_code_without_credentials(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi], receiver: CallbackEndpoint
) -> None:
    """GET /_simulator/sessions/{uuid} answers the session, its attempts and the otp."""
    sim = await make_sim()
    session = await api_for(sim).create(RECIPIENT, url=receiver.url)
    seen = await receiver.wait_for(3)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sim.api_url}/_simulator/sessions/{session}") as answer,
    ):
        assert answer.status == 200
        body = await answer.json()
    assert body["otp"] == sim.code_for(session)
    assert body["session"]["session_uuid"] == session
    attempt = body["attempts"][0]
    assert attempt["attempt_uuid"] == seen[0].fields["AttemptUUID"]
    assert attempt["request_time"] == seen[0].fields["RequestTime"]
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sim.api_url}/_simulator/sessions/nope") as answer,
    ):
        assert answer.status == 404


async def test_a_wrong_code_keeps_plivos_message(
    make_sim: MakeSim, api_for: Callable[[Simulator], VerifyApi]
) -> None:
    """check_code returns Plivo's message verbatim with the verdict."""
    sim = await make_sim()
    api = api_for(sim)
    session = await api.create(RECIPIENT)
    wrong = "0" * 6 if sim.code_for(session) != "0" * 6 else "1" * 6
    result = await api.check_code(session, wrong)
    assert (result.verified, result.message) == (False, "Incorrect OTP.")
    result = await api.check_code(session, sim.code_for(session))
    assert (result.verified, result.message) == (True, "session validated successfully.")
