"""The baseline: a bare aiohttp handler that reads the form and answers 200, nothing more.

Run by the benchmarks as a subprocess, like `verifycli listen`; prints its URL on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    await request.post()
    return web.Response(text="ok\n")


async def serve(port: int) -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    # The same server settings as the listener: no access log, our own signal handling.
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"bare aiohttp handler on http://127.0.0.1:{runner.addresses[0][1]}", file=sys.stderr)
    sys.stderr.flush()
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
