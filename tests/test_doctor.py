"""doctor: every check passes on a good setup and fails, with a fix, on a broken one."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.env import AUTH_ID, AUTH_TOKEN, MAIN_TOKEN, NGROK_TOKEN
from helpers.net import busy_port, free_port
from typer.testing import CliRunner, Result

from verifycli import doctor
from verifycli.cli import app
from verifycli.config import Secret, load_settings
from verifycli.simulator import Simulator
from verifycli.store import EventStore

# Well formed (40 letters and digits) but still sentinels: they must never be printed.
GOOD_TOKEN = "SENTINELgoodtoken" + "0" * 23
GOOD_MAIN = "SENTINELmaintoken" + "1" * 23
SECRETS = (AUTH_TOKEN, MAIN_TOKEN, NGROK_TOKEN, GOOD_TOKEN, GOOD_MAIN)
runner = CliRunner()


@pytest.fixture
def ngrok_bin(tmp_path: Path) -> str:
    """An executable where pyngrok looks for ngrok (doctor only checks it is there)."""
    path = tmp_path / "bin" / "ngrok"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def good_env(monkeypatch: pytest.MonkeyPatch, ngrok_bin: str, tmp_path: Path) -> None:
    """Everything doctor wants, set the way a user would."""
    monkeypatch.setenv("PLIVO_AUTH_ID", AUTH_ID)
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", GOOD_TOKEN)
    monkeypatch.setenv("NGROK_AUTHTOKEN", NGROK_TOKEN)
    monkeypatch.setenv("PYNGROK_NGROK_PATH", ngrok_bin)
    monkeypatch.setenv("VERIFYCLI_STORE", str(tmp_path / "store" / "events.sqlite3"))


def run_doctor(*args: str) -> Result:
    result = runner.invoke(app, ["doctor", *args], env={"COLUMNS": "200"})
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
    return result


def by_name(checks: list[doctor.Check], name: str) -> doctor.Check:
    return next(c for c in checks if c.name == name)


# -- the command ----------------------------------------------------------------------------


@pytest.mark.usefixtures("good_env")
def test_all_pass_exits_0() -> None:
    """A complete setup: every check ok, exit 0, on stdout (it is a listing), no secret."""
    result = run_doctor("--port", str(free_port()))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "all checks passed" in out
    assert "✗" not in out and "fix:" not in out
    for name in ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN", "ngrok authtoken", "store", "packages"):
        assert name in out


@pytest.mark.usefixtures("good_env")
def test_one_failure_exits_2_with_its_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """One failing check turns the exit code to 2 and prints its fix under it."""
    monkeypatch.delenv("PLIVO_AUTH_TOKEN")
    result = run_doctor("--port", str(free_port()))
    assert result.exit_code == 2
    out = result.stdout
    assert "✗ PLIVO_AUTH_TOKEN" in out and "not set" in out
    assert "fix: export PLIVO_AUTH_TOKEN=" in out
    assert "1 check failed" in out


@pytest.mark.usefixtures("good_env")
def test_busy_port_fails_through_the_command() -> None:
    """doctor --port N fails when something already listens on N."""
    with busy_port() as port:
        result = run_doctor("--port", str(port))
    assert result.exit_code == 2
    assert f"127.0.0.1:{port} is taken" in result.stdout
    assert f"lsof -i :{port}" in result.stdout


@pytest.mark.usefixtures("good_env")
def test_env_file_settings_are_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings in ./.env count, and the .env line says it was read."""
    monkeypatch.delenv("PLIVO_AUTH_TOKEN")
    (tmp_path / ".env").write_text(f"PLIVO_AUTH_TOKEN={GOOD_TOKEN}\n")
    result = run_doctor("--port", str(free_port()))
    assert result.exit_code == 0, result.stderr
    assert f"read {tmp_path / '.env'}" in result.stdout


# -- each check, made to fail -----------------------------------------------------------------


def test_env_file_unreadable(tmp_path: Path) -> None:
    """A .env that is not UTF-8 fails, and the other checks still run on the environment."""
    env = tmp_path / ".env"
    env.write_bytes(b"PLIVO_AUTH_ID=\xff\xfe\n")
    check, settings = doctor.check_env_file(env, {"PLIVO_AUTH_ID": AUTH_ID})
    assert check.failed and "not UTF-8 text" in check.detail and check.fix
    assert settings.auth_id == AUTH_ID


