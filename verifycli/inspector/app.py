"""The inspector's HTTP side: the page, a JSON API over the store, the live stream, replay and
downloads; served on its own loopback port, never on the listener's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from verifycli import export, relay
from verifycli.callbacks import CallbackEvent
from verifycli.errors import ConfigError, EventNotFound
from verifycli.inspector.guard import Guard, add_security_headers, is_loopback, new_token
from verifycli.inspector.live import Hub, sinks, summary, watch_store
from verifycli.listener import Sink
from verifycli.plivo import http_base
from verifycli.serving import bind
from verifycli.store import Filters, StoreReader

DEFAULT_PORT = 4050
LIST_LIMIT = 500
SESSIONS_LIMIT = 50
HEARTBEAT = 15.0
VERDICTS = ("valid", "invalid", "unsigned", "unchecked", "replayed")
STATIC = {
    "app.js": "text/javascript",
    "style.css": "text/css",
}

GUARD = web.AppKey("guard", Guard)
READER = web.AppKey("reader", StoreReader)
HUB = web.AppKey("hub", Hub)


@dataclass
class InspectorOptions:
    """Where the inspector listens and what it replays to: the flags --ui-host/--ui-port."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    replay_to: str | None = None
    live: bool = True  # the listener of this process feeds it; else it watches the store file
    listener_port: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--ui-port must be 0-65535, not {self.port}")
        if self.port and self.port == self.listener_port:
            raise ConfigError(
                f"--ui-port {self.port} is the listener's port: the inspector needs its own "
                "(the listener's is the one the tunnel exposes)"
            )
        self.token = new_token(self.token)

    @property
    def exposed(self) -> bool:
        """Bound beyond this machine: the CLI warns."""
        return not is_loopback(self.host)


OPTIONS = web.AppKey("options", InspectorOptions)


@dataclass
class RunningInspector:
    """An inspector that is serving; `url` carries the token, `sinks` go to the listener."""

    url: str
    base: str
    hub: Hub
    sinks: list[Sink]
    _runner: web.AppRunner
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.hub.close()
        await self._runner.cleanup()


def _filters(request: web.Request) -> Filters:
    query = request.query

    def given(name: str) -> str | None:
        value = query.get(name, "").strip()
        return value or None

    verdict = given("verdict")
    if verdict is not None and verdict not in VERDICTS:
        raise web.HTTPBadRequest(text=f"verdict must be one of {', '.join(VERDICTS)}\n")
    return Filters(
        session_prefix=given("session"),
        status=given("status"),
        verdict=verdict,
        text=given("q"),
    )


def _record(reader: StoreReader, event_id: int) -> CallbackEvent:
    try:
        return reader.get(event_id)
    except EventNotFound:
        raise web.HTTPNotFound(text=f"no event #{event_id}\n") from None


def _event_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="no such event\n") from None


def as_curl(event: CallbackEvent) -> str:
    """The callback as a curl command a shell runs as is: same method, URL, headers, body."""
    parts = ["curl", "-X", event.method, shlex.quote(event.url)]
    for name, value in relay.end_to_end_headers(event.headers).items():
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    if event.body_encoding == "base64":
        decode = f"printf %s {shlex.quote(event.body)} | base64 -d | "
        return decode + " ".join([*parts, "--data-binary", "@-"])
    if event.body:
        parts += ["--data-binary", shlex.quote(event.body)]
    return " ".join(parts)


# -- handlers ----------------------------------------------------------------------------


async def page(request: web.Request) -> web.Response:
    html = resources.files(__package__).joinpath("static/index.html").read_text("utf-8")
    return web.Response(text=html, content_type="text/html", charset="utf-8")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    text = resources.files(__package__).joinpath(f"static/{name}").read_text("utf-8")
    return web.Response(text=text, content_type=STATIC[name], charset="utf-8")


async def meta(request: web.Request) -> web.Response:
    options = request.app[OPTIONS]
    reader = request.app[READER]
    return web.json_response(
        {
            "store": str(reader.path),
            "replay_to": options.replay_to,
            "live": options.live,
            "stored": await asyncio.to_thread(reader.count),
        }
    )


async def list_events(request: web.Request) -> web.Response:
    reader = request.app[READER]
    filters = _filters(request)

    def read() -> tuple[list[dict[str, Any]], int]:
        rows = [summary(r) for r in reader.iter_records(filters, LIST_LIMIT)]
        rows.reverse()  # newest at the top
        total = len(rows) if len(rows) < LIST_LIMIT else reader.count(filters)
        return rows, total

    rows, total = await asyncio.to_thread(read)
    return web.json_response({"events": rows, "matched": total, "limit": LIST_LIMIT})


