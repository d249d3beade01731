"""Memory: RSS of `verifycli listen --json` (store on) across 100,000 distinct signed callbacks,
against its RSS after the first 1,000.

    python benchmarks/bench_memory.py [--quick] [--callbacks 100000]

The aiohttp client sends them on 32 connections whatever --loader says elsewhere: this one
needs an exact count, not a duration.
"""

from __future__ import annotations

import asyncio
import sys
import time

from _common import (
    Load,
    Row,
    aiohttp_load,
    callbacks,
    parser,
    report,
    start_listener,
    stored_ids,
    verdict,
    workspace,
)

COMMAND = "python benchmarks/bench_memory.py"
FIRST = 1_000
STEPS = 10  # RSS samples between the first 1,000 and the end
DEADLINE = 900.0  # seconds for the whole load, whatever the count


def main(argv: list[str] | None = None) -> list[Row]:
    parse = parser(__doc__.splitlines()[0])
    parse.add_argument("--callbacks", type=int, default=100_000)
    parse.add_argument("--connections", type=int, default=32)
    args = parse.parse_args(argv)
    if args.quick:
        args.callbacks = 2 * FIRST
    total = max(args.callbacks, 2 * FIRST)

    with workspace() as scratch:
        store = scratch / "memory.sqlite3"
        listener = start_listener(store, scratch)
        try:
            started_mb = listener.rss_mb()
            batch = callbacks(listener.url, total)
            sent = Load("aiohttp")
            samples: list[tuple[int, float]] = []
            deadline = time.monotonic() + DEADLINE
            step = (total - FIRST) // STEPS or 1
            bounds = [0, FIRST, *range(FIRST + step, total, step), total]
            bounds = sorted(set(bounds))
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                load, _ = asyncio.run(
                    aiohttp_load(listener.url, batch[lo:hi], args.connections, hi - lo, left, None)
                )
                sent.add(load)
                samples.append((sent.ok, listener.rss_mb()))
        finally:
            listener.stop()
        stored = len(stored_ids(store))

    first_mb = samples[0][1]
    end_mb = samples[-1][1]
    peak_mb = max(mb for _, mb in samples)
    growth = end_mb - first_mb
    rows = [
        Row(
            "memory",
            f"RSS {end_mb:.0f} MB after {sent.ok:,} callbacks (peak {peak_mb:.0f} MB), "
            f"growth {growth:+.1f} MB",
            f"{first_mb:.0f} MB after the first {FIRST:,}",
            "-",
            "growth < 50 MB",
            "-",
            verdict(growth < 50 and sent.ok == total),
            COMMAND,
        )
    ]
    report(
        "memory",
        rows,
        {
            "load": f"{total:,} distinct signed callbacks on {args.connections} connections "
            f"(aiohttp client), {sent.rps:,.0f} req/s",
            "rss": f"{started_mb:.0f} MB idle; "
            + ", ".join(f"{mb:.0f} MB@{n:,}" for n, mb in samples),
            "stored": f"{stored:,} events, {sent.ok:,} 2xx answers, {sent.errors} errors",
        },
        args.json_out,
    )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
