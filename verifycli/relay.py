"""Sending stored callbacks on: forward (live, to the user's app) and replay (later, by id)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from verifycli.callbacks import CallbackEvent
from verifycli.errors import ConfigError

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
    }
)


def check_target(url: str, flag: str) -> str:
    """A forward/replay target must be an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{flag} needs an http:// or https:// URL, not {url!r}")
    return url


def target_url(target: str, query: str) -> str:
    """`target` with the callback's original query string kept."""
    if not query:
        return target
    return f"{target}{'&' if '?' in target else '?'}{query}"


def end_to_end_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}


@dataclass
class Outcome:
    """What the target answered, or why it could not."""

    url: str
    status: int | None
    elapsed_ms: float
    error: str | None = None
    body_head: str = ""

    def to_forward(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "status": self.status,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "error": self.error,
        }


async def deliver(
    session: aiohttp.ClientSession, event: CallbackEvent, url: str, timeout: float
) -> Outcome:
    """Send `event` to `url`: same method, byte-identical body, end-to-end headers."""
    started = time.perf_counter()
    try:
        async with session.request(
            event.method,
            url,
            data=event.raw_body(),
            headers=end_to_end_headers(event.headers),
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
            skip_auto_headers=("Content-Type", "User-Agent", "Accept", "Accept-Encoding"),
        ) as response:
            head = (await response.content.read(2048)).decode("utf-8", "replace")
            elapsed = (time.perf_counter() - started) * 1000
            return Outcome(url, response.status, elapsed, None, head)
    except TimeoutError:
        error = f"no answer within {timeout:g} s"
    except aiohttp.ClientConnectorError as exc:
        error = f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc})"
    except aiohttp.ClientError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Outcome(url, None, (time.perf_counter() - started) * 1000, error)


class Forwarder:
    """Forwards each live callback to the user's app, without holding up the answer to Plivo."""

    def __init__(self, target: str, timeout: float) -> None:
        self.target = check_target(target, "--forward-to")
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def send(self, event: CallbackEvent) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        outcome = await deliver(
            self._session, event, target_url(self.target, event.query), self.timeout
        )
        return outcome.to_forward()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
