"""Serving the inspector beside a flow (`listen/send/demo --ui`) or alone (`verifycli ui`)."""

from __future__ import annotations

import asyncio
import contextlib
import webbrowser
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from verifycli.inspector.app import DEFAULT_PORT, InspectorOptions, serve_inspector
from verifycli.listener import Sink

T = TypeVar("T")


@dataclass
class UiRequest:
    """The flags --ui, --ui-host, --ui-port and --open of a long-running command."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    open_browser: bool = False
    token: str | None = None  # VERIFYCLI_UI_TOKEN

    def options(
        self, replay_to: str | None = None, listener_port: int | None = None, live: bool = True
    ) -> InspectorOptions:
        return InspectorOptions(
            host=self.host,
            port=self.port,
            token=self.token,
            replay_to=replay_to,
            live=live,
            listener_port=listener_port,
        )


Announce = Callable[[str, bool], None]  # (URL with token, bound beyond loopback)


@contextlib.asynccontextmanager
async def inspecting(
    store_path: Path,
    options: InspectorOptions,
    announce: Announce,
    open_browser: bool = False,
) -> AsyncIterator[list[Sink]]:
    """Serve the inspector for the duration of the block; yields the sinks for the listener."""
    handle = await serve_inspector(store_path, options)
    try:
        announce(handle.url, options.exposed)
        if open_browser:
            await asyncio.to_thread(webbrowser.open, handle.url)
        yield handle.sinks
    finally:
        await handle.stop()


async def beside(
    ui: UiRequest | None,
    store_path: Path,
    sinks: list[Sink],
    announce: Announce,
    flow: Callable[[], Awaitable[T]],
    replay_to: str | None = None,
    listener_port: int | None = None,
) -> T:
    """Run `flow` with the inspector up beside it when asked (`ui`), its sinks added to `sinks`."""
    if ui is None:
        return await flow()
    options = ui.options(replay_to, listener_port or None)
    async with inspecting(store_path, options, announce, ui.open_browser) as extra:
        sinks.extend(extra)
        return await flow()


async def alone(ui: UiRequest, store_path: Path, announce: Announce, stop: asyncio.Event) -> None:
    """`verifycli ui`: the stored history, with new rows as another process stores them."""
    async with inspecting(store_path, ui.options(live=False), announce, ui.open_browser):
        await stop.wait()
