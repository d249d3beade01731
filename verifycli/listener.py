"""The aiohttp listener: capture → check → store → answer → publish, for every request."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import random
import secrets
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, CIMultiDictProxy

from verifycli.callbacks import CallbackEvent, clean_text, encode_body, has_surrogates, parse_params
from verifycli.errors import ConfigError, StoreWriteError
from verifycli.plivo import http_base
from verifycli.relay import FORWARDED_BY, Forwarder, check_target
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
# A body this large is read into an event on a worker thread, so that it cannot hold the event
# loop (and every other callback) while it is parsed and its signature checked.
INLINE_BODY = 64 * 1024
# File descriptors kept back from the connection cap: the store's files, the tunnel, forwards,
# and the connections asyncio accepts in one go (the backlog) before any can be closed.
FD_RESERVE = 128
BACKLOG = 64


def check_callback_path(path: str) -> str:
    """A callback path the listener stores (its health path is answered, not stored)."""
    if path.split("?", 1)[0].rstrip("/") == HEALTH_PATH:
        raise ConfigError(
            f"--path {path} is the listener's health check, whose requests are not stored; "
            "choose another path, such as /verify/callback"
        )
    return path


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
        if not self.host.strip():
            raise ConfigError(
                "--host '' would listen on every interface: give 0.0.0.0 for that, "
                "or 127.0.0.1 for this machine only"
            )
        if self.answer_from_forward and not self.forward_to:
            raise ConfigError("--answer-from-forward needs --forward-to URL")
        if self.forward_to is not None:
            self.forward_to = check_target(self.forward_to, "--forward-to")
            # Checked again once bound, when the port is known: see Listener.start.
            if self.port and forwards_to_itself(self.forward_to, self.host, self.port):
                raise _loop_error(self.forward_to)


def _loop_error(target: str) -> ConfigError:
    return ConfigError(
        f"--forward-to {target} is this listener: every callback would be "
        "forwarded to itself without end; give your app's address"
    )


def _addresses(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address `host` names (any spelling: 0x7f000001, [::ffff:127.0.0.1], a name), an
    IPv4-mapped IPv6 address as the IPv4 one it maps."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return set()
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        found.add(ip)
    return found


def _is_local(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `ip` is one of this machine's addresses: only those can be bound."""
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(ip), 0))
    except OSError:
        return False
    return True


