"""Start-up: wall time of `verifycli --help` against `python -c "import typer"`, medians of the
same number of runs, taken in turns in one run; hyperfine when installed, a timer loop otherwise.

    python benchmarks/bench_startup.py [--quick] [--runs 20] [--tool auto|hyperfine|python]
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Row, child_env, median, parser, report, verdict, verifycli_command

COMMAND = "python benchmarks/bench_startup.py"


def with_hyperfine(commands: list[list[str]], runs: int) -> list[list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hyperfine.json"
        argv = ["hyperfine", "-N", "--warmup", "3", "--runs", str(runs), "--export-json", str(out)]
        subprocess.run(
            [*argv, *(shlex.join(c) for c in commands)],
            check=True,
            capture_output=True,
            env=child_env(),
            timeout=300,
        )
        results = json.loads(out.read_text())["results"]
    return [[t * 1000 for t in r["times"]] for r in results]


def with_timer(commands: list[list[str]], runs: int) -> list[list[float]]:
    times: list[list[float]] = [[] for _ in commands]
    env = child_env()
    for _ in range(3):  # warm-up: the page cache, not the figures
        for command in commands:
            subprocess.run(command, check=True, capture_output=True, env=env, timeout=60)
    for _ in range(runs):  # in turns, so that a noisy moment hits both
        for command, into in zip(commands, times, strict=True):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=env, timeout=60)
            into.append((time.perf_counter() - started) * 1000)
    return times


def main(argv: list[str] | None = None) -> list[Row]:
    parse = parser(__doc__.splitlines()[0])
    parse.add_argument("--runs", type=int, default=20, help="runs of each command (>= 10)")
    parse.add_argument("--tool", choices=("auto", "hyperfine", "python"), default="auto")
    args = parse.parse_args(argv)
    if args.quick:
        args.runs = 3
    tool = args.tool
    if tool == "auto":
        tool = "hyperfine" if shutil.which("hyperfine") else "python"
    ours = [*verifycli_command(), "--help"]
    baseline = [sys.executable, "-c", "import typer"]
    measure = with_hyperfine if tool == "hyperfine" else with_timer
    ours_ms, base_ms = (median(t) for t in measure([ours, baseline], args.runs))
    ratio = ours_ms / base_ms if base_ms else 0.0
    rows = [
        Row(
            "start-up",
            f"{ours_ms:.1f} ms",
            f"{base_ms:.1f} ms",
            f"{ratio:.2f}x",
            "<= 1.5x",
            "<= 2x",
            verdict(ratio <= 1.5, ratio <= 2.0),
            COMMAND,
        )
    ]
    report(
        "start-up",
        rows,
        {
            "tool": f"{tool}, median of {args.runs} runs each after 3 warm-up runs",
            "ours": shlex.join(ours),
            "baseline": shlex.join(baseline),
        },
        args.json_out,
    )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
