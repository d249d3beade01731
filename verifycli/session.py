"""Follows one Verify session for send and demo: create it, track its callbacks, get the code, end.

`run_session` takes a checked `SessionRun` and a `View`; it never prints. `demo` is the same
run with simulator settings (`SessionRun.demo`): a local Plivo instead of the real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from verifycli.callbacks import CallbackEvent
from verifycli.config import (
    Secret,
    Settings,
    check_auth_id,
    check_timeout,
    default_store_path,
    require_token,
)
from verifycli.errors import ConfigError, ExitCode, TunnelError
from verifycli.flows import ListenSpec, Running, run_until_signal, running_listener
from verifycli.listener import ListenOptions, Sink, check_callback_path
from verifycli.plivo import (
    CHANNEL_FAILED,
    DELIVERED,
    HEARD,
    ON_ITS_WAY,
    SCENARIOS,
    Scenario,
    check_channel,
    check_method,
)
from verifycli.simulator import RETRY_DELAYS
from verifycli.tunnel import TunnelSpec

if TYPE_CHECKING:
    from verifycli.inspector.run import UiRequest
    from verifycli.verify_api import Validation

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
DEMO_MAIN_TOKEN = "demo-simulator-main-token-not-a-secret"
# Real seconds per simulated second: brisk enough to watch, slow enough to see each status.
DEMO_TIME_FACTOR = 0.5
# Plivo retries after 60, 120 and 240 s; the retries scenario squeezes that into seconds.
RETRIES_TIME_FACTOR = 0.02
DEMO_EXPIRY_SECONDS = 12.0
# After a right code, how long to wait for the `verified` callback: validate's answer has
# already decided, the callback only completes the timeline.
VERIFIED_WAIT = 2.0


def check_recipient(recipient: str) -> str:
    """RECIPIENT in E.164 (+14155550100), checked with phonenumbers; ConfigError otherwise."""
    import phonenumbers

    text = recipient.strip()
    problem = f"RECIPIENT must be a phone number in E.164 form like +14155550100, not {recipient!r}"
    if not _E164.match(text):
        raise ConfigError(problem)
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise ConfigError(problem) from None
    if not phonenumbers.is_possible_number(number):
        raise ConfigError(
            f"{text} is not a possible phone number: check the country code and length"
        )
    return text


def demo_store_path() -> Path:
    """The demo keeps its own store, so made-up sessions never mix with real ones."""
    return default_store_path().with_name("demo.sqlite3")


@dataclass
class SessionRun:
    """One send (or demo) run: what to send, how to follow it, where to listen; checked once."""

    recipient: str
    channel: str = "sms"
    app_uuid: str | None = None
    locale: str | None = None
    brand_name: str | None = None
    code_length: int | None = None
    method: str = "POST"
    path: str = "/verify/callback"
    timeout: float = 600.0
    otp: str | None = None
    prompt: bool = True  # False: --no-prompt, succeed once delivered
    listen: ListenSpec = field(default_factory=ListenSpec)
    simulate: Scenario | None = None  # demo: this scenario on the built-in simulator
    auto: bool = False  # demo --auto: the simulated phone's code is typed for you
    verified_wait: float = VERIFIED_WAIT
    # After the outcome, keep listening up to this long for retries Plivo still owes.
    linger: float = 0.0

    def __post_init__(self) -> None:
        self.recipient = check_recipient(self.recipient)
        self.channel = check_channel(self.channel)
        self.method = check_method(self.method)
        if self.code_length is not None and not 4 <= self.code_length <= 8:
            raise ConfigError(f"--code-length must be 4 to 8, not {self.code_length}")
        if not self.path.startswith("/"):
            self.path = "/" + self.path
        self.path = check_callback_path(self.path)
        check_timeout(self.timeout)
        if self.otp is not None and not self.prompt:
            raise ConfigError("--otp and --no-prompt do not go together: pick one")
        if self.simulate is not None and self.simulate not in SCENARIOS:
            raise ConfigError(
                f"--scenario must be one of {', '.join(SCENARIOS)}, not {self.simulate!r}"
            )

    @classmethod
    def demo(
        cls,
        scenario: Scenario,
        recipient: str,
        channel: str = "sms",
        auto: bool = False,
        inspector: UiRequest | None = None,
    ) -> SessionRun:
        """send with simulator settings: no tunnel, and the retries scenario fails firsts."""
        retries = scenario == "retries"
        options = ListenOptions(host="127.0.0.1", port=0, fail_first=retries)
        linger = sum(RETRY_DELAYS) * RETRIES_TIME_FACTOR + 5.0 if retries else 0.0
        return cls(
            recipient,
            channel=channel,
            brand_name="verifycli demo",
            listen=ListenSpec(options, TunnelSpec("none"), inspector),
            simulate=scenario,
            auto=auto,
            linger=linger,
        )

    @property
    def asks_a_person(self) -> bool:
        """Whether the code is typed at a prompt (not --otp, --no-prompt or demo --auto)."""
        return self.prompt and self.otp is None and not self.auto

    @property
    def opening(self) -> str:
        """What starts first, for the view to say while it waits."""
        if self.simulate is not None:
            return "starting the simulator"
        if self.listen.tunnel.kind == "ngrok":
            return "opening the ngrok tunnel"
        return "starting the listener"

    @property
    def note(self) -> str:
        """What the header says about this run; only the demo has something to say."""
        if self.simulate is None:
            return ""
        typed = ", code typed for you" if self.auto else ""
        return f"demo: simulated Plivo, scenario {self.simulate}{typed}"


@dataclass
class SessionState:
    """What the session panel shows; updated as callbacks arrive."""

    recipient: str
    channel: str
    session_uuid: str = ""
    state: str = "starting"
    started: float = field(default_factory=time.monotonic)
    # (ISO time, what happened); shown in local time.
    timeline: list[tuple[str, str]] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass
class SessionResult:
    """How a session ended: the exit code and one line saying why."""

    code: ExitCode
    message: str


class View(Sink, Protocol):
    """What a session shows and asks through: the live view, or a test's stand-in.

    It is a listener sink too (every callback, then only the session's once `bound`).
    """

    def waiting(self, what: str) -> None:
        """Say what the run waits for now ("opening the ngrok tunnel", …) until it comes."""

    def ready(self, running: Running, state: SessionState | None = None) -> None:
        """The listener is up (and the tunnel open): show where, and the session panel."""

    def bound(self, session_uuid: str) -> None:
        """The session exists: from now on only its callbacks matter."""

    def message(self, recipient: str, text: str) -> None:
        """The demo's simulated phone received the code."""

    def pause(self) -> None:
        """Hand the terminal to a prompt."""

    def resume(self) -> None:
        """Take the terminal back after a prompt."""

    def ask(self, attempt: int, tries: int) -> str | None:
        """Ask the person for the code (blocking); None when nobody can answer."""

    def note(self, message: str) -> None:
        """One line for the person (the demo's closing line: where its events are kept)."""

    def finish(self, state: SessionState, result: SessionResult) -> None:
        """The session ended: show its timeline and outcome."""

    def inspector(self, url: str, exposed: bool) -> None:
        """--ui: the browser inspector is up at `url` (`exposed`: beyond loopback)."""


class Tracker:
    """A sink that follows one session's callbacks and signals its milestones."""

    whole = False

    def __init__(self, state: SessionState, emit: Sink | None = None) -> None:
        self.state = state
        self.emit = emit
        self.session_uuid: str | None = None
        self.events: list[CallbackEvent] = []
        self._early: list[CallbackEvent] = []
        self.heard = asyncio.Event()
        self.delivered = asyncio.Event()
        self.failed = asyncio.Event()
        self.verified = asyncio.Event()
        self.failure = ""
        # The newest attempt seen: a `send` that joined an open session follows its own
        # attempt, not an earlier one's late callbacks.
        self.attempt = 0
        # Callbacks answered other than 200 whose retry has not been answered 200 yet.
        self.owed: set[tuple[str, str, str]] = set()
        self.settled = asyncio.Event()

    def bind(self, session_uuid: str) -> None:
        """Follow this session; callbacks that raced ahead of the API's answer are kept."""
        self.session_uuid = session_uuid
        early, self._early = self._early, []
        for event in early:
            self.event(event)

    def event(self, event: CallbackEvent) -> None:
        if self.session_uuid is None:
            self._early.append(event)
            return
        if event.plivo("session_uuid") != self.session_uuid:
            return
        self.events.append(event)
        if self.emit is not None:
            self.emit.event(event)
        self._count_owed(event)
        if event.retry_of is not None:
            return
        sequence = event.plivo("attempt_sequence") or ""
        if sequence.isdigit():
            if int(sequence) < self.attempt:
                return  # an earlier attempt of the session, not the one this send made
            self.attempt = int(sequence)
        channel_status = event.plivo("channel_status") or ""
        session_status = event.plivo("session_status") or ""
        when = event.received_at
        label = f"{event.plivo('channel') or 'channel'} {channel_status}".strip()
        if session_status and session_status != "in-progress":
            label = f"session {session_status}"
        self.state.timeline.append((when, label))
        self.state.state = label
        if channel_status in HEARD:
            self.heard.set()
        if channel_status in DELIVERED:
            self.delivered.set()
        code = event.plivo("channel_error_code")
        unknown = channel_status not in HEARD | DELIVERED | CHANNEL_FAILED | ON_ITS_WAY
        if channel_status in CHANNEL_FAILED or (unknown and (code or "").strip()):
            # An undocumented status that carries an error code ends the attempt too, rather
            # than leave the flow waiting out --timeout.
            self.failure = f"the code was not delivered: {channel_status}" + (
                f" (error {code})" if code else ""
            )
            self.failed.set()
        if session_status == "expired":
            self.failure = "the session expired before a right code was entered"
            self.failed.set()
        if session_status == "verified":
            self.verified.set()

    def _count_owed(self, event: CallbackEvent) -> None:
        key = event.retry_key
        if key is None:
            return
        if event.response_status == 200:  # Plivo retries anything else, 201 and 204 too
            self.owed.discard(key)
        else:
            self.owed.add(key)
        if self.owed:
            self.settled.clear()
        else:
            self.settled.set()

    def warn(self, message: str) -> None:
        """The view shows warnings; the tracker only follows the session."""


class CodeSource:
    """Where codes come from: a prompt, --otp, or the demo's simulated phone."""

    tries = 1
    # Seconds to wait for the code to be delivered before asking for it.
    delivery_wait = float("inf")

    async def code(self, attempt: int) -> str | None:
        raise NotImplementedError


class FixedCode(CodeSource):
    """--otp CODE: one try, after the code was delivered."""

    def __init__(self, otp: str) -> None:
        self.otp = otp

    async def code(self, attempt: int) -> str | None:
        return self.otp


class AutoCode(CodeSource):
    """demo --auto: type the code the simulated phone got, as a person would after delivery."""

    def __init__(self, read: Callable[[], str], never: bool = False) -> None:
        self.read = read
        self.never = never

    async def code(self, attempt: int) -> str | None:
        if self.never:  # the expired scenario: nobody types, the session runs out
            await asyncio.Event().wait()
        return self.read()


class PromptCode(CodeSource):
    """Ask the person, hidden, up to three times; the view pauses while they type."""

    tries = 3
    # A phone can show the SMS before Plivo reports it delivered: ask after a short while.
    delivery_wait = 15.0

    def __init__(
        self,
        ask: Callable[[int], str | None],
        pause: Callable[[], None] = lambda: None,
        resume: Callable[[], None] = lambda: None,
    ) -> None:
        self.ask = ask
        self.pause = pause
        self.resume = resume

    @classmethod
    def through(cls, view: View) -> PromptCode:
        # The view decides how to ask: the live view keeps streaming under its own prompt.
        return cls(lambda attempt: view.ask(attempt, cls.tries))

    async def code(self, attempt: int) -> str | None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str | None] = loop.create_future()

        def read() -> None:
            try:
                value = self.ask(attempt)
            except (EOFError, KeyboardInterrupt):
                value = None
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, answer, value)

        self.pause()
        # A daemon thread, not to_thread: a prompt abandoned (the code failed to deliver)
        # must not keep the process alive at exit.
        threading.Thread(target=read, name="verifycli-prompt", daemon=True).start()
        try:
            return await answer
        finally:
            self.resume()


