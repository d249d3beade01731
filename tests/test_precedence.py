"""Where a setting comes from: a flag beats the environment, which beats `.env`."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.env import cli_env
from helpers.procs import run_cli

from verifycli.config import load_settings


def _store_named(result_stderr: str) -> str:
    """The store path `verifycli events` says it read (it names it when the store is empty)."""
    said = "".join(result_stderr.split())  # a narrow terminal may wrap the path
    return said.split("eventsin", 1)[1].split("yet", 1)[0]


@pytest.fixture
def three_stores(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A `.env` naming one store, and two more for the environment and the flag."""
    dotenv, environ, flag = (tmp_path / f"{name}.sqlite3" for name in ("dotenv", "env", "flag"))
    (tmp_path / ".env").write_text(f"VERIFYCLI_STORE={dotenv}\n")
    return dotenv, environ, flag


def test_env_file_is_read_when_nothing_else_says(
    tmp_path: Path, three_stores: tuple[Path, Path, Path]
) -> None:
    """With only `.env` naming a store, the command uses it."""
    dotenv, _, _ = three_stores
    result = run_cli(["events"], cli_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _store_named(result.stderr) == str(dotenv)


def test_environment_beats_env_file(tmp_path: Path, three_stores: tuple[Path, Path, Path]) -> None:
    """VERIFYCLI_STORE in the real environment wins over the same name in `.env`."""
    _, environ, _ = three_stores
    result = run_cli(["events"], cli_env(VERIFYCLI_STORE=str(environ)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _store_named(result.stderr) == str(environ)


def test_flag_beats_environment_and_env_file(
    tmp_path: Path, three_stores: tuple[Path, Path, Path]
) -> None:
    """--store wins over both VERIFYCLI_STORE in the environment and in `.env`."""
    _, environ, flag = three_stores
    result = run_cli(
        ["events", "--store", str(flag)], cli_env(VERIFYCLI_STORE=str(environ)), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert _store_named(result.stderr) == str(flag)


def test_token_from_environment_beats_env_file(tmp_path: Path) -> None:
    """A secret set in both places is taken from the environment, not from `.env`."""
    env_file = tmp_path / ".env"
    env_file.write_text("PLIVO_AUTH_TOKEN=from-dotenv\nPLIVO_AUTH_ID=MAFROMDOTENVXXXXXXXX\n")
    settings = load_settings({"PLIVO_AUTH_TOKEN": "from-environment"}, env_file)
    assert settings.auth_token is not None
    assert settings.auth_token.reveal() == "from-environment"
    assert settings.auth_id == "MAFROMDOTENVXXXXXXXX"  # what only .env says is still read
