"""Signals end long-running commands the documented way: send/demo exit 130 with one line and
leave no ngrok agent behind; listen exits 0 once everything it answered is on disk."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.env import AUTH_ID, AUTH_TOKEN, MAIN_TOKEN, NGROK_TOKEN, cli_env
from helpers.ngrok_stub import FakeNgrok, pid_alive, wait_until
from helpers.procs import Cli, PinnedCode, SimThread, simulator
from helpers.signing import RECIPIENT, fields, post_signed

SIGNALS = [signal.SIGINT, signal.SIGTERM]


@pytest.fixture
def sim() -> Iterator[SimThread]:
    yield from simulator(lambda: PinnedCode(AUTH_ID, AUTH_TOKEN, MAIN_TOKEN, time_factor=60))


def _integrity(store: Path) -> str:
    conn = sqlite3.connect(store)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def _one_line_interrupted(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if "interrupted" in line.lower()] != []


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_send_through_ngrok_interrupted_exits_130_and_ends_the_agent(
    tmp_path: Path, ngrok: FakeNgrok, sim: SimThread, signum: int
) -> None:
    """A signal while send follows its session: exit 130, one line, the agent gone, store whole."""
    store = tmp_path / "send.sqlite3"
    env = cli_env(
        PLIVO_AUTH_ID=AUTH_ID,
        PLIVO_AUTH_TOKEN=AUTH_TOKEN,
        NGROK_AUTHTOKEN=NGROK_TOKEN,
        VERIFYCLI_PLIVO_API_URL=sim.api_url,
        PYNGROK_NGROK_PATH=ngrok.path,
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
    )
    cli = Cli(["send", RECIPIENT, "--port", "0", "--no-prompt", "--store", str(store)], env)
    try:
        cli.wait_for(r"https://\S+ngrok")
        wait_until(lambda: bool(sim.sim._sessions), 15, "the session to be created")
        agent = ngrok.pid()
        cli.proc.send_signal(signum)
        assert cli.finish() == 130
    finally:
        cli.stop()
    _one_line_interrupted(cli.stderr)
    wait_until(lambda: not pid_alive(agent), 5, "the ngrok agent to exit")
    assert _integrity(store) == "ok"


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_demo_interrupted_exits_130(tmp_path: Path, signum: int) -> None:
    """A signal while demo waits for its session to end: exit 130 with one line, store whole."""
    store = tmp_path / "demo.sqlite3"
    cli = Cli(["demo", "--auto", "--scenario", "expired", "--store", str(store)], cli_env())
    try:
        cli.wait_for(r"#1 ")
        cli.proc.send_signal(signum)
        assert cli.finish() == 130
    finally:
        cli.stop()
    _one_line_interrupted(cli.stderr)
    assert _integrity(store) == "ok"


def test_listen_sigint_exits_0_with_every_answered_callback_stored(tmp_path: Path) -> None:
    """Ctrl-C ends listen with exit 0, and every callback it answered 200 is in the store."""
    store = tmp_path / "listen.sqlite3"
    env = cli_env(PLIVO_AUTH_TOKEN=AUTH_TOKEN)
    cli = Cli(["listen", "--no-tunnel", "--port", "0", "--store", str(store)], env)
    try:
        local = ("127.0.0.1", cli.port())
        answered = [post_signed(local, "/cb", fields(f"s-{i}"), AUTH_TOKEN) for i in range(20)]
        cli.proc.send_signal(signal.SIGINT)
        assert cli.finish() == 0
    finally:
        cli.stop()
    assert answered == [200] * 20
    conn = sqlite3.connect(store)
    try:
        stored = {row[0] for row in conn.execute("SELECT session_uuid FROM events")}
    finally:
        conn.close()
    assert stored == {f"s-{i}" for i in range(20)}
    assert "Traceback" not in cli.stderr


def test_listen_sigterm_exits_0(tmp_path: Path) -> None:
    """SIGTERM stops listen cleanly: exit 0, with no traceback."""
    cli = Cli(
        ["listen", "--no-tunnel", "--port", "0", "--store", str(tmp_path / "events.sqlite3")],
        cli_env(PLIVO_AUTH_TOKEN=AUTH_TOKEN),
    )
    try:
        cli.port()
        cli.proc.send_signal(signal.SIGTERM)
        assert cli.finish() == 0
    finally:
        cli.stop()
    assert "Traceback" not in cli.stderr
