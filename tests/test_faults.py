"""Faults in the world around the listener: a tunnel that dies, a forward target that is slow or
gone, and a Plivo API that fails in every usual way (crashes and a full disk: test_durability)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from helpers.env import AUTH_ID, AUTH_TOKEN, NGROK_TOKEN, cli_env
from helpers.net import free_port
from helpers.ngrok_stub import FakeNgrok
from helpers.procs import CODE, Cli, PinnedCode, SimThread, run_cli, simulator
from helpers.receiver import Receiver
from helpers.signing import RECIPIENT, fields, post_signed

from verifycli.listener import Listener, ListenOptions
from verifycli.signature import Checker
from verifycli.simulator import Simulator
from verifycli.store import EventStore, Filters, StoreReader


def stored_sessions(path: Path) -> set[str]:
    return {r["session_uuid"] for r in StoreReader(path).iter_records()}


# -- the tunnel dies -----------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[SimThread]:
    # Callbacks to the stand-in's public URL cannot resolve offline: they fail fast, and the
    # test plays Plivo's callbacks itself, through the stand-in's relay.
    yield from simulator(
        lambda: PinnedCode(AUTH_ID, AUTH_TOKEN, time_factor=0.001, callback_timeout=0.5)
    )


def tunnel_env(tmp_path: Path, fake: FakeNgrok, sim: SimThread) -> dict[str, str]:
    return cli_env(
        PLIVO_AUTH_ID=AUTH_ID,
        PLIVO_AUTH_TOKEN=AUTH_TOKEN,
        VERIFYCLI_PLIVO_API_URL=sim.api_url,
        PYNGROK_NGROK_PATH=fake.path,
        NGROK_AUTHTOKEN=NGROK_TOKEN,
        HOME=str(tmp_path),  # pyngrok's default ngrok.yml lives under it
        XDG_CONFIG_HOME=str(tmp_path / ".config"),
    )


def wait_session(sim: SimThread, timeout: float = 15.0) -> tuple[str, str]:
    """The session uuid the CLI created and the public callback URL it gave the simulator."""
    deadline = time.monotonic() + timeout
    while not sim.sim._sessions:
        assert time.monotonic() < deadline, "no Verify session was created"
        time.sleep(0.01)
    session = next(iter(sim.sim._sessions.values()))
    while not session.attempts:
        assert time.monotonic() < deadline, "the session has no attempt"
        time.sleep(0.01)
    url = session.attempts[0].url
    assert url is not None
    return session.uuid, url


def relay(fake: FakeNgrok, public_callback: str) -> tuple[tuple[str, int], str]:
    """The loopback address relaying to the tunnel, and the path, for a public callback URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(public_callback)
    via = urlsplit(fake.relay_url(f"{parts.scheme}://{parts.netloc}"))
    assert via.hostname is not None and via.port is not None
    return (via.hostname, via.port), parts.path


