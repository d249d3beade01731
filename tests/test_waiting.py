"""Feedback while waiting: a spinner says what is awaited, and Ctrl-C while the tunnel starts
is an interruption (listen: exit 0; send: 130), not an ngrok failure."""

from __future__ import annotations

from pathlib import Path

import pexpect
import pytest
from helpers.env import AUTH_ID, AUTH_TOKEN, cli_env
from helpers.ngrok_stub import FakeNgrok, wait_until
from helpers.prompt_term import Terminal

RECIPIENT = "+14155550100"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["listen", "--port", "0"], 0),
        (["send", RECIPIENT, "--no-prompt", "--port", "0"], 130),
    ],
)
def test_ctrl_c_while_the_tunnel_opens(tmp_path: Path, args: list[str], code: int) -> None:
    """The spinner says the tunnel is opening; Ctrl-C then ends the command as asked."""
    fake = FakeNgrok(tmp_path / "fake-ngrok")
    env = cli_env(
        PYNGROK_NGROK_PATH=fake.path,
        FAKE_NGROK_STATE=str(fake.state_path),
        FAKE_NGROK_FAIL="hang",  # the agent starts, its session never comes up
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        PLIVO_AUTH_ID=AUTH_ID,
        PLIVO_AUTH_TOKEN=AUTH_TOKEN,
    )
    term = Terminal([*args, "--store", str(tmp_path / "s.sqlite3")], env=env)
    try:
        term.until("spinner", lambda ls: any("opening the ngrok tunnel…" in line for line in ls))
        wait_until(fake.started, 15, "the stand-in agent")
        term.child.sendintr()
        term.child.expect(pexpect.EOF, timeout=20)
        term.stream.feed(term.child.before or b"")
        term.child.close()
        screen = "\n".join(term.lines())
        assert term.child.exitstatus == code, screen
        assert "ngrok" not in screen.split("opening the ngrok tunnel")[-1]
        if code:
            assert "error: interrupted" in screen
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)


def test_spinner_waits_for_the_first_callback(tmp_path: Path) -> None:
    """Once listening, the spinner says it waits for the first callback."""
    term = Terminal(["listen", "--no-tunnel", "--port", "0", "--store", str(tmp_path / "s")])
    try:
        lines = term.until(
            "waiting line", lambda ls: any("waiting for the first callback…" in x for x in ls)
        )
        assert any("local" in line and "http://127.0.0.1:" in line for line in lines)
        term.child.sendintr()
        term.child.expect(pexpect.EOF, timeout=20)
        term.child.close()
        assert term.child.exitstatus == 0
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)
