"""The command line itself: help, version, errors as one line with the documented code."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import cli_env
from tests.test_docs import commands
from verifycli import __version__
from verifycli.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", sorted(commands()))
def test_help_for_every_command(command: str) -> None:
    """`verifycli COMMAND --help` exits 0 and describes the command."""
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version() -> None:
    """--version prints the package version."""
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.stdout.strip()) == (0, f"verifycli {__version__}")


def test_python_dash_m_help_as_a_subprocess() -> None:
    """`python -m verifycli --help` works as a real process."""
    result = subprocess.run(
        [sys.executable, "-m", "verifycli", "--help"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "listen" in result.stdout and "send" in result.stdout


def test_bad_flag_value_is_one_line_exit_2(tmp_path: Path) -> None:
    """--fail-rate outside 0..1: exit 2, one line, no traceback."""
    result = runner.invoke(app, ["listen", "--fail-rate", "1.5", "--store", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --fail-rate must be between 0 and 1, not 1.5"


def test_port_in_use_is_exit_2(tmp_path: Path) -> None:
    """A port already taken: exit 2 naming the port and the fix."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(
            app, ["listen", "--no-tunnel", "--port", str(port), "--store", str(tmp_path / "s")]
        )
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.output


def test_send_without_credentials_is_exit_2(tmp_path: Path) -> None:
    """send with no PLIVO_AUTH_ID: exit 2 naming the variable, before anything starts."""
    result = runner.invoke(
        app, ["send", "+14155550100", "--no-tunnel", "--store", str(tmp_path / "s")]
    )
    assert result.exit_code == 2
    assert "PLIVO_AUTH_ID is not set" in result.stderr
    assert not (tmp_path / "s").exists()


def test_send_bad_recipient_is_exit_2() -> None:
    """A recipient that is not E.164: exit 2."""
    result = runner.invoke(app, ["send", "4155550100"])
    assert result.exit_code == 2
    assert "E.164" in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    """--debug lets the error's traceback through; without it there is none."""
    path = tmp_path / "x.txt"
    path.write_text("not a store")
    quiet = subprocess.run(
        [sys.executable, "-m", "verifycli", "export", "--store", str(path)],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    loud = subprocess.run(
        [sys.executable, "-m", "verifycli", "--debug", "export", "--store", str(path)],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and "StoreError" in loud.stderr
