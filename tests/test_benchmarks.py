"""Each benchmark runs at a tiny size, so that none of them can rot unseen; no timing is judged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.env import cli_env

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# The CI machine has neither wrk nor hyperfine: force the fallbacks, which run anywhere.
CASES = {
    "bench_ingest": ["--loader", "aiohttp"],
    "bench_latency": ["--loader", "aiohttp"],
    "bench_screen": [],
    "bench_startup": ["--tool", "python"],
    "bench_export": [],
    "bench_memory": [],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_and_prints_its_figures(name: str, tmp_path: Path) -> None:
    """A --quick run exits 0, prints the machine and its rows, and writes them as JSON."""
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick", "--json", str(out)]
        + CASES[name],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["machine"]["cores"] and result["machine"]["python"]
    assert result["rows"], "no figures"
    for row in result["rows"]:
        assert row["measured"] and row["verdict"] and row["command"].startswith("python ")
        assert f"-> {row['benchmark']}: {row['measured']}" in done.stdout
    assert "cores" in done.stdout and "python" in done.stdout


def test_every_benchmark_is_smoke_tested() -> None:
    """A new bench_*.py cannot be added without its tiny run here, nor left out of run_all."""
    scripts = {p.stem for p in BENCHMARKS.glob("bench_*.py")}
    assert scripts == set(CASES)
    text = (BENCHMARKS / "run_all.py").read_text()
    assert all(f"import {name}" in text for name in scripts)
