"""replay: a stored callback sent again, byte for byte, to a real receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from helpers.env import AUTH_TOKEN, MAIN_TOKEN
from helpers.net import free_port
from helpers.receiver import Received, Receiver
from typer.testing import CliRunner, Result
from yarl import URL

from verifycli.callbacks import CallbackEvent
from verifycli.cli import app
from verifycli.listener import Listener, ListenOptions
from verifycli.relay import HOP_BY_HOP
from verifycli.signature import Checker, signed_headers
from verifycli.store import EventStore, StoreReader

PUBLIC = "https://abcd.ngrok-free.app"
SESSION = "4124e518-a8c9-4feb-8cff-d86636ba9234"

runner = CliRunner()


def fields(status: str, sequence: str = "1", session: str = SESSION) -> dict[str, str]:
    return {
        "SessionUUID": session,
        "SessionStatus": "in-progress",
        "ChannelErrorCode": "",
        "Channel": "sms",
        "AttemptUUID": f"attempt-{status}",
        "AttemptSequence": sequence,
        "ChannelStatus": status,
    }


async def _record(store_path: Path) -> None:
    """Catch four callbacks with a real listener: two of SESSION, a GET, a non-UTF-8 body."""
    with EventStore(store_path) as store:
        listener = Listener(store, Checker(AUTH_TOKEN, MAIN_TOKEN), ListenOptions(port=0))
        await listener.start()
        listener.public_url = PUBLIC
        base = listener.local_url
        try:
            async with aiohttp.ClientSession() as http:
                for status in ("sent", "delivered"):
                    form = fields(status)
                    headers = signed_headers(
                        "POST", PUBLIC + "/cb", form, AUTH_TOKEN, MAIN_TOKEN, ("v3", "v2")
                    )
                    async with http.post(base + "/cb", data=form, headers=headers) as r:
                        assert r.status == 200
                query = "SessionUUID=other&ChannelStatus=queued&ChannelErrorCode=&t=a%7Eb"
                headers = signed_headers("GET", f"{PUBLIC}/cb?{query}", {}, AUTH_TOKEN)
                async with http.get(URL(f"{base}/cb?{query}", encoded=True), headers=headers) as r:
                    assert r.status == 200
                # Bare: no Content-Type, User-Agent or Accept, so a replay must not add them.
                raw = b"\x00\xff\xfebinary\r\n"
                bare = ("Content-Type", "User-Agent", "Accept", "Accept-Encoding")
                async with http.put(
                    base + "/raw", data=raw, headers={"X-Custom": "kept"}, skip_auto_headers=bare
                ) as r:
                    assert r.status == 200
        finally:
            await listener.stop()


@pytest.fixture
def recorded(store_path: Path) -> Path:
    """A store holding four callbacks that a real listener caught."""
    asyncio.run(_record(store_path))
    return store_path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(status=202, body="line 1\nline 2\n") as running:
        yield running


def replay(*args: str) -> Result:
    result = runner.invoke(app, ["replay", *args], env={"COLUMNS": "200"})
    for secret in (AUTH_TOKEN, MAIN_TOKEN):
        assert secret not in result.stdout + result.stderr
    return result


def stored(path: Path, event_id: int) -> CallbackEvent:
    return StoreReader(path).get(event_id)


def assert_same_request(event: CallbackEvent, got: Received, path: str) -> None:
    """The receiver got the stored method, body bytes and end-to-end headers, and no others."""
    assert got.method == event.method
    assert got.target == path + (f"?{event.query}" if event.query else "")
    assert got.body == event.raw_body()
    sent = {k.lower(): v for k, v in event.headers.items() if k.lower() not in HOP_BY_HOP}
    received = {k.lower(): v for k, v in got.headers}
    assert {k: received.get(k) for k in sent} == sent
    assert set(received) - set(sent) <= {"host", "content-length"}


def test_replay_sends_the_stored_callback_byte_for_byte(recorded: Path, receiver: Receiver) -> None:
    """Method, body, Content-Type and every Plivo signature header arrive as stored."""
    result = replay("1", "--to", receiver.url + "/hook")
    assert result.exit_code == 0, result.stderr
    [got] = receiver.wait(1)
    event = stored(recorded, 1)
    assert_same_request(event, got, "/hook")
    for name in (
        "X-Plivo-Signature-V3",
        "X-Plivo-Signature-Ma-V3",
        "X-Plivo-Signature-V3-Nonce",
        "X-Plivo-Signature-V2",
        "X-Plivo-Signature-Ma-V2",
        "X-Plivo-Signature-V2-Nonce",
        "Content-Type",
    ):
        assert got.header(name) == event.headers[name]


def test_replay_prints_status_time_and_first_lines(recorded: Path, receiver: Receiver) -> None:
    """The answer is shown: status, time in ms, and the body's first lines."""
    result = replay("1", "--to", receiver.url + "/hook")
    assert result.exit_code == 0
    out = result.stderr
    assert "#1 POST sent → " + receiver.url + "/hook" in out
    assert "202 Accepted in " in out and " ms" in out
    assert "│ line 1" in out and "│ line 2" in out
    assert "note:" not in out


