"""Made-up, correctly signed Verify callbacks, sent to any URL to test the user's own handler."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from yarl import URL

from verifycli import __version__
from verifycli.config import Secret, Settings, check_target, check_timeout, require_token
from verifycli.errors import ConfigError, ExitCode
from verifycli.plivo import (
    CHANNEL_STATUSES,
    DELIVERED_STATUS,
    FAILURE_CODES,
    SESSION_STATUSES,
    check_channel,
    check_method,
)
from verifycli.plivo import callback_fields as plivo_fields
from verifycli.relay import Outcome, in_turn, send, wire_url
from verifycli.replay import Answers, all_answered
from verifycli.signature import DEFAULT_FAMILIES, SCHEME_CHOICES, signed_headers

RECIPIENT = "14155550100"  # a fictional US number; Plivo sends it without the +
USER_AGENT = f"verifycli-trigger/{__version__}"


@dataclass(frozen=True)
class TriggerSpec:
    """What to send: the flags of `trigger`, checked."""

    to: str
    status: str | None = None
    channel: str = "sms"
    session_uuid: str | None = None
    session_status: str = "in-progress"
    method: str = "POST"
    scheme: str = "v2"
    count: int = 1
    recipient: str = RECIPIENT
    timeout: float = 10.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "to", check_target(self.to, "--to"))
        channel = check_channel(self.channel)
        set_(self, "channel", channel)
        status = (self.status or DELIVERED_STATUS[channel]).lower()
        if status not in CHANNEL_STATUSES[channel]:
            allowed = ", ".join(CHANNEL_STATUSES[channel])
            raise ConfigError(f"--status for {channel} must be one of {allowed}, not {status!r}")
        set_(self, "status", status)
        if self.session_status not in SESSION_STATUSES:
            allowed = ", ".join(SESSION_STATUSES)
            raise ConfigError(
                f"--session-status must be one of {allowed}, not {self.session_status!r}"
            )
        set_(self, "method", check_method(self.method))
        if self.scheme.lower() not in SCHEME_CHOICES:
            raise ConfigError(f"--scheme must be v2, v3 or all, not {self.scheme!r}")
        set_(self, "scheme", self.scheme.lower())
        if not 1 <= self.count <= 1000:
            raise ConfigError(f"--count must be from 1 to 1000, not {self.count}")
        check_timeout(self.timeout)
        session = self.session_uuid or str(uuid.uuid4())
        if not session.strip() or any(ch.isspace() for ch in session):
            raise ConfigError(f"--session must be a SessionUUID without spaces, not {session!r}")
        set_(self, "session_uuid", session)

    @property
    def session(self) -> str:
        """The SessionUUID every callback carries: the one given, or a new one."""
        return self.session_uuid or ""


def callback_fields(spec: TriggerSpec, sequence: int) -> dict[str, str]:
    """The Plivo fields of the `sequence`th callback (from 1), in the order Plivo sends them."""
    return made_up_fields(
        spec.channel,
        sequence,
        status=spec.status,
        session=spec.session,
        session_status=spec.session_status,
        recipient=spec.recipient,
    )


def made_up_fields(
    channel: str,
    sequence: int = 1,
    *,
    status: str | None = None,
    session: str | None = None,
    session_status: str = "in-progress",
    recipient: str = RECIPIENT,
) -> dict[str, str]:
    """A made-up Verify callback's fields, in the order Plivo sends them."""
    status = status or DELIVERED_STATUS[channel]
    return plivo_fields(
        session_uuid=session or str(uuid.uuid4()),
        session_status=session_status,
        recipient=recipient,
        channel=channel,
        channel_status=status,
        error_code=FAILURE_CODES.get((channel, status), ""),
        attempt_sequence=sequence,
    )