def _resolve(future: asyncio.Future[str | None], value: str | None) -> None:
    if not future.done():
        future.set_result(value)


async def _first(work: Awaitable[object], *events: asyncio.Event) -> bool:
    """Wait for `work` or any of `events`; True when `work` finished first (its errors raise)."""
    task = asyncio.ensure_future(work)
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait([task, *waiters], return_when=asyncio.FIRST_COMPLETED)
    finally:
        pending = [f for f in (task, *waiters) if not f.done()]
        for future in pending:
            future.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()
    return True


class Validator(Protocol):
    """The part of VerifyApi that follow() needs."""

    async def check_code(self, session_uuid: str, otp: str) -> Validation: ...


async def follow(
    api: Validator,
    spec: SessionRun,
    tracker: Tracker,
    codes: CodeSource | None,
    tunnel_died: asyncio.Event,
) -> SessionResult:
    """From a created session to its outcome: delivery, the code, validation, `verified`."""
    uuid = tracker.session_uuid or ""
    stoppers = (tracker.failed, tunnel_died)
    if codes is None:
        await _first(tracker.delivered.wait(), *stoppers)
        return _stopped(tracker, tunnel_died) or SessionResult(
            ExitCode.OK, f"delivered to {spec.recipient}; no code asked (--no-prompt)"
        )
    if codes.delivery_wait > 0:
        limit = None if codes.delivery_wait == float("inf") else codes.delivery_wait
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_first(tracker.heard.wait(), *stoppers), limit)
        if stopped := _stopped(tracker, tunnel_died):
            return stopped
    said = ""
    for attempt in range(1, codes.tries + 1):
        entered: list[str | None] = []

        async def ask(attempt: int = attempt, into: list[str | None] = entered) -> None:
            into.append(await codes.code(attempt))

        if not await _first(ask(), *stoppers):
            return _stopped(tracker, tunnel_died) or SessionResult(ExitCode.FLOW_FAILED, "stopped")
        code = (entered[0] or "").strip()
        if not code:
            return SessionResult(
                ExitCode.FLOW_FAILED,
                "no code was entered: type it at the prompt, or pass --otp CODE (demo: --auto)",
            )
        answer = await api.check_code(uuid, code)
        if answer.verified:
            tracker.state.state = "code accepted"
            await _first(asyncio.sleep(spec.verified_wait), tracker.verified)
            note = (
                ""
                if tracker.verified.is_set()
                else f" (Plivo's answer says so; its verified callback did not come within "
                f"{spec.verified_wait:g} s)"
            )
            return SessionResult(ExitCode.OK, f"verified: the code was right{note}")
        said = answer.message
        tracker.state.state = f"wrong code ({attempt}/{codes.tries}): {said}"
        now = datetime.now(timezone.utc).isoformat()
        tracker.state.timeline.append((now, "wrong code"))
    tries = f" ({codes.tries} tries)" if codes.tries > 1 else ""
    return SessionResult(
        ExitCode.FLOW_FAILED, f"wrong code{tries}: the session was not verified (Plivo: {said!r})"
    )


