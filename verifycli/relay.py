"""Sending callbacks on: forward (live, to the user's app), replay (later, by id), and the
one HTTP send that trigger shares with both."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from verifycli.callbacks import CallbackEvent
from verifycli.config import check_target as check_target  # re-exported for listener, cli
from verifycli.config import check_timeout

T = TypeVar("T")

# Headers that describe one hop, not the callback; aiohttp sets its own.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        # The body is stored as it was after decoding (aiohttp undoes gzip), so it is sent on
        # as that: saying gzip would make the receiver unpack plain bytes.
        "content-encoding",
    }
)
# Added to each forwarded request, naming the listener that sent it on: a request that comes
# back to that listener (a forward loop through some address we did not recognise) stops.
FORWARDED_BY = "X-Verifycli-Forwarded-By"
# aiohttp adds these unless told not to; a relayed request carries only what the sender sent.
_AUTO_HEADERS = ("Content-Type", "User-Agent", "Accept", "Accept-Encoding")
BODY_HEAD_BYTES = 2048
REPLAY_TIMEOUT = 10.0


def target_url(target: str, query: str) -> str:
    """`target` with the callback's original query string kept."""
    if not query:
        return target
    return f"{target}{'&' if '?' in target else '?'}{query}"


def wire_url(target: str, query: str = "") -> URL:
    """The URL to request: the target as yarl quotes it, then `query` byte for byte.

    yarl would otherwise re-quote a received query (%7E becomes ~), and the receiver would
    no longer see what the sender signed.
    """
    base = str(URL(target))
    return URL(target_url(base, query), encoded=True)


def end_to_end_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}


@dataclass
class Outcome:
    """What the target answered, or why it could not."""

    url: str
    status: int | None
    elapsed_ms: float
    error: str | None = None
    body_head: str = ""
    reason: str = ""
    # True when no connection was made at all (refused, no such host, TLS): nothing answered.
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def to_forward(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "status": self.status,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "error": self.error,
        }


def _connect_error(exc: aiohttp.ClientConnectorError) -> str:
    error = exc.os_error
    why = error.strerror or str(error) or type(error).__name__
    # asyncio words a refused connect "Connect call failed ('127.0.0.1', 9)", or for a name
    # with two addresses "Multiple exceptions: [Errno 111] …": the errno says it plainly.
    if "Connect call failed" in why:
        errno = error.errno or _first_errno(why)
        if errno:
            why = os.strerror(errno)
    return f"cannot connect to {exc.host}:{exc.port} ({why[:1].lower()}{why[1:]})"


def _first_errno(text: str) -> int | None:
    found = re.search(r"\[Errno (\d+)\]", text)
    return int(found.group(1)) if found else None


async def send(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
) -> Outcome:
    """One request, exactly as given: no added headers, no redirects followed."""
    shown = str(url)
    started = time.perf_counter()
    try:
        async with session.request(
            method,
            url,
            # None, not b"", for no body: aiohttp would add "Content-Length: 0" to a GET.
            data=body or None,
            headers=dict(headers),
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
            skip_auto_headers=_AUTO_HEADERS,
        ) as response:
            head = (await response.content.read(BODY_HEAD_BYTES)).decode("utf-8", "replace")
            elapsed = (time.perf_counter() - started) * 1000
            return Outcome(shown, response.status, elapsed, None, head, response.reason or "")
    # ServerTimeoutError is also a ClientError: this clause must come first to name it.
    except asyncio.TimeoutError:
        error = f"no answer within {timeout:g} s"
    except aiohttp.ClientSSLError as exc:
        return _unreachable(
            shown, started, f"TLS with {exc.host}:{exc.port} failed ({exc.os_error})"
        )
    except aiohttp.ClientConnectorError as exc:
        return _unreachable(shown, started, _connect_error(exc))
    except aiohttp.ClientError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Outcome(shown, None, (time.perf_counter() - started) * 1000, error)


def _unreachable(url: str, started: float, error: str) -> Outcome:
    elapsed = (time.perf_counter() - started) * 1000
    return Outcome(url, None, elapsed, error, unreachable=True)


async def deliver(
    session: aiohttp.ClientSession, event: CallbackEvent, target: str, timeout: float
) -> Outcome:
    """Send `event` to `target` (its query kept): same method, byte-identical body, end-to-end
    headers."""
    return await send(
        session,
        event.method,
        wire_url(target, event.query),
        event.raw_body(),
        end_to_end_headers(event.headers),
        timeout,
    )


async def in_turn(
    items: Iterable[T],
    send_one: Callable[[aiohttp.ClientSession, T], Awaitable[Outcome]],
    on_outcome: Callable[[T, Outcome], None] | None = None,
    **client: Any,
) -> list[Outcome]:
    """Send each item one after another through one client session, reporting each answer.

    Stops after a connection failure: the next ones would meet the same closed door.
    """
    outcomes: list[Outcome] = []
    async with aiohttp.ClientSession(**client) as session:
        for item in items:
            outcome = await send_one(session, item)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(item, outcome)
            if outcome.status is None:
                break
    return outcomes


async def replay(
    events: Iterable[CallbackEvent],
    target: str,
    timeout: float = REPLAY_TIMEOUT,
    on_outcome: Callable[[CallbackEvent, Outcome], None] | None = None,
) -> list[Outcome]:
    """Send stored callbacks to `target` one after another, in the order given."""
    check_target(target, "--to")
    check_timeout(timeout)

    def one(session: aiohttp.ClientSession, event: CallbackEvent) -> Awaitable[Outcome]:
        return deliver(session, event, target, timeout)

    return await in_turn(events, one, on_outcome, auto_decompress=True)


class Forwarder:
    """Forwards each live callback to the user's app, without holding up the answer to Plivo."""

    def __init__(self, target: str, timeout: float, instance: str = "") -> None:
        self.target = check_target(target, "--forward-to")
        self.timeout = timeout
        self.instance = instance
        self._session: aiohttp.ClientSession | None = None

    async def send(self, event: CallbackEvent) -> dict[str, Any]:
        if self._session is None:
            # The app's answer is only timed and kept in part, never unpacked. Few sockets: a
            # flood of callbacks must not use up the listener's file descriptors.
            self._session = aiohttp.ClientSession(
                auto_decompress=False, connector=aiohttp.TCPConnector(limit=32)
            )
        headers = end_to_end_headers(event.headers)
        if self.instance:
            before = next(
                (v for k, v in headers.items() if k.lower() == "x-verifycli-forwarded-by"), ""
            )
            headers = {k: v for k, v in headers.items() if k.lower() != "x-verifycli-forwarded-by"}
            headers[FORWARDED_BY] = f"{before}, {self.instance}" if before else self.instance
        outcome = await send(
            self._session,
            event.method,
            wire_url(self.target, event.query),
            event.raw_body(),
            headers,
            self.timeout,
        )
        return outcome.to_forward()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
