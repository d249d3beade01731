"""Live updates for connected browsers: the listener's sinks feed a hub, the hub feeds one
Server-Sent Events queue per open page."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from verifycli.callbacks import CallbackEvent
from verifycli.store import Filters, StoreReader

QUEUE_MAX = 1000  # a page this far behind is cut off; its EventSource reconnects and reloads
_CLOSE = None


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """A record cut to what the list shows: the terminal table's columns and what filters need."""
    sig = record.get("signature") or {}
    return {
        "id": record["id"],
        "received_at": record["received_at"],
        "method": record["method"],
        "path": record["path"],
        "session_uuid": record.get("session_uuid"),
        "attempt_sequence": record.get("attempt_sequence"),
        "channel": record.get("channel"),
        "channel_status": record.get("channel_status"),
        "session_status": record.get("session_status"),
        "channel_error_code": record.get("channel_error_code"),
        "signature": {"verdict": sig.get("verdict"), "scheme": sig.get("scheme")},
        "retry_of": record.get("retry_of"),
        "response_status": record.get("response_status"),
        "forward": record.get("forward"),
    }


class Hub:
    """Fans every new or updated event out to the pages that are open."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[str | None]] = set()

    @property
    def watched(self) -> bool:
        """Whether any page is open: with none, a callback costs the hub nothing."""
        return bool(self._queues)

    def push(self, record: dict[str, Any]) -> None:
        line = json.dumps(summary(record), ensure_ascii=False, separators=(",", ":"))
        for queue in list(self._queues):
            try:
                queue.put_nowait(line)
            except asyncio.QueueFull:
                self._queues.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(_CLOSE)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[str | None]]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_MAX)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        """End every open stream, so that the server can stop without waiting for them."""
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(_CLOSE)
        self._queues.clear()


class _Now:
    """Gets each event as soon as it is stored."""

    whole = False

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def event(self, event: CallbackEvent) -> None:
        if self.hub.watched:
            self.hub.push(event.to_record())

    def warn(self, message: str) -> None:
        """Warnings are the terminal's; the page shows events."""


class _Whole(_Now):
    """Gets each event again once its forward is known, so that the outcome fills in.

    Without a forwarder the listener gives every sink the event once; this one then has
    nothing new to say (no forward), and stays quiet.
    """

    whole = True

    def event(self, event: CallbackEvent) -> None:
        if event.forward is not None and self.hub.watched:
            self.hub.push(event.to_record())


def sinks(hub: Hub) -> list[_Now]:
    """The pair of listener sinks that keep `hub` up to date."""
    return [_Now(hub), _Whole(hub)]


def _newer(reader: StoreReader, last: int) -> list[dict[str, Any]]:
    return list(reader.iter_records(Filters(after=last)))


async def watch_store(reader: StoreReader, hub: Hub, every: float = 0.5) -> None:
    """For `verifycli ui` beside another process's listener: push events as they are stored."""
    last = 0
    for line in reader.iter_json(limit=1):
        last = json.loads(line)["id"]
    while True:
        await asyncio.sleep(every)
        fresh = await asyncio.to_thread(_newer, reader, last)
        for record in fresh:
            hub.push(record)
            last = record["id"]
