"""send end to end: the real plivo SDK against the simulator, callbacks into a real listener."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.env import AUTH_ID, AUTH_TOKEN, MAIN_TOKEN, NGROK_TOKEN, Collect, cli_env
from helpers.events import form_event
from helpers.ngrok_stub import fake_ngrok_env, pid_alive, wait_until
from helpers.procs import run_cli
from plivo.utils import validate_signature

from verifycli.callbacks import CallbackEvent
from verifycli.config import Secret, Settings
from verifycli.errors import ConfigError, ExitCode, PlivoApiError
from verifycli.flows import ListenSpec, Running
from verifycli.listener import ListenOptions
from verifycli.session import (
    CodeSource,
    PromptCode,
    SessionResult,
    SessionRun,
    SessionState,
    Tracker,
    follow_session,
)
from verifycli.simulator import Simulator
from verifycli.store import StoreReader
from verifycli.tunnel import TunnelSpec

FACTOR = 0.001  # one simulated second is a millisecond here


class SimCode(CodeSource):
    """Types the code the simulated phone got, optionally wrong."""

    def __init__(
        self, sim: Simulator, tracker: Tracker, wrong: bool = False, never: bool = False
    ) -> None:
        self.sim, self.tracker, self.wrong, self.never = sim, tracker, wrong, never

    async def code(self, attempt: int) -> str | None:
        if self.never:
            import asyncio

            await asyncio.Event().wait()
        code = self.sim.code_for(self.tracker.session_uuid or "")
        return str((int(code[0]) + 1) % 10) + code[1:] if self.wrong else code


class QuietView(Collect):
    """A View for the session runner that shows nothing and keeps what it was told."""

    def __init__(self) -> None:
        super().__init__()
        self.running: Running | None = None
        self.session_uuid = ""
        self.messages: list[tuple[str, str]] = []
        self.awaited: list[str] = []

    def waiting(self, what: str) -> None:
        self.awaited.append(what)

    def ready(self, running: Running, state: SessionState | None = None) -> None:
        self.running = running

    def bound(self, session_uuid: str) -> None:
        self.session_uuid = session_uuid

    def message(self, recipient: str, text: str) -> None:
        self.messages.append((recipient, text))

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def ask(self, attempt: int, tries: int) -> str | None:
        return None

    def note(self, message: str) -> None:
        pass

    def finish(self, state: SessionState, result: SessionResult) -> None:
        pass

    def inspector(self, url: str, exposed: bool) -> None:
        pass


def make_sim(scenario: str = "delivered", **kwargs: object) -> Simulator:
    return Simulator(
        AUTH_ID,
        AUTH_TOKEN,
        MAIN_TOKEN,
        scenario=scenario,
        time_factor=FACTOR,  # type: ignore[arg-type]
        expiry_seconds=kwargs.pop("expiry_seconds", 30.0),
        **kwargs,
    )  # type: ignore[arg-type]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = make_sim()
    await simulator.start()
    yield simulator
    await simulator.close()


def settings_for(sim: Simulator, store: Path) -> Settings:
    return Settings(
        auth_id=AUTH_ID,
        ngrok_authtoken=Secret(NGROK_TOKEN),
        auth_token=Secret(AUTH_TOKEN),
        main_auth_token=Secret(MAIN_TOKEN),
        api_url=sim.api_url,
        store_path=store,
    )


async def send(
    sim: Simulator,
    store: Path,
    codes: Callable[[Tracker], CodeSource | None],
    request: SessionRun | None = None,
    options: ListenOptions | None = None,
    where: TunnelSpec | None = None,
) -> tuple[SessionResult, Tracker, QuietView]:
    request = request or SessionRun("+14155550100", verified_wait=5.0)
    listen = ListenSpec(options or ListenOptions(port=0), where or TunnelSpec("none"))
    request = replace(request, listen=listen)
    tracker = Tracker(SessionState(request.recipient, request.channel))
    seen = QuietView()
    outcome = await follow_session(settings_for(sim, store), request, seen, tracker, codes(tracker))
    return outcome, tracker, seen


def statuses(seen: Collect) -> list[tuple[str | None, str | None]]:
    return [(e.plivo("channel_status"), e.plivo("session_status")) for e in seen.events]


async def test_sms_post_right_code_is_verified(sim: Simulator, store_path: Path) -> None:
    """sms over POST: queued, sent, delivered, then verified after the right code; exit 0."""
    outcome, tracker, seen = await send(sim, store_path, lambda t: SimCode(sim, t))
    assert outcome.code == ExitCode.OK, outcome.message
    assert statuses(seen) == [
        ("queued", "in-progress"),
        ("sent", "in-progress"),
        ("delivered", "in-progress"),
        ("delivered", "verified"),
    ]
    assert {e.signature.verdict for e in seen.events} == {"valid"}
    assert [e.method for e in seen.events] == ["POST"] * 4
    assert tracker.verified.is_set()
    assert StoreReader(store_path).count() == 4


async def test_voice_get_callbacks(sim: Simulator, store_path: Path) -> None:
    """voice over GET: ringing, in-progress (code heard), verified; each signed over its query."""
    request = SessionRun("+14155550100", channel="voice", method="GET", verified_wait=5.0)
    outcome, _, seen = await send(sim, store_path, lambda t: SimCode(sim, t), request)
    assert outcome.code == ExitCode.OK, outcome.message
    assert [s for s, _ in statuses(seen)][:2] == ["ringing", "in-progress"]
    assert statuses(seen)[-1][1] == "verified"
    assert all(e.method == "GET" and e.query for e in seen.events)
    assert {e.signature.verdict for e in seen.events} == {"valid"}


async def test_every_callback_validates_with_the_plivo_sdk(
    sim: Simulator, store_path: Path
) -> None:
    """What the simulator sent is V2-signed, as the Verify guide documents, and validates with
    plivo.utils against the public URL; the listener calls it valid v2."""
    outcome, _, seen = await send(sim, store_path, lambda t: SimCode(sim, t))
    assert outcome.code == ExitCode.OK
    for event in seen.events:
        h = event.headers
        assert "X-Plivo-Signature-V3" not in h
        assert validate_signature(
            event.url, h["X-Plivo-Signature-V2-Nonce"], h["X-Plivo-Signature-V2"], AUTH_TOKEN
        )
        assert (event.signature.verdict, event.signature.scheme) == ("valid", "v2")


async def test_wrong_otp_fails_at_once(sim: Simulator, store_path: Path) -> None:
    """--otp with a wrong code is exit 1 after one try."""
    outcome, tracker, _ = await send(sim, store_path, lambda t: SimCode(sim, t, wrong=True))
    assert (outcome.code, outcome.message) == (
        ExitCode.FLOW_FAILED,
        "wrong code: the session was not verified (Plivo: 'Incorrect OTP.')",
    )
    assert not tracker.verified.is_set()


async def test_prompt_allows_three_tries(sim: Simulator, store_path: Path) -> None:
    """Interactively, two wrong codes then the right one still verifies."""
    answers: list[str] = []

    def codes(tracker: Tracker) -> CodeSource:
        def ask(attempt: int) -> str:
            code = sim.code_for(tracker.session_uuid or "")
            answers.append(code if attempt == 3 else "0" * 9)
            return answers[-1]

        return PromptCode(ask, lambda: None, lambda: None)

    outcome, _, _ = await send(sim, store_path, codes)
    assert outcome.code == ExitCode.OK, outcome.message
    assert len(answers) == 3


async def test_prompt_three_wrong_codes(sim: Simulator, store_path: Path) -> None:
    """Three wrong codes at the prompt is exit 1, saying so."""
    outcome, _, _ = await send(
        sim, store_path, lambda t: PromptCode(lambda a: "0" * 9, lambda: None, lambda: None)
    )
    assert outcome.code == ExitCode.FLOW_FAILED
    assert "3 tries" in outcome.message


async def test_no_prompt_succeeds_on_delivery(sim: Simulator, store_path: Path) -> None:
    """--no-prompt asks no code and ends 0 once the code is delivered."""
    outcome, tracker, _ = await send(sim, store_path, lambda t: None)
    assert outcome.code == ExitCode.OK
    assert tracker.delivered.is_set()


@pytest.mark.parametrize(
    ("scenario", "channel", "message"),
    [
        ("undelivered", "sms", "the code was not delivered: undelivered (error 20)"),
        ("failed", "sms", "the code was not delivered: failed (error 50)"),
        ("no-answer", "voice", "the code was not delivered: no-answer (error 3020)"),
    ],
)
async def test_delivery_failures_exit_1(
    store_path: Path, scenario: str, channel: str, message: str
) -> None:
    """Each failed delivery ends the flow with exit 1 and names the status and error code."""
    async with make_sim(scenario) as failing:
        request = SessionRun("+14155550100", channel=channel)
        outcome, _, _ = await send(failing, store_path, lambda t: SimCode(failing, t), request)
    assert (outcome.code, outcome.message) == (ExitCode.FLOW_FAILED, message)


async def test_expired_session_exits_1(store_path: Path) -> None:
    """A session that expires before any code is entered ends with exit 1."""
    async with make_sim("expired", expiry_seconds=50.0) as expiring:
        outcome, tracker, _ = await send(
            expiring, store_path, lambda t: SimCode(expiring, t, never=True)
        )
    assert outcome.code == ExitCode.FLOW_FAILED
    assert "expired" in outcome.message
    assert tracker.state.timeline[-1][1] == "session expired"


async def test_timeout_exits_1(sim: Simulator, store_path: Path) -> None:
    """Nobody typing until --timeout is exit 1, timed out."""
    request = SessionRun("+14155550100", timeout=0.3)
    outcome, _, _ = await send(sim, store_path, lambda t: SimCode(sim, t, never=True), request)
    assert outcome.code == ExitCode.FLOW_FAILED
    assert outcome.message.startswith("timed out after 0.3 s")


async def test_retries_are_marked(store_path: Path) -> None:
    """Answering 500 to first deliveries makes the simulator retry; retries carry retry_of."""
    async with make_sim("retries") as retrying:
        outcome, _, seen = await send(
            retrying,
            store_path,
            lambda t: SimCode(retrying, t),
            SessionRun("+14155550100", verified_wait=5.0, linger=10.0),
            ListenOptions(port=0, fail_first=True),
        )
        assert outcome.code == ExitCode.OK, outcome.message
    firsts = [e for e in StoreReader(store_path).iter_events() if e.retry_of is None]
    retries = [e for e in StoreReader(store_path).iter_events() if e.retry_of is not None]
    assert {e.response_status for e in firsts} == {500}
    assert {e.response_status for e in retries} == {200}
    assert {r.retry_of for r in retries} == {e.id for e in firsts}


async def test_api_error_is_exit_3(sim: Simulator, store_path: Path) -> None:
    """A Plivo API refusal at create is a PlivoApiError (exit 3) naming the problem."""
    sim.fail_next(401)
    with pytest.raises(PlivoApiError) as caught:
        await send(sim, store_path, lambda t: None)
    assert caught.value.exit_code == 3
    assert AUTH_TOKEN not in str(caught.value)


async def test_missing_token_is_exit_2_before_anything_starts(
    sim: Simulator, store_path: Path
) -> None:
    """No PLIVO_AUTH_TOKEN: ConfigError naming it, and no store file was created."""
    settings = Settings(auth_id=AUTH_ID, api_url=sim.api_url, store_path=store_path)
    tracker = Tracker(SessionState("+14155550100", "sms"))
    with pytest.raises(ConfigError, match="PLIVO_AUTH_TOKEN"):
        await follow_session(settings, SessionRun("+14155550100"), QuietView(), tracker, None)
    assert not store_path.exists()


@pytest.mark.parametrize("bad", ["14155550100", "+1415", "+1 415 555 0100", "call me"])
def test_bad_recipient_is_a_config_error(bad: str) -> None:
    """RECIPIENT must be E.164."""
    with pytest.raises(ConfigError, match="E.164"):
        SessionRun(bad)


def test_code_length_out_of_range() -> None:
    """--code-length outside 4..8 is refused."""
    with pytest.raises(ConfigError, match="4 to 8"):
        SessionRun("+14155550100", code_length=9)


async def test_send_through_ngrok_stand_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_path: Path
) -> None:
    """Through pyngrok and the stand-in: the session's url is the tunnel's, all valid, no orphan."""
    with fake_ngrok_env(tmp_path, monkeypatch) as agent:
        ngrok = agent
        routes: dict[str, str] = {}

        def resolve(url: str) -> str:
            if not routes:
                public = url.split("/verify/")[0]
                routes[public] = ngrok.relay_url(public).rstrip("/")
            for public, relay in routes.items():
                url = url.replace(public, relay)
            return url

        async with make_sim(resolve=resolve) as tunnelled:
            outcome, _, seen = await send(
                tunnelled,
                store_path,
                lambda t: SimCode(tunnelled, t),
                where=TunnelSpec(ngrok_path=str(ngrok.path), ngrok_config=str(ngrok.config_path)),
            )
            pid = ngrok.pid()
        assert outcome.code == ExitCode.OK, outcome.message
        [public] = routes
        assert public.startswith("https://")
        assert all(d.url.startswith(public + "/verify/callback") for d in tunnelled.deliveries)
        assert {e.signature.verdict for e in seen.events} == {"valid"}
        wait_until(lambda: not pid_alive(pid), 5, "the ngrok agent to exit")


def test_demo_auto_subprocess_without_plivo_settings(tmp_path: Path) -> None:
    """`verifycli demo --auto` needs no account and no network: exit 0, verified."""
    result = run_cli(
        ["demo", "--auto", "--store", str(tmp_path / "d.sqlite3")],
        cli_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "verified: the code was right" in result.stderr
    assert result.stdout == ""


def test_demo_json_prints_only_records(tmp_path: Path) -> None:
    """demo --json writes the session's records to stdout, one per line, nothing else."""
    result = run_cli(
        ["demo", "--auto", "--json", "--store", str(tmp_path / "d.sqlite3")],
        cli_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["channel_status"] for r in records] == ["queued", "sent", "delivered", "delivered"]
    assert records[-1]["session_status"] == "verified"


