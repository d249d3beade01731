"""Durable before acknowledged: a listener killed mid-burst, or whose store cannot grow, never
answered 200 for a callback it does not have, and its store stays intact."""

from __future__ import annotations

import http.client
import os
import resource
import signal
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from helpers.env import AUTH_TOKEN, cli_env
from helpers.procs import Cli
from helpers.signing import fields, post_signed

from verifycli.signature import signed_headers
from verifycli.store import StoreReader


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        result: str = conn.execute("PRAGMA integrity_check").fetchone()[0]
        return result
    finally:
        conn.close()


def stored_attempts(path: Path) -> set[str]:
    return {e.plivo("attempt_uuid") for e in StoreReader(path).iter_events()}


# -- kill -9 under load --------------------------------------------------------------------


def send_until_gone(port: int, worker: int, acked: list[str], lock: threading.Lock) -> None:
    """Signed callbacks on one keep-alive connection until the listener is gone; each
    AttemptUUID answered 200 goes into `acked`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    url = f"http://127.0.0.1:{port}/verify/callback"
    try:
        for i in range(1000):  # bounded: the kill comes long before this runs out
            form = fields(f"w{worker}-{i}")
            headers = signed_headers("POST", url, form, AUTH_TOKEN)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            try:
                conn.request("POST", "/verify/callback", body=urlencode(form), headers=headers)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                return  # the listener is gone
            if response.status == 200:
                with lock:
                    acked.append(form["AttemptUUID"])
    finally:
        conn.close()


def test_sigkill_mid_burst_loses_no_acknowledged_callback(tmp_path: Path) -> None:
    """SIGKILL during a burst from six keep-alive clients, after 150 acks: every AttemptUUID
    answered 200 is stored, a restart on the same file answers and stores, the file is intact."""
    store = tmp_path / "events.sqlite3"
    env = cli_env(PLIVO_AUTH_TOKEN=AUTH_TOKEN)
    args = ["listen", "--no-tunnel", "--port", "0", "--store", str(store)]
    cli = Cli(args, env)
    acked: list[str] = []
    try:
        port = cli.port()
        lock = threading.Lock()
        workers = [
            threading.Thread(target=send_until_gone, args=(port, w, acked, lock), daemon=True)
            for w in range(6)
        ]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while len(acked) < 150:
            assert time.monotonic() < deadline, f"only {len(acked)} callbacks answered in 30 s"
            assert all(w.is_alive() for w in workers), "a client stopped before the kill"
            time.sleep(0.005)
        os.kill(cli.pid, signal.SIGKILL)
        for worker in workers:
            worker.join(15)
            assert not worker.is_alive()
        assert cli.finish() == -signal.SIGKILL
    finally:
        cli.stop()

    assert len(acked) >= 150
    again = Cli(args, env)
    try:
        port = again.port()
        assert (
            post_signed(("127.0.0.1", port), "/verify/callback", fields("after"), AUTH_TOKEN) == 200
        )
        again.proc.send_signal(signal.SIGTERM)
        assert again.finish() == 0
    finally:
        again.stop()
    stored = stored_attempts(store)
    assert set(acked) <= stored, f"answered 200 but lost: {sorted(set(acked) - stored)[:5]}"
    assert "attempt-after" in stored
    assert integrity(store) == "ok"


# -- the store cannot be written -----------------------------------------------------------


def test_a_store_that_cannot_grow_answers_503_warns_and_recovers(tmp_path: Path) -> None:
    """Writes failing (RLIMIT_FSIZE): 503 and a warning; once writable again, 200 and stored."""
    store = tmp_path / "events.sqlite3"
    env = cli_env(PLIVO_AUTH_TOKEN=AUTH_TOKEN)
    cli = Cli(["listen", "--no-tunnel", "--port", "0", "--store", str(store)], env)
    address = ("127.0.0.1", 0)
    try:
        address = ("127.0.0.1", cli.port())
        assert post_signed(address, "/cb", fields("before"), AUTH_TOKEN) == 200
        _, hard = resource.prlimit(cli.pid, resource.RLIMIT_FSIZE)
        # Not one more byte may be written to any file: the store cannot grow, as on a full disk.
        resource.prlimit(cli.pid, resource.RLIMIT_FSIZE, (0, hard))
        assert post_signed(address, "/cb", fields("refused-1"), AUTH_TOKEN) == 503
        assert post_signed(address, "/cb", fields("refused-2"), AUTH_TOKEN) == 503
        warning = cli.wait_for(r"warning: could not store a callback[^\n]*")
        assert "503" in warning.group(0) and str(store) in warning.group(0)
        resource.prlimit(cli.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, hard))
        assert post_signed(address, "/cb", fields("after"), AUTH_TOKEN) == 200
        assert post_signed(address, "/cb", fields("refused-1"), AUTH_TOKEN) == 200  # the retry
        cli.proc.send_signal(signal.SIGTERM)
        assert cli.finish() == 0
    finally:
        cli.stop()
    assert "Traceback" not in cli.stderr
    records = list(StoreReader(store).iter_records())
    assert [r["session_uuid"] for r in records] == ["before", "after", "refused-1"]
    assert all(r["response_status"] == 200 for r in records)
    assert integrity(store) == "ok"
