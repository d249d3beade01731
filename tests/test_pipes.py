"""Output that pipes: listings on stdout, whole, quiet when the reader goes; prompts refused
without a terminal; --json in a terminal without live redraws; the small first-hour things."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from helpers.env import AUTH_ID, AUTH_TOKEN, cli_env
from helpers.mix import SMS, realistic_mix, store_mix
from helpers.procs import Cli, run_cli
from helpers.signing import RECIPIENT, post_signed

from verifycli.store import EventStore

# Cursor movement, line erasing, hidden cursor: what a live redraw writes.
REDRAW = re.compile(r"\x1b\[(\d*[ABK]|2K|\?25[lh])")


async def many_events(path: Path, count: int) -> None:
    with EventStore(path) as store:
        base = realistic_mix()
        for index in range(count):
            event = base[index % len(base)]
            event.fields["AttemptUUID"] = f"attempt-{index}"
            await store.append(event, lambda _e: 200)
            event.id = event.retry_of = None


async def test_events_into_head_ends_quietly(tmp_path: Path) -> None:
    """`events | head -n 1`: the first line, then exit 0 and nothing on stderr (no Broken pipe)."""
    path = tmp_path / "many.sqlite3"
    await many_events(path, 3000)  # more than a pipe holds, so the writer meets a closed pipe
    proc = subprocess.Popen(
        [sys.executable, "-m", "verifycli", "events", "--limit", "0", "--store", str(path)],
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what head does once it has its lines
    assert proc.wait(30) == 0
    with proc.stderr:
        assert proc.stderr.read() == b""
    assert first.startswith(b"#1 ")


async def test_events_to_a_file_is_not_cut(tmp_path: Path) -> None:
    """`events > file` on a 40-column terminal: one line per event, every field whole."""
    path = tmp_path / "mix.sqlite3"
    stored = await store_mix(path)
    out = tmp_path / "out.txt"
    with out.open("w") as stream:
        result = subprocess.run(
            [sys.executable, "-m", "verifycli", "events", "--store", str(path)],
            env=cli_env(COLUMNS="40", FORCE_COLOR="1"),
            stdin=subprocess.DEVNULL,
            stdout=stream,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == len(stored)
    for line, event in zip(lines, stored, strict=True):
        plain = re.sub(r"\x1b\[[0-9;]*m", "", line)  # FORCE_COLOR may colour, never cut
        assert plain.startswith(f"#{event.id} ") and "…" not in plain
        assert f"session={event.plivo('session_uuid')}" in plain
        assert f"signature={event.signature.verdict}" in plain
    assert "forward=✗ cannot connect to 127.0.0.1:3000 (connection refused)" in out.read_text()


async def test_events_show_and_doctor_go_to_stdout(tmp_path: Path) -> None:
    """`events show` is data: stdout, with its long lines whole when piped."""
    path = tmp_path / "mix.sqlite3"
    await store_mix(path)
    result = run_cli(
        ["events", "show", "4", "--store", str(path)], cli_env(COLUMNS="40", TZ="EST5")
    )
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("event #4  2026-12-02T08:59:33.923-05:00\n")  # local time
    assert "cannot connect to 127.0.0.1:3000 (connection refused)" in result.stdout
    assert "╭" in result.stdout
    assert not any(len(line) > 120 for line in result.stdout.splitlines())


async def test_session_prefix(tmp_path: Path) -> None:
    """--session takes the table's 8 characters; an ambiguous start is exit 2 naming them."""
    path = tmp_path / "mix.sqlite3"
    await store_mix(path)
    short = run_cli(["events", "--session", SMS[:8], "--json", "--store", str(path)], cli_env())
    records = [json.loads(line) for line in short.stdout.splitlines()]
    assert records and {r["session_uuid"] for r in records} == {SMS}
    both = run_cli(["events", "--session", "", "--store", str(path)], cli_env())
    assert both.returncode == 0
    with EventStore(path) as store:
        twin = realistic_mix()[0]
        twin.fields["SessionUUID"] = SMS[:8] + "-another"
        await store.append(twin)
    ambiguous = run_cli(["events", "--session", SMS[:8], "--store", str(path)], cli_env())
    assert ambiguous.returncode == 2
    assert ambiguous.stderr.startswith(f"error: --session {SMS[:8]} matches more than one")
    assert SMS in ambiguous.stderr and f"{SMS[:8]}-another" in ambiguous.stderr
    export = run_cli(["export", "--session", SMS[:13], "--store", str(path)], cli_env())
    assert {r["session_uuid"] for r in json.loads(export.stdout)} == {SMS}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["send", RECIPIENT, "--no-tunnel"],
            "stdin is not a terminal: pass --otp CODE or --no-prompt",
        ),
        (["demo"], "stdin is not a terminal: pass --auto"),
    ],
)
def test_no_prompt_without_a_terminal(tmp_path: Path, args: list[str], message: str) -> None:
    """A prompt needs a terminal: without one, one line and exit 2 before anything starts."""
    env = cli_env(PLIVO_AUTH_ID=AUTH_ID, PLIVO_AUTH_TOKEN=AUTH_TOKEN, PYTHONWARNINGS="always")
    store = tmp_path / "s.sqlite3"
    result = run_cli([*args, "--store", str(store)], env)
    assert (result.returncode, result.stderr, result.stdout) == (2, f"error: {message}\n", "")
    assert not store.exists()


