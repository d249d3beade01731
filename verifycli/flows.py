"""The long-running flows behind `listen`, `send` and `demo`: wire the parts, wait, tear down."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from verifycli.config import Settings
from verifycli.errors import ExitCode
from verifycli.listener import Listener, ListenOptions, Sink
from verifycli.signature import Checker
from verifycli.store import EventStore
from verifycli.tunnel import TunnelSpec

if TYPE_CHECKING:
    from verifycli.inspector.run import UiRequest
    from verifycli.simulator import Event, ServeSpec
    from verifycli.tunnel import Tunnel

# The inspector's URL (token included) and whether it is bound beyond loopback.
Announce = Callable[[str, bool], None]

T = TypeVar("T")
TUNNEL_WATCH_SECONDS = 1.0


@dataclass(frozen=True)
class ListenSpec:
    """Where and how to listen: the listener's options and the way the outside gets in."""

    options: ListenOptions = field(default_factory=lambda: ListenOptions(port=0))
    tunnel: TunnelSpec = field(default_factory=lambda: TunnelSpec("none"))
    inspector: UiRequest | None = None  # --ui: the browser inspector beside the listener


@dataclass
class Running:
    """A listener that is up, with its tunnel and store, for a flow to use."""

    listener: Listener
    tunnel: Tunnel
    tunnel_died: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        """What senders call: the public URL, or the local one without a tunnel."""
        return self.listener.base_url

    @property
    def public_url(self) -> str | None:
        """The tunnel's URL; None when listening locally only."""
        return None if self.tunnel.kind == "none" else self.tunnel.public_url


def checker_for(settings: Settings) -> Checker:
    token = settings.auth_token.reveal() if settings.auth_token else None
    main = settings.main_auth_token.reveal() if settings.main_auth_token else None
    return Checker(token, main)


@contextlib.asynccontextmanager
async def running_listener(
    settings: Settings, spec: ListenSpec, sinks: list[Sink], announce: Announce | None = None
) -> AsyncIterator[Running]:
    """Open the store, start the listener, open the tunnel (and the inspector with --ui);
    close them all on the way out."""
    async with contextlib.AsyncExitStack() as stack:
        if spec.inspector is not None:
            sinks = [*sinks, *await stack.enter_async_context(_inspector(settings, spec, announce))]
        async with _listening(settings, spec, sinks) as running:
            yield running


def _inspector(
    settings: Settings, spec: ListenSpec, announce: Announce | None
) -> contextlib.AbstractAsyncContextManager[list[Sink]]:
    from verifycli.inspector.run import inspecting

    assert spec.inspector is not None
    # A fixed --port lets the inspector refuse to replay into the listener itself.
    port = spec.options.port or None
    options = spec.inspector.options(spec.options.forward_to, port)
    return inspecting(
        settings.store_path, options, announce or _ignore, spec.inspector.open_browser
    )


def _ignore(url: str, exposed: bool) -> None:
    """No view to tell where the inspector is."""


@contextlib.asynccontextmanager
async def _listening(
    settings: Settings, spec: ListenSpec, sinks: list[Sink]
) -> AsyncIterator[Running]:
    store = EventStore(settings.store_path)
    listener = Listener(store, checker_for(settings), spec.options, sinks=sinks)
    try:
        await listener.start()
        tunnel = await asyncio.to_thread(
            spec.tunnel.open, spec.options.host, listener.port, settings.ngrok_authtoken
        )
        try:
            if tunnel.kind != "none":
                listener.public_url = tunnel.public_url
            running = Running(listener, tunnel)
            watch = asyncio.get_running_loop().create_task(_watch_tunnel(running, sinks))
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


async def _watch_tunnel(running: Running, sinks: list[Sink]) -> None:
    if running.tunnel.kind != "ngrok":
        return
    while True:
        await asyncio.sleep(TUNNEL_WATCH_SECONDS)
        if not running.tunnel.alive():
            running.tunnel_died.set()
            for sink in sinks:
                sink.warn(
                    "the ngrok tunnel died: Plivo can no longer reach this listener; "
                    "local capture goes on"
                )
            return


