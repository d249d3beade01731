"""Plivo's vocabulary: channels, statuses and their meaning, callback fields, RequestTime, URLs.

Everything here comes from Plivo's Verify guide (`../shared/plivo-verify-webhooks.txt`);
the simulator, trigger, the send session and the ui read it from here, never spell it out.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Literal, get_args
from urllib.parse import urlencode, urlsplit

from verifycli.error_codes import SIMULATED, describe
from verifycli.errors import ConfigError

Channel = Literal["sms", "voice"]  # how the code travels
Method = Literal["POST", "GET"]  # how Plivo calls back: fields in a form, or in the query
ChannelStatus = Literal[
    "queued",
    "sent",
    "delivered",
    "undelivered",
    "ringing",
    "in-progress",
    "completed",
    "no-answer",
    "busy",
    "failed",
    "cancel",
    "timeout",
]
SessionStatus = Literal["in-progress", "verified", "expired"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)
METHODS: tuple[Method, ...] = get_args(Method)

# ChannelStatus values, per channel. The Verify guide lists sms sent/delivered/failed/
# undelivered (and shows queued) and voice in-progress/completed/no-answer; ringing, busy,
# failed, cancel and timeout are Plivo's call statuses (support.plivo.com, "What do the
# different call statuses mean?").
CHANNEL_STATUSES: dict[str, tuple[str, ...]] = {
    "sms": ("queued", "sent", "delivered", "failed", "undelivered"),
    # ringing, in-progress, completed, no-answer, busy, failed, cancel, timeout
    "voice": get_args(ChannelStatus)[get_args(ChannelStatus).index("ringing") :],
}
SESSION_STATUSES: tuple[SessionStatus, ...] = get_args(SessionStatus)
# The status that means a channel did its job.
DELIVERED_STATUS: dict[str, str] = {"sms": "delivered", "voice": "completed"}

Meaning = Literal["done", "on its way", "failed"]
# What each status means for the person waiting for the code. A status in none of these
# sets is one Plivo has not documented.
DONE = frozenset({"delivered", "completed", "verified"})
ON_ITS_WAY = frozenset({"queued", "sent", "ringing", "in-progress"})
FAILED = frozenset({"failed", "undelivered", "no-answer", "busy", "cancel", "timeout", "expired"})
# Channel statuses after which the recipient has the code (voice: the call was answered).
HEARD = frozenset({"delivered", "in-progress", "completed"})
# Channel statuses that end an attempt successfully (--no-prompt stops there).
DELIVERED = frozenset(DELIVERED_STATUS.values())
CHANNEL_FAILED = FAILED - {"expired"}


def meaning(status: str | None) -> Meaning | None:
    """done, on its way or failed; None for a status Plivo does not document."""
    if status in DONE:
        return "done"
    if status in FAILED:
        return "failed"
    if status in ON_ITS_WAY:
        return "on its way"
    return None


# How a Verify session can end, as the simulator plays it (`demo --scenario`); `retries`
# delivers, but every first callback is answered 500 so Plivo's retry schedule shows.
Scenario = Literal["delivered", "undelivered", "failed", "no-answer", "expired", "retries"]
SCENARIOS: tuple[Scenario, ...] = get_args(Scenario)

# ChannelErrorCode: the codes the simulator and trigger send with a failed status, and what
# a code means (Plivo's published tables, in error_codes.py).
FAILURE_CODES: dict[tuple[str, str], str] = SIMULATED
error_text = describe


# Every Verify callback carries these fields, in this order (the guide's table).
CALLBACK_FIELDS: tuple[str, ...] = (
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


def request_time(moment: datetime | None = None) -> str:
    """A RequestTime: UTC, microseconds, a Z.

    "Time when this attempt was made" (the guide); Plivo does not publish its format, so this
    is our guess: the form of the times in Plivo's session answers.
    """
    moment = moment or datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def callback_fields(
    *,
    session_uuid: str,
    session_status: str,
    recipient: str,
    channel: str,
    channel_status: str,
    error_code: str = "",
    attempt_uuid: str | None = None,
    attempt_sequence: int = 1,
    moment: datetime | None = None,
) -> dict[str, str]:
    """One callback's fields, named and ordered as Plivo sends them; blanks stay blank."""
    return {
        "SessionUUID": session_uuid,
        "SessionStatus": session_status,
        "RequestTime": request_time(moment),
        "Recipient": recipient,
        "ChannelErrorCode": error_code,
        "Channel": channel,
        "AttemptUUID": attempt_uuid or str(uuid.uuid4()),
        "AttemptSequence": str(attempt_sequence),
        "ChannelStatus": channel_status,
    }


def callback_url(method: str, url: str, fields: dict[str, str]) -> str:
    """The URL a callback is sent to: as given for POST, the fields in its query for GET."""
    if method.upper() == "POST":
        return url
    return url + ("&" if urlsplit(url).query else "?") + urlencode(fields)


def bracket(host: str) -> str:
    """An IPv6 address in brackets, as a URL needs it; other hosts unchanged."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def http_base(host: str, port: int) -> str:
    """http://HOST:PORT with an IPv6 host bracketed."""
    return f"http://{bracket(host)}:{port}"


def check_channel(value: str) -> str:
    """sms or voice, any case; ConfigError otherwise."""
    channel = value.lower()
    if channel not in CHANNELS:
        raise ConfigError(f"--channel must be sms or voice, not {value!r}")
    return channel


def check_method(value: str) -> str:
    """POST or GET, any case; ConfigError otherwise."""
    method = value.upper()
    if method not in METHODS:
        raise ConfigError(f"--method must be POST or GET, not {value!r}")
    return method
