"""An offline Plivo: a local Verify API that sends signed status callbacks on Plivo's schedule.

It answers the calls the plivo SDK makes (create, validate, get and list sessions), then plays
a delivery scenario against each attempt's callback `url`: Plivo's fields, V2 + Ma-V2
signatures (V3 only when asked), retries at 60, 120 and 240 s after any answer but 200. A
create for a recipient whose session is still open joins it as a new attempt. `time_factor`
scales every wait so tests run a whole flow in milliseconds. docs/fidelity.md says where each
behaviour comes from.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import re
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

import phonenumbers
from aiohttp import ClientError, ClientSession, ClientTimeout, web
from aiohttp.typedefs import Handler
from yarl import URL

from verifycli import __version__
from verifycli.error_codes import SIMULATED
from verifycli.errors import ConfigError
from verifycli.plivo import (
    CHANNEL_FAILED,
    CHANNELS,
    SCENARIOS,
    callback_fields,
    callback_url,
    http_base,
    request_time,
)
from verifycli.plivo import Scenario as Scenario
from verifycli.signature import DEFAULT_FAMILIES, SCHEME_CHOICES, signed_headers

_log = logging.getLogger(__name__)


DEMO_AUTH_ID = "MADEMOSIMULATOR00000"
DEMO_AUTH_TOKEN = "demo-simulator-token-not-a-secret"
DEMO_APP_UUID = "00000000-0000-4000-8000-00000000d3e0"
DEMO_RECIPIENT = "+14155550100"
DEFAULT_PORT = 8099

STEP_SECONDS = 1.0  # between two channel statuses, before time_factor: our guess
RETRY_DELAYS = (60.0, 120.0, 240.0)  # each after the previous attempt, as Plivo documents
MAX_VALIDATIONS = 10  # Plivo allows at most 10 validations of one session
VALIDATED = "session validated successfully."  # Plivo's documented success message
LIST_LIMIT = 20  # the most sessions one list answer holds (the plivo SDK checks 0 < limit <= 20)
LIST_RATE = (20, 60.0)  # list calls allowed per this many real seconds, like Plivo

# (ChannelStatus, ChannelErrorCode) steps; error_codes.py says which codes are Plivo's.
_Step = tuple[str, str]
_FLOWS: dict[tuple[str, str], tuple[_Step, ...]] = {
    ("sms", "delivered"): (("queued", ""), ("sent", ""), ("delivered", "")),
    ("sms", "undelivered"): (
        ("queued", ""),
        ("sent", ""),
        ("undelivered", SIMULATED[("sms", "undelivered")]),
    ),
    ("sms", "failed"): (("queued", ""), ("failed", SIMULATED[("sms", "failed")])),
    ("voice", "delivered"): (("ringing", ""), ("in-progress", ""), ("completed", "")),
    ("voice", "no-answer"): (("ringing", ""), ("no-answer", SIMULATED[("voice", "no-answer")])),
    ("voice", "failed"): (("failed", SIMULATED[("voice", "failed")]),),
}
# Where a scenario's name is not a flow of that channel: no-answer and undelivered swap to the
# channel's own failure; expired and retries deliver, and differ later (expiry, the answers).
_OUTCOME: dict[tuple[str, Scenario], str] = {
    ("sms", "no-answer"): "undelivered",
    ("voice", "undelivered"): "no-answer",
    ("sms", "expired"): "delivered",
    ("voice", "expired"): "delivered",
    ("sms", "retries"): "delivered",
    ("voice", "retries"): "delivered",
}
_HEARD = {"delivered", "in-progress"}  # the phone has the code once this status is reached
_CHARGE = {"sms": "0.00550", "voice": "0.01100"}  # our guess: Plivo's prices vary by country
_VALIDATION_CHARGE = "0.00300"  # our guess, charged once a session is verified

_E164 = re.compile(r"^\+?[1-9]\d{6,14}$")
_LOCALE = re.compile(r"^[a-z]{2}(?:[_-][A-Za-z]{2})?$")
_DEFAULT_ERRORS = {
    400: "a parameter is missing or is invalid",
    401: "authentication credentials invalid: check your auth_id and auth_token",
    404: "not found",
    429: "too many requests",
    500: "internal server error",
}

Event = dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver one callback, as the simulator saw it."""

    session_uuid: str
    method: str
    url: str  # exactly what was requested: for GET, with the fields in the query
    fields: dict[str, str]
    headers: dict[str, str]
    attempt: int  # 0 for the first delivery, 1-3 for Plivo's retries
    status: int | None  # the receiver's answer; None when the request failed
    error: str | None
    sent_at: float  # event-loop time, to check retry spacing

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class _Fault:
    status: int | None
    error: str | None
    hang: float