def _stopped(tracker: Tracker, tunnel_died: asyncio.Event) -> SessionResult | None:
    if tracker.failed.is_set():
        return SessionResult(ExitCode.FLOW_FAILED, tracker.failure)
    if tunnel_died.is_set():
        raise TunnelError(
            "the tunnel died before the session finished: Plivo cannot reach this listener; "
            "run send again, or use --public-url with another tunnel"
        )
    return None


async def follow_session(
    settings: Settings,
    spec: SessionRun,
    view: View,
    tracker: Tracker,
    codes: CodeSource | None,
) -> SessionResult:
    """store → listener → tunnel → create → follow; all closed after. Credentials first."""
    from verifycli.verify_api import API_TIMEOUT, VerifyApi

    # A hung API call gives up within --timeout too, not only the wait for callbacks.
    timeout = min(API_TIMEOUT, spec.timeout)
    api = VerifyApi(settings.auth_id, settings.auth_token, settings.api_url, timeout)
    try:
        sinks: list[Sink] = [view, tracker]
        async with running_listener(settings, spec.listen, sinks, view.inspector) as running:
            view.ready(running, tracker.state)
            view.waiting("creating the Verify session")
            uuid = await api.create(
                spec.recipient,
                app_uuid=spec.app_uuid or settings.app_uuid,
                channel=spec.channel,
                url=running.base_url + spec.path,
                method=spec.method,
                locale=spec.locale,
                brand_name=spec.brand_name,
                code_length=spec.code_length,
            )
            tracker.state.session_uuid = uuid
            tracker.state.state = "session created"
            tracker.bind(uuid)
            view.bound(uuid)
            view.waiting("waiting for the first callback")
            try:
                result = await asyncio.wait_for(
                    follow(api, spec, tracker, codes, running.tunnel_died), spec.timeout
                )
            except asyncio.TimeoutError:
                return SessionResult(
                    ExitCode.FLOW_FAILED,
                    f"timed out after {spec.timeout:g} s (last state: {tracker.state.state})",
                )
            if spec.linger and tracker.owed:
                await _first(asyncio.sleep(spec.linger), tracker.settled)
            return result
    finally:
        api.close()


