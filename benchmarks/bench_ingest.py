"""Ingest and no loss: V3-signed callbacks on 32 connections to `verifycli listen --json` (stdout
to /dev/null, store on) against a bare aiohttp handler, in alternating rounds of the same run;
then every event id a 2xx answer named must be in the store.

    python benchmarks/bench_ingest.py [--quick] [--loader auto|wrk|aiohttp]
"""

from __future__ import annotations

import sys

from _common import (
    Load,
    Row,
    Server,
    add_loader_option,
    callbacks,
    choose_loader,
    loader_note,
    median,
    parser,
    report,
    run_load,
    start_bare,
    start_listener,
    stored_ids,
    verdict,
    workspace,
)

COMMAND = "python benchmarks/bench_ingest.py"


def main(argv: list[str] | None = None) -> list[Row]:
    parse = parser(__doc__.splitlines()[0])
    add_loader_option(parse)
    parse.add_argument("--connections", type=int, default=32)
    parse.add_argument("--seconds", type=float, default=10.0, help="length of one measured run")
    parse.add_argument("--rounds", type=int, default=3, help="measured runs of each server")
    parse.add_argument("--distinct", type=int, default=20_000, help="pre-signed callbacks")
    args = parse.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.distinct = 1.0, 1, 200
    loader = choose_loader(args.loader)
    # The aiohttp client stops at a count too; wrk stops at its duration only.
    count = 300 if args.quick else 1_000_000

    with workspace() as scratch:
        store = scratch / "ingest.sqlite3"
        bare = start_bare(scratch)
        try:
            listener = start_listener(store, scratch)
        except BaseException:
            bare.stop()
            raise
        try:
            batch = callbacks(listener.url, args.distinct)

            def hit(server: Server, seconds: float, total: Load | None) -> float:
                before = server.cpu_seconds()
                load = run_load(
                    loader,
                    server.url,
                    batch,
                    connections=args.connections,
                    seconds=seconds,
                    count=count,
                    scratch=scratch,
                )
                if total is not None:
                    total.add(load)
                if total is not None or server is bare:
                    after = server.cpu_seconds()
                    mine = used.setdefault(server.name, {})
                    for thread, seconds_used in after.items():
                        spent = seconds_used - before.get(thread, 0.0)
                        mine[thread] = mine.get(thread, 0.0) + spent
                    answers[server.name] = answers.get(server.name, 0) + load.ok
                return load.rps

            used: dict[str, dict[str, float]] = {}  # server -> thread -> CPU seconds
            answers: dict[str, int] = {}
            answered = Load(loader)
            warm = 0.3 if args.quick else 2.0
            hit(bare, warm, None)
            hit(listener, warm, answered)  # warm-up callbacks are stored too: they count
            rates: dict[str, list[float]] = {"bare": [], "verifycli": []}
            for round_ in range(args.rounds):
                order = (bare, listener) if round_ % 2 == 0 else (listener, bare)
                for server in order:
                    total = answered if server is listener else None
                    rates[server.name].append(hit(server, args.seconds, total))
        finally:
            bare.stop()
            code = listener.stop()
        stored = stored_ids(store)

    ours, theirs = median(rates["verifycli"]), median(rates["bare"])
    ratio = ours / theirs if theirs else 0.0
    missing = len(set(answered.ids) - stored)
    unread = len(stored) - len(answered.ids)
    no_loss = missing == 0 and code == 0 and answered.ok == len(answered.ids)
    if loader == "aiohttp":
        no_loss = no_loss and unread == 0
    cpu = {
        name: ", ".join(
            f"{thread} {seconds / max(1, answers[name]) * 1e6:.0f}"
            for thread, seconds in sorted(threads.items(), key=lambda kv: -kv[1])
            if seconds > 0
        )
        for name, threads in used.items()
    }
    rows = [
        Row(
            "ingest",
            f"{ours:,.0f} req/s",
            f"{theirs:,.0f} req/s",
            f"{ratio:.2f}x",
            ">= 0.8x",
            ">= 0.6x",
            verdict(ratio >= 0.8, ratio >= 0.6),
            COMMAND,
        ),
        Row(
            "no loss",
            f"{len(stored):,} stored; {answered.ok:,} 2xx answers, "
            f"{answered.ok - missing:,} of them stored",
            "-",
            "-",
            "equal",
            "equal",
            ("target met" if no_loss else "FLOOR MISSED")
            + (f" ({unread} more stored: in flight when wrk stopped)" if unread > 0 else ""),
            COMMAND,
        ),
    ]
    report(
        "ingest",
        rows,
        {
            "loader": loader_note(loader),
            "load": f"{args.connections} connections, {args.rounds} rounds of {args.seconds:g} s "
            f"per server, {args.distinct:,} distinct signed callbacks cycled",
            "verifycli": ", ".join(f"{r:,.0f}" for r in rates["verifycli"]) + " req/s",
            "bare": ", ".join(f"{r:,.0f}" for r in rates["bare"]) + " req/s",
            "cpu/request": f"microseconds: verifycli {cpu.get('verifycli')} (other threads: the "
            f"store's writer and checkpointer); bare {cpu.get('bare')}",
            "errors": f"{answered.errors} non-2xx or socket errors from verifycli",
        },
        args.json_out,
    )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