@pytest.mark.parametrize(("scenario", "code"), [("undelivered", 1), ("failed", 1)])
def test_demo_failure_scenarios_exit_1(tmp_path: Path, scenario: str, code: int) -> None:
    """demo's failure scenarios end with send's exit code for them."""
    result = run_cli(
        ["demo", "--auto", "--scenario", scenario, "--store", str(tmp_path / "d.sqlite3")],
        cli_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == code, result.stderr


def _callback(sequence: str, status: str, error: str = "", session: str = "s-1") -> CallbackEvent:
    fields = {
        "SessionUUID": session,
        "SessionStatus": "in-progress",
        "AttemptUUID": f"a-{sequence}",
        "AttemptSequence": sequence,
        "Channel": "sms",
        "ChannelStatus": status,
        "ChannelErrorCode": error,
    }
    return form_event(fields, received_at="2026-12-02T21:00:00.000000+00:00", response_status=200)


async def test_send_follows_its_own_attempt_in_a_joined_session() -> None:
    """Once attempt 2 (this send's) is seen, an earlier attempt's late failure is ignored."""
    tracker = Tracker(SessionState("+14155550100", "sms"))
    tracker.bind("s-1")
    tracker.event(_callback("2", "queued"))
    tracker.event(_callback("1", "undelivered", "20"))
    assert not tracker.failed.is_set()
    tracker.event(_callback("2", "delivered"))
    assert tracker.delivered.is_set() and len(tracker.events) == 3


@pytest.mark.parametrize(
    ("status", "error", "fails"),
    [("busy", "3000", True), ("cancel", "", True), ("blocked", "30", True), ("blocked", "", False)],
)
async def test_final_and_unknown_statuses(status: str, error: str, fails: bool) -> None:
    """busy, cancel, timeout end the attempt; an unknown status does when it carries an error
    code, so nothing waits out --timeout on it."""
    tracker = Tracker(SessionState("+14155550100", "sms"))
    tracker.bind("s-1")
    tracker.event(_callback("1", status, error))
    assert tracker.failed.is_set() is fails
    if fails:
        assert tracker.failure.startswith(f"the code was not delivered: {status}")


async def test_a_verified_callback_that_never_comes_costs_at_most_two_seconds(
    store_path: Path,
) -> None:
    """validate's answer decides; the verified callback is awaited ~2 s and said missing."""
    import time

    class Silent(Simulator):
        async def _deliver_with_retries(self, s, attempt, fields):  # type: ignore[no-untyped-def]
            return None  # the verified callback is never sent

    quiet = Silent(AUTH_ID, AUTH_TOKEN, MAIN_TOKEN, time_factor=FACTOR)
    await quiet.start()
    try:
        started = time.monotonic()
        outcome, tracker, _ = await send(
            quiet, store_path, lambda t: SimCode(quiet, t), SessionRun("+14155550100")
        )
    finally:
        await quiet.close()
    assert outcome.code == ExitCode.OK
    assert "did not come within 2 s" in outcome.message
    assert not tracker.verified.is_set()
    assert time.monotonic() - started < 6


async def test_demo_is_send_with_simulator_settings_through_any_view(store_path: Path) -> None:
    """run_session on SessionRun.demo drives a test's own View: phone message, bound, verified."""
    from verifycli.session import run_session

    view = QuietView()
    spec = SessionRun.demo("delivered", "+14155550100", auto=True)
    result = await run_session(spec, Settings(store_path=store_path), view)
    assert result.code == ExitCode.OK, result.message
    assert view.session_uuid and view.running is not None
    assert view.awaited == [
        "starting the simulator",
        "creating the Verify session",
        "waiting for the first callback",
    ]
    [(recipient, text)] = view.messages
    assert recipient == "+14155550100" and "verification code" in text
    assert {e.plivo("session_uuid") for e in view.events} == {view.session_uuid}
