"""A stored-callback event built in memory, for store, export and inspector tests."""

from __future__ import annotations

from typing import Any

from verifycli.callbacks import CallbackEvent
from verifycli.signature import SignatureResult


def form_event(
    fields: dict[str, str],
    signature: SignatureResult | None = None,
    body: str = "",
    **record: Any,
) -> CallbackEvent:
    """A POSTed form callback to https://x.example/cb carrying `fields`; `record` sets any
    other CallbackEvent field (received_at, response_status, id, ...)."""
    return CallbackEvent(
        method="POST",
        url="https://x.example/cb",
        path="/cb",
        query="",
        headers={},
        content_type="application/x-www-form-urlencoded",
        body=body,
        body_encoding="utf-8",
        fields=fields,
        signature=signature or SignatureResult("valid", "v2", "ok"),
        **record,
    )


def make_event(
    n: int = 0,
    *,
    status: str = "sent",
    nonce: str | None = None,
    body: str | None = None,
    verdict: str = "valid",
    session: str = "sess-1",
    attempt: str = "att-1",
) -> CallbackEvent:
    fields = {
        "SessionUUID": session,
        "AttemptUUID": attempt,
        "ChannelStatus": status,
        "SessionStatus": "in-progress",
        "N": str(n),
    }
    return form_event(
        fields,
        SignatureResult(verdict, "v3", "", nonce),  # type: ignore[arg-type]
        body if body is not None else "&".join(f"{k}={v}" for k, v in fields.items()),
    )
