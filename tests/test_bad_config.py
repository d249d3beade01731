"""Bad configuration: exit 2, one line that names the fix, and the user's files untouched.

Each case runs the command in-process (CliRunner) in a folder of its own, watched by a timer
so that a check that goes missing fails rather than hangs; a few run as real processes too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers.env import AUTH_ID, AUTH_TOKEN, cli_env
from helpers.net import busy_port
from helpers.procs import run_cli
from typer.testing import CliRunner

from verifycli.callbacks import CallbackEvent
from verifycli.cli import app
from verifycli.signature import SignatureResult
from verifycli.store import EventStore

RECIPIENT = "+14155550100"
LISTEN = ["listen", "--no-tunnel", "--port", "0", "--store", "store.sqlite3"]
SEND = ["send", RECIPIENT, "--no-tunnel", "--port", "0", "--no-prompt", "--store", "store.sqlite3"]
CREDENTIALS = {"PLIVO_AUTH_ID": AUTH_ID, "PLIVO_AUTH_TOKEN": AUTH_TOKEN}
# Reached by nothing: a send that got past its checks must fail on the API, not on Plivo.
NOWHERE = {"VERIFYCLI_PLIVO_API_URL": "http://127.0.0.1:9"}


def user_store(folder: Path) -> None:
    """A real store with one event in it: the user's data, which no failure may touch."""
    event = CallbackEvent(
        method="POST",
        url="https://x.example/cb",
        path="/cb",
        query="",
        headers={},
        content_type="application/x-www-form-urlencoded",
        body="SessionUUID=kept",
        body_encoding="utf-8",
        fields={"SessionUUID": "kept"},
        signature=SignatureResult("unsigned", None, ""),
    )

    async def put() -> None:
        with EventStore(folder / "store.sqlite3") as store:
            await store.append(event)

    asyncio.run(put())


def foreign_sqlite(folder: Path) -> None:
    conn = sqlite3.connect(folder / "store.sqlite3")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()


def newer_store(folder: Path) -> None:
    user_store(folder)
    conn = sqlite3.connect(folder / "store.sqlite3")
    conn.execute("PRAGMA user_version = 99")
    conn.close()


def text_file(folder: Path) -> None:
    (folder / "store.sqlite3").write_text("my shopping list\nmilk\n")


def binary_file(folder: Path) -> None:
    (folder / "store.sqlite3").write_bytes(bytes(range(256)) * 8)


def env_folder(folder: Path) -> None:
    user_store(folder)
    (folder / ".env").mkdir()


def env_not_utf8(folder: Path) -> None:
    user_store(folder)
    (folder / ".env").write_bytes(b"PLIVO_AUTH_TOKEN=caf\xe9\n")


def env_fifo(folder: Path) -> None:
    user_store(folder)
    os.mkfifo(folder / ".env")


def env_dangling_link(folder: Path) -> None:
    user_store(folder)
    (folder / ".env").symlink_to(folder / "gone.env")


def empty_foreign_sqlite(folder: Path) -> None:
    """An SQLite database of someone else's with no tables left in it (and no application id)."""
    conn = sqlite3.connect(folder / "store.sqlite3")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("DROP TABLE notes")
    conn.commit()
    conn.close()
    assert (folder / "store.sqlite3").stat().st_size > 0


def file_in_the_way(folder: Path) -> None:
    (folder / "data").write_text("a file where the store's folder should be\n")


@dataclass
class Case:
    args: list[str]
    words: tuple[str, ...]  # what the one line must say: the variable or flag to fix
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] = user_store