@dataclass(frozen=True)
class Prepared:
    """One callback ready to go: the exact URL, body and headers, signatures included."""

    method: str
    url: str
    body: bytes
    headers: dict[str, str]
    fields: dict[str, str]

    @property
    def schemes(self) -> list[str]:
        """The signature headers it carries, as scheme names (v3, ma-v3, v2, ma-v2)."""
        found = []
        for scheme, header in (
            ("v3", "X-Plivo-Signature-V3"),
            ("ma-v3", "X-Plivo-Signature-Ma-V3"),
            ("v2", "X-Plivo-Signature-V2"),
            ("ma-v2", "X-Plivo-Signature-Ma-V2"),
        ):
            if header in self.headers:
                found.append(scheme)
        return found

    def record(self) -> dict[str, Any]:
        """What was sent, for the answer's JSON object."""
        return {"method": self.method, "fields": self.fields, "schemes": self.schemes}

    def label(self, to: str) -> str:
        """One line naming what was sent, for the answer printed under it."""
        f = self.fields
        return (
            f"{self.method} {f['ChannelStatus']} ({f['Channel']}, session {f['SessionUUID']}, "
            f"attempt {f['AttemptSequence']}) signed {', '.join(self.schemes)} → {to}"
        )


def compose(method: str, to: str, fields: dict[str, str], user_agent: str = USER_AGENT) -> Prepared:
    """The request Plivo would make to `to`, not yet signed: POST sends a form, GET the query."""
    # The URL exactly as it goes on the wire, as the receiver will rebuild it to check it.
    base = str(wire_url(to))
    headers = {"User-Agent": user_agent}
    if method == "GET":
        joiner = "&" if urlsplit(base).query else "?"
        return Prepared(method, base + joiner + urlencode(fields), b"", headers, fields)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return Prepared(method, base, urlencode(fields).encode("ascii"), headers, fields)


def sign(
    request: Prepared,
    token: str | None,
    main_token: str | None = None,
    schemes: Sequence[str] = DEFAULT_FAMILIES,
    for_url: str | None = None,
) -> Prepared:
    """`request` with signature headers, made for `for_url` (default: where it goes)."""
    # The URL the same request would have had if sent to for_url: what that handler rebuilds.
    url = request.url if for_url is None else compose(request.method, for_url, request.fields).url
    params = request.fields if request.method == "POST" else {}
    signed = signed_headers(request.method, url, params, token, main_token, schemes)
    return replace(request, headers={**request.headers, **signed})


def prepare(
    spec: TriggerSpec, fields: dict[str, str], token: str, main_token: str | None = None
) -> Prepared:
    """Sign `fields` as Plivo would for `spec.to`."""
    request = compose(spec.method, spec.to, fields)
    return sign(request, token, main_token, SCHEME_CHOICES[spec.scheme])


async def send_prepared(
    session: aiohttp.ClientSession, request: Prepared, timeout: float
) -> Outcome:
    """Send one prepared callback, byte for byte as prepared."""
    url = URL(request.url, encoded=True)
    return await send(session, request.method, url, request.body, request.headers, timeout)


async def trigger(
    spec: TriggerSpec,
    auth_token: Secret | None,
    main_auth_token: Secret | None = None,
    on_outcome: Callable[[Prepared, Outcome], None] | None = None,
) -> list[Outcome]:
    """Send `spec.count` signed callbacks one after another; stop at a connection failure."""
    token = require_token(auth_token).reveal()
    main = main_auth_token.reveal() if main_auth_token else None
    # Prepared as each goes: RequestTime is the moment it is sent.
    batch = (prepare(spec, callback_fields(spec, n), token, main) for n in range(1, spec.count + 1))

    def one(session: aiohttp.ClientSession, prepared: Prepared) -> Awaitable[Outcome]:
        return send_prepared(session, prepared, spec.timeout)

    return await in_turn(batch, one, on_outcome)


def run(spec: TriggerSpec, settings: Settings, out: Answers) -> ExitCode:
    """`trigger`: send, report each answer; 0 when every one was answered 2xx."""
    import asyncio

    require_token(settings.auth_token)

    def answered(sent: Prepared, outcome: Outcome) -> None:
        out.answer(sent.label(spec.to), outcome, sent.record())

    token, main = settings.auth_token, settings.main_auth_token
    outcomes = asyncio.run(trigger(spec, token, main, answered))
    return ExitCode.OK if all_answered(spec.count, outcomes) else ExitCode.FLOW_FAILED
