"""A realistic mix of stored callbacks for view tests: sms and voice, GET and POST, a retry,
an invalid signature, a forward failure and an error code."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from verifycli.callbacks import CallbackEvent
from verifycli.signature import SignatureResult
from verifycli.store import EventStore

SMS = "372d1a2b-5c6d-4e7f-8a9b-0c1d2e3f4a5b"
VOICE = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
START = datetime(2026, 12, 2, 13, 59, 31, 123000, tzinfo=timezone.utc)


def _event(
    ident: int,
    session: str,
    channel: str,
    status: str,
    session_status: str = "in-progress",
    *,
    method: str = "POST",
    verdict: str = "valid",
    scheme: str | None = "v2",
    error: str = "",
    retry_of: int | None = None,
    answer: int = 200,
    forward: dict[str, Any] | None = None,
    seconds: float | None = None,
) -> CallbackEvent:
    fields = {
        "SessionUUID": session,
        "AttemptUUID": f"attempt-{session[:4]}",
        "AttemptSequence": "1",
        "Channel": channel,
        "ChannelStatus": status,
        "SessionStatus": session_status,
        "ChannelErrorCode": error,
    }
    when = START + timedelta(seconds=ident * 0.7 if seconds is None else seconds)
    return CallbackEvent(
        method=method,
        url="https://abcd.ngrok-free.app/verify/callback",
        path="/verify/callback",
        query="",
        headers={},
        content_type="application/x-www-form-urlencoded" if method == "POST" else "",
        body="",
        body_encoding="utf-8",
        fields=fields,
        signature=SignatureResult(verdict, scheme, "", None),  # type: ignore[arg-type]
        received_at=when.isoformat(timespec="microseconds"),
        id=ident,
        retry_of=retry_of,
        response_status=answer,
        forward=forward,
    )


REFUSED = {
    "url": "http://127.0.0.1:3000/hook",
    "status": None,
    "elapsed_ms": 1.2,
    "error": "cannot connect to 127.0.0.1:3000 (connection refused)",
}
ACCEPTED = {"url": "http://127.0.0.1:3000/hook", "status": 201, "elapsed_ms": 12.0, "error": None}


def realistic_mix() -> list[CallbackEvent]:
    """Eleven callbacks of two sessions, the sort of screen a first hour produces."""
    return [
        _event(1, SMS, "sms", "queued", answer=500, forward=ACCEPTED),
        _event(2, SMS, "sms", "sent", forward=ACCEPTED),
        _event(3, SMS, "sms", "queued", retry_of=1, forward=ACCEPTED),
        _event(4, SMS, "sms", "delivered", verdict="invalid", scheme="v2", forward=REFUSED),
        _event(5, SMS, "sms", "delivered", "verified", forward=ACCEPTED),
        _event(6, VOICE, "voice", "ringing", method="GET", forward=ACCEPTED),
        _event(7, VOICE, "voice", "in-progress", method="GET", forward=ACCEPTED),
        _event(8, VOICE, "voice", "no-answer", method="GET", forward=REFUSED),
        _event(9, VOICE, "voice", "failed", "expired", method="GET", error="30", forward=REFUSED),
        _event(10, SMS, "sms", "undelivered", verdict="unsigned", scheme=None, error="451"),
        _event(11, SMS, "sms", "sent", verdict="replayed", scheme="v2", answer=403),
    ]


async def store_mix(path: Path) -> list[CallbackEvent]:
    """The mix appended to a real store at `path`, as the listener would have stored it."""
    stored = []
    with EventStore(path) as store:
        for event in realistic_mix():
            answer = event.response_status or 200
            stored.append(await store.append(event, lambda _e, answer=answer: answer))
    return stored