CASES: dict[str, Case] = {
    "auth-id-short": Case(SEND, ("PLIVO_AUTH_ID", "20"), {**CREDENTIALS, "PLIVO_AUTH_ID": "MA12"}),
    "auth-id-prefix": Case(
        SEND, ("PLIVO_AUTH_ID", "MA"), {**CREDENTIALS, "PLIVO_AUTH_ID": "XA" + "0" * 18}
    ),
    "auth-id-symbols": Case(
        SEND, ("PLIVO_AUTH_ID",), {**CREDENTIALS, "PLIVO_AUTH_ID": "MA-" + "0" * 17}
    ),
    "auth-id-missing": Case(SEND, ("PLIVO_AUTH_ID",), {"PLIVO_AUTH_TOKEN": AUTH_TOKEN}),
    "auth-token-missing": Case(SEND, ("PLIVO_AUTH_TOKEN",), {"PLIVO_AUTH_ID": AUTH_ID}),
    "store-under-a-file": Case(
        ["listen", "--no-tunnel", "--port", "0", "--store", "data/events.sqlite3"],
        ("--store",),
        setup=file_in_the_way,
    ),
    "store-is-a-folder": Case(
        ["listen", "--no-tunnel", "--port", "0", "--store", "."], ("--store", "folder")
    ),
    "store-unwritable": Case(
        ["listen", "--no-tunnel", "--port", "0", "--store", "/proc/verifycli.sqlite3"],
        ("--store",),
    ),
    "port-in-use": Case(
        ["listen", "--no-tunnel", "--port", "{busy}", "--store", "store.sqlite3"], ("--port",)
    ),
    "text-file-store": Case(LISTEN, ("not a verifycli store", "--store"), setup=text_file),
    "binary-file-store": Case(LISTEN, ("not a verifycli store", "--store"), setup=binary_file),
    "foreign-sqlite-store": Case(
        LISTEN, ("not a verifycli store", "--store"), setup=foreign_sqlite
    ),
    "foreign-store-export": Case(
        ["export", "--store", "store.sqlite3"], ("not a verifycli store",), setup=foreign_sqlite
    ),
    "newer-store": Case(LISTEN, ("newer verifycli", "upgrade"), setup=newer_store),
    "newer-store-export": Case(
        ["export", "--store", "store.sqlite3"], ("newer verifycli",), setup=newer_store
    ),
    "env-is-a-folder": Case(LISTEN, (".env", "fix or remove"), setup=env_folder),
    "env-not-utf8": Case(LISTEN, (".env", "UTF-8"), setup=env_not_utf8),
    "public-url-scheme": Case([*LISTEN, "--public-url", "ftp://x.example"], ("--public-url",)),
    "public-url-words": Case([*LISTEN, "--public-url", "not a url"], ("--public-url",)),
    "public-url-no-host": Case([*LISTEN, "--public-url", "https://"], ("--public-url",)),
    "public-url-query": Case(
        [*LISTEN, "--public-url", "https://x.example/?a=1"], ("--public-url",)
    ),
    "public-url-port": Case(
        [*LISTEN, "--public-url", "https://x.example:99999"], ("--public-url",)
    ),
    # Issue 12, low items: each of these exited 1 ("unexpected"), hung, or was taken over.
    "env-fifo": Case(LISTEN, (".env", "regular file"), setup=env_fifo),
    "env-dangling-link": Case(LISTEN, (".env", "does not exist"), setup=env_dangling_link),
    "empty-foreign-sqlite": Case(LISTEN, ("not a verifycli store",), setup=empty_foreign_sqlite),
    "host-empty": Case([*LISTEN, "--host", ""], ("--host", "0.0.0.0")),
    "store-tilde-nobody": Case(
        ["listen", "--no-tunnel", "--port", "0"],
        ("VERIFYCLI_STORE",),
        {"VERIFYCLI_STORE": "~nosuchuser-verifycli/x.db"},
    ),
    "events-limit-huge": Case(
        ["events", "--store", "store.sqlite3", "--limit", "9223372036854775808"], ("2**63",)
    ),
    "events-show-huge-id": Case(
        ["events", "show", "1180591620717411303424", "--store", "store.sqlite3"], ("no event",)
    ),
    "since-before-year-1": Case(
        ["events", "--store", "store.sqlite3", "--since", "0001-01-01T00:00+14:00"], ("--since",)
    ),
    "replay-timeout-inf": Case(
        ["replay", "1", "--to", "http://127.0.0.1:9/", "--store", "store.sqlite3"]
        + ["--timeout", "inf"],
        ("--timeout",),
    ),
    "send-path-health": Case(
        [*SEND, "--path", "/_verifycli/health"], ("--path",), {**CREDENTIALS, **NOWHERE}
    ),
}
# Out-of-range numbers are refused by the parser itself (click's IntRange/FloatRange).
PARSER_CASES: dict[str, Case] = {
    "replay-timeout-nan": Case(
        ["replay", "1", "--to", "http://127.0.0.1:9/", "--store", "store.sqlite3"]
        + ["--timeout", "nan"],
        ("'--timeout'",),
    ),
    "fail-rate-high": Case([*LISTEN, "--fail-rate", "1.5"], ("'--fail-rate'",)),
    "fail-rate-negative": Case([*LISTEN, "--fail-rate", "-0.1"], ("'--fail-rate'",)),
    "code-length-short": Case(
        [*SEND, "--code-length", "3"], ("'--code-length'",), {**CREDENTIALS, **NOWHERE}
    ),
    "code-length-long": Case(
        [*SEND, "--code-length", "9"], ("'--code-length'",), {**CREDENTIALS, **NOWHERE}
    ),
}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under `folder`, with its bytes (None for a folder, FIFO, link
    to nothing: reading a FIFO would block)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(name="busy_port")
