"""What a callback carries never drives the terminal or a spreadsheet (issue 12).

Raw bytes are checked as a terminal would get them: under a pty and through a pipe.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers.env import cli_env
from helpers.procs import Cli, run_cli
from rich.console import Console

from verifycli import export
from verifycli.ui import Header, _header_panel

# OSC 52 (clipboard write), clear screen, cursor home, an OSC 8 link, 8-bit CSI, BEL.
HOSTILE = (
    "\x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b[H\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\\x9b31m"
)
# Byte sequences that must never reach the terminal, whatever Rich adds of its own.
FORBIDDEN = (b"\x1b]52", b"\x1b[2J", b"\x1b[H", b"\x1b]8;;http", b"\xc2\x9b", b"\x07")


def hostile_callback(port: int) -> None:
    """One callback with control sequences in fields and a parameter name (the form), and the
    8-bit CSI, which HTTP lets through as raw bytes, in a header value (aiohttp refuses raw
    controls in a path, which is shown percent-encoded)."""
    form = {
        "SessionUUID": HOSTILE,
        "ChannelStatus": HOSTILE,
        "Channel": "sms" + HOSTILE,
        "ChannelErrorCode": HOSTILE,
        "AttemptSequence": HOSTILE,
        HOSTILE: "name",
    }
    body = "&".join(f"{quote(k)}={quote(v)}" for k, v in form.items()).encode()
    request = (
        b"POST /cb%1b%5b2J HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"X-Evil: a\xc2\x9b2Jb\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer


def assert_clean(raw: bytes) -> None:
    for sequence in FORBIDDEN:
        assert sequence not in raw, (sequence, raw[-2000:])


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    """A store holding one hostile callback, caught by a real `listen` with its output piped:
    the plain lines must be clean already."""
    store = tmp_path / "events.sqlite3"
    cli = Cli(["listen", "--no-tunnel", "--port", "0", "--store", str(store)], cli_env())
    try:
        hostile_callback(cli.port())
        cli.wait_for(r"#1 ")
        cli.proc.send_signal(signal.SIGINT)
        assert cli.finish() == 0
    finally:
        cli.stop()
    raw = cli.stderr.encode()
    assert_clean(raw)
    assert b"\x1b" not in raw  # a pipe gets no colour either
    assert "\\x1b]52" in cli.stderr  # shown, as an escape
    return store


def test_the_live_table_under_a_pty_shows_controls_as_escapes(tmp_path: Path) -> None:
    """`listen` on a terminal (a pty): the live table carries no control sequence of the
    sender's, only Rich's own styling."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "verifycli", "listen", "--no-tunnel", "--port", "0"]
        + ["--store", str(tmp_path / "s.db")],
        env=cli_env(COLUMNS="200", LINES="50", TERM="xterm"),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    seen = b""
    try:

        def read_until(needle: bytes, seconds: float = 15.0) -> None:
            nonlocal seen
            deadline = time.monotonic() + seconds
            while needle not in seen:
                left = deadline - time.monotonic()
                assert left > 0, seen[-2000:]
                if select.select([master], [], [], left)[0]:
                    seen += os.read(master, 65536)

        read_until(b"waiting for")
        port = int(seen.split(b"http://127.0.0.1:", 1)[1].split(b"\x1b", 1)[0].split()[0])
        hostile_callback(port)
        read_until(b"\\x1b]52")
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        with_tail = select.select([master], [], [], 0.5)[0]
        if with_tail:
            try:
                seen += os.read(master, 65536)
            except OSError:
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert_clean(seen)


def test_events_and_events_show_print_no_control_sequence(stored: Path) -> None:
    """`events` and `events show` (headers, body, fields, path) through a pipe: escapes only."""
    env = cli_env()
    listing = run_cli(["events", "--store", str(stored)], env)
    shown = run_cli(["events", "show", "1", "--store", str(stored)], env)
    for result in (listing, shown):
        assert result.returncode == 0, result.stderr
        raw = (result.stdout + result.stderr).encode()
        assert_clean(raw)
        assert b"\x1b" not in raw
    everything = shown.stdout + shown.stderr
    assert "\\x1b[2J" in everything and "\\x9b2J" in everything


