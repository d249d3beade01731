"""The inspector from the command line: `verifycli ui`, and --ui on demo and listen."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from pathlib import Path

import pytest
from helpers.env import cli_env
from helpers.events import make_event
from helpers.procs import Cli, run_cli

from verifycli.store import EventStore

pytestmark = pytest.mark.slow
TOKEN = "cli-inspector-token-0123456789"
INSPECTOR = re.compile(r"inspector: (http://127\.0\.0\.1:\d+)/\?token=(\S+)")


def api(base: str, path: str) -> object:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def test_ui_command_serves_a_stored_history(tmp_path: Path) -> None:
    """`verifycli ui --store F --port 0` prints one URL line, serves F, and stops on Ctrl-C."""
    store = tmp_path / "kept.sqlite3"
    with EventStore(store) as writer:
        await writer.append(make_event(1, session="kept-session"))
    cli = Cli(
        ["ui", "--store", str(store), "--port", "0"],
        cli_env(VERIFYCLI_UI_TOKEN=TOKEN),
        cwd=tmp_path,
    )
    try:
        found = cli.wait_for(INSPECTOR)
        assert found.group(2) == TOKEN
        listed = api(found.group(1), "/api/events")
        assert isinstance(listed, dict)
        assert [e["session_uuid"] for e in listed["events"]] == ["kept-session"]
        cli.proc.send_signal(signal.SIGINT)
        assert cli.finish() == 0
    finally:
        cli.stop()
    assert cli.stderr.count("inspector: ") == 1


def test_ui_command_refuses_a_foreign_store(tmp_path: Path) -> None:
    """A file that is not a verifycli store is refused before anything is served."""
    foreign = tmp_path / "notes.txt"
    foreign.write_text("hello")
    done = run_cli(["ui", "--store", str(foreign), "--port", "0"], cli_env(), cwd=tmp_path)
    assert done.returncode == 2
    assert "is not a verifycli store" in done.stderr and "inspector:" not in done.stderr


def test_demo_with_ui_prints_the_url_and_warns_when_exposed(tmp_path: Path) -> None:
    """demo --ui shows the URL on stderr (once) and warns when bound beyond loopback."""
    done = run_cli(
        ["demo", "--auto", "--ui", "--ui-port", "0", "--ui-host", "0.0.0.0"],
        cli_env(VERIFYCLI_UI_TOKEN=TOKEN),
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(rf"inspector: http://127\.0\.0\.1:\d+/\?token={TOKEN}", done.stderr)
    assert "listens beyond this machine" in done.stderr


def test_ui_port_cannot_be_the_listener_port(tmp_path: Path) -> None:
    """--ui-port equal to --port is a usage error that says why."""
    done = run_cli(
        ["listen", "--no-tunnel", "--port", "45123", "--ui", "--ui-port", "45123"],
        cli_env(),
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "is the listener's port" in done.stderr


def test_short_ui_token_is_a_usage_error(tmp_path: Path) -> None:
    """A guessable VERIFYCLI_UI_TOKEN is refused with what to do."""
    done = run_cli(["ui", "--port", "0"], cli_env(VERIFYCLI_UI_TOKEN="short"), cwd=tmp_path)
    assert done.returncode == 2
    assert "VERIFYCLI_UI_TOKEN must be at least 16" in done.stderr