def forwards_to_itself(target: str, host: str, port: int) -> bool:
    """Whether a request to `target` would reach a listener bound to `host`:`port`."""
    parts = urlsplit(target)
    if (parts.port or {"http": 80, "https": 443}[parts.scheme]) != port:
        return False
    wanted = _addresses(parts.hostname or "")
    if not wanted:
        return False
    bound = _addresses(host)
    if any(ip.is_unspecified for ip in bound):  # 0.0.0.0 or ::, every local address
        return any(_is_local(ip) for ip in wanted)
    # A connect to 0.0.0.0 or :: reaches this machine's loopback.
    if any(ip.is_unspecified for ip in wanted) and any(ip.is_loopback for ip in bound):
        return True
    return bool(wanted & bound)


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
    # Marks the requests this listener forwards, so one that comes back is not sent again.
    _instance: str = field(default_factory=lambda: secrets.token_hex(8))
    _connections: ConnectionCap | None = None
    _said: set[str] = field(default_factory=set)

    # -- lifecycle -----------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.options.max_body)
        app.router.add_get(HEALTH_PATH, self._health, allow_head=False)
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

        def cap_connections(ready: web.AppRunner) -> None:
            assert ready.server is not None
            self._connections = ConnectionCap(ready.server, raise_open_files(), self._warn_once)

        host = self.options.host
        self.port = await bind(
            runner, host, self.options.port, "cannot listen", "--port",
            backlog=BACKLOG, set_up=cap_connections,
        )  # fmt: skip
        self._runner = runner
        self._local_base = http_base(host, self.port)
        target = self.options.forward_to
        if target:
            if await asyncio.to_thread(forwards_to_itself, target, host, self.port):
                await runner.cleanup()
                self._runner = None
                raise _loop_error(target)
            self._forwarder = Forwarder(target, FORWARD_TIMEOUT, self._instance)
        _quiet_accept_errors(self._warn_once)
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

    async def _health(self, request: web.Request) -> web.StreamResponse:
        if request.query_string:  # a GET callback sent here: stored like any other
            return await self._capture(request)
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
        if self._connections is not None:
            self._connections.active(request.protocol)
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
        if len(body) <= INLINE_BODY:
            event = self.capture(request, body)
        else:
            event = await asyncio.to_thread(self.capture, request, body)
        try:
            event = await self.store.append(event, self._policy)
        except StoreWriteError as exc:
            self.stats.write_errors += 1
            self._store_notices()
            self._warn_once(
                f"could not store a callback in {self.store.path} ({exc}): check the disk has "
                "room and the file is writable; answered 503 so Plivo retries",
                key="write",
            )
            return web.Response(status=503, text="verifycli could not store this callback\n")
        self._said.discard("write")  # stored again: a new failure is worth a new warning
        self._store_notices()
        self.stats.count(event)
        status = event.response_status or 200
        if self._forwarder is not None and self._instance in request.headers.get(FORWARDED_BY, ""):
            self._warn_once(
                f"a callback forwarded to {self._forwarder.target} came back to this listener: "
                "it is stored, not forwarded again; check --forward-to",
                key="loop",
            )
            self._publish(event)
        elif self._forwarder is None:
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
        if status in (204, 205, 304) or status < 200:  # may carry no content (RFC 9110)
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
        """To every sink, or (forwarding) to those that want events now / only whole.

        A sink that fails (stdout closed by `| head`, stderr's file full) is dropped: the
        answer is already on disk, and must be the answer the sender gets.
        """
        for sink in list(self.sinks):
            if whole is None or sink.whole == whole:
                try:
                    sink.event(event)
                except Exception as exc:  # noqa: BLE001 - a view must not change an answer
                    self.sinks.remove(sink)
                    self._warn(f"stopped showing callbacks on one output ({exc})")

    def _warn(self, message: str) -> None:
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                sink.warn(message)

    def _warn_once(self, message: str, key: str | None = None) -> None:
        """Warn, unless a warning of the same kind (`key`, else the text) was given already."""
        key = key or message
        if key not in self._said:
            self._said.add(key)
            self._warn(message)

    def _store_notices(self) -> None:
        while (notice := self.store.take_notice()) is not None:
            self._warn(notice)


def raise_open_files() -> int:
    """Raise the soft limit of open files to the hard one (as Go's runtime does at start);
    returns the limit now in force."""
    try:
        import resource
    except ImportError:  # not on this platform: no limit we can read
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 16


class ConnectionCap:
    """Keeps open connections below the open-files limit: past the cap, the longest-idle ones
    are closed, so idle or hostile clients cannot starve a real callback of a socket."""

    def __init__(self, server: web.Server, open_files: int, warn: Callable[..., None]) -> None:
        self.cap = max(8, open_files - min(FD_RESERVE + BACKLOG, open_files // 2))
        self._warn = warn
        # Connections by last activity, oldest first.
        self._order: dict[object, None] = {}
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._order[handler] = None
            if len(self._order) > self.cap:
                self._shed()

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            lost(handler, exc)
            self._order.pop(handler, None)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def active(self, handler: object) -> None:
        """`handler` is serving a request: it is not idle."""
        if self._order.pop(handler, 0) is None:
            self._order[handler] = None

    def _shed(self) -> None:
        excess = len(self._order) - self.cap + max(1, self.cap // 16)
        for handler in list(self._order):
            if excess <= 0:
                break
            if getattr(handler, "_request_in_progress", False):
                continue
            self._order.pop(handler, None)
            handler.force_close()  # type: ignore[attr-defined]
            excess -= 1
        self._warn(
            f"more than {self.cap} connections open at once: closing the longest idle ones "
            "(someone may be flooding this listener)",
            key="connections",
        )


def _quiet_accept_errors(warn: Callable[..., None]) -> None:
    """asyncio logs each failed accept (no file descriptors left) with a traceback, over and
    over; one warning says it instead."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "socket.accept() out of system resource" in str(context.get("message", "")):
            warn(
                "no file descriptors left to accept connections: some were refused",
                key="connections",
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
