"""A real listener on a thread of its own, for synchronous clients, and a raw-socket client that
counts silence as a failure."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from pathlib import Path

import aiohttp

from helpers.env import AUTH_TOKEN
from verifycli.listener import Listener, ListenOptions
from verifycli.signature import Checker, signed_headers
from verifycli.store import EventStore

# The body cap of the shared `served` listener (conftest.py): small, so that tests reach it.
MAX_BODY = 16 * 1024

FIELDS = {"SessionUUID": "s-1", "ChannelStatus": "sent", "ChannelErrorCode": ""}


class ThreadedListener:
    """A real listener on its own event loop in a thread, for synchronous clients."""

    def __init__(self, store_path: Path, options: ListenOptions) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = EventStore(store_path)
        self.listener = Listener(self.store, Checker(AUTH_TOKEN), options)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        base = asyncio.run_coroutine_threadsafe(self.listener.start(), self.loop).result(10)
        self.port = int(base.rsplit(":", 1)[1])

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.listener.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.store.close()

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            return conn.getresponse().status
        finally:
            conn.close()

    def valid_callback_status(self) -> int:
        url = f"http://127.0.0.1:{self.port}/verify/callback"
        body = "&".join(f"{k}={v}" for k, v in FIELDS.items()).encode()
        headers = signed_headers("POST", url, FIELDS, AUTH_TOKEN)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return self.request("POST", "/verify/callback", body, headers)


async def post(
    base: str, headers: dict[str, str], data: dict[str, str] | bytes = FIELDS, path: str = "/cb"
) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.post(base + path, data=data, headers=headers) as response:
            return response.status


def ask(port: int, raw: bytes, timeout: float = 3.0) -> bytes:
    """Send raw bytes, our side left open, and read the answer up to the end of its head.

    A stall of `timeout` seconds or a close without a status line fails the test: either would
    hide what the listener did with the request (half-closing our side made it close silently)."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading and answered: read that answer
        try:
            while b"\r\n\r\n" not in b"".join(chunks):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            raise AssertionError(f"no answer within {timeout} s to {raw[:60]!r}") from None
        except ConnectionResetError:
            pass  # judged below by what came before the reset
    answer = b"".join(chunks)
    if not answer.startswith(b"HTTP/"):
        raise AssertionError(f"closed without a status line ({answer[:60]!r}) for {raw[:60]!r}")
    return answer


def status_of(answer: bytes) -> int:
    """The status code of an answer `ask` returned."""
    return int(answer.split(b" ", 2)[1])