def test_env_file_with_a_typo_warns(tmp_path: Path) -> None:
    """A PLIVO_ name verifycli does not know is pointed out (a typo leaves a setting unset)."""
    env = tmp_path / ".env"
    env.write_text(f"PLIVO_AUTHTOKEN={GOOD_TOKEN}\nOTHER=1\n")
    check, _ = doctor.check_env_file(env, {})
    assert check.status == "warn" and "PLIVO_AUTHTOKEN" in check.detail
    assert GOOD_TOKEN not in check.detail + (check.fix or "")


@pytest.mark.parametrize(
    ("value", "detail"),
    [(None, "not set"), ("MA123", "malformed"), ("XX" + "A" * 18, "malformed")],
)
def test_auth_id(value: str | None, detail: str) -> None:
    """A missing or malformed auth id fails with where to find it."""
    check = doctor.check_auth_id_set(value)
    assert check.failed and detail in check.detail
    assert check.fix and "console.plivo.com" in check.fix
    assert doctor.check_auth_id_set(AUTH_ID).status == "ok"


@pytest.mark.parametrize(
    ("token", "status", "detail"),
    [
        (None, "fail", "not set"),
        ("abc def", "fail", "spaces, quotes"),
        ("'" + GOOD_TOKEN, "fail", "spaces, quotes"),
        (AUTH_ID, "fail", "is the auth id"),
        (AUTH_TOKEN, "warn", "40 letters and digits"),
        (GOOD_TOKEN, "ok", "not shown"),
    ],
)
def test_auth_token(token: str | None, status: str, detail: str) -> None:
    """The token is set and looks like a Plivo token; its value never appears."""
    check = doctor.check_auth_token(Secret(token) if token else None, AUTH_ID)
    assert (check.status, detail in check.detail) == (status, True)
    if token:
        assert token not in check.detail + (check.fix or "")


def test_main_token() -> None:
    """A subaccount without the main token warns; a copy of the auth token warns; else ok."""
    sub = "SA" + "X" * 18
    assert doctor.check_main_token(None, Secret(GOOD_TOKEN), sub).status == "warn"
    assert doctor.check_main_token(None, Secret(GOOD_TOKEN), AUTH_ID).status == "ok"
    same = doctor.check_main_token(Secret(GOOD_TOKEN), Secret(GOOD_TOKEN), sub)
    assert same.status == "warn" and "same as" in same.detail
    assert doctor.check_main_token(Secret("a b"), None, sub).failed
    assert doctor.check_main_token(Secret(GOOD_MAIN), Secret(GOOD_TOKEN), sub).status == "ok"


def test_app_uuid_and_api_url() -> None:
    """A malformed app uuid fails; an API URL override is pointed out."""
    assert doctor.check_app_uuid("not-a-uuid").failed
    assert doctor.check_app_uuid("00000000-0000-4000-8000-00000000d3e0").status == "ok"
    assert doctor.check_app_uuid(None).status == "ok"
    assert doctor.check_api_url("http://127.0.0.1:9").status == "warn"
    assert doctor.check_api_url(None).status == "ok"


def test_ngrok_binary(tmp_path: Path, ngrok_bin: str) -> None:
    """ngrok missing from pyngrok's path and PATH fails; either place passes."""
    missing = str(tmp_path / "nowhere" / "ngrok")
    empty = tmp_path / "empty"
    empty.mkdir()
    check = doctor.check_ngrok_binary(missing, path_env=str(empty))
    assert check.failed and check.fix and "PYNGROK_NGROK_PATH" in check.fix
    assert doctor.check_ngrok_binary(ngrok_bin, path_env=str(empty)).status == "ok"
    on_path = doctor.check_ngrok_binary(missing, path_env=str(Path(ngrok_bin).parent))
    assert on_path.status == "ok" and ngrok_bin in on_path.detail


def test_pyngrok_shim_on_path_is_not_ngrok(tmp_path: Path) -> None:
    """pyngrok's own `ngrok` script on PATH does not count: it only downloads the real one."""
    shim = tmp_path / "venv-bin" / "ngrok"
    shim.parent.mkdir()
    shim.write_text("#!/usr/bin/python3\nimport sys\nfrom pyngrok.ngrok import main\nmain()\n")
    shim.chmod(0o755)
    check = doctor.check_ngrok_binary(str(tmp_path / "none"), path_env=str(shim.parent))
    assert check.failed


