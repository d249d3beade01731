"""The command line itself: help, version, errors as one line with the documented code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.commands import commands
from helpers.env import cli_env
from helpers.net import busy_port
from typer.testing import CliRunner

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


def test_bad_flag_value_is_refused_by_the_parser(tmp_path: Path) -> None:
    """--fail-rate outside 0..1: the parser refuses it, exit 2, naming the flag; no traceback."""
    result = runner.invoke(app, ["listen", "--fail-rate", "1.5", "--store", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "Invalid value for '--fail-rate'" in result.stderr
    assert "Traceback" not in result.output


def test_port_in_use_is_exit_2(tmp_path: Path) -> None:
    """A port already taken: exit 2 naming the port and the fix."""
    with busy_port() as port:
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


def test_dash_h_is_help_everywhere() -> None:
    """-h works like --help, on the root, on commands and on `events show`."""
    for args in (["-h"], ["send", "-h"], ["events", "show", "-h"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage:" in result.output, args


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("send", "<sms|voice>"),
        ("demo", "<delivered|undelivered|failed|no-answer|expired|retries>"),
        ("export", "<json|jsonl|csv>"),
        ("events", "<valid|invalid|unsigned|unchecked|replayed>"),
        ("trigger", "<v2|v3|all>"),
        ("send", "[env var: PLIVO_VERIFY_APP_UUID]"),
        ("listen", "[env var: VERIFYCLI_STORE]"),
        ("listen", "0<=x<=65535"),
        ("demo", "Type the code for you"),
    ],
)
def test_help_shows_choices_ranges_and_env_vars(command: str, shown: str) -> None:
    """Choices, ranges and environment variables appear in --help, from the parser itself."""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert shown in " ".join(result.output.split()), result.output


def test_usage_names_the_recipient() -> None:
    """send's usage line says RECIPIENT, as man pages do."""
    result = runner.invoke(app, ["send", "--help"])
    assert "Usage: verifycli send [OPTIONS] RECIPIENT" in result.output


def test_shell_completion_is_on() -> None:
    """Typer's --install-completion and --show-completion are offered."""
    result = runner.invoke(app, ["--help"])
    assert "--install-completion" in result.output and "--show-completion" in result.output


def test_bad_choice_is_refused_by_the_parser() -> None:
    """A value outside a choice is exit 2 from the parser, before anything runs."""
    result = runner.invoke(app, ["send", "+14155550100", "--channel", "fax"])
    assert result.exit_code == 2
    assert "Invalid value for '--channel'" in result.stderr


def test_store_comes_from_the_environment(tmp_path: Path) -> None:
    """VERIFYCLI_STORE reaches --store through the parser's envvar."""
    path = tmp_path / "env.sqlite3"
    result = runner.invoke(app, ["events"], env={"VERIFYCLI_STORE": str(path)})
    assert result.exit_code == 0, result.stderr
    assert str(path) in " ".join(result.stderr.split())


def test_doctor_json_is_one_object_per_check(tmp_path: Path) -> None:
    """doctor --json: one JSON object per check on stdout, each with name/status/detail/fix."""
    import json

    result = runner.invoke(
        app, ["doctor", "--json", "--store", str(tmp_path / "s.sqlite3")], env={"PLIVO_AUTH_ID": ""}
    )
    checks = [json.loads(line) for line in result.stdout.splitlines()]
    assert checks and all(set(c) == {"name", "status", "detail", "fix"} for c in checks)
    assert result.exit_code == (2 if any(c["status"] == "fail" for c in checks) else 0)


def test_parser_choices_match_their_owners() -> None:
    """The choices cli.py spells out (to keep --help fast) equal the lists the core uses."""
    from typing import get_args

    from verifycli import cli
    from verifycli.export import FORMATS
    from verifycli.signature import Verdict
    from verifycli.trigger import SCHEME_CHOICES

    assert set(get_args(cli.Scheme)) == set(SCHEME_CHOICES)
    assert get_args(cli.Format) == FORMATS
    assert get_args(cli.Verdict) == get_args(Verdict)


def test_help_imports_nothing_heavy() -> None:
    """`verifycli --help` loads neither aiohttp, Rich, the plivo SDK nor the email parser."""
    code = (
        "import sys; from verifycli.cli import app; "
        "heavy = {'aiohttp', 'rich', 'plivo', 'email.parser', 'pyngrok', 'verifycli.callbacks'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr
