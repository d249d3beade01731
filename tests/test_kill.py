"""SIGKILL mid-burst: every callback that was answered 200 is found in the store."""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

from tests.conftest import AUTH_TOKEN, cli_env
from verifycli.signature import signed_headers
from verifycli.store import StoreReader


def start_listener(store: Path) -> tuple[subprocess.Popen[str], int]:
    """`verifycli listen` as a real process; returns it and the port it printed."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "verifycli",
            "listen",
            "--no-tunnel",
            "--port",
            "0",
            "--store",
            str(store),
        ],
        env=cli_env(PLIVO_AUTH_TOKEN=AUTH_TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if match := re.search(r"http://127\.0\.0\.1:(\d+)", line):
            return proc, int(match.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"listener did not start: {seen}")


def test_sigkill_loses_no_acknowledged_callback(tmp_path: Path) -> None:
    """Burst from 4 threads, SIGKILL after 150 acks: every 200-answered AttemptUUID is stored."""
    store = tmp_path / "events.sqlite3"
    proc, port = start_listener(store)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for _ in range(400):
            if stop.is_set():
                break
            attempt = str(uuid.uuid4())
            fields = {
                "SessionUUID": "s",
                "AttemptUUID": attempt,
                "ChannelStatus": "sent",
                "SessionStatus": "in-progress",
                "ChannelErrorCode": "",
            }
            url = f"http://127.0.0.1:{port}/cb"
            headers = signed_headers("POST", url, fields, AUTH_TOKEN)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            try:
                conn.request("POST", "/cb", body=urlencode(fields), headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                break
            if status == 200:
                with lock:
                    acked.append(attempt)
                    if len(acked) >= 150:
                        stop.set()
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        assert stop.wait(60), f"only {len(acked)} callbacks were answered"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        for t in threads:
            t.join(10)
        assert proc.stderr is not None
        proc.stderr.close()
    stored = {e.plivo("attempt_uuid") for e in StoreReader(store).iter_events()}
    assert len(acked) >= 150
    assert set(acked) <= stored


def test_sigterm_ends_listen_with_exit_0(tmp_path: Path) -> None:
    """SIGTERM stops listen cleanly: exit 0."""
    proc, _ = start_listener(tmp_path / "events.sqlite3")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert proc.stderr is not None
    proc.stderr.close()
