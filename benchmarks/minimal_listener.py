"""The correct-work baseline: a listener that does only what verifycli's promise needs.

Read the body; parse the form keeping blank values; one V3 HMAC-SHA256 over the public URL +
sorted params + nonce, compared in constant time; one JSON record; a writer thread that commits
each batch in one SQLite transaction (WAL, synchronous=FULL) and resolves each request's future;
then the NDJSON line on stdout and a 200. Same durability promise as `verifycli listen --json`,
none of its features. Run by the benchmarks as a subprocess; prints its URL on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import queue
import signal
import sqlite3
import sys
import threading
from urllib.parse import parse_qsl

from aiohttp import web

Job = tuple[str, asyncio.Future[int]]


def writer(path: str, jobs: queue.Queue[Job | None], loop: asyncio.AbstractEventLoop) -> None:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, record TEXT)")
    stopping = False
    while not stopping:
        batch = [jobs.get()]
        while True:
            try:
                batch.append(jobs.get_nowait())
            except queue.Empty:
                break
        stopping = None in batch
        work = [job for job in batch if job is not None]
        if not work:
            continue
        db.execute("BEGIN")
        ids = [
            db.execute("INSERT INTO events (record) VALUES (?)", (r,)).lastrowid for r, _ in work
        ]
        db.execute("COMMIT")
        for (_, done), row_id in zip(work, ids, strict=True):
            loop.call_soon_threadsafe(done.set_result, int(row_id or 0))
    db.close()


def make_app(public_url: str, token: bytes, jobs: queue.Queue[Job | None]) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
        # Plivo's V3 string for a POST: URL, "?", then each sorted name and value run together.
        url = public_url + request.path
        signed = url + "?" + "".join(k + fields[k] for k in sorted(fields))
        nonce = request.headers.get("X-Plivo-Signature-V3-Nonce", "")
        mac = hmac.new(token, f"{signed}.{nonce}".encode(), hashlib.sha256).digest()
        given = request.headers.get("X-Plivo-Signature-V3", "").encode()
        valid = hmac.compare_digest(base64.b64encode(mac), given)
        record = json.dumps(
            {
                "method": request.method,
                "url": url,
                "headers": dict(request.headers),
                "body": body.decode(),
                "fields": fields,
                "verdict": "valid" if valid else "invalid",
            }
        )
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        jobs.put((record, done))
        row_id = await done
        sys.stdout.write(record + "\n")
        return web.Response(text=f"stored event #{row_id}\n")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def serve(port: int, store: str, public_url: str) -> None:
    jobs: queue.Queue[Job | None] = queue.Queue()
    loop = asyncio.get_running_loop()
    thread = threading.Thread(target=writer, args=(store, jobs, loop), daemon=True)
    thread.start()
    token = os.environ.get("PLIVO_AUTH_TOKEN", "").encode()
    runner = web.AppRunner(make_app(public_url, token, jobs), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"minimal listener on http://127.0.0.1:{runner.addresses[0][1]}", file=sys.stderr)
    sys.stderr.flush()
    await stop.wait()
    await runner.cleanup()
    jobs.put(None)
    await asyncio.to_thread(thread.join)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--store", required=True, help="SQLite file to write")
    parser.add_argument(
        "--public-url", required=True, help="base URL the callbacks were signed for"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.store, args.public_url.rstrip("/")))


if __name__ == "__main__":
    main()
