"""Export: `verifycli export --format jsonl -o /dev/null` of 1,000,000 stored events, its rate and
its peak RSS.

    python benchmarks/bench_export.py [--quick] [--events 1000000] [--keep-store]

The store is filled straight through SQL in the store's own schema (made by EventStore), with
records shaped like real captured callbacks. A full-size store takes a while to build and
about 2 GB; --keep-store keeps it in the temporary folder for the next run.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, Row, callbacks, child_env, parser, report, verdict

COMMAND = "python benchmarks/bench_export.py"
CHUNK = 20_000
_WROTE = re.compile(r"wrote (\d+) events")


def template() -> dict[str, object]:
    """A record as the listener stores it, for one signed Verify callback."""
    from verifycli.callbacks import CallbackEvent, encode_body, parse_params
    from verifycli.signature import SignatureResult

    cb = callbacks("http://127.0.0.1:8080", 1)[0]
    parsed = parse_params("POST", cb.headers["Content-Type"], cb.body, "")
    text, encoding = encode_body(cb.body)
    event = CallbackEvent(
        method="POST",
        url="https://abcd-1234.ngrok-free.app/verify/callback",
        path="/verify/callback",
        query="",
        headers={"Host": "abcd-1234.ngrok-free.app", **cb.headers, "Content-Length": "300"},
        content_type=cb.headers["Content-Type"],
        body=text,
        body_encoding=encoding,
        fields=parsed.fields,
        signature=SignatureResult("valid", "v3", "v3 matches PLIVO_AUTH_TOKEN", cb.nonce),
    )
    return event.to_record()


def fill(path: Path, count: int) -> None:
    """`count` events in a new store at `path`, in big transactions."""
    from verifycli.store import EventStore

    EventStore(path).close()  # the real schema, application id and version
    record = template()
    for key in ("id", "retry_of", "response_status", "forward"):
        del record[key]
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    session, attempt = str(record["session_uuid"]), str(record["attempt_uuid"])
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")
        sql = (
            "INSERT INTO events (received_at, session_uuid, attempt_uuid, channel_status,"
            " session_status, verdict, nonce, body_sha256, retry_of, response_status, record,"
            " forward) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 200, ?, NULL)"
        )
        for start in range(0, count, CHUNK):
            rows = []
            for i in range(start, min(count, start + CHUNK)):
                # Distinct, increasing ids in the place of the template's: each record differs.
                sid, aid = f"{i:08x}{session[8:]}", f"{i:08x}{attempt[8:]}"
                minute, second, milli = i // 60_000 % 60, i // 1000 % 60, i % 1000
                when = f"2026-11-28T09:{minute:02d}:{second:02d}.{milli:03d}000+00:00"
                nonce = f"{i:020d}"
                body = (
                    text.replace(session, sid)
                    .replace(attempt, aid)
                    .replace(str(record["received_at"]), when)
                )
                rows.append((when, sid, aid, "sent", "in-progress", "valid", nonce, "0" * 64, body))
            conn.execute("BEGIN")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def store_for(count: int, keep: bool, scratch: Path) -> Path:
    if not keep:
        path = scratch / "export.sqlite3"
        fill(path, count)
        return path
    path = Path(tempfile.gettempdir()) / f"verifycli-bench-export-{count}.sqlite3"
    conn = None
    try:
        if path.exists():
            conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
            if conn.execute("SELECT count(*) FROM events").fetchone()[0] == count:
                return path
    except sqlite3.Error:
        pass
    finally:
        if conn is not None:
            conn.close()
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    fill(path, count)
    return path


# `verifycli` as its console script runs it, reporting at exit the peak RSS of its own image:
# the rusage of a child would count the parent's pages it was forked from.
_RUN = """
import atexit, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("peak-rss-kb " + line.split()[1] + "\\n")
atexit.register(peak)
sys.argv[0] = "verifycli"
from verifycli.cli import main
sys.exit(main())
"""
_PEAK = re.compile(r"peak-rss-kb (\d+)")


def run_export(store: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB and the count the command reports, for one export."""
    argv = [sys.executable, "-c", _RUN, "export", "--format", "jsonl", "-o", os.devnull]
    started = time.perf_counter()
    done = subprocess.run(
        [*argv, "--store", str(store)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=child_env(),
        cwd=ROOT,
        timeout=600,
    )
    seconds = time.perf_counter() - started
    err = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"export failed ({done.returncode}): {err}")
    wrote, peak = _WROTE.search(err), _PEAK.search(err)
    return (
        seconds,
        int(peak.group(1)) / 1024 if peak else -1.0,
        int(wrote.group(1)) if wrote else -1,
    )


def main(argv: list[str] | None = None) -> list[Row]:
    parse = parser(__doc__.splitlines()[0])
    parse.add_argument("--events", type=int, default=1_000_000)
    parse.add_argument("--runs", type=int, default=3, help="exports timed; the median is shown")
    parse.add_argument("--keep-store", action="store_true")
    args = parse.parse_args(argv)
    if args.quick:
        args.events, args.runs, args.keep_store = 2_000, 1, False

    with tempfile.TemporaryDirectory(prefix="verifycli-bench-") as tmp:
        started = time.perf_counter()
        store = store_for(args.events, args.keep_store, Path(tmp))
        built = time.perf_counter() - started
        size_mb = store.stat().st_size / 1e6
        runs = [run_export(store) for _ in range(args.runs)]
    runs.sort()
    seconds, _, written = runs[len(runs) // 2]
    peak = max(rss for _, rss, _ in runs)
    rate = written / seconds if seconds else 0.0
    ok = written == args.events and rate >= 100_000 and peak < 100
    rows = [
        Row(
            "export",
            f"{rate:,.0f} events/s, peak RSS {peak:.0f} MB",
            "-",
            "-",
            ">= 100k events/s, peak RSS < 100 MB",
            "-",
            verdict(ok),
            COMMAND,
        )
    ]
    report(
        "export",
        rows,
        {
            "store": f"{args.events:,} events, {size_mb:,.0f} MB, built in {built:.1f} s",
            "runs": ", ".join(f"{s:.2f} s / {r:.0f} MB" for s, r, _ in runs),
            "written": f"{written:,} events reported by the command",
        },
        args.json_out,
    )
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