def test_ngrok_binary_comes_from_pyngrok(monkeypatch: pytest.MonkeyPatch, ngrok_bin: str) -> None:
    """The path checked is pyngrok's, so PYNGROK_NGROK_PATH is honoured as listen honours it."""
    monkeypatch.setenv("PYNGROK_NGROK_PATH", ngrok_bin)
    assert doctor.pyngrok_paths()[0] == ngrok_bin


@pytest.mark.parametrize(
    ("config", "ok"),
    [
        (None, False),
        ("version: 3\nagent:\n  region: eu\n", False),
        ("version: 3\nagent:\n  authtoken:\n", False),
        (f"version: 3\nagent:\n  authtoken: {NGROK_TOKEN}\n", True),
        (f'authtoken: "{NGROK_TOKEN}"\n', True),
    ],
)
def test_ngrok_authtoken_in_config(tmp_path: Path, config: str | None, ok: bool) -> None:
    """Without NGROK_AUTHTOKEN, ngrok's config must hold an authtoken (never shown)."""
    path = tmp_path / "ngrok.yml"
    if config is not None:
        path.write_text(config)
    check = doctor.check_ngrok_authtoken(None, str(path))
    assert check.status == ("ok" if ok else "fail")
    assert NGROK_TOKEN not in check.detail + (check.fix or "")
    if not ok:
        assert check.fix and "ngrok config add-authtoken" in check.fix


def test_ngrok_authtoken_from_environment(tmp_path: Path) -> None:
    """NGROK_AUTHTOKEN alone is enough."""
    check = doctor.check_ngrok_authtoken(Secret(NGROK_TOKEN), str(tmp_path / "none.yml"))
    assert check.status == "ok" and NGROK_TOKEN not in check.detail


async def test_store_checks(tmp_path: Path) -> None:
    """A real store passes; a foreign file, a newer schema and a read-only folder fail."""
    path = tmp_path / "events.sqlite3"
    assert doctor.check_store(path).status == "ok"  # not created yet
    with EventStore(path):
        pass
    check = doctor.check_store(path)
    assert check.status == "ok" and "0 events, schema 2, writable" in check.detail

    foreign = tmp_path / "notes.txt"
    foreign.write_text("hello")
    assert "not a verifycli store" in doctor.check_store(foreign).detail

    newer = tmp_path / "newer.sqlite3"
    with EventStore(newer):
        pass
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    check = doctor.check_store(newer)
    assert check.failed and "newer verifycli" in check.detail and check.fix