@contextlib.asynccontextmanager
async def simulated(
    scenario: Scenario, store_path: Path, on_message: Callable[[str, str], None]
) -> AsyncIterator[tuple[Settings, Callable[[str], str]]]:
    """The built-in Plivo, started: settings that point at it, and the code a session got."""
    from verifycli.simulator import DEMO_AUTH_ID, DEMO_AUTH_TOKEN, Simulator

    factor = RETRIES_TIME_FACTOR if scenario == "retries" else DEMO_TIME_FACTOR
    simulator = Simulator(
        DEMO_AUTH_ID,
        DEMO_AUTH_TOKEN,
        DEMO_MAIN_TOKEN,
        scenario=scenario,
        time_factor=factor,
        on_message=on_message,
        expiry_seconds=DEMO_EXPIRY_SECONDS,
    )
    api_url = await simulator.start()
    try:
        yield (
            Settings(
                auth_id=DEMO_AUTH_ID,
                auth_token=Secret(DEMO_AUTH_TOKEN),
                main_auth_token=Secret(DEMO_MAIN_TOKEN),
                api_url=api_url,
                store_path=store_path,
            ),
            simulator.code_for,
        )
    finally:
        await simulator.close()


def _codes(spec: SessionRun, view: View) -> CodeSource | None:
    if not spec.prompt:
        return None
    if spec.otp is not None:
        return FixedCode(spec.otp)
    return PromptCode.through(view)


