"""The README documents every command, flag, environment variable and exit code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers.commands import commands

from verifycli.config import ENV_VARS
from verifycli.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", sorted(commands()))
def test_every_command_is_in_the_readme(command: str) -> None:
    """A `### verifycli COMMAND` section (or mention) exists for every command."""
    assert f"verifycli {command}" in README


@pytest.mark.parametrize(
    ("command", "option"), sorted((c, o) for c, opts in commands().items() for o in opts)
)
def test_every_option_is_in_the_readme(command: str, option: str) -> None:
    """Every long option of every command is documented."""
    assert re.search(rf"`{re.escape(option)}[ `=\\|]", README), f"{command} {option}"


@pytest.mark.parametrize("name", sorted(ENV_VARS))
def test_every_env_var_is_documented(name: str) -> None:
    """Every environment variable is in the README and in .env.example."""
    assert f"`{name}`" in README
    assert f"\n{name}=" in (ROOT / ".env.example").read_text(encoding="utf-8")


@pytest.mark.parametrize("code", list(ExitCode))
def test_every_exit_code_is_documented(code: ExitCode) -> None:
    """The exit-code table lists every ExitCode."""
    assert re.search(rf"^\| {int(code)} \|", README, re.MULTILINE), code


def test_global_options_are_documented() -> None:
    """--version and --debug are in the README."""
    assert "verifycli --version" in README and "verifycli --debug" in README


def test_exactly_two_setup_commands() -> None:
    """The Set up section holds exactly two commands: demo, and the tests."""
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2
    assert blocks[0].strip().endswith("verifycli demo")
    assert "pytest" in blocks[1]


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run installs exactly what the README's test command installs, and runs pytest."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    test_command = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)[1]
    [extras] = re.findall(r"pip install -e '(\.\[[a-z,]+\])'", test_command)
    assert f"pip install --quiet -e '{extras}'" in ci
    assert extras == ".[test,dev]"
    assert re.search(r"^pytest", ci, re.MULTILINE)


def test_setup_commands_use_python3_venv() -> None:
    """The set-up commands work wherever python3 is, not only where python3.11 is."""
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert section.count("python3 -m venv") == 2 and "python3.11" not in section


def test_architecture_opens_with_the_file_to_job_list() -> None:
    """docs/architecture.md opens with one line per module, and names every module there is."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    head = text.split("\n## ", 1)[0]
    for module in sorted((ROOT / "verifycli").glob("*.py")):
        assert f"`{module.name}`" in head, module.name


def test_no_placeholders_left() -> None:
    """Every README section placeholder was filled in."""
    assert not re.search(r"^[A-Z_]+_SECTION$", README, re.MULTILINE)
