"""The long-running flows behind `listen`, `send` and `demo`: wire the parts, wait, tear down."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from verifycli.config import Settings
from verifycli.errors import ExitCode
from verifycli.listener import Listener, ListenOptions, Sink
from verifycli.signature import Checker
from verifycli.store import EventStore

if TYPE_CHECKING:
    from verifycli.tunnel import Tunnel

TUNNEL_WATCH_SECONDS = 1.0


@dataclass
class Where:
    """How the outside world reaches the listener: the flags --public-url / --no-tunnel."""

    public_url: str | None = None
    no_tunnel: bool = False
    ngrok_path: str | None = None
    ngrok_config: str | None = None

    def __post_init__(self) -> None:
        if self.public_url is not None:
            from verifycli.tunnel import check_public_url

            self.public_url = check_public_url(self.public_url)


@dataclass
class Running:
    """A listener that is up, with its tunnel and store, for a flow to use."""

    listener: Listener
    public_url: str
    tunnel_kind: str
    tunnel_died: asyncio.Event = field(default_factory=asyncio.Event)


def checker_for(settings: Settings) -> Checker:
    token = settings.auth_token.reveal() if settings.auth_token else None
    main = settings.main_auth_token.reveal() if settings.main_auth_token else None
    return Checker(token, main)


@contextlib.asynccontextmanager
async def running_listener(
    settings: Settings, options: ListenOptions, where: Where, sinks: list[Sink]
) -> AsyncIterator[Running]:
    """Open the store, start the listener, open the tunnel; close all three on the way out."""
    from verifycli.tunnel import open_tunnel

    store = EventStore(settings.store_path)
    listener = Listener(store, checker_for(settings), options, sinks=sinks)
    try:
        local = await listener.start()
        port = int(local.rsplit(":", 1)[1])
        tunnel = await asyncio.to_thread(
            open_tunnel,
            local_host=options.host,
            local_port=port,
            public_url=where.public_url,
            no_tunnel=where.no_tunnel,
            ngrok_authtoken=settings.ngrok_authtoken,
            ngrok_path=where.ngrok_path,
            config_path=where.ngrok_config,
        )
        try:
            if tunnel.kind != "none":
                listener.public_url = tunnel.public_url
            running = Running(listener, listener.base_url, tunnel.kind)
            watch = asyncio.get_running_loop().create_task(_watch_tunnel(tunnel, running, sinks))
            try:
                yield running
            finally:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
        finally:
            await asyncio.to_thread(tunnel.close)
    finally:
        await listener.stop()
        store.close()


async def _watch_tunnel(tunnel: Tunnel, running: Running, sinks: list[Sink]) -> None:
    if tunnel.kind != "ngrok":
        return
    while True:
        await asyncio.sleep(TUNNEL_WATCH_SECONDS)
        if not tunnel.alive():
            running.tunnel_died.set()
            for sink in sinks:
                sink.warn(
                    "the ngrok tunnel died: Plivo can no longer reach this listener; "
                    "local capture goes on"
                )
            return


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM set `stop` instead of killing the loop mid-write."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield None
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def run_listen(
    settings: Settings,
    options: ListenOptions,
    where: Where,
    sinks: list[Sink],
    on_ready: Callable[[Running], None] | None = None,
    stop: asyncio.Event | None = None,
) -> ExitCode:
    """Serve until Ctrl-C or SIGTERM; every answered callback is on disk when this returns."""
    stop = stop or asyncio.Event()
    with stop_on_signals(stop):
        async with running_listener(settings, options, where, sinks) as running:
            if on_ready is not None:
                on_ready(running)
            await stop.wait()
    return ExitCode.OK
