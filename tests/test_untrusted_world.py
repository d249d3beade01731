"""The listener keeps its promises when its world turns hostile (issue 12): the store deleted,
stdout closed, descriptors exhausted, a forward loop, a forged GET, a new store raced."""

from __future__ import annotations

import asyncio
import gzip
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
import typer
from helpers.env import AUTH_TOKEN, Collect, cli_env
from helpers.listeners import post
from helpers.net import free_port
from helpers.procs import Cli
from helpers.signing import fields, post_signed

from verifycli import cli
from verifycli.errors import ConfigError, StoreError, TunnelError
from verifycli.listener import HEALTH_PATH, Listener, ListenOptions
from verifycli.relay import end_to_end_headers
from verifycli.signature import Checker, signed_headers
from verifycli.store import EventStore, StoreReader

# -- 2: the store deleted while listening ----------------------------------------------------


def test_a_deleted_store_never_answers_2xx_for_what_it_lost(tmp_path: Path) -> None:
    """`rm -rf` of the store's folder mid-listen: every callback answered 2xx afterwards is in
    the file at the store's path (recreated there), and the user is warned once."""
    store = tmp_path / "data" / "events.sqlite3"
    cli_ = Cli(
        ["listen", "--no-tunnel", "--port", "0", "--store", str(store)],
        cli_env(PLIVO_AUTH_TOKEN=AUTH_TOKEN),
    )
    try:
        address = ("127.0.0.1", cli_.port())
        assert post_signed(address, "/cb", fields("before"), AUTH_TOKEN) == 200
        shutil.rmtree(store.parent)
        answers = {
            f"after-{i}": post_signed(address, "/cb", fields(f"after-{i}"), AUTH_TOKEN)
            for i in range(3)
        }
        cli_.proc.send_signal(signal.SIGINT)
        assert cli_.finish() == 0
    finally:
        cli_.stop()
    kept = {r["session_uuid"] for r in StoreReader(store).iter_records()}
    assert {s for s, status in answers.items() if 200 <= status < 300} <= kept
    assert set(answers.values()) <= {200, 503}
    assert cli_.stderr.count("was deleted or replaced") == 1, cli_.stderr
    assert "Traceback" not in cli_.stderr


async def test_a_replaced_store_file_gets_503_not_200(tmp_path: Path, sink: Collect) -> None:
    """The store's file replaced by someone else's: 503 (not stored), one warning, no 200."""
    path = tmp_path / "events.sqlite3"
    with EventStore(path) as store:
        running = Listener(store, Checker(None), ListenOptions(port=0), sinks=[sink])
        await running.start()
        try:
            assert await post(running.base_url, {}) == 200
            os.replace(_foreign(tmp_path / "other.db"), path)
            assert await post(running.base_url, {}) == 503
            assert await post(running.base_url, {}) == 503
        finally:
            await running.stop()
    assert sum("deleted or replaced" in w for w in sink.warnings) == 1
    assert sum("could not store" in w for w in sink.warnings) == 1


def _foreign(path: Path) -> Path:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    return path


# -- 4: forward loops ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("127.0.0.1", "http://[::ffff:127.0.0.1]:{port}/"),
        ("127.0.0.1", "http://0x7f000001:{port}/"),
        ("127.0.0.1", "http://2130706433:{port}/x"),
        ("127.0.0.1", "http://localhost:{port}/"),
        ("127.0.0.1", "http://0.0.0.0:{port}/"),
        ("0.0.0.0", "http://127.0.0.2:{port}/"),
        ("0.0.0.0", "http://[::ffff:127.0.0.1]:{port}/"),
    ],
)
def test_every_spelling_of_this_listener_is_refused_as_a_forward_target(
    host: str, target: str
) -> None:
    """One callback became 4,418 events in 5 s; each spelling is now refused at start."""
    port = free_port()
    with pytest.raises(ConfigError, match="is this listener"):
        ListenOptions(host=host, port=port, forward_to=target.format(port=port))