def run_until_signal(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` in a new event loop; Ctrl-C or SIGTERM cancels it and raises KeyboardInterrupt.

    Cancelling, rather than dying, lets every `finally` run: the tunnel closes, the ngrok agent
    ends and the store is flushed whichever signal arrives. A second signal during that clean-up
    is ignored, so it cannot cut a store write in half.
    """

    async def guarded() -> T:
        task = asyncio.ensure_future(work)
        loop = asyncio.get_running_loop()
        signalled: list[signal.Signals] = []

        def stop(sig: signal.Signals) -> None:
            if not signalled:
                signalled.append(sig)
                task.cancel()

        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop, sig)
                installed.append(sig)
        try:
            return await task
        except asyncio.CancelledError:
            if signalled:
                raise KeyboardInterrupt from None
            raise
        except Exception:
            # Ctrl-C reaches the ngrok agent too, which then dies mid-start: its error is the
            # stop that was asked for, not a failure. One turn of the loop lets a signal that
            # came with it be seen.
            await asyncio.sleep(0)
            if signalled:
                raise KeyboardInterrupt from None
            raise
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    return asyncio.run(guarded())


async def serve(
    settings: Settings,
    spec: ListenSpec,
    sinks: list[Sink],
    on_ready: Callable[[Running], None] | None = None,
    announce: Announce | None = None,
    stop: asyncio.Event | None = None,
) -> ExitCode:
    """Serve until `stop` is set or the task is cancelled; every answered callback is on disk."""
    stop = stop or asyncio.Event()
    async with running_listener(settings, spec, sinks, announce) as running:
        if on_ready is not None:
            on_ready(running)
        await stop.wait()
    return ExitCode.OK


def run_listen(
    settings: Settings,
    spec: ListenSpec,
    sinks: list[Sink],
    on_ready: Callable[[Running], None] | None = None,
    announce: Announce | None = None,
) -> ExitCode:
    """`listen`: serve until Ctrl-C or SIGTERM, which end it normally (exit 0)."""
    try:
        return run_until_signal(serve(settings, spec, sinks, on_ready, announce))
    except KeyboardInterrupt:
        return ExitCode.OK


def run_inspector(settings: Settings, request: UiRequest, announce: Announce) -> ExitCode:
    """`verifycli ui`: the inspector over the stored history until Ctrl-C or SIGTERM (exit 0)."""
    from verifycli.inspector.run import alone
    from verifycli.store import StoreReader

    StoreReader(settings.store_path)  # a foreign or newer file is refused before serving

    async def until_stopped() -> ExitCode:
        await alone(request, settings.store_path, announce, asyncio.Event())
        return ExitCode.OK

    try:
        return run_until_signal(until_stopped())
    except KeyboardInterrupt:
        return ExitCode.OK


def simulator_spec(
    settings: Settings,
    auth_id: str | None,
    auth_token: str | None,
    main_auth_token: str | None,
    **flags: Any,
) -> ServeSpec:
    """`verifycli simulator`'s flags over the settings: both credentials, or neither (demo)."""
    from verifycli.config import check_auth_id
    from verifycli.errors import ConfigError
    from verifycli.simulator import DEMO_AUTH_ID, DEMO_AUTH_TOKEN, ServeSpec

    given_id = auth_id or settings.auth_id
    given_token = auth_token or (settings.auth_token.reveal() if settings.auth_token else None)
    main = main_auth_token or (
        settings.main_auth_token.reveal() if settings.main_auth_token else None
    )
    if given_id is None and given_token is None:
        given_id, given_token = DEMO_AUTH_ID, DEMO_AUTH_TOKEN
    if given_id is None or given_token is None:
        missing = (
            "--auth-id (PLIVO_AUTH_ID)" if given_id is None else "--auth-token (PLIVO_AUTH_TOKEN)"
        )
        raise ConfigError(f"{missing} is not set: give both, or neither for the demo account")
    return ServeSpec(check_auth_id(given_id), given_token, main, **flags)


def run_simulator(spec: ServeSpec, shown: Callable[[Event], None]) -> ExitCode:
    """`verifycli simulator`: serve until Ctrl-C or SIGTERM (exit 0)."""
    from verifycli.simulator import serve_spec

    async def until_stopped() -> ExitCode:
        await serve_spec(spec, shown)
        return ExitCode.OK

    try:
        return run_until_signal(until_stopped())
    except KeyboardInterrupt:
        return ExitCode.OK
