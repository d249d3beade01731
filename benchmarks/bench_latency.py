"""Ack latency: p50 and p99 of the answer at a fixed rate (1,000 req/s), `verifycli listen --json`
(store on, signatures checked) against the minimal correct listener (the same durable work, none
of the features) and the bare aiohttp handler at the same rate, same run.

    python benchmarks/bench_latency.py [--quick] [--loader auto|wrk|aiohttp] [--rate 1000]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from _common import (
    Load,
    Row,
    add_loader_option,
    callbacks,
    choose_loader,
    loader_note,
    parser,
    percentile,
    report,
    run_load,
    start_bare,
    start_listener,
    start_minimal,
    verdict,
    workspace,
)

COMMAND = "python benchmarks/bench_latency.py"


def fsync_ms(folder: Path, times: int) -> tuple[float, float]:
    """p50 and p99 of appending 4 KiB and fsyncing, in `folder`: what a durable commit waits on
    at the least, on this disk, now."""
    taken = []
    fd = os.open(folder / "fsync.probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(times):
            started = time.perf_counter()
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
            taken.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
    return percentile(taken, 50), percentile(taken, 99)


def main(argv: list[str] | None = None) -> list[Row]:
    parse = parser(__doc__.splitlines()[0])
    add_loader_option(parse)
    parse.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parse.add_argument("--seconds", type=float, default=10.0, help="length of each server's run")
    parse.add_argument("--connections", type=int, default=16)
    args = parse.parse_args(argv)
    if args.quick:
        args.rate, args.seconds = 200.0, 1.0
    loader = choose_loader(args.loader)
    count = int(args.rate * args.seconds)

    with workspace() as scratch:
        bare = start_bare(scratch)
        started = [bare]
        try:
            listener = start_listener(scratch / "latency.sqlite3", scratch)
            started.append(listener)
            minimal = start_minimal(scratch / "minimal.sqlite3", scratch, listener.url)
            started.append(minimal)
        except BaseException:
            for server in started:
                server.stop()
            raise
        try:
            warm = max(10, count // 10)
            batch = callbacks(listener.url, warm + count)
            got: dict[str, Load] = {}
            for server in (bare, minimal, listener):
                # A short warm-up at the same rate, then the measured run on fresh callbacks.
                for part, seconds in (
                    (batch[:warm], max(1.0, args.seconds / 10)),
                    (batch[warm:], args.seconds),
                ):
                    load = run_load(
                        loader,
                        server.url,
                        part,
                        connections=args.connections,
                        seconds=seconds,
                        count=len(part),
                        rate=args.rate,
                        scratch=scratch,
                    )
                got[server.name] = load
            disk = fsync_ms(scratch, 50 if args.quick else 1000)
        finally:
            for server in started:
                server.stop()

    ours, least, theirs = got["verifycli"], got["minimal"], got["bare"]
    ratio = ours.p99_ms / least.p99_ms if least.p99_ms else 0.0
    rows = [
        Row(
            "ack latency",
            f"p50 {ours.p50_ms:.2f} ms, p99 {ours.p99_ms:.2f} ms",
            f"minimal listener p50 {least.p50_ms:.2f} ms, p99 {least.p99_ms:.2f} ms "
            f"(bare p99 {theirs.p99_ms:.2f} ms)",
            f"p99 {ratio:.2f}x",
            "p99 <= 1.5x",
            "-",
            verdict(ratio <= 1.5),
            COMMAND,
        )
    ]
    report(
        "ack latency",
        rows,
        {
            "loader": loader_note(loader),
            "load": f"{args.rate:g} req/s asked for {args.seconds:g} s per server on "
            f"{args.connections} connections",
            "achieved": ", ".join(
                f"{name} {load.rps:,.0f} req/s ({load.ok:,} 2xx)" for name, load in got.items()
            ),
            "errors": ", ".join(f"{name} {load.errors}" for name, load in got.items()),
            "disk": f"4 KiB append + fsync in the store's folder: p50 {disk[0]:.2f} ms, "
            f"p99 {disk[1]:.2f} ms",
        },
        args.json_out,
    )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