async def test_read_only_store_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose folder cannot take SQLite's -wal/-shm files fails as read-only."""
    locked = tmp_path / "locked"
    locked.mkdir()
    with EventStore(locked / "events.sqlite3"):
        pass
    real_access = os.access

    def access(path: object, mode: int) -> bool:
        # chmod cannot stop root, who runs some CI: deny writes to this folder here instead.
        if Path(str(path)) == locked and mode & os.W_OK:
            return False
        return real_access(path, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    check = doctor.check_store(locked / "events.sqlite3")
    assert check.failed and "read-only" in check.detail and check.fix


def test_store_that_cannot_be_created(tmp_path: Path) -> None:
    """A store path under a file (not a folder) cannot be created."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    check = doctor.check_store(blocker / "sub" / "events.sqlite3")
    assert check.failed and "cannot create" in check.detail


def test_port_taken_and_free() -> None:
    """A port with a listener on it fails; a free one passes."""
    with busy_port() as port:
        check = doctor.check_port(port)
    assert check.failed and check.fix and "--port" in check.fix
    assert doctor.check_port(free_port()).status == "ok"


def test_packages() -> None:
    """Installed dependencies pass with their versions; a missing or old one fails."""
    ok = doctor.check_packages()
    assert ok.status == "ok" and "aiohttp " in ok.detail and "Python 3." in ok.detail
    old = doctor.check_packages(["aiohttp>=999.0"])
    assert old.failed and "older than 999.0" in old.detail
    missing = doctor.check_packages(["no-such-package-for-verifycli>=1"])
    assert missing.failed and "is not installed" in missing.detail


# -- --online, against the simulator -----------------------------------------------------


class ThreadedSimulator:
    """The Plivo simulator on its own loop in a thread, for the CLI's asyncio.run."""

    def __init__(self, token: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = asyncio.run_coroutine_threadsafe(self._make(token), self.loop).result(10)

    async def _make(self, token: str) -> Simulator:
        sim = Simulator(AUTH_ID, token)
        await sim.start()
        return sim

    @property
    def url(self) -> str:
        return self.sim.api_url

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def simulator() -> Iterator[ThreadedSimulator]:
    running = ThreadedSimulator(GOOD_TOKEN)
    yield running
    running.close()


@pytest.mark.usefixtures("good_env")
def test_online_accepts_good_credentials(
    simulator: ThreadedSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--online asks the (simulated) Plivo API once; good credentials pass."""
    monkeypatch.setenv("VERIFYCLI_PLIVO_API_URL", simulator.url)
    result = run_doctor("--online", "--port", str(free_port()))
    assert result.exit_code == 0, result.stderr
    assert f"{simulator.url} accepted the credentials of {AUTH_ID}" in result.stdout


@pytest.mark.usefixtures("good_env")
def test_online_rejects_a_wrong_token(
    simulator: ThreadedSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--online with a token the API refuses fails with 401 and exit 2."""
    monkeypatch.setenv("VERIFYCLI_PLIVO_API_URL", simulator.url)
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", GOOD_MAIN)
    result = run_doctor("--online", "--port", str(free_port()))
    assert result.exit_code == 2
    assert "rejected PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN (401)" in result.stdout


async def test_online_api_unreachable_and_unconfigured() -> None:
    """An API nobody answers fails with the connection problem; no credentials, no call."""
    settings = load_settings(
        {
            "PLIVO_AUTH_ID": AUTH_ID,
            "PLIVO_AUTH_TOKEN": GOOD_TOKEN,
            "VERIFYCLI_PLIVO_API_URL": f"http://127.0.0.1:{free_port()}",
        },
        env_file=None,
    )
    check = await doctor.check_plivo_api(settings, timeout=5)
    assert check.failed and "cannot connect" in check.detail
    unset = await doctor.check_plivo_api(load_settings({}, env_file=None))
    assert unset.failed and "not called" in unset.detail


async def test_online_server_error(tmp_path: Path) -> None:
    """A 500 from the API is a failure, reported in one line."""
    async with Simulator(AUTH_ID, GOOD_TOKEN) as sim:
        sim.fail_next(500)
        settings = load_settings(
            {
                "PLIVO_AUTH_ID": AUTH_ID,
                "PLIVO_AUTH_TOKEN": GOOD_TOKEN,
                "VERIFYCLI_PLIVO_API_URL": sim.api_url,
            },
            env_file=None,
        )
        check = await doctor.check_plivo_api(settings)
    assert check.failed and "server error (500)" in check.detail
    assert GOOD_TOKEN not in check.detail


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and modification time."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("store_exists", [False, True], ids=["no store yet", "store in use"])
def test_doctor_writes_nothing(tmp_path: Path, ngrok_bin: str, store_exists: bool) -> None:
    """doctor only looks: no file or folder is created or changed, the store's included."""
    from helpers.env import cli_env
    from helpers.procs import run_cli

    store = tmp_path / "data" / "events.sqlite3"
    if store_exists:
        with EventStore(store):
            pass
    (tmp_path / "home").mkdir()
    env = cli_env(
        PLIVO_AUTH_ID=AUTH_ID,
        PLIVO_AUTH_TOKEN=GOOD_TOKEN,
        NGROK_AUTHTOKEN=NGROK_TOKEN,
        PYNGROK_NGROK_PATH=ngrok_bin,
        VERIFYCLI_STORE=str(store),
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
        XDG_DATA_HOME=str(tmp_path / "home" / ".local" / "share"),
    )
    before = _tree(tmp_path)
    result = run_cli(["doctor", "--port", str(free_port())], env, cwd=tmp_path)
    assert result.returncode in (0, 2), result.stderr
    assert "store" in (result.stdout + result.stderr).lower()
    assert _tree(tmp_path) == before