async def test_a_loop_found_only_once_bound_is_refused(store: EventStore) -> None:
    """With --port 0 the port is known only once bound: start() refuses the loop then."""
    options = ListenOptions(port=0, forward_to="http://127.0.0.1:1/")
    running = Listener(store, Checker(None), options)
    # Find a port, then ask the listener to forward to that very port.
    port = free_port()
    running.options = ListenOptions(port=port, forward_to="http://127.0.0.1:1/")
    running.options.forward_to = f"http://0x7f000001:{port}/"
    with pytest.raises(ConfigError, match="is this listener"):
        await running.start()


async def test_a_loop_between_two_listeners_stops_at_the_first_hop(tmp_path: Path) -> None:
    """A forwards to B, B forwards to A: the request coming back to A carries A's mark and
    is stored, not forwarded again: three events, not thousands."""
    port_a, port_b = free_port(), free_port()
    sinks = Collect(), Collect()
    with EventStore(tmp_path / "a.db") as store_a, EventStore(tmp_path / "b.db") as store_b:
        a = Listener(
            store_a,
            Checker(None),
            ListenOptions(port=port_a, forward_to=f"http://127.0.0.1:{port_b}/"),
            sinks=[sinks[0]],
        )
        b = Listener(
            store_b,
            Checker(None),
            ListenOptions(port=port_b, forward_to=f"http://127.0.0.1:{port_a}/"),
            sinks=[sinks[1]],
        )
        await a.start()
        await b.start()
        try:
            assert await post(a.base_url, {"SessionUUID": "loop"}) == 200
            deadline = time.monotonic() + 10
            while len(sinks[0].events) < 2 or any(e.forward is None for e in sinks[1].events):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # would a fourth arrive? (a loop makes hundreds in this time)
        finally:
            await a.stop()
            await b.stop()
    assert (len(sinks[0].events), len(sinks[1].events)) == (2, 1)
    assert any("came back" in w for w in sinks[0].warnings)


# -- 5: closed stdout, full stderr -----------------------------------------------------------


def test_a_closed_stdout_changes_no_answer(tmp_path: Path) -> None:
    """`listen --json | head -n 2`: after head exits, callbacks are still answered 200 and the
    record says 200 (it said 200 while the wire said 500)."""
    store = tmp_path / "events.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-m", "verifycli", "listen", "--json", "--no-tunnel", "--port", "0"]
        + ["--store", str(store)],
        env=cli_env(PLIVO_AUTH_TOKEN=AUTH_TOKEN),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        port = _port_from(proc.stderr)
        address = ("127.0.0.1", port)
        for i in range(2):
            assert post_signed(address, "/cb", fields(f"read-{i}"), AUTH_TOKEN) == 200
            proc.stdout.readline()
        proc.stdout.close()  # head -n 2 has exited
        statuses = [
            post_signed(address, "/cb", fields(f"unread-{i}"), AUTH_TOKEN) for i in range(3)
        ]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert statuses == [200, 200, 200]
    records = list(StoreReader(store).iter_records())
    assert [r["response_status"] for r in records] == [200] * 5
    assert proc.returncode == 0
    assert b"Traceback" not in err and b"Exception ignored" not in err


def _port_from(stream: object) -> int:
    import re

    seen = b""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        seen += line
        found = re.search(rb"http://127\.0\.0\.1:(\d+)", seen)
        if found:
            return int(found.group(1))
    raise AssertionError(seen)


