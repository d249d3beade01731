"""Every benchmark in turn, then one table of their figures (markdown, as in the README).

python benchmarks/run_all.py [--quick] [--loader auto|wrk|aiohttp] [--json FILE]
"""

from __future__ import annotations

import json
import sys
import time

import bench_export
import bench_ingest
import bench_latency
import bench_memory
import bench_screen
import bench_startup
from _common import Row, add_loader_option, machine, parser

LOADED = (bench_ingest, bench_latency)  # the ones a --loader applies to
ALL = (bench_ingest, bench_latency, bench_screen, bench_startup, bench_export, bench_memory)


def table(rows: list[Row]) -> str:
    lines = [
        "| benchmark | measured | baseline (same run) | ratio | target | floor | result |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.benchmark} | {r.measured} | {r.baseline} | {r.ratio} | {r.target} | "
            f"{r.floor} | {r.verdict} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Row]:
    parse = parser(__doc__.splitlines()[0])
    add_loader_option(parse)
    args = parse.parse_args(argv)
    rows: list[Row] = []
    started = time.perf_counter()
    for module in ALL:
        own = ["--quick"] if args.quick else []
        if module in LOADED:
            own += ["--loader", args.loader]
        rows += module.main(own)
    facts = machine()
    print(f"\n== all benchmarks, {time.perf_counter() - started:.0f} s ==")
    print(", ".join(f"{k} {v}" for k, v in facts.items()))
    print(table(rows))
    if args.json_out is not None:
        args.json_out.write_text(
            json.dumps({"machine": facts, "rows": [r.to_dict() for r in rows]})
        )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