async def one_event(request: web.Request) -> web.Response:
    reader = request.app[READER]
    event_id = _event_id(request)

    def read() -> dict[str, Any]:
        event = _record(reader, event_id)
        return {
            "record": event.to_record(),
            "chain": reader.chain(event),
            "curl": as_curl(event),
            "size": len(event.raw_body()),
        }

    return web.json_response(await asyncio.to_thread(read))


async def sessions(request: web.Request) -> web.Response:
    reader = request.app[READER]

    def read() -> list[dict[str, Any]]:
        # Two reads in all, not one a session: each scans the store's keys.
        steps: dict[str, list[dict[str, Any]]] = {u: [] for u in reader.sessions(SESSIONS_LIMIT)}
        for record in reader.iter_records(Filters(sessions=tuple(steps))):
            steps[record["session_uuid"]].append(summary(record))
        return [{"session_uuid": u, "events": found} for u, found in steps.items()]

    return web.json_response({"sessions": await asyncio.to_thread(read)})


async def replay(request: web.Request) -> web.Response:
    options = request.app[OPTIONS]
    event = await asyncio.to_thread(_record, request.app[READER], _event_id(request))
    try:
        asked = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='send a JSON object: {"url": "http://…"}\n') from None
    url = (asked.get("url") or "").strip() if isinstance(asked, dict) else ""
    target = url or options.replay_to
    if not target:
        raise web.HTTPBadRequest(text="type the URL to replay to (no --forward-to was given)\n")
    try:
        relay.check_target(target, "the replay URL")
    except ConfigError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    outcomes = await relay.replay([event], target)
    outcome = outcomes[0]
    return web.json_response(
        {
            "url": outcome.url,
            "status": outcome.status,
            "reason": outcome.reason,
            "elapsed_ms": round(outcome.elapsed_ms, 1),
            "error": outcome.error,
            "body_head": outcome.body_head,
        }
    )


async def download(request: web.Request) -> web.StreamResponse:
    fmt = request.query.get("format", "json")
    if fmt not in export.FORMATS:
        raise web.HTTPBadRequest(text="format must be json, jsonl or csv\n")
    reader = request.app[READER]
    filters = _filters(request)
    handle, name = tempfile.mkstemp(prefix="verifycli-export-", suffix=f".{fmt}")
    path = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            await asyncio.to_thread(
                export.write,
                reader.iter_json(filters),
                fmt,
                out,
            )
        response = web.StreamResponse(
            headers={
                "Content-Type": {"csv": "text/csv", "jsonl": "application/x-ndjson"}.get(
                    fmt, "application/json"
                )
                + "; charset=utf-8",
                "Content-Disposition": f'attachment; filename="verifycli-events.{fmt}"',
            }
        )
        await response.prepare(request)
        with path.open("rb") as stream:
            while chunk := await asyncio.to_thread(stream.read, 256 * 1024):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        path.unlink(missing_ok=True)


async def stream(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    await response.write(b"retry: 1000\n: connected\n\n")
    async with hub.subscribe() as queue:
        while True:
            try:
                line = await asyncio.wait_for(queue.get(), HEARTBEAT)
            except asyncio.TimeoutError:
                await response.write(b": still here\n\n")
                continue
            if line is None:
                break
            await response.write(f"event: callback\ndata: {line}\n\n".encode())
    return response


def build_app(
    reader: StoreReader, options: InspectorOptions, guard: Guard, hub: Hub
) -> web.Application:
    app = web.Application(middlewares=[guard.middleware])
    app[GUARD] = guard
    app[READER] = reader
    app[HUB] = hub
    app[OPTIONS] = options
    app.on_response_prepare.append(add_security_headers)
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/meta", meta)
    app.router.add_get("/api/events", list_events)
    app.router.add_get("/api/events/{id}", one_event)
    app.router.add_post("/api/events/{id}/replay", replay)
    app.router.add_get("/api/sessions", sessions)
    app.router.add_get("/api/export", download)
    app.router.add_get("/api/stream", stream)
    return app


async def serve_inspector(store_path: Path, options: InspectorOptions) -> RunningInspector:
    """Bind and serve; the returned handle's `sinks` go to this process's listener (when live)."""
    reader = StoreReader(store_path)
    hub = Hub()
    assert options.token is not None
    guard = Guard(options.token, options.host, options.port)
    runner = web.AppRunner(
        build_app(reader, options, guard, hub),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=1.0,
    )
    port = await bind(runner, options.host, options.port, "cannot serve the inspector", "--ui-port")
    guard.port = port  # the Host rule needs the real port when 0 was asked
    host = options.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    base = http_base(shown, port)
    handle = RunningInspector(
        url=f"{base}/?token={options.token}",
        base=base,
        hub=hub,
        sinks=list(sinks(hub)) if options.live else [],
        _runner=runner,
    )
    if not options.live:
        handle._tasks.append(asyncio.get_running_loop().create_task(watch_store(reader, hub)))
    return handle
