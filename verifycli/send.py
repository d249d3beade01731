"""The send flow: create a Verify session whose callbacks come to us, follow it to its end."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol

from verifycli.callbacks import CallbackEvent
from verifycli.config import Settings
from verifycli.errors import ConfigError, ExitCode, TunnelError
from verifycli.flows import Running, Where, running_listener
from verifycli.listener import ListenOptions, Sink, check_callback_path

if TYPE_CHECKING:
    from verifycli.verify_api import Validation

CHANNELS = ("sms", "voice")
METHODS = ("POST", "GET")
# Channel statuses after which the recipient has the code (voice: the call was answered).
HEARD = frozenset({"delivered", "in-progress", "completed"})
# Channel statuses that end an attempt successfully, for --no-prompt.
DELIVERED = frozenset({"delivered", "completed"})
# Final failures: sms failed/undelivered, voice no-answer (the guide) and busy, failed,
# cancel, timeout (Plivo's call statuses).
CHANNEL_FAILED = frozenset({"failed", "undelivered", "no-answer", "busy", "cancel", "timeout"})
# Statuses on the way; a status in none of these sets is one Plivo has not documented.
IN_FLIGHT = frozenset({"queued", "sent", "ringing", "in-progress"})
# After a right code, how long to wait for the `verified` callback: validate's answer has
# already decided, the callback only completes the timeline.
VERIFIED_WAIT = 2.0
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


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


@dataclass
class SendRequest:
    """What to send and how to follow it: the options of `send`."""

    recipient: str
    channel: str = "sms"
    app_uuid: str | None = None
    locale: str | None = None
    brand_name: str | None = None
    code_length: int | None = None
    method: str = "POST"
    path: str = "/verify/callback"
    timeout: float = 600.0
    verified_wait: float = VERIFIED_WAIT
    # After the outcome, keep listening up to this long for retries Plivo still owes.
    linger: float = 0.0

    def __post_init__(self) -> None:
        self.recipient = check_recipient(self.recipient)
        self.method = self.method.upper()
        if self.channel not in CHANNELS:
            raise ConfigError(f"--channel must be sms or voice, not {self.channel!r}")
        if self.method not in METHODS:
            raise ConfigError(f"--method must be POST or GET, not {self.method!r}")
        if self.code_length is not None and not 4 <= self.code_length <= 8:
            raise ConfigError(f"--code-length must be 4 to 8, not {self.code_length}")
        if not self.path.startswith("/"):
            self.path = "/" + self.path
        self.path = check_callback_path(self.path)
        if self.timeout <= 0:
            raise ConfigError("--timeout must be more than 0 seconds")


@dataclass
class Status:
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
class Outcome:
    code: ExitCode
    message: str


class Tracker:
    """A sink that follows one session's callbacks and signals its milestones."""

    def __init__(self, status: Status, emit: Sink | None = None) -> None:
        self.status = status
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
        self.status.timeline.append((when, label))
        self.status.state = label
        if channel_status in HEARD:
            self.heard.set()
        if channel_status in DELIVERED:
            self.delivered.set()
        code = event.plivo("channel_error_code")
        unknown = channel_status not in HEARD | DELIVERED | CHANNEL_FAILED | IN_FLIGHT
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
        """The live view shows warnings; the tracker only follows the session."""


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


class PromptCode(CodeSource):
    """Ask the person, hidden, up to three times; the live view pauses while they type."""

    tries = 3
    # A phone can show the SMS before Plivo reports it delivered: ask after a short while.
    delivery_wait = 15.0

    def __init__(
        self,
        ask: Callable[[int], str | None],
        pause: Callable[[], None],
        resume: Callable[[], None],
    ) -> None:
        self.ask = ask
        self.pause = pause
        self.resume = resume

    async def code(self, attempt: int) -> str | None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str | None] = loop.create_future()

        def read() -> None:
            try:
                value = self.ask(attempt)
            except (EOFError, KeyboardInterrupt):
                value = None
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, answer, value)

        self.pause()
        # A daemon thread, not to_thread: a prompt abandoned (the code failed to deliver)
        # must not keep the process alive at exit.
        threading.Thread(target=read, name="verifycli-prompt", daemon=True).start()
        try:
            return await answer
        finally:
            self.resume()