async def run_session(
    spec: SessionRun,
    settings: Settings,
    view: View,
    records: Sink | None = None,
    state: SessionState | None = None,
) -> SessionResult:
    """The whole of send or demo; `records` gets the session's callbacks (--json)."""
    tracker = Tracker(state or SessionState(spec.recipient, spec.channel), records)
    view.waiting(spec.opening)
    if spec.simulate is None:
        return await follow_session(settings, spec, view, tracker, _codes(spec, view))
    async with simulated(spec.simulate, settings.store_path, view.message) as (simulation, code):
        codes = _codes(spec, view)
        if spec.auto:
            codes = AutoCode(
                lambda: code(tracker.session_uuid or ""), never=spec.simulate == "expired"
            )
        return await follow_session(simulation, spec, view, tracker, codes)


def run(spec: SessionRun, settings: Settings, view: View, records: Sink | None = None) -> ExitCode:
    """send/demo from start to summary: Ctrl-C or SIGTERM ends it with exit 130, tidily."""
    if spec.simulate is None:  # what is missing from the set-up is said first
        check_auth_id(settings.auth_id)
        require_token(settings.auth_token)
    if spec.asks_a_person and not sys.stdin.isatty():
        # Nobody can answer the prompt: say so before anything starts.
        way_out = "pass --auto" if spec.simulate is not None else "pass --otp CODE or --no-prompt"
        raise ConfigError(f"stdin is not a terminal: {way_out}")
    state = SessionState(spec.recipient, spec.channel)
    try:
        try:
            result = run_until_signal(run_session(spec, settings, view, records, state))
        finally:
            view.pause()
        view.finish(state, result)
    finally:
        if spec.simulate is not None:
            view.note(demo_kept(settings.store_path))
    return result.code


def demo_kept(store_path: Path) -> str:
    """The demo's closing line: where its callbacks are, and the command that lists them."""
    see = (
        "verifycli events --demo"
        if store_path == demo_store_path()
        else f"verifycli events --store {store_path}"
    )
    return f"the demo's callbacks are kept in {store_path}: `{see}` lists them"


__all__ = ["SessionRun", "SessionState", "SessionResult", "View", "run", "run_session"]