def test_send_exits_4_when_the_tunnel_dies_before_the_session_ends(
    tmp_path: Path, ngrok: FakeNgrok, sim: SimThread
) -> None:
    """The ngrok agent killed mid-session: the user is warned and send exits 4."""
    store = tmp_path / "events.sqlite3"
    cli = Cli(
        ["send", RECIPIENT, "--no-prompt", "--port", "0", "--store", str(store)],
        tunnel_env(tmp_path, ngrok, sim),
    )
    try:
        uuid, public = wait_session(sim)
        address, path = relay(ngrok, public)
        sent = fields(uuid, "sent")
        assert post_signed(address, path, sent, AUTH_TOKEN, signed_url=public) == 200
        ngrok.kill()
        code = cli.finish()
    finally:
        cli.stop()
    assert code == 4, cli.stderr
    assert "warning: the ngrok tunnel died" in cli.stderr
    errors = [line for line in cli.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "tunnel died" in errors[0]
    assert "Traceback" not in cli.stderr
    assert stored_sessions(store) == {uuid}


def test_after_the_tunnel_dies_local_capture_goes_on_and_send_ends_by_outcome(
    tmp_path: Path, ngrok: FakeNgrok, sim: SimThread
) -> None:
    """A tunnel dying once the code was accepted: callbacks still land locally; exit 0."""
    store = tmp_path / "events.sqlite3"
    cli = Cli(
        ["send", RECIPIENT, "--otp", CODE, "--port", "0", "--store", str(store)],
        tunnel_env(tmp_path, ngrok, sim),
    )
    try:
        local_port = cli.port()
        uuid, public = wait_session(sim)
        address, path = relay(ngrok, public)
        delivered = fields(uuid, "delivered")
        assert post_signed(address, path, delivered, AUTH_TOKEN, signed_url=public) == 200
        deadline = time.monotonic() + 15
        while sim.sim._sessions[uuid].status != "verified":  # the CLI validated the code
            assert time.monotonic() < deadline, cli.stderr
            time.sleep(0.01)
        ngrok.kill()
        cli.wait_for("warning: the ngrok tunnel died")
        verified = fields(uuid, "delivered", "verified")
        local = ("127.0.0.1", local_port)
        assert post_signed(local, path, verified, AUTH_TOKEN, signed_url=public) == 200
        code = cli.finish()
    finally:
        cli.stop()
    assert code == 0, cli.stderr
    assert "verified" in cli.stderr
    records = list(StoreReader(store).iter_records(Filters(session=uuid)))
    assert [r["session_status"] for r in records] == ["in-progress", "verified"]
    assert all(r["signature"]["verdict"] == "valid" for r in records)


def test_listen_keeps_capturing_locally_after_the_tunnel_dies(
    tmp_path: Path, ngrok: FakeNgrok
) -> None:
    """listen through ngrok: the agent killed, a warning shown, local callbacks still stored."""
    store = tmp_path / "events.sqlite3"
    env = cli_env(
        PLIVO_AUTH_TOKEN=AUTH_TOKEN,
        PYNGROK_NGROK_PATH=ngrok.path,
        NGROK_AUTHTOKEN=NGROK_TOKEN,
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / ".config"),
    )
    cli = Cli(["listen", "--port", "0", "--store", str(store)], env)
    try:
        port = cli.port()
        public = cli.wait_for(r"https://\S+ngrok\S+").group(0)
        ngrok.kill()
        cli.wait_for("warning: the ngrok tunnel died")
        assert cli.proc.poll() is None
        status = post_signed(
            ("127.0.0.1", port), "/cb", fields("local"), AUTH_TOKEN, signed_url=public + "/cb"
        )
        assert status == 200
        cli.proc.send_signal(signal.SIGTERM)
        assert cli.finish() == 0
    finally:
        cli.stop()
    [record] = StoreReader(store).iter_records()
    assert record["session_uuid"] == "local" and record["signature"]["verdict"] == "valid"


# -- the forward target is slow or dead ----------------------------------------------------


@pytest.fixture
def slow_target() -> Iterator[Receiver]:
    """The user's app, holding every request until the test lets it answer."""
    with Receiver(hold=True) as app:
        yield app


async def post_timed(session: aiohttp.ClientSession, url: str, name: str) -> tuple[int, float]:
    data = fields(name)
    from verifycli.signature import signed_headers

    headers = signed_headers("POST", url, data, AUTH_TOKEN)
    started = time.perf_counter()
    async with session.post(url, data=data, headers=headers) as response:
        return response.status, time.perf_counter() - started