def _settle(future: asyncio.Future[str | None], value: str | None) -> None:
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
    request: SendRequest,
    tracker: Tracker,
    codes: CodeSource | None,
    tunnel_died: asyncio.Event,
) -> Outcome:
    """From a created session to its outcome: delivery, the code, validation, `verified`."""
    uuid = tracker.session_uuid or ""
    stoppers = (tracker.failed, tunnel_died)
    if codes is None:
        await _first(tracker.delivered.wait(), *stoppers)
        return _stopped(tracker, tunnel_died) or Outcome(
            ExitCode.OK, f"delivered to {request.recipient}; no code asked (--no-prompt)"
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
            return _stopped(tracker, tunnel_died) or Outcome(ExitCode.FLOW_FAILED, "stopped")
        code = (entered[0] or "").strip()
        if not code:
            return Outcome(
                ExitCode.FLOW_FAILED,
                "no code was entered: type it at the prompt, or pass --otp CODE (demo: --auto)",
            )
        answer = await api.check_code(uuid, code)
        if answer.verified:
            tracker.status.state = "code accepted"
            await _first(asyncio.sleep(request.verified_wait), tracker.verified)
            note = (
                ""
                if tracker.verified.is_set()
                else f" (Plivo's answer says so; its verified callback did not come within "
                f"{request.verified_wait:g} s)"
            )
            return Outcome(ExitCode.OK, f"verified: the code was right{note}")
        said = answer.message
        tracker.status.state = f"wrong code ({attempt}/{codes.tries}): {said}"
        now = datetime.now(timezone.utc).isoformat()
        tracker.status.timeline.append((now, "wrong code"))
    tries = f" ({codes.tries} tries)" if codes.tries > 1 else ""
    return Outcome(
        ExitCode.FLOW_FAILED, f"wrong code{tries}: the session was not verified (Plivo: {said!r})"
    )


def _stopped(tracker: Tracker, tunnel_died: asyncio.Event) -> Outcome | None:
    if tracker.failed.is_set():
        return Outcome(ExitCode.FLOW_FAILED, tracker.failure)
    if tunnel_died.is_set():
        raise TunnelError(
            "the tunnel died before the session finished: Plivo cannot reach this listener; "
            "run send again, or use --public-url with another tunnel"
        )
    return None


async def run_send(
    settings: Settings,
    request: SendRequest,
    options: ListenOptions,
    where: Where,
    sinks: list[Sink],
    tracker: Tracker,
    codes: CodeSource | None,
    on_ready: Callable[[Running], None] | None = None,
    on_session: Callable[[str], None] | None = None,
) -> Outcome:
    """The whole of `send`: store → listener → tunnel → create → follow; all closed after."""
    from verifycli.verify_api import API_TIMEOUT, VerifyApi

    # A hung API call gives up within --timeout too, not only the wait for callbacks.
    timeout = min(API_TIMEOUT, request.timeout)
    api = VerifyApi(settings.auth_id, settings.auth_token, settings.api_url, timeout)
    try:
        async with running_listener(settings, options, where, [*sinks, tracker]) as running:
            if on_ready is not None:
                on_ready(running)
            uuid = await api.create(
                request.recipient,
                app_uuid=request.app_uuid,
                channel=request.channel,
                url=running.public_url + request.path,
                method=request.method,
                locale=request.locale,
                brand_name=request.brand_name,
                code_length=request.code_length,
            )
            tracker.status.session_uuid = uuid
            tracker.status.state = "session created"
            tracker.bind(uuid)
            if on_session is not None:
                on_session(uuid)
            try:
                outcome = await asyncio.wait_for(
                    follow(api, request, tracker, codes, running.tunnel_died), request.timeout
                )
            except asyncio.TimeoutError:
                return Outcome(
                    ExitCode.FLOW_FAILED,
                    f"timed out after {request.timeout:g} s (last state: {tracker.status.state})",
                )
            if request.linger and tracker.owed:
                await _first(asyncio.sleep(request.linger), tracker.settled)
            return outcome
    finally:
        api.close()
