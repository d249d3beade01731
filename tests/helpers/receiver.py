"""A real HTTP server on 127.0.0.1, in its own thread and loop, that keeps every request raw.

It stands for the user's app: forward, replay and trigger send to it, and tests compare what
it got, byte for byte, with what was sent or stored.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web


@dataclass(frozen=True)
class Received:
    """One request as it arrived: the raw request target, headers in order, the body bytes."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None

    def header_names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}


class Receiver:
    """Answers `status` with `body`; with `hold`, answers only after release()."""

    def __init__(self, status: int = 200, body: str = "ok\n", hold: bool = False) -> None:
        self.status = status
        self.body = body
        self.hold = hold
        self.requests: list[Received] = []
        self._seen = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.url = ""

    def __enter__(self) -> Receiver:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> str:
        # Created here so that it belongs to this thread's loop.
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        got = Received(
            request.method,
            request.raw_path,
            tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers),
            body,
        )
        with self._seen:
            self.requests.append(got)
            self._seen.notify_all()
        if self.hold:
            await self._release.wait()
        return web.Response(status=self.status, text=self.body)

    def release(self) -> None:
        """Let held requests (and later ones) be answered."""
        self.hold = False
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._release.set)

    def wait(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` requests, waiting for them up to `timeout` seconds."""
        with self._seen:
            if not self._seen.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"got {len(self.requests)} requests, expected {count}")
            return list(self.requests[:count])