@pytest.mark.parametrize("target_kind", ["slow", "dead"])
async def test_a_slow_or_dead_forward_target_delays_no_answer(
    store: EventStore, store_path: Path, slow_target: Receiver, target_kind: str
) -> None:
    """Forwarding to an app that hangs or refuses: every callback is stored and answered at once."""
    app = slow_target.url if target_kind == "slow" else f"http://127.0.0.1:{free_port()}"
    url = f"{app}/hook"
    listener = Listener(store, Checker(AUTH_TOKEN), ListenOptions(port=0, forward_to=url))
    base = await listener.start()
    try:
        async with aiohttp.ClientSession() as session:
            answers = await asyncio.gather(
                *(post_timed(session, f"{base}/cb", f"s{i}") for i in range(10))
            )
        assert [status for status, _ in answers] == [200] * 10
        assert max(took for _, took in answers) < 1.0, answers
        assert StoreReader(store_path).count() == 10
        if target_kind == "slow":  # the forwards are under way, not dropped
            await asyncio.to_thread(slow_target.wait, 10, 5.0)
    finally:
        slow_target.release()
        await listener.stop()
    forwards = [r["forward"] for r in StoreReader(store_path).iter_records()]
    if target_kind == "dead":
        assert all(f["status"] is None and "cannot connect" in f["error"] for f in forwards)
    else:
        assert all(f["status"] == 200 for f in forwards)


async def test_answer_from_a_dead_forward_target_is_a_prompt_502_and_stored(
    store: EventStore, store_path: Path
) -> None:
    """--answer-from-forward with the app down: 502 at once, and the callback is still kept."""
    options = ListenOptions(
        port=0, forward_to=f"http://127.0.0.1:{free_port()}/hook", answer_from_forward=True
    )
    listener = Listener(store, Checker(AUTH_TOKEN), options)
    base = await listener.start()
    try:
        async with aiohttp.ClientSession() as session:
            status, took = await post_timed(session, f"{base}/cb", "down")
    finally:
        await listener.stop()
    assert status == 502 and took < 1.0
    [record] = StoreReader(store_path).iter_records()
    assert record["session_uuid"] == "down" and record["response_status"] == 502


# -- the Plivo API fails -------------------------------------------------------------------


@pytest.fixture
def api_sim() -> Iterator[SimThread]:
    yield from simulator(lambda: Simulator(AUTH_ID, AUTH_TOKEN, time_factor=0.001))


API_FAULTS = {
    "401": (401, "credentials"),
    "400": (400, "400"),
    "404": (404, "404"),
    "429": (429, "rate limiting"),
    "500": (500, "server error"),
    "hang": (None, "did not answer within 0.5 s"),
    "refused": (None, "connection refused"),
    "wrong-token": (None, "credentials"),
}


@pytest.mark.parametrize("fault", list(API_FAULTS))
def test_plivo_api_failures_are_one_line_and_exit_3(
    tmp_path: Path, api_sim: SimThread, fault: str
) -> None:
    """Every way the API can fail `send` ends in one error line, exit 3, and no traceback."""
    status, words = API_FAULTS[fault]
    env = cli_env(
        PLIVO_AUTH_ID=AUTH_ID, PLIVO_AUTH_TOKEN=AUTH_TOKEN, VERIFYCLI_PLIVO_API_URL=api_sim.api_url
    )
    if fault == "hang":
        api_sim.fail_next(None, hang=30)  # the simulator lets go when it closes
    elif fault == "refused":
        env["VERIFYCLI_PLIVO_API_URL"] = f"http://127.0.0.1:{free_port()}"
    elif fault == "wrong-token":
        env["PLIVO_AUTH_TOKEN"] = "not-the-token"
    else:
        api_sim.fail_next(status)
    started = time.monotonic()
    result = run_cli(
        [
            "send",
            RECIPIENT,
            "--no-tunnel",
            "--port",
            "0",
            "--no-prompt",
            "--timeout",
            "0.5",
            "--store",
            str(tmp_path / "events.sqlite3"),
        ],
        env,
    )
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - started < 10
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors[-1].startswith("error: ") and words in errors[-1], result.stderr
    assert sum(line.startswith("error:") for line in errors) == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
