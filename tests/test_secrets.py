"""No secret leaves the process: sentinel tokens through every flow, then a search of everything
written (stdout, stderr, the store, exports, what was sent on); and where the listener binds."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.env import AUTH_ID, AUTH_TOKEN, MAIN_TOKEN, NGROK_TOKEN, cli_env
from helpers.net import free_port
from helpers.ngrok_stub import FakeNgrok
from helpers.procs import CODE, Cli, PinnedCode, SimThread, run_cli, simulator
from helpers.receiver import Receiver
from helpers.signing import RECIPIENT, fields, post_signed

from verifycli.callbacks import CallbackEvent
from verifycli.config import Secret
from verifycli.signature import SignatureResult
from verifycli.store import EventStore
from verifycli.tunnel import open_tunnel

# Each secret as a whole, its distinctive tail, and the Basic credentials the API client sends.
NEEDLES = {
    "auth token": AUTH_TOKEN,
    "main token": MAIN_TOKEN,
    "ngrok token": NGROK_TOKEN,
    "auth token tail": AUTH_TOKEN[-10:],
    "main token tail": MAIN_TOKEN[-10:],
    "ngrok token tail": NGROK_TOKEN[-10:],
    "basic credentials": base64.b64encode(f"{AUTH_ID}:{AUTH_TOKEN}".encode()).decode(),
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def sim() -> Iterator[SimThread]:
    yield from simulator(
        lambda: PinnedCode(AUTH_ID, AUTH_TOKEN, MAIN_TOKEN, time_factor=0.001, callback_timeout=2)
    )


def test_no_secret_reaches_output_store_exports_or_what_is_sent_on(
    tmp_path: Path, ngrok: FakeNgrok, sim: SimThread, receiver: Receiver
) -> None:
    """listen, send, API errors, --debug, export, events, replay, trigger and doctor, run with
    sentinel tokens: not one of them appears in anything written or sent."""
    work = tmp_path / "work"
    work.mkdir()
    store = work / "events.sqlite3"
    env = cli_env(
        PLIVO_AUTH_ID=AUTH_ID,
        PLIVO_AUTH_TOKEN=AUTH_TOKEN,
        PLIVO_MAIN_AUTH_TOKEN=MAIN_TOKEN,
        NGROK_AUTHTOKEN=NGROK_TOKEN,
        VERIFYCLI_PLIVO_API_URL=sim.api_url,
        VERIFYCLI_STORE=str(store),
        PYNGROK_NGROK_PATH=ngrok.path,
        HOME=str(tmp_path / "home"),  # ngrok's own config (it keeps its token there) goes here
        XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
    )
    written: dict[str, str] = {}

    def run(label: str, *args: str, code: int = 0) -> str:
        result = run_cli(list(args), env, cwd=work)
        written[f"{label} stdout"] = result.stdout
        written[f"{label} stderr"] = result.stderr
        assert result.returncode == code, f"{label}: {result.stderr}"
        return result.stdout

    # listen, through the ngrok stand-in: valid, wrong-token and main-account callbacks.
    cli = Cli(["listen", "--port", "0", "--json"], env, cwd=work)
    try:
        local = ("127.0.0.1", cli.port())
        public = cli.wait_for(r"https://\S+ngrok\S+").group(0) + "/cb"
        for token in (AUTH_TOKEN, "some-other-token", MAIN_TOKEN):
            assert post_signed(local, "/cb", fields("listened"), token, signed_url=public) == 200
        # While listen runs, the newest records live in the WAL: read it before it is folded in.
        live = {p.name: p.read_bytes() for p in work.iterdir() if p.name.startswith(store.name)}
        assert store.name + "-wal" in live
        for name, data in live.items():
            written[f"file {name} while listening"] = data.decode("utf-8", "replace")
        cli.proc.send_signal(signal.SIGTERM)
        assert cli.finish() == 0
    finally:
        cli.stop()
    written["listen stdout"], written["listen stderr"] = cli.stdout, cli.stderr
    assert cli.stdout.count("\n") == 3

    # send through the simulator, to the end; then the API failing, with and without --debug.
    send = ["send", RECIPIENT, "--no-tunnel", "--port", "0"]
    run("send", *send, "--otp", CODE, "--json")
    sim.fail_next(401)
    run("send 401", *send, "--no-prompt", code=3)
    sim.fail_next(500)
    debug = run_cli(["--debug", *send, "--no-prompt"], env, cwd=work)
    written["send --debug stderr"], written["send --debug stdout"] = debug.stderr, debug.stdout
    assert "Traceback" in debug.stderr and debug.returncode != 0
    run("send wrong code", *send, "--otp", "000000", code=1)

    # Everything that reads the store back, or sends it on: side by side, they only read.
    exports = {fmt: work / f"out.{fmt}" for fmt in ("json", "jsonl", "csv")}
    readers = {
        **{f"export {f}": ["export", "-f", f, "-o", str(p)] for f, p in exports.items()},
        "export stdout": ["export", "--format", "jsonl"],
        "events": ["events", "--json"],
        "events table": ["events"],
        "events show": ["events", "show", "1"],
        "events show invalid": ["events", "show", "2"],
        "events show --json": ["events", "show", "1", "--json"],
        "replay": ["replay", "1", "--to", f"{receiver.url}/hook"],
        "trigger": ["trigger", "--to", f"{receiver.url}/hook", "--scheme", "all"],
        "doctor": ["doctor", "--port", str(free_port())],
        "doctor --online": ["doctor", "--port", str(free_port()), "--online"],
    }
    procs = {
        label: subprocess.Popen(
            [sys.executable, "-m", "verifycli", *args],
            env=env,
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for label, args in readers.items()
    }
    for label, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        written[f"{label} stdout"], written[f"{label} stderr"] = out, err
        assert proc.returncode == 0, f"{label}: {err}"
    assert written["events stdout"].count("\n") >= 7
    assert len(receiver.requests) == 2

    for path in sorted(work.iterdir()):  # the store, its WAL if any, and the exports
        written[f"file {path.name}"] = path.read_bytes().decode("utf-8", "replace")
    for i, request in enumerate(receiver.requests):
        head = "".join(f"{name}: {value}\r\n" for name, value in request.headers)
        sent = f"{request.method} {request.target}\r\n{head}\r\n".encode() + request.body
        written[f"sent on #{i}"] = sent.decode("utf-8", "replace")
    assert any(name.startswith("file events.sqlite3") for name in written)

    leaks = [
        f"{what} in {where}"
        for where, text in written.items()
        for what, needle in NEEDLES.items()
        if needle in text
    ]
    assert not leaks, leaks


async def test_the_search_is_not_blind_to_the_store_file(
    store: EventStore, store_path: Path
) -> None:
    """A token a sender itself put in a header is stored, and the byte search above finds it."""
    event = CallbackEvent(
        method="POST",
        url="http://x/cb",
        path="/cb",
        query="",
        headers={"X-Echo": AUTH_TOKEN},
        content_type="",
        body="",
        body_encoding="utf-8",
        fields={},
        signature=SignatureResult("unsigned", None, ""),
    )
    await store.append(event)
    files = sorted(store_path.parent.glob(store_path.name + "*"))
    text = "".join(path.read_bytes().decode("utf-8", "replace") for path in files)
    assert NEEDLES["auth token"] in text


# -- where the listener binds --------------------------------------------------------------


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("host", [None, "0.0.0.0"])
def test_listen_binds_loopback_only_unless_host_says_otherwise(
    tmp_path: Path, host: str | None
) -> None:
    """By default only 127.0.0.1 answers (127.0.0.2 is refused); --host 0.0.0.0 opens all."""
    args = ["listen", "--no-tunnel", "--port", "0", "--store", str(tmp_path / "e.sqlite3")]
    cli = Cli([*args, "--host", host] if host else args, cli_env())
    try:
        port = int(cli.wait_for(r"http://[\d.]+:(\d+)").group(1))
        assert reachable("127.0.0.1", port)
        assert reachable("127.0.0.2", port) is (host == "0.0.0.0")
        cli.proc.send_signal(signal.SIGTERM)
        assert cli.finish() == 0
    finally:
        cli.stop()


def test_the_ngrok_authtoken_is_not_on_the_agents_command_line(ngrok: FakeNgrok) -> None:
    """Every local user can read a command line (ps): the agent gets the token another way."""
    tunnel = open_tunnel(
        local_host="127.0.0.1",
        local_port=9,
        ngrok_authtoken=Secret(NGROK_TOKEN),
        ngrok_path=ngrok.path,
        config_path=ngrok.config_path,
    )
    with tunnel:
        command_line = Path(f"/proc/{ngrok.pid()}/cmdline").read_bytes()
        assert ngrok.state()["authtoken"] == NGROK_TOKEN  # it did reach the agent
    assert NGROK_TOKEN.encode() not in command_line
    assert "NGROK_AUTHTOKEN" not in os.environ  # only the agent's environment had it