@dataclass
class _Attempt:
    """One delivery of the code: a create, or a later create that joined the session."""

    uuid: str
    sequence: int
    channel: str
    url: str | None
    method: str
    made_at: datetime  # RequestTime of every callback of this attempt
    status: str = ""
    error_code: str = ""
    updated_at: datetime | None = None


@dataclass
class _Session:
    uuid: str
    app_uuid: str
    recipient: str
    channel: str
    locale: str
    brand_name: str | None
    code: str
    requestor_ip: str
    created_at: datetime
    started: float  # event-loop time of creation, for the scaled expiry
    attempts: list[_Attempt] = field(default_factory=list)
    status: str = "in-progress"
    validations: int = 0
    updated_at: datetime | None = None
    failure: BaseException | None = None
    verified: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def latest(self) -> _Attempt:
        return self.attempts[-1]

    @property
    def settled(self) -> bool:
        """No callback will be started unless something else happens (a create, a validate)."""
        if self.failure is not None or self.status != "in-progress":
            return True
        return self.latest.status in CHANNEL_FAILED


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _refusal(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    body = json.dumps({"api_id": str(uuid.uuid4()), "error": message})
    return cls(text=body, content_type="application/json")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return f"http {status}"


def _basic_auth(header: str) -> tuple[str, str]:
    """(login, password) from a Basic Authorization header; blanks when it is not one."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    login, _, password = decoded.partition(":")
    return login, password


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise _refusal(web.HTTPBadRequest, f"{name} must be an integer from {low} to {high}")
    return int(raw)


class Simulator:
    """A local Plivo Verify API plus the callback sender behind it."""

    def __init__(
        self,
        auth_id: str,
        auth_token: str,
        main_auth_token: str | None = None,
        scenario: Scenario = "delivered",
        time_factor: float = 1.0,
        on_message: Callable[[str, str], None] | None = None,
        *,
        expiry_seconds: float = 600.0,
        callback_timeout: float = 10.0,
        resolve: Callable[[str], str] | None = None,
        schemes: tuple[str, ...] = DEFAULT_FAMILIES,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}")
        if time_factor < 0:
            raise ValueError("time_factor must be zero or more")
        self.auth_id = auth_id
        self.scenario = scenario
        self.time_factor = time_factor
        self.on_message = on_message
        self.on_event = on_event
        self.expiry_seconds = expiry_seconds
        self.callback_timeout = callback_timeout
        self.schemes = schemes
        # Where a callback URL really goes: a public tunnel host cannot resolve offline, so
        # tests route it to the tunnel's loopback side; signatures still cover `url`.
        self.resolve = resolve
        self.deliveries: list[Delivery] = []
        self._token = auth_token
        self._main_token = main_auth_token
        self._sessions: dict[str, _Session] = {}
        self._faults: deque[_Fault] = deque()
        self._list_calls: deque[float] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: ClientSession | None = None
        self._base_url: str | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the API on host:port (0 = a free port) and return its base URL."""
        app = web.Application(middlewares=[self._middleware])
        prefix = "/v1/Account/{auth_id}/Verify/Session"
        app.router.add_post(prefix + "/", self._create)
        app.router.add_get(prefix + "/", self._list)
        app.router.add_post(prefix + "/{session_uuid}/", self._validate)
        app.router.add_get(prefix + "/{session_uuid}/", self._get)
        app.router.add_get("/_simulator/sessions/{session_uuid}", self._peek)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._http = ClientSession(headers={"User-Agent": f"verifycli-simulator/{__version__}"})
        self._base_url = http_base(bound_host, bound_port)
        return self._base_url

    @property
    def api_url(self) -> str:
        """The base URL the plivo SDK should use instead of https://api.plivo.com."""
        if self._base_url is None:
            raise RuntimeError("the simulator is not started")
        return self._base_url

    async def close(self) -> None:
        """Stop serving and cancel every pending delivery and retry."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def fail_next(
        self,
        status: int | None = 500,
        *,
        error: str | None = None,
        hang: float = 0.0,
        times: int = 1,
    ) -> None:
        """Make the next `times` API requests wait `hang` real seconds, then answer `status`.

        With `status=None` the request is only delayed, then served normally.
        """
        for _ in range(times):
            self._faults.append(_Fault(status, error, hang))

    def code_for(self, session_uuid: str) -> str:
        """The OTP the simulated phone received for this session."""
        return self._sessions[session_uuid].code

    async def wait_done(self, session_uuid: str, timeout: float = 10.0) -> None:
        """Wait until the session has settled and none of its callbacks is still pending."""
        session = self._sessions[session_uuid]
        try:
            await asyncio.wait_for(session.done.wait(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"session {session_uuid} still busy after {timeout:g} s"
                f" (status {session.status}, channel status {session.latest.status or 'none'})"
            ) from None
        if session.failure is not None:
            raise RuntimeError(f"the simulated flow of {session_uuid} crashed") from session.failure

    def _emit(self, kind: str, session: _Session, **details: Any) -> None:
        if self.on_event is not None:
            self.on_event({"event": kind, "session_uuid": session.uuid, **details})

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Handler,
    ) -> web.StreamResponse:
        if request.path.startswith("/_simulator/"):
            return await handler(request)  # the test helper: no Plivo API, no faults
        if self._faults:
            fault = self._faults.popleft()
            if fault.hang > 0:
                try:
                    await asyncio.wait_for(self._closing.wait(), fault.hang)
                except asyncio.TimeoutError:
                    pass
            if fault.status is not None:
                error = fault.error or _DEFAULT_ERRORS.get(fault.status) or _phrase(fault.status)
                body = {"api_id": str(uuid.uuid4()), "error": error}
                return web.json_response(body, status=fault.status)
        self._check_auth(request)
        return await handler(request)

    def _check_auth(self, request: web.Request) -> None:
        login, password = _basic_auth(request.headers.get("Authorization", ""))
        path_id = request.match_info.get("auth_id", self.auth_id)
        ok = hmac.compare_digest(login.encode(), self.auth_id.encode())
        ok &= hmac.compare_digest(password.encode(), self._token.encode())
        ok &= hmac.compare_digest(path_id.encode(), self.auth_id.encode())
        if not ok:
            raise _refusal(web.HTTPUnauthorized, _DEFAULT_ERRORS[401])

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _refusal(web.HTTPBadRequest, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _refusal(web.HTTPBadRequest, "the request body must be a JSON object")
        return body

    async def _create(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        fresh, attempt = self._new_session(body, request.remote or "")
        # Plivo: "All delivery attempts during this window are part of the same session and
        # deliver the same OTP": a send to an open session's app and recipient joins it.
        session = self._open_session(fresh.app_uuid, fresh.recipient)
        if session is None:
            session = fresh
            self._sessions[session.uuid] = session
            self._emit(
                "created",
                session,
                recipient=session.recipient,
                app_uuid=session.app_uuid,
                channel=session.channel,
            )
        attempt.sequence = len(session.attempts) + 1
        session.attempts.append(attempt)
        session.updated_at = attempt.made_at
        self._emit(
            "attempt",
            session,
            attempt_uuid=attempt.uuid,
            attempt_sequence=attempt.sequence,
            channel=attempt.channel,
            url=attempt.url,
        )
        self._spawn(session, self._play(session, attempt))
        answer = {
            "api_id": str(uuid.uuid4()),
            "message": "Session initiated",
            "session_uuid": session.uuid,
        }
        return web.json_response(answer, status=202)

    def _open_session(self, app_uuid: str, recipient: str) -> _Session | None:
        for session in reversed(self._sessions.values()):
            if (session.app_uuid, session.recipient) == (app_uuid, recipient):
                return session if session.status == "in-progress" else None
        return None

    def _new_session(self, body: dict[str, Any], remote: str) -> tuple[_Session, _Attempt]:
        def text(name: str) -> str | None:
            value = body.get(name)
            if value is None or value == "":
                return None
            if not isinstance(value, str):
                raise _refusal(web.HTTPBadRequest, f"{name} must be a string")
            return value

        recipient = text("recipient")
        if recipient is None:
            raise _refusal(web.HTTPBadRequest, "recipient is required")
        if not _E164.match(recipient) or _country(recipient) is None:
            raise _refusal(
                web.HTTPBadRequest,
                f"invalid recipient {recipient!r}: use E.164 format, like +14155550100",
            )
        channel = (text("channel") or "sms").lower()
        if channel not in CHANNELS:
            raise _refusal(web.HTTPBadRequest, "channel must be one of: sms, voice")
        method = (text("method") or "POST").upper()
        if method not in ("GET", "POST"):
            raise _refusal(web.HTTPBadRequest, "method must be one of: GET, POST")
        url = text("url")
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise _refusal(web.HTTPBadRequest, "url must be a fully qualified http(s) URL")
        app_uuid = text("app_uuid") or DEMO_APP_UUID
        try:
            uuid.UUID(app_uuid)
        except ValueError:
            raise _refusal(web.HTTPBadRequest, f"invalid app_uuid {app_uuid!r}") from None
        locale = text("locale") or "en"
        if not _LOCALE.match(locale):
            raise _refusal(web.HTTPBadRequest, f"invalid locale {locale!r}: use e.g. en, en_US")
        code_length = body.get("code_length", 6)
        if isinstance(code_length, str) and code_length.isdigit():
            code_length = int(code_length)
        if type(code_length) is not int or not 4 <= code_length <= 8:
            raise _refusal(web.HTTPBadRequest, "code_length must be an integer from 4 to 8")
        now = _now()
        attempt = _Attempt(str(uuid.uuid4()), 0, channel, url, method, now)
        session = _Session(
            uuid=str(uuid.uuid4()),
            app_uuid=app_uuid,
            recipient=recipient.lstrip("+"),
            channel=channel,
            locale=locale,
            brand_name=text("brand_name"),
            code="".join(secrets.choice("0123456789") for _ in range(code_length)),
            requestor_ip=remote,
            created_at=now,
            started=asyncio.get_running_loop().time(),
        )
        return session, attempt

    def _session(self, request: web.Request) -> _Session:
        session = self._sessions.get(request.match_info["session_uuid"])
        if session is None:
            raise _refusal(web.HTTPNotFound, "session not found")
        return session

    async def _validate(self, request: web.Request) -> web.Response:
        session = self._session(request)
        otp = (await self._body(request)).get("otp")
        if otp is None or otp == "":
            raise _refusal(web.HTTPBadRequest, "otp is required")
        if session.status == "expired":
            raise _refusal(web.HTTPBadRequest, "session expired")
        if session.status == "verified":
            raise _refusal(web.HTTPBadRequest, "session already verified")
        if session.validations >= MAX_VALIDATIONS:
            raise _refusal(web.HTTPBadRequest, "maximum validation attempts reached")
        session.validations += 1
        if not hmac.compare_digest(str(otp).encode(), session.code.encode()):
            self._emit("validated", session, verified=False, validations=session.validations)
            raise _refusal(web.HTTPBadRequest, "Incorrect OTP.")
        session.status = "verified"
        session.updated_at = _now()
        session.verified.set()
        self._emit("validated", session, verified=True, validations=session.validations)
        # The guide lists `verified` as a SessionStatus; the simulator sends it as a callback
        # of the latest attempt (our guess at which attempt it belongs to).
        latest = session.latest
        self._spawn(session, self._deliver_with_retries(session, latest, self._fields(session)))
        self._settle(session)
        answer = {
            "api_id": str(uuid.uuid4()),
            "message": VALIDATED,
            "session_uuid": session.uuid,
        }
        return web.json_response(answer)

    async def _get(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"api_id": str(uuid.uuid4()), **self._details(self._session(request))}
        )

    async def _list(self, request: web.Request) -> web.Response:
        calls, window = LIST_RATE
        now = asyncio.get_running_loop().time()
        while self._list_calls and now - self._list_calls[0] >= window:
            self._list_calls.popleft()
        if len(self._list_calls) >= calls:
            raise _refusal(web.HTTPTooManyRequests, _DEFAULT_ERRORS[429])
        self._list_calls.append(now)
        limit = _int_param(request, "limit", LIST_LIMIT, 1, LIST_LIMIT)
        offset = _int_param(request, "offset", 0, 0, 10**9)
        wanted = {
            key: request.query[key]
            for key in ("status", "app_uuid", "recipient")
            if request.query.get(key)
        }
        if "recipient" in wanted:
            wanted["recipient"] = wanted["recipient"].lstrip("+")
        found = [
            s
            for s in reversed(self._sessions.values())
            if all(getattr(s, key) == value for key, value in wanted.items())
        ]
        page = found[offset : offset + limit]
        base = f"/v1/Account/{self.auth_id}/Verify/Session/"

        def link(at: int) -> str:
            return base + "?" + urlencode({**wanted, "limit": limit, "offset": at})

        meta = {
            "limit": limit,
            "offset": offset,
            "next": link(offset + limit) if offset + limit < len(found) else None,
            "previous": link(max(offset - limit, 0)) if offset > 0 else None,
        }
        listed = ("session_uuid", "app_uuid", "recipient", "channel", "status", "count")
        sessions = []
        for s in page:
            details = self._details(s)
            sessions.append(
                {
                    **{k: details[k] for k in listed},
                    "attempt_details": details["attempt_details"],
                    "charges": details["charges"],
                    "created_at": details["created_at"],
                    "updated_at": details["updated_at"],
                }
            )
        return web.json_response({"api_id": str(uuid.uuid4()), "meta": meta, "sessions": sessions})

    async def _peek(self, request: web.Request) -> web.Response:
        """For the user's tests: the session as the API shows it, its attempts and its code."""
        session = self._sessions.get(request.match_info["session_uuid"])
        if session is None:
            raise _refusal(web.HTTPNotFound, "session not found")
        attempts = [
            {
                "attempt_uuid": a.uuid,
                "attempt_sequence": a.sequence,
                "channel": a.channel,
                "status": a.status,
                "channel_error_code": a.error_code,
                "request_time": request_time(a.made_at),
                "url": a.url,
                "method": a.method,
            }
            for a in session.attempts
        ]
        return web.json_response(
            {
                "session": self._details(session),
                "attempts": attempts,
                "validations": session.validations,
                "otp": session.code,
            }
        )

    def _details(self, s: _Session) -> dict[str, Any]:
        # The shape of the SDK fixtures' verifySessionGetResponse: attempt_details and
        # attempt_charges are null when nothing was attempted yet.
        tried = [a for a in s.attempts if a.status]
        attempts = [
            {
                "channel": a.channel,
                "attempt_uuid": a.uuid,
                "status": a.status,
                "time": request_time(a.updated_at or a.made_at),
            }
            for a in tried
        ]
        charges = [
            {"attempt_uuid": a.uuid, "channel": a.channel, "charge": _CHARGE[a.channel]}
            for a in tried
        ]
        validation = _VALIDATION_CHARGE if s.status == "verified" else "0.0000"
        changes = [m for m in (s.updated_at, *(a.updated_at for a in s.attempts)) if m]
        total = sum(float(c["charge"]) for c in charges) + float(validation)
        return {
            "session_uuid": s.uuid,
            "app_uuid": s.app_uuid,
            "alias": s.brand_name or "verifycli simulator",
            "recipient": s.recipient,
            "channel": s.channel,
            "status": s.status,
            "count": len(attempts),
            "requestor_ip": s.requestor_ip,
            "destination_country_iso2": _country(s.recipient) or "",
            "destination_network": None,
            "locale": s.locale,
            "attempt_details": attempts or None,
            "charges": {
                "total_charge": f"{total:.5f}" if total else "0",
                "validation_charge": validation,
                "attempt_charges": charges or None,
            },
            "created_at": request_time(s.created_at),
            "updated_at": request_time(max([s.created_at, *changes])),
        }

    def _spawn(self, session: _Session, work: Coroutine[Any, Any, None]) -> None:
        if self._closing.is_set():
            work.close()
            return
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        session.tasks.add(task)
        session.done.clear()

        def finished(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            session.tasks.discard(done)
            failure = None if done.cancelled() else done.exception()
            if failure is not None:
                # Most likely on_message raised; say so now rather than leave the session hanging.
                _log.error("the simulated flow of %s crashed", session.uuid, exc_info=failure)
                session.failure = failure
            self._settle(session)

        task.add_done_callback(finished)

    def _settle(self, session: _Session) -> None:
        if session.settled and not session.tasks:
            session.done.set()

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self.time_factor)

    async def _play(self, s: _Session, attempt: _Attempt) -> None:
        outcome = _OUTCOME.get((attempt.channel, self.scenario), self.scenario)
        for status, error_code in _FLOWS[(attempt.channel, outcome)]:
            # Plivo answers the create first and calls back later, for the first status too.
            await self._sleep(STEP_SECONDS)
            if s.status != "in-progress" and attempt is not s.latest:
                return  # a later attempt took over and the session ended: nothing more to say
            attempt.status, attempt.error_code, attempt.updated_at = status, error_code, _now()
            if status in _HEARD and self.on_message is not None:
                self.on_message("+" + s.recipient, self._message_text(s, attempt))
            fields = self._fields(s, attempt)
            if await self._deliver(s, attempt, fields, 0):
                continue
            self._spawn(s, self._retry(s, attempt, fields))
        if self.scenario == "expired" and attempt.sequence == 1:
            deadline = s.started + self.expiry_seconds * self.time_factor
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(s.verified.wait(), max(remaining, 0))
            except asyncio.TimeoutError:
                s.status, s.updated_at = "expired", _now()
                self._emit("expired", s)
                await self._deliver_with_retries(s, s.latest, self._fields(s))
        self._settle(s)

    def _message_text(self, s: _Session, attempt: _Attempt) -> str:
        brand = f"{s.brand_name} " if s.brand_name else ""
        if attempt.channel == "voice":
            return f"(voice call) Your {brand}verification code is {' '.join(s.code)}"
        return f"Your {brand}verification code is {s.code}"

    def _fields(self, s: _Session, attempt: _Attempt | None = None) -> dict[str, str]:
        a = attempt or s.latest
        return callback_fields(
            session_uuid=s.uuid,
            session_status=s.status,
            recipient=s.recipient,
            channel=a.channel,
            channel_status=a.status,
            error_code=a.error_code,
            attempt_uuid=a.uuid,
            attempt_sequence=a.sequence,
            moment=a.made_at,  # "Time when this attempt was made"
        )

    async def _deliver_with_retries(
        self, s: _Session, attempt: _Attempt, fields: dict[str, str]
    ) -> None:
        if not await self._deliver(s, attempt, fields, 0):
            await self._retry(s, attempt, fields)

    async def _retry(self, s: _Session, attempt: _Attempt, fields: dict[str, str]) -> None:
        for number, delay in enumerate(RETRY_DELAYS, start=1):
            await self._sleep(delay)
            if await self._deliver(s, attempt, fields, number):
                return

    async def _deliver(
        self, s: _Session, attempt: _Attempt, fields: dict[str, str], number: int
    ) -> bool:
        """Send one callback delivery; True when the receiver answered exactly 200."""
        if attempt.url is None:
            return True
        assert self._http is not None
        url = callback_url(attempt.method, attempt.url, fields)
        params = fields if attempt.method == "POST" else {}
        headers = signed_headers(
            attempt.method, url, params, self._token, self._main_token, self.schemes
        )
        status: int | None = None
        error: str | None = None
        sent_at = asyncio.get_running_loop().time()
        try:
            async with self._http.request(
                attempt.method,
                URL(self.resolve(url) if self.resolve else url, encoded=True),
                data=fields if attempt.method == "POST" else None,
                headers=headers,
                allow_redirects=False,
                timeout=ClientTimeout(total=self.callback_timeout),
            ) as answer:
                await answer.read()
                status = answer.status
        except (ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            error = str(exc) or type(exc).__name__
        self.deliveries.append(
            Delivery(
                s.uuid, attempt.method, url, dict(fields), headers, number, status, error, sent_at
            )
        )
        self._emit(
            "callback",
            s,
            attempt_uuid=attempt.uuid,
            attempt_sequence=attempt.sequence,
            channel_status=fields["ChannelStatus"],
            session_status=fields["SessionStatus"],
            method=attempt.method,
            url=attempt.url,
            delivery=number,
            answer=status,
            error=error,
            will_retry=status != 200 and number < len(RETRY_DELAYS),
        )
        return status == 200


def describe(event: Event) -> str:
    """One line a person reads for one simulator event (`verifycli simulator` without --json)."""
    kind = event["event"]
    short = str(event.get("session_uuid", ""))[:8]
    if kind == "listening":
        return f"simulator listening on {event['api_url']} (auth id {event['auth_id']})"
    if kind == "created":
        return f"session {short} created for +{event['recipient']} ({event['channel']})"
    if kind == "attempt":
        return (
            f"session {short} attempt {event['attempt_sequence']} ({event['channel']}) "
            f"→ {event['url'] or 'no callback url'}"
        )
    if kind == "callback":
        answer = event["answer"] if event["answer"] is not None else f"✗ {event['error']}"
        retry = " (Plivo will retry)" if event["will_retry"] else ""
        nth = f" retry {event['delivery']}" if event["delivery"] else ""
        return (
            f"session {short} callback{nth} {event['channel_status']}/{event['session_status']} "
            f"{event['method']} {event['url']} → {answer}{retry}"
        )
    if kind == "validated":
        result = "verified" if event["verified"] else "wrong code"
        return f"session {short} validate #{event['validations']}: {result}"
    if kind == "expired":
        return f"session {short} expired"
    return f"session {short} {kind}"


@dataclass(frozen=True)
class ServeSpec:
    """The flags of `verifycli simulator`, checked."""

    auth_id: str
    auth_token: str
    main_auth_token: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    scenario: str = "delivered"
    time_factor: float = 1.0
    scheme: str = "v2"

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ConfigError(
                f"--scenario must be one of {', '.join(SCENARIOS)}, not {self.scenario!r}"
            )
        if not self.time_factor >= 0:
            raise ConfigError(f"--time-factor must be 0 or more, not {self.time_factor}")
        if self.scheme not in SCHEME_CHOICES:
            raise ConfigError(f"--scheme must be v2, v3 or all, not {self.scheme!r}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0-65535, not {self.port}")


async def serve(
    auth_id: str,
    auth_token: str,
    main_auth_token: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    scenario: Scenario = "delivered",
    time_factor: float = 1.0,
    schemes: tuple[str, ...] = DEFAULT_FAMILIES,
    on_event: Callable[[Event], None],
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the Verify API until `stop` is set or the task is cancelled; `on_event` hears
    "listening" first, then every session event."""
    simulator = Simulator(
        auth_id,
        auth_token,
        main_auth_token,
        scenario=scenario,
        time_factor=time_factor,
        schemes=schemes,
        on_event=on_event,
    )
    try:
        api_url = await simulator.start(host, port)
        on_event({"event": "listening", "api_url": api_url, "auth_id": auth_id})
        await (stop or asyncio.Event()).wait()
    finally:
        await simulator.close()


async def serve_spec(
    spec: ServeSpec, on_event: Callable[[Event], None], stop: asyncio.Event | None = None
) -> None:
    """`verifycli simulator`: serve() with the checked flags."""
    await serve(
        spec.auth_id,
        spec.auth_token,
        spec.main_auth_token,
        host=spec.host,
        port=spec.port,
        scenario=spec.scenario,  # type: ignore[arg-type]  # checked by ServeSpec
        time_factor=spec.time_factor,
        schemes=SCHEME_CHOICES[spec.scheme],
        on_event=on_event,
        stop=stop,
    )


def _country(number: str) -> str | None:
    """ISO 3166 alpha-2 code of the number's country, or None when no country has that prefix."""
    try:
        parsed = phonenumbers.parse("+" + number.lstrip("+"))
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    region = phonenumbers.region_code_for_number(parsed)
    if (not region or region == "ZZ") and parsed.country_code:
        region = phonenumbers.region_code_for_country_code(parsed.country_code)
    return None if not region or region == "ZZ" else region