def busy_port_fixture() -> Iterator[int]:
    with busy_port() as port:
        yield port


@contextlib.contextmanager
def interrupt_after(seconds: float) -> Iterator[None]:
    """Ctrl-C this process if the command is still running: a check that let a listener
    start must fail the test (exit 0 or 130), not hang it."""
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_configuration_is_one_line_exit_2_and_touches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, busy_port: int, name: str
) -> None:
    """Each misconfiguration exits 2 with one `error:` line naming the fix; no file changes."""
    case = CASES[name]
    case.setup(tmp_path)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    before = snapshot(tmp_path)
    args = [a.replace("{busy}", str(busy_port)) for a in case.args]
    with interrupt_after(10):
        result = CliRunner().invoke(app, args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in case.words:
        assert word in lines[0], lines[0]
    assert result.stdout == ""
    assert snapshot(tmp_path) == before, "the user's files changed"


@pytest.mark.parametrize("name", list(PARSER_CASES))
def test_out_of_range_numbers_are_refused_by_the_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A number out of its range: exit 2 from the parser, naming the flag; no file changes."""
    case = PARSER_CASES[name]
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(app, case.args)
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert "Invalid value for" in result.stderr and "Traceback" not in result.stderr
    for word in case.words:
        assert word in result.stderr, result.stderr
    assert result.stdout == ""
    assert snapshot(tmp_path) == before, "the user's files changed"


@pytest.mark.parametrize("name", ["port-in-use", "newer-store", "auth-token-missing"])
def test_the_real_command_line_says_it_in_one_line_too(
    tmp_path: Path, busy_port: int, name: str
) -> None:
    """As a real process (python -m verifycli), the same cases end the same way."""
    case = CASES[name]
    case.setup(tmp_path)
    before = snapshot(tmp_path)
    args = [a.replace("{busy}", str(busy_port)) for a in case.args]
    result = run_cli(args, cli_env(**case.env), cwd=tmp_path, timeout=30)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and all(w in lines[0] for w in case.words)
    assert result.stdout == ""
    assert snapshot(tmp_path) == before


def test_the_user_store_fixture_really_holds_an_event(tmp_path: Path) -> None:
    """The store the cases guard is a real, non-empty verifycli store (so "untouched" means it)."""
    user_store(tmp_path)
    conn = sqlite3.connect(tmp_path / "store.sqlite3")
    try:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    finally:
        conn.close()
