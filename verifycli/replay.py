"""`replay`'s rules: which stored callbacks to send again, where, and what a refusal suggests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from verifycli.callbacks import CallbackEvent
from verifycli.config import check_timeout
from verifycli.errors import ConfigError, EventNotFound, ExitCode
from verifycli.relay import REPLAY_TIMEOUT, Outcome, check_target
from verifycli.store import Filters, StoreReader


class Answers(Protocol):
    """Where replay and trigger report each answer: readable lines, or JSON objects."""

    def answer(self, label: str, outcome: Outcome, sent: dict[str, Any]) -> None: ...

    def note(self, message: str) -> None: ...


@dataclass(frozen=True)
class ReplaySpec:
    """The flags of `replay`, checked: one event by id, or every callback of one session."""

    to: str
    event_id: int | None = None
    all_events: bool = False
    session: str | None = None
    timeout: float = REPLAY_TIMEOUT

    def __post_init__(self) -> None:
        if self.all_events == (self.event_id is not None):
            raise ConfigError("give the ID of one event, or --all --session UUID; not both")
        if self.all_events and not self.session:
            raise ConfigError("--all needs --session UUID: the session whose callbacks to send")
        if self.session and not self.all_events:
            raise ConfigError("--session goes with --all; to replay one event give its ID only")
        check_timeout(self.timeout)
        object.__setattr__(self, "to", check_target(self.to, "--to"))

    def choose(self, reader: StoreReader) -> list[CallbackEvent]:
        """The stored callbacks to send, oldest first; EventNotFound when there are none."""
        if self.event_id is not None:
            return [reader.get(self.event_id)]
        chosen = list(reader.iter_events(Filters(session=reader.whole_session(self.session))))
        if not chosen:
            raise EventNotFound(
                f"no stored callbacks of session {self.session} in {reader.path}; "
                "`verifycli events` lists what is stored"
            )
        return chosen


def label(event: CallbackEvent, target: str) -> str:
    """One line naming what was sent again, for the answer printed under it."""
    what = event.plivo("channel_status") or event.path
    where = target + (" (with its query)" if event.query else "")
    return f"#{event.id} {event.method} {what} → {where}"


def _base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def tally(chosen: list[CallbackEvent], outcomes: list[Outcome]) -> str | None:
    """For several callbacks, how many were answered 2xx; None for one."""
    if len(chosen) <= 1:
        return None
    good = sum(o.ok for o in outcomes)
    unsent = len(chosen) - len(outcomes)
    tail = f"; {unsent} not sent after the connection failed" if unsent else ""
    return f"{good} of {len(chosen)} answered 2xx{tail}"


def signed_elsewhere(
    chosen: list[CallbackEvent], outcomes: list[Outcome], target: str
) -> str | None:
    """Why a handler may have refused: signatures made for another URL than `target`.

    A refusal (4xx) is most often the handler's signature check, made for a URL it now is not.
    """
    refused = any(o.status is not None and 400 <= o.status < 500 for o in outcomes)
    signed = next((e for e in chosen if e.signature.verdict != "unsigned"), None)
    if refused and signed is not None and _base(signed.url) != _base(target):
        return (
            f"note: these signatures were made for {_base(signed.url)}; a handler that checks "
            "them against its own URL refuses them (`verifycli trigger` signs for --to)"
        )
    return None


def run(spec: ReplaySpec, reader: StoreReader, out: Answers) -> ExitCode:
    """`replay`: send, report each answer, explain refusals; 0 when every one was 2xx."""
    import asyncio

    from verifycli import relay

    chosen = spec.choose(reader)

    def answered(event: CallbackEvent, outcome: Outcome) -> None:
        out.answer(label(event, spec.to), outcome, {"event": event.id, "method": event.method})

    outcomes = asyncio.run(relay.replay(chosen, spec.to, spec.timeout, answered))
    for line in (tally(chosen, outcomes), signed_elsewhere(chosen, outcomes, spec.to)):
        if line:
            out.note(line)
    return ExitCode.OK if all_answered(len(chosen), outcomes) else ExitCode.FLOW_FAILED


def all_answered(expected: int, outcomes: list[Outcome]) -> bool:
    """Every callback was sent and answered 2xx."""
    return len(outcomes) == expected and all(o.ok for o in outcomes)