def test_a_refusal_explains_where_the_signatures_point(recorded: Path) -> None:
    """A 4xx from a handler at another URL comes with a note on what the signatures cover."""
    with Receiver(status=403, body="invalid signature\n") as strict:
        result = replay("1", "--to", strict.url + "/hook")
    assert result.exit_code == 1
    assert "403 Forbidden" in result.stderr
    assert "note: these signatures were made for https://abcd.ngrok-free.app/cb" in result.stderr


def test_get_replay_keeps_the_raw_query(recorded: Path, receiver: Receiver) -> None:
    """A GET callback is replayed with its query string exactly as received (%7E stays)."""
    assert replay("3", "--to", receiver.url + "/hook").exit_code == 0
    [got] = receiver.wait(1)
    assert got.target.endswith("&t=a%7Eb")
    assert_same_request(stored(recorded, 3), got, "/hook")
    assert "content-length" not in got.header_names()


def test_binary_body_and_other_method(recorded: Path, receiver: Receiver) -> None:
    """A bare PUT with a non-UTF-8 body is replayed as a PUT with the same bytes and headers."""
    assert replay("4", "--to", receiver.url + "/hook").exit_code == 0
    [got] = receiver.wait(1)
    assert got.body == b"\x00\xff\xfebinary\r\n"
    assert got.header("X-Custom") == "kept"
    assert got.header("Content-Type") is None and got.header("User-Agent") is None
    assert_same_request(stored(recorded, 4), got, "/hook")


def test_replayed_callback_is_valid_again_at_its_url(recorded: Path, tmp_path: Path) -> None:
    """Replayed to a listener whose public URL is the original one, the signature is valid."""

    async def go() -> list[str]:
        with EventStore(tmp_path / "again.sqlite3") as store:
            listener = Listener(store, Checker(AUTH_TOKEN, MAIN_TOKEN), ListenOptions(port=0))
            await listener.start()
            listener.public_url = PUBLIC
            try:
                code = await asyncio.to_thread(replay, "1", "--to", listener.local_url + "/cb")
                assert code.exit_code == 0
            finally:
                await listener.stop()
        return [e.signature.verdict for e in StoreReader(store.path).iter_events()]

    assert asyncio.run(go()) == ["valid"]


def test_all_replays_a_session_in_order(recorded: Path, receiver: Receiver) -> None:
    """--all --session sends that session's callbacks, oldest first, and only those."""
    result = replay("--all", "--session", SESSION, "--to", receiver.url + "/hook")
    assert result.exit_code == 0, result.stderr
    got = receiver.wait(2)
    statuses = [dict(p.split("=", 1) for p in g.body.decode().split("&")) for g in got]
    assert [s["ChannelStatus"] for s in statuses] == ["sent", "delivered"]
    assert len(receiver.requests) == 2
    assert "2 of 2 answered 2xx" in result.stderr


