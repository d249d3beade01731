"""Binding an aiohttp app inside our own event loop, or saying in one line which flag to change."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from verifycli.errors import ConfigError


async def bind(
    runner: web.AppRunner,
    host: str,
    port: int,
    doing: str,
    flag: str,
    *,
    backlog: int = 128,
    set_up: Callable[[web.AppRunner], None] | None = None,
) -> int:
    """Set up `runner` and serve it on host:port; the bound port (the real one when 0 was asked).

    `set_up` sees the runner after its set-up, before the first connection can arrive. A refused
    bind (in use, no such address) is a ConfigError naming `flag` to change.
    """
    await runner.setup()
    if set_up is not None:
        set_up(runner)
    site = web.TCPSite(runner, host, port, backlog=backlog)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"{doing} on {host}:{port}: {exc.strerror}; pick another {flag} (0 chooses a free one)"
        ) from None
    addresses = runner.addresses
    return int(addresses[0][1]) if addresses else port