def test_json_output_escapes_c1_controls(stored: Path) -> None:
    """`events --json`, `events show --json` and `export`: U+0080-U+009F as \\u escapes (JSON
    escapes C0 already), and still the same records."""
    env = cli_env()
    outputs = [
        run_cli(["events", "--json", "--store", str(stored)], env).stdout,
        run_cli(["events", "show", "1", "--json", "--store", str(stored)], env).stdout,
        run_cli(["export", "--format", "jsonl", "--store", str(stored)], env).stdout,
    ]
    for out in outputs:
        assert_clean(out.encode())
        assert "\\u009b" in out
        assert json.loads(out.splitlines()[0])["fields"]["SessionUUID"] == HOSTILE


def test_listen_json_escapes_c1_controls(tmp_path: Path) -> None:
    """`listen --json`: the NDJSON line has no raw C1 either."""
    cli = Cli(
        ["listen", "--json", "--no-tunnel", "--port", "0", "--store", str(tmp_path / "s.db")],
        cli_env(),
    )
    try:
        hostile_callback(cli.port())
        deadline = time.monotonic() + 10
        while "\n" not in cli.stdout:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        cli.stop()
    assert_clean(cli.stdout.encode())
    assert json.loads(cli.stdout.splitlines()[0])["fields"]["Channel"] == "sms" + HOSTILE


class HostileApp(BaseHTTPRequestHandler):
    """Answers every request with control sequences in its reason phrase and body."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = ("ok " + HOSTILE + "\n").encode()
        self.send_response(200, "OK\x1b[2J")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile_app() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileApp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_replay_echo_of_a_hostile_answer_is_escaped(stored: Path, hostile_app: str) -> None:
    """replay prints the target's answer and the stored callback's status: neither raw."""
    result = run_cli(["replay", "1", "--to", hostile_app, "--store", str(stored)], cli_env())
    assert result.returncode == 0, result.stderr
    raw = (result.stdout + result.stderr).encode()
    assert_clean(raw)
    assert b"\x1b" not in raw and "\\x1b]52" in result.stdout + result.stderr


def test_markup_in_a_store_path_or_url_is_shown_literally() -> None:
    """A path with `[/]` crashed the header (MarkupError, exit 1); `[bold]` changed it."""
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    header = Header(public_url="https://x.example/[/]", store_path="/tmp/[bold]x[/].db")
    console.print(_header_panel(header))
    assert "/tmp/[bold]x[/].db" in out.getvalue()
    assert "https://x.example/[/]" in out.getvalue()


def test_csv_export_neutralises_formulas_and_keeps_one_row_per_event() -> None:
    """Cells starting =, +, -, @, tab or CR get a leading ', text cells are quoted, and a
    bare CR stays inside its cell: one row per event."""
    risky = ['=HYPERLINK("http://evil")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "a\rb"]
    record = {
        "id": 7,
        "received_at": "2026-01-01T00:00:00+00:00",
        "method": "POST",
        "url": "https://x.example/cb",
        "path": "/cb",
        "query": "",
        "content_type": "text/plain",
        "body": "a\rb=c",
        "body_encoding": "utf-8",
        "parse_error": None,
        "fields": {"SessionUUID": risky[0], **{f"f{i}": v for i, v in enumerate(risky)}},
        "session_uuid": risky[0],
        "channel_status": "+cmd",
        "channel_error_code": "-1",
        "recipient": "@me",
        "signature": {"verdict": "valid", "scheme": "v2", "detail": "=1+1"},
        "retry_of": None,
        "response_status": 200,
        "forward": None,
    }
    out = io.StringIO()
    assert export.write([json.dumps(record), json.dumps(record)], "csv", out) == 2
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert len(rows) == 3
    header, row = rows[0], rows[1]
    cells = dict(zip(header, row, strict=True))
    assert cells["session_uuid"] == "'" + risky[0]
    assert cells["channel_status"] == "'+cmd" and cells["recipient"] == "'@me"
    assert cells["channel_error_code"] == "'-1" and cells["signature_detail"] == "'=1+1"
    assert cells["id"] == "7" and cells["body"] == "a\rb=c"
    for cell in row:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert '"a\rb=c"' in out.getvalue()  # quoted: the CR cannot end the row