def test_error_answer_exits_1(recorded: Path) -> None:
    """A target that answers 500 makes replay exit 1."""
    with Receiver(status=500, body="boom\n") as failing:
        result = replay("1", "--to", failing.url + "/hook")
    assert result.exit_code == 1
    assert "500 Internal Server Error" in result.stderr and "│ boom" in result.stderr


def test_redirect_is_not_followed_and_exits_1(recorded: Path) -> None:
    """A 3xx is shown as the answer, not followed, and is not success."""
    with Receiver(status=302, body="") as moved:
        result = replay("1", "--to", moved.url + "/hook")
        assert len(moved.requests) == 1
    assert result.exit_code == 1
    assert "302 Found" in result.stderr


def test_connection_failure_is_one_line(recorded: Path) -> None:
    """Nothing listening: exactly one error line and exit 1."""
    port = free_port()
    result = replay("1", "--to", f"http://127.0.0.1:{port}/hook")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: #1 POST sent → ")
    assert line.endswith(f"cannot connect to 127.0.0.1:{port} (connection refused)")


def test_all_stops_at_a_connection_failure(recorded: Path) -> None:
    """With --all, the first connection failure ends the run and says how many were not sent."""
    result = replay("--all", "--session", SESSION, "--to", f"http://127.0.0.1:{free_port()}/hook")
    assert result.exit_code == 1
    assert result.stderr.count("error: ") == 1
    assert "0 of 2 answered 2xx; 1 not sent after the connection failed" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["99", "--to", "http://127.0.0.1:9/x"], 2, "no event #99"),
        (["--to", "http://127.0.0.1:9/x"], 2, "give the ID of one event, or --all"),
        (["1", "--all", "--session", SESSION, "--to", "http://x/"], 2, "not both"),
        (["--all", "--to", "http://127.0.0.1:9/x"], 2, "--all needs --session UUID"),
        (["1", "--session", SESSION, "--to", "http://x/"], 2, "--session goes with --all"),
        (["--all", "--session", "nope", "--to", "http://x/"], 2, "no stored callbacks of session"),
        (["1", "--to", "ftp://x/"], 2, "--to needs an http:// or https:// URL"),
        (["1", "--to", "http://x/", "--timeout", "0"], 2, "--timeout must be more than 0"),
    ],
)
def test_usage_errors_exit_2(recorded: Path, args: list[str], code: int, message: str) -> None:
    """Wrong ids and flag combinations are one-line usage errors."""
    result = replay(*args, "--store", str(recorded))
    assert result.exit_code == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_to_is_a_usage_error(recorded: Path) -> None:
    """--to is required."""
    assert replay("1").exit_code == 2


@pytest.fixture(autouse=True)
def _store_env(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands find the recorded store through VERIFYCLI_STORE, as a user's shell would."""
    monkeypatch.setenv("VERIFYCLI_STORE", str(store_path))


def test_nothing_replayed_is_written_to_the_store(recorded: Path, receiver: Receiver) -> None:
    """Replay reads the store only: the events and their records stay as they were."""
    before = list(StoreReader(recorded).iter_json())
    assert replay("1", "--to", receiver.url + "/hook").exit_code == 0
    assert list(StoreReader(recorded).iter_json()) == before
    assert json.loads(before[0])["id"] == 1


def test_json_is_one_object_per_answer(recorded: Path, receiver: Receiver) -> None:
    """--json: one JSON object per answer on stdout, naming the event sent; the tally on stderr."""
    as_json = replay("--all", "--session", SESSION, "--to", receiver.url + "/hook", "--json")
    assert as_json.exit_code == 0, as_json.stderr
    answers = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [a["status"] for a in answers] == [receiver.status] * 2
    assert all(isinstance(a["event"], int) and a["method"] == "POST" for a in answers)
    assert "2 of 2 answered 2xx" in as_json.stderr
