"""To screen: from a callback received to its NDJSON line on `verifycli listen --json`'s stdout,
at a fixed rate, read here through a pipe as a user's `| jq` would read it.

    python benchmarks/bench_screen.py [--quick] [--rate 1000]

The figure is the line's read time minus its `received_at` (both this machine's clock); the
time from the request's send to the line is shown beside it. The aiohttp client sends here
whatever --loader says elsewhere: each line must be matched to the request that caused it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import datetime

from _common import (
    Row,
    aiohttp_load,
    callbacks,
    parser,
    percentile,
    report,
    start_listener,
    verdict,
    workspace,
)

COMMAND = "python benchmarks/bench_screen.py"
READ_GRACE = 10.0  # after the last answer, how long the last lines may take


async def measure(
    pipe: object, url: str, count: int, rate: float, seconds: float
) -> tuple[list[float], list[float], int]:
    """Send `count` callbacks at `rate` while reading the listener's stdout line by line."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    batch = callbacks(url, count)
    index = {cb.attempt_uuid: i for i, cb in enumerate(batch)}
    read_at: dict[int, tuple[float, float, str]] = {}  # index -> perf_counter, wall, received_at

    async def read_lines() -> None:
        while len(read_at) < count:
            line = await reader.readline()
            if not line:
                return
            perf, wall = time.perf_counter(), time.time()
            record = json.loads(line)
            i = index.get((record.get("fields") or {}).get("AttemptUUID"))
            if i is not None:
                read_at[i] = (perf, wall, record["received_at"])

    reading = asyncio.ensure_future(read_lines())
    load, _ = await aiohttp_load(url, batch, 8, count, seconds, rate)
    try:
        await asyncio.wait_for(reading, READ_GRACE)
    except asyncio.TimeoutError:
        pass
    to_line = [
        (wall - datetime.fromisoformat(received).timestamp()) * 1000
        for _, wall, received in read_at.values()
    ]
    from_send = [(perf - load.sent_at[i]) * 1000 for i, (perf, _, _) in read_at.items()]
    return to_line, from_send, load.ok


def main(argv: list[str] | None = None) -> list[Row]:
    parse = parser(__doc__.splitlines()[0])
    parse.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parse.add_argument("--seconds", type=float, default=10.0)
    args = parse.parse_args(argv)
    if args.quick:
        args.rate, args.seconds = 200.0, 0.5
    count = int(args.rate * args.seconds)

    with workspace() as scratch:
        listener = start_listener(scratch / "screen.sqlite3", scratch, stdout=subprocess.PIPE)
        try:
            to_line, from_send, ok = asyncio.run(
                measure(listener.proc.stdout, listener.url, count, args.rate, args.seconds + 30)
            )
        finally:
            listener.stop()

    p50, p99 = percentile(to_line, 50), percentile(to_line, 99)
    rows = [
        Row(
            "to screen",
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms",
            "-",
            "-",
            "p99 < 50 ms",
            "-",
            verdict(bool(to_line) and p99 < 50 and len(to_line) == ok),
            COMMAND,
        )
    ]
    report(
        "to screen",
        rows,
        {
            "load": f"{count:,} callbacks at {args.rate:g} req/s (aiohttp client), 8 connections",
            "lines": f"{len(to_line):,} NDJSON lines read for {ok:,} 2xx answers",
            "send->line": f"p50 {percentile(from_send, 50):.2f} ms, "
            f"p99 {percentile(from_send, 99):.2f} ms",
        },
        args.json_out,
    )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
