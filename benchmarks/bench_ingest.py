"""Ingest and no loss: V3-signed callbacks on 32 connections to `verifycli listen --json` (stdout
to /dev/null, store on) against the minimal correct listener (`minimal_listener.py`: the same
durable work, none of the features) and a bare aiohttp handler, in rotating rounds of the same
run; then every event id a 2xx answer named must be in the store.

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
    start_minimal,
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
        started = [bare]
        try:
            listener = start_listener(store, scratch)
            started.append(listener)
            minimal = start_minimal(scratch / "minimal.sqlite3", scratch, listener.url)
            started.append(minimal)
        except BaseException:
            for server in started:
                server.stop()
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
                if total is not None or server is not listener:
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
            hit(minimal, warm, None)
            hit(listener, warm, answered)  # warm-up callbacks are stored too: they count
            rates: dict[str, list[float]] = {"bare": [], "minimal": [], "verifycli": []}
            servers = [bare, minimal, listener]
            for round_ in range(args.rounds):
                # Rotate the order so no server always runs first (or last) in a round.
                k = round_ % len(servers)
                for server in servers[k:] + servers[:k]:
                    total = answered if server is listener else None
                    rates[server.name].append(hit(server, args.seconds, total))
        finally:
            bare.stop()
            minimal.stop()
            code = listener.stop()
        stored = stored_ids(store)

    ours, least, theirs = (median(rates[n]) for n in ("verifycli", "minimal", "bare"))
    ratio = ours / least if least else 0.0
    bare_ratio = ours / theirs if theirs else 0.0
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
            f"minimal listener {least:,.0f} req/s",
            f"{ratio:.2f}x",
            ">= 0.85x",
            ">= 0.7x",
            verdict(ratio >= 0.85, ratio >= 0.7),
            COMMAND,
        ),
        Row(
            "ingest vs bare",
            f"{ours:,.0f} req/s",
            f"bare aiohttp {theirs:,.0f} req/s",
            f"{bare_ratio:.2f}x",
            "-",
            "-",
            "for reference",
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
            **{
                name: ", ".join(f"{r:,.0f}" for r in rates[name]) + " req/s"
                for name in ("verifycli", "minimal", "bare")
            },
            "cpu/request": f"microseconds: verifycli {cpu.get('verifycli')} (other threads: the "
            f"store's writer and checkpointer); minimal {cpu.get('minimal')}; "
            f"bare {cpu.get('bare')}",
            "errors": f"{answered.errors} non-2xx or socket errors from verifycli",
        },
        args.json_out,
    )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
