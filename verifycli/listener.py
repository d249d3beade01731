"""The aiohttp listener: capture → check → store → answer → publish, for every request."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, CIMultiDictProxy

from verifycli.callbacks import CallbackEvent, clean_text, encode_body, has_surrogates, parse_params
from verifycli.errors import ConfigError, StoreWriteError
from verifycli.plivo import http_base
from verifycli.relay import Forwarder, check_target
from verifycli.serving import bind
from verifycli.signature import Checker, SignatureResult
from verifycli.store import EventStore

HEALTH_PATH = "/_verifycli/health"
DEFAULT_MAX_BODY = 1024 * 1024
FORWARD_TIMEOUT = 10.0
# A connection that has not sent a whole request this long after it opened (or after its last
# answer) is closed; a body that has not fully arrived this long after its headers gets 408.
# Plivo sends a callback in one go, so only stalled or hostile clients ever meet either.
IDLE_TIMEOUT = 15.0
BODY_TIMEOUT = 10.0


class Sink(Protocol):
    """Where captured events are shown: the live table, NDJSON on stdout, a test.

    A sink with `whole = True` gets an event only once it is complete, after its forward
    (NDJSON lines are final); the others get it at once and see the forward's outcome
    appear on the same event object.
    """

    @property
    def whole(self) -> bool: ...

    def event(self, event: CallbackEvent) -> None: ...

    def warn(self, message: str) -> None: ...


@dataclass
class Stats:
    """Counts shown in the header panel."""

    received: int = 0
    valid: int = 0
    invalid: int = 0
    retries: int = 0
    write_errors: int = 0

    def count(self, event: CallbackEvent) -> None:
        self.received += 1
        verdict = event.signature.verdict
        if verdict == "valid":
            self.valid += 1
        elif verdict in ("invalid", "replayed"):
            self.invalid += 1
        if event.retry_of is not None:
            self.retries += 1

    def by_label(self) -> dict[str, int]:
        """The counts as the header panel labels them."""
        return {
            "received": self.received,
            "valid": self.valid,
            "invalid": self.invalid,
            "retries": self.retries,
            "write errors": self.write_errors,
        }


@dataclass
class ListenOptions:
    """How the listener answers; the flags of `listen`."""

    host: str = "127.0.0.1"
    port: int = 8080
    respond_status: int = 200
    fail_rate: float = 0.0
    fail_first: bool = False
    reject_invalid: bool = False
    max_body: int = DEFAULT_MAX_BODY
    forward_to: str | None = None
    answer_from_forward: bool = False
    idle_timeout: float = IDLE_TIMEOUT
    body_timeout: float = BODY_TIMEOUT

    def __post_init__(self) -> None:
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ConfigError(f"--fail-rate must be between 0 and 1, not {self.fail_rate}")
        if not 100 <= self.respond_status <= 599:
            raise ConfigError(
                f"--respond-status must be an HTTP status (100-599), not {self.respond_status}"
            )
        if self.max_body < 1:
            raise ConfigError("--max-body must be at least 1 byte")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0-65535, not {self.port}")
        if self.answer_from_forward and not self.forward_to:
            raise ConfigError("--answer-from-forward needs --forward-to URL")
        if self.forward_to is not None:
            self.forward_to = check_target(self.forward_to, "--forward-to")
            if self._forwards_to_itself(self.forward_to):
                raise ConfigError(
                    f"--forward-to {self.forward_to} is this listener: every callback would be "
                    "forwarded to itself without end; give your app's address"
                )

    def _forwards_to_itself(self, target: str) -> bool:
        parts = urlsplit(target)
        if self.port == 0 or (parts.port or {"http": 80, "https": 443}[parts.scheme]) != self.port:
            return False
        loopback = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}
        host = parts.hostname or ""
        return host == self.host or (host in loopback and self.host in loopback | {""})


def _quiet_aiohttp() -> None:
    """Keep aiohttp's log of each malformed request, traceback and all, off the terminal.

    Nothing configures logging, so Python's last-resort handler would print those records
    in the middle of the live table; a handler on the "aiohttp" logger stops that.
    """
    logger = logging.getLogger("aiohttp")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


@dataclass
class Listener:
    """Serves one store on one address; the public URL is what signatures are checked against."""

    store: EventStore
    checker: Checker
    options: ListenOptions = field(default_factory=ListenOptions)
    sinks: list[Sink] = field(default_factory=list)
    public_url: str | None = None
    stats: Stats = field(default_factory=Stats)
    rng: Callable[[], float] = random.random
    _runner: web.AppRunner | None = None
    port: int = 0  # the bound port, once started (the real one when 0 was asked)
    _local_base: str = ""
    _forwarder: Forwarder | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    # -- lifecycle -----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.options.max_body)
        app.router.add_get(HEALTH_PATH, self._health)
        app.router.add_route("*", "/{tail:.*}", self._capture)
        return app

    async def start(self) -> str:
        """Bind and serve; returns the local base URL (the real port when 0 was asked)."""
        _quiet_aiohttp()
        # A store write past RLIMIT_FSIZE must fail with EFBIG (answered 503), not kill us.
        if hasattr(signal, "SIGXFSZ"):
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        runner = web.AppRunner(
            self.app(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=5,
            keepalive_timeout=self.options.idle_timeout,
            # After an early answer (408, 413), read what is still coming this long, not 10 s.
            lingering_time=1.0,
        )
        host, port = self.options.host, self.options.port
        self.port = await bind(runner, host, port, "cannot listen", "--port")
        self._runner = runner
        self._local_base = http_base(self.options.host, self.port)
        if self.options.forward_to:
            self._forwarder = Forwarder(self.options.forward_to, FORWARD_TIMEOUT)
        return self._local_base

    @property
    def local_url(self) -> str:
        return self._local_base

    @property
    def base_url(self) -> str:
        """The URL senders call: the public one when a tunnel is open, else the local one."""
        return (self.public_url or self._local_base).rstrip("/")

    async def stop(self) -> None:
        """Stop accepting, let in-flight callbacks finish, and wait for pending forwards."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._forwarder is not None:
            await self._forwarder.close()
            self._forwarder = None

    # -- handlers ------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "received": self.stats.received})

    def _policy(self, event: CallbackEvent) -> int:
        if self.options.reject_invalid and event.signature.verdict in ("invalid", "replayed"):
            return 403
        if self.options.fail_first and event.retry_of is None:
            return 500
        if self.options.fail_rate and self.rng() < self.options.fail_rate:
            return 500
        return self.options.respond_status

    async def _capture(self, request: web.Request) -> web.StreamResponse:
        try:
            if request.content.is_eof():  # the whole body is here (the usual case): no wait
                body = await request.read()
            else:
                body = await asyncio.wait_for(request.read(), self.options.body_timeout)
        except HttpProcessingError as exc:
            raise web.HTTPBadRequest(text=f"unreadable request body: {exc.message}\n") from None
        except web.RequestPayloadError as exc:
            # A body found broken (bad gzip, bad chunk) after the handler began to read it.
            cause = exc.__cause__
            why = cause.message if isinstance(cause, HttpProcessingError) else str(exc)
            raise web.HTTPBadRequest(text=f"unreadable request body: {why}\n") from None
        except asyncio.TimeoutError:
            slow = web.HTTPRequestTimeout(
                text=f"the body did not arrive within {self.options.body_timeout:g} s\n"
            )
            slow.force_close()
            raise slow from None
        event = self.capture(request, body)
        try:
            event = await self.store.append(event, self._policy)
        except StoreWriteError as exc:
            self.stats.write_errors += 1
            self._warn(
                f"could not store a callback in {self.store.path} ({exc}): check the disk has "
                "room and the file is writable; answered 503 so Plivo retries"
            )
            return web.Response(status=503, text="verifycli could not store this callback\n")
        self.stats.count(event)
        status = event.response_status or 200
        if self._forwarder is None:
            self._publish(event)
        else:
            self._publish(event, whole=False)
            forwarding = self._forward(event)
            if self.options.answer_from_forward:
                await forwarding
                status = event.response_status or 502
            else:
                task = asyncio.get_running_loop().create_task(forwarding)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        if status in (204, 304) or status < 200:
            return web.Response(status=status)
        return web.Response(status=status, text=f"verifycli stored event #{event.id}\n")

    def capture(self, request: web.Request, body: bytes) -> CallbackEvent:
        """Build the event for one request: public URL, headers, body, fields, signature."""
        raw = request.raw_path
        path, _, query = raw.partition("?")
        url = self.base_url + raw
        # Header bytes that are not UTF-8 arrive as lone surrogates: cleaned, or the event
        # could be neither stored nor shown.
        received: CIMultiDictProxy[str] | CIMultiDict[str] = request.headers
        if has_surrogates(itertools.chain.from_iterable(received.items())):
            received = CIMultiDict((clean_text(k), clean_text(v)) for k, v in received.items())
        headers: dict[str, str] = {}
        for name, value in received.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        content_type = received.get("Content-Type", "")
        text, encoding = encode_body(body)
        parsed = parse_params(request.method, content_type, body, query)
        local = self._local_base + raw if self.public_url else None
        try:
            signature = self.checker.check(request.method, url, received, parsed.params, local)
        except (ValueError, TypeError, UnicodeError) as exc:
            signature = SignatureResult("invalid", None, f"signature could not be checked: {exc}")
        return CallbackEvent(
            method=request.method,
            url=url,
            path=path,
            query=query,
            headers=headers,
            content_type=content_type,
            body=text,
            body_encoding=encoding,
            fields=parsed.fields,
            parse_error=parsed.error,
            signature=signature,
        )

    async def _forward(self, event: CallbackEvent) -> None:
        forwarder = self._forwarder
        assert forwarder is not None and event.id is not None
        result = await forwarder.send(event)
        event.forward = result
        status = None
        if self.options.answer_from_forward:
            forwarded = result.get("status")
            status = forwarded if isinstance(forwarded, int) else 502
            event.response_status = status
        try:
            await self.store.set_forward(event.id, result, status)
        except StoreWriteError as exc:
            self._warn(f"could not record the forward of event #{event.id}: {exc}")
        self._publish(event, whole=True)

    def _publish(self, event: CallbackEvent, whole: bool | None = None) -> None:
        """To every sink, or (forwarding) to those that want events now / only whole."""
        for sink in self.sinks:
            if whole is None or sink.whole == whole:
                sink.event(event)

    def _warn(self, message: str) -> None:
        for sink in self.sinks:
            sink.warn(message)
