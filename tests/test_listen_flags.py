"""Each `listen` flag, through the real command: the answer a sender gets, or what is shown."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from helpers.env import AUTH_TOKEN, cli_env
from helpers.procs import Cli
from helpers.signing import fields, post_signed

# (flags, [(session, token to sign with, expected answer), ...]); the same session twice is a
# second delivery of the same callback (a retry).
CASES = {
    "default answers 200": ([], [("a", AUTH_TOKEN, 200)]),
    "--respond-status": (["--respond-status", "202"], [("a", AUTH_TOKEN, 202)]),
    "--fail-first": (["--fail-first"], [("a", AUTH_TOKEN, 500), ("a", AUTH_TOKEN, 200)]),
    "--fail-rate 1": (["--fail-rate", "1"], [("a", AUTH_TOKEN, 500), ("a", AUTH_TOKEN, 500)]),
    "--reject-invalid": (
        ["--reject-invalid"],
        [("a", "another-token", 403), ("b", AUTH_TOKEN, 200)],
    ),
    "invalid is answered 200 without --reject-invalid": ([], [("a", "another-token", 200)]),
}


def _listen(tmp_path: Path, *flags: str) -> Cli:
    store = tmp_path / "flags.sqlite3"
    argv = ["listen", "--no-tunnel", "--port", "0", "--json", "--store", str(store), *flags]
    return Cli(argv, cli_env(PLIVO_AUTH_TOKEN=AUTH_TOKEN))


def _stop(cli: Cli) -> None:
    cli.proc.send_signal(signal.SIGINT)
    assert cli.finish() == 0


@pytest.mark.parametrize("name", list(CASES))
def test_flag_decides_the_answer(tmp_path: Path, name: str) -> None:
    """The flag's effect is the status each callback is answered with."""
    flags, sends = CASES[name]
    cli = _listen(tmp_path, *flags)
    try:
        local = ("127.0.0.1", cli.port())
        got = [post_signed(local, "/cb", fields(session), token) for session, token, _ in sends]
        _stop(cli)
    finally:
        cli.stop()
    assert got == [expected for _, _, expected in sends]


def test_max_body_answers_413_above_it(tmp_path: Path) -> None:
    """--max-body N: a body over N bytes gets 413; one under it is stored."""
    cli = _listen(tmp_path, "--max-body", "300")
    try:
        local = ("127.0.0.1", cli.port())
        small = post_signed(local, "/cb", fields("small"), AUTH_TOKEN)
        large = post_signed(local, "/cb", {**fields("large"), "Pad": "x" * 400}, AUTH_TOKEN)
        _stop(cli)
    finally:
        cli.stop()
    assert (small, large) == (200, 413)


def test_session_flag_filters_what_is_shown(tmp_path: Path) -> None:
    """--session S: only S's callbacks are written to stdout (every one is still answered)."""
    cli = _listen(tmp_path, "--session", "wanted")
    try:
        local = ("127.0.0.1", cli.port())
        answers = [post_signed(local, "/cb", fields(s), AUTH_TOKEN) for s in ("other", "wanted")]
        _stop(cli)
    finally:
        cli.stop()
    assert answers == [200, 200]
    shown = [json.loads(line)["session_uuid"] for line in cli.stdout.splitlines()]
    assert shown == ["wanted"]


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--answer-from-forward"], "--answer-from-forward needs --forward-to"),
        (["--respond-status", "99"], "--respond-status"),
        (["--fail-rate", "1.5"], "--fail-rate"),
    ],
)
def test_conflicting_or_bad_flags_are_refused(tmp_path: Path, flags: list[str], said: str) -> None:
    """A flag that cannot work as given is refused with exit 2 before anything listens."""
    cli = _listen(tmp_path, *flags)
    try:
        code = cli.finish()
    finally:
        cli.stop()
    assert code == 2
    assert said in cli.stderr
    assert "Traceback" not in cli.stderr