def spawn(args: list[str], width: int = 100, **env: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "verifycli", *args],
        env=cli_env(**env),
        dimensions=(40, width),
        timeout=20,
    )


def test_json_in_a_terminal_has_no_live_redraws(tmp_path: Path) -> None:
    """`listen --json` on a terminal: the record lines, the header once, no redraws; on Ctrl-C
    exit 0 with a summary of what was caught and where it is kept."""
    store = tmp_path / "s.sqlite3"
    child = spawn(["listen", "--json", "--no-tunnel", "--port", "0", "--store", str(store)])
    child.logfile_read = everything = io.BytesIO()
    child.expect(r"http://127\.0\.0\.1:(\d+)")
    port = int(child.match.group(1))
    fields = {"SessionUUID": SMS, "ChannelStatus": "sent", "Channel": "sms"}
    assert post_signed(("127.0.0.1", port), "/verify/callback", fields, AUTH_TOKEN) == 200
    child.expect(r'\{"id": ?1,.*\}\r\n')
    child.kill(signal.SIGINT)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    seen = everything.getvalue().decode()
    assert "1 received, 0 valid, 0 invalid; stored in" in " ".join(seen.split())
    assert len(re.findall(r'\{"id": ?1,', seen)) == 1
    assert "verifycli" in seen and not REDRAW.search(seen), seen


def test_demo_says_where_its_events_are(tmp_path: Path) -> None:
    """demo ends by naming its store and the command that lists it: `events --demo`, or
    `events --store PATH` when it was given one."""
    env = cli_env(XDG_DATA_HOME=str(tmp_path / "data"))
    result = run_cli(["demo", "--auto"], env)
    assert result.returncode == 0, result.stderr
    store = tmp_path / "data" / "verifycli" / "demo.sqlite3"
    said = " ".join(result.stderr.split())
    assert said.endswith(f"kept in {store}: `verifycli events --demo` lists them")
    listed = run_cli(["events", "--demo"], env)
    assert listed.stdout.count("\n") == 4 and "session=" in listed.stdout
    given = tmp_path / "d.sqlite3"
    again = run_cli(["demo", "--auto", "--store", str(given)], env)
    said = " ".join(again.stderr.split())
    assert said.endswith(f"kept in {given}: `verifycli events --store {given}` lists them")


def test_force_color_adds_colour_not_redraws(tmp_path: Path) -> None:
    """listen with FORCE_COLOR into pipes: coloured plain lines, never a live redraw."""
    cli = Cli(
        ["listen", "--no-tunnel", "--port", "0", "--store", str(tmp_path / "s.sqlite3")],
        cli_env(FORCE_COLOR="1"),
    )
    try:
        port = cli.port()
        fields = {"SessionUUID": SMS, "ChannelStatus": "sent", "Channel": "sms"}
        assert post_signed(("127.0.0.1", port), "/verify/callback", fields, AUTH_TOKEN) == 200
        cli.wait_for(r"#1 .*status=.*sent")
        cli.proc.send_signal(signal.SIGINT)
        assert cli.finish() == 0
    finally:
        cli.stop()
    assert "\x1b[" in cli.stderr  # colour, as asked
    assert not REDRAW.search(cli.stderr), cli.stderr
    assert "1 received, 0 valid, 0 invalid; stored in" in " ".join(cli.stderr.split())