def test_a_full_stderr_file_gives_503_not_500(tmp_path: Path) -> None:
    """stderr is a file and the file-size limit is reached: a callback that cannot be stored
    is answered 503 even though its warning cannot be written."""
    store = tmp_path / "events.sqlite3"
    with (tmp_path / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "verifycli", "listen", "--no-tunnel", "--port", "0"]
            + ["--store", str(store)],
            env=cli_env(PLIVO_AUTH_TOKEN=AUTH_TOKEN),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            deadline = time.monotonic() + 15
            while b"http://127.0.0.1:" not in (tmp_path / "stderr.txt").read_bytes():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            text = (tmp_path / "stderr.txt").read_text()
            port = int(text.split("http://127.0.0.1:", 1)[1].split()[0].rstrip("│ "))
            _, hard = resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (0, hard))
            statuses = [
                post_signed(("127.0.0.1", port), "/cb", fields(f"s-{i}"), AUTH_TOKEN)
                for i in range(2)
            ]
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, hard))
            assert post_signed(("127.0.0.1", port), "/cb", fields("after"), AUTH_TOKEN) == 200
            proc.send_signal(signal.SIGINT)
            proc.wait(20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert statuses == [503, 503]


# -- 6: file descriptors ---------------------------------------------------------------------


def _limit_open_files(soft: int, hard: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_thousands_of_idle_connections_do_not_starve_a_callback(tmp_path: Path) -> None:
    """Under a 256-descriptor limit, 1,000 idle connections: the soft limit is raised to the
    hard one, a real callback is answered within 3 s, and one warning is all that is shown
    (it was ~20 s and 32,946 tracebacks)."""
    store = tmp_path / "events.sqlite3"
    cli_ = Cli(
        ["listen", "--no-tunnel", "--port", "0", "--store", str(store)],
        cli_env(PLIVO_AUTH_TOKEN=AUTH_TOKEN),
        preexec_fn=lambda: _limit_open_files(128, 256),
    )
    idle: list[socket.socket] = []
    try:
        address = ("127.0.0.1", cli_.port())
        limits = Path(f"/proc/{cli_.pid}/limits").read_text()
        assert any(
            line.startswith("Max open files") and "256                  256" in line
            for line in limits.splitlines()
        ), limits
        for _ in range(1000):
            try:
                idle.append(socket.create_connection(address, timeout=5))
            except OSError:
                break
        started = time.monotonic()
        assert post_signed(address, "/cb", fields("real"), AUTH_TOKEN, timeout=10) == 200
        assert time.monotonic() - started < 3.0
        cli_.proc.send_signal(signal.SIGINT)
        for sock in idle:
            sock.close()
        assert cli_.finish() == 0
    finally:
        for sock in idle:
            sock.close()
        cli_.stop()
    assert "Traceback" not in cli_.stderr
    assert cli_.stderr.count("warning:") == 1, cli_.stderr
    assert "connections open" in cli_.stderr


# -- 7/8/15/17: what is stored, and how it is judged --------------------------------------------


async def test_a_forged_v2_get_with_a_changed_query_is_flagged(
    listener: Listener, sink: Collect
) -> None:
    """V2 does not sign the query: the same nonce on a GET whose query changed is `replayed`,
    not `valid` with retry_of; the same GET again is a duplicate delivery."""
    url = listener.base_url + "/cb"
    headers = signed_headers("GET", url, {}, AUTH_TOKEN, schemes=("v2",))
    async with aiohttp.ClientSession() as session:
        for query in ("ChannelStatus=delivered", "ChannelStatus=delivered", "ChannelStatus=failed"):
            async with session.get(f"{url}?{query}", headers=headers) as answer:
                assert answer.status == 200
    first, again, forged = sink.events
    assert first.signature.verdict == "valid"
    assert (again.signature.verdict, again.retry_of) == ("valid", first.id)
    assert forged.signature.verdict == "replayed"


async def test_a_get_callback_to_the_health_path_is_stored(
    listener: Listener, sink: Collect
) -> None:
    """GET callbacks carry their fields in the query; sent to the health path they were
    answered and lost (a send session that never ended). A bare GET is still the health check."""
    async with aiohttp.ClientSession() as session:
        async with session.get(listener.base_url + HEALTH_PATH + "?SessionUUID=s-1") as answer:
            assert answer.status == 200
        async with session.get(listener.base_url + HEALTH_PATH) as answer:
            assert (await answer.json())["status"] == "ok"
    [event] = sink.events
    assert event.fields == {"SessionUUID": "s-1"}


async def test_a_gzip_callback_is_relayed_without_its_content_encoding(
    listener: Listener, sink: Collect
) -> None:
    """aiohttp stores the body unpacked, so replay and forward must not say it is gzip."""
    body = urlencode({"SessionUUID": "gz"}).encode()
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/x-www-form-urlencoded"}
    assert await post(listener.base_url, headers, gzip.compress(body)) == 200
    [event] = sink.events
    assert event.raw_body() == body
    assert "content-encoding" not in {k.lower() for k in end_to_end_headers(event.headers)}


# -- 11/14/19: the store file ----------------------------------------------------------------


def test_two_listens_started_at_once_on_a_new_store_both_run(tmp_path: Path) -> None:
    """Started in the same instant on a file that does not exist yet: both listen (one used
    to exit 2 with "table events already exists" or "database is locked"). End to end once;
    the race itself is narrowed in the test below."""
    for attempt in range(1):
        store = tmp_path / f"new-{attempt}.sqlite3"
        pair = [
            Cli(["listen", "--no-tunnel", "--port", "0", "--store", str(store)], cli_env())
            for _ in range(2)
        ]
        try:
            ports = [c.port() for c in pair]
            for port in ports:
                assert (
                    post_signed(("127.0.0.1", port), "/cb", fields(f"s{port}"), AUTH_TOKEN) == 200
                )
        finally:
            for c in pair:
                c.stop()
        assert len(list(StoreReader(store).iter_records())) == 2


def test_two_stores_opened_at_the_same_instant_on_a_new_file_both_open(tmp_path: Path) -> None:
    """The race itself, narrowed with a barrier and repeated: both openers get a store."""
    import threading

    for attempt in range(20):
        path = tmp_path / f"race-{attempt}.sqlite3"
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def open_it(
            path: Path = path,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                EventStore(path).close()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == [], errors


def test_the_store_and_exports_are_private(tmp_path: Path) -> None:
    """A new store is 0600 in a new 0700 folder (so are its -wal and -shm); exports are 0600."""
    from typer.testing import CliRunner

    store = tmp_path / "private" / "events.sqlite3"
    with EventStore(store):
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in store.parent.iterdir()}
    assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
    assert set(modes.values()) == {0o600}, modes
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        cli.app, ["export", "--store", str(store), "-f", "csv", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_an_unwritable_store_is_refused_at_start(tmp_path: Path) -> None:
    """A store the user may read but not write: a StoreError (exit 2) when it is opened, not a
    listener that answers 503 to everything. Opened in a child that became `nobody`, since
    root may write anything."""
    if os.getuid() != 0:
        pytest.skip("needs root to become another user")
    import tempfile

    folder = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own folders are root's only
    os.chmod(folder, 0o777)  # the folder writable (so -wal could be made), the file not
    request_cleanup = folder
    store = folder / "events.sqlite3"
    with EventStore(store):
        pass
    os.chmod(store, 0o644)
    said = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 3
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                EventStore(store).close()
                code = 0
            except StoreError as exc:
                os.write(said[1], str(exc).encode())
                code = 2
        finally:
            os._exit(code)
    os.close(said[1])
    _, status = os.waitpid(pid, 0)
    with os.fdopen(said[0], "rb") as reading:
        message = reading.read().decode()
    shutil.rmtree(request_cleanup)
    assert (os.waitstatus_to_exitcode(status), message) == (
        2,
        f"cannot write the store {store} (permission denied); choose a writable --store",
    )


def test_debug_keeps_the_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """--debug shows the traceback and still exits 4 for a tunnel error, 2 for an OS error
    (both exited 1)."""
    monkeypatch.setitem(cli._state, "debug", True)

    def tunnel_fails() -> None:
        raise TunnelError("no tunnel")

    def disk_fails() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(typer.Exit) as caught:
        cli._exit_code(tunnel_fails)
    assert caught.value.exit_code == 4
    with pytest.raises(typer.Exit) as caught:
        cli._exit_code(disk_fails)
    assert caught.value.exit_code == 2
