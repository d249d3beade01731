"""events and events show: the stored history from a real listener run, through the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest
from helpers.env import AUTH_TOKEN, MAIN_TOKEN
from typer.testing import CliRunner, Result

from verifycli.cli import app
from verifycli.listener import Listener
from verifycli.signature import signed_headers
from verifycli.store import StoreReader

PUBLIC = "https://abcd.ngrok-free.app"
runner = CliRunner()


def fields(session: str, status: str, attempt: str = "a-1", **more: str) -> dict[str, str]:
    return {
        "SessionUUID": session,
        "AttemptUUID": attempt,
        "AttemptSequence": "1",
        "Channel": "sms",
        "ChannelStatus": status,
        "SessionStatus": "in-progress",
        "ChannelErrorCode": "",
        **more,
    }


@pytest.fixture
async def caught(listener: Listener) -> Path:
    """Five callbacks caught by a real listener: valid, a retry, invalid, unsigned JSON, GET."""
    listener.public_url = PUBLIC
    url = PUBLIC + "/verify/callback"
    base = listener.local_url + "/verify/callback"
    async with aiohttp.ClientSession() as http:
        sent = fields("aaaa1111-session", "sent")
        for _ in range(2):  # the second is a retry of the first
            headers = signed_headers("POST", url, sent, AUTH_TOKEN)
            async with http.post(base, data=sent, headers=headers) as r:
                assert r.status == 200
        delivered = fields("aaaa1111-session", "delivered", "a-2")
        headers = signed_headers("POST", url + "/", delivered, AUTH_TOKEN)
        async with http.post(base, data=delivered, headers=headers) as r:
            assert r.status == 200
        failed = fields("bbbb2222-session", "failed", "b-1", ChannelErrorCode="50")
        async with http.post(base, json=failed) as r:
            assert r.status == 200
        async with http.get(base, params=fields("cccc3333-session", "queued", "c-1")) as r:
            assert r.status == 200
    return listener.store.path


def events(*args: str) -> Result:
    result = runner.invoke(app, ["events", *args], env={"COLUMNS": "200"})
    for secret in (AUTH_TOKEN, MAIN_TOKEN):
        assert secret not in result.stdout + result.stderr
    return result


def table_ids(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"^#(\d+) ", text, re.MULTILINE)]


async def test_listing_to_a_pipe_is_one_whole_line_per_event(caught: Path) -> None:
    """Not a terminal: stdout gets every event, oldest first, one line each, every field whole."""
    result = events("--store", str(caught))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert table_ids(out) == [1, 2, 3, 4, 5]
    assert len(out.splitlines()) == 5 and result.stderr == ""
    first, retry, invalid, unsigned, get = out.splitlines()
    assert "session=aaaa1111-session" in first and "signature=valid(v2)" in first
    assert "status=sent/in-progress" in first and "answer=200" in first
    assert "retry-of=#1" in retry
    assert "signature=invalid(v2)" in invalid
    assert "signature=unsigned" in unsigned and "error=50 (Invalid Destination Number)" in unsigned
    assert " GET /verify/callback " in get
    # The whole time, with its date and offset: no header says them in a pipe.
    assert re.search(r"^#1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ", first)


async def test_tsv_has_a_header_and_one_row_per_event(caught: Path) -> None:
    """--tsv: a header line, then one tab-separated row per event, full session ids."""
    result = events("--store", str(caught), "--tsv")
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    names = header.split("\t")
    assert names[:2] == ["id", "received_at"] and "verdict" in names
    assert len(rows) == 5 and all(len(r.split("\t")) == len(names) for r in rows)
    second = dict(zip(names, rows[1].split("\t"), strict=True))
    assert second["session_uuid"] == "aaaa1111-session"
    assert (second["verdict"], second["scheme"], second["retry_of"]) == ("valid", "v2", "1")


async def test_json_is_one_record_a_line_and_nothing_else(caught: Path) -> None:
    """--json writes the stored records to stdout, one a line, the same as export's."""
    result = events("--store", str(caught), "--json")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [1, 2, 3, 4, 5]
    assert lines == list(StoreReader(caught).iter_json())
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("flags", "ids"),
    [
        (["--session", "aaaa1111-session"], [1, 2, 3]),
        (["--session", "aaaa1111"], [1, 2, 3]),
        (["--session", "bbbb"], [4]),
        (["--session", "dddd"], []),
        (["--status", "failed"], [4]),
        (["--verdict", "invalid"], [3]),
        (["--verdict", "unsigned"], [4, 5]),
        (["--session", "aaaa1111-session", "--status", "sent"], [1, 2]),
        (["--limit", "2"], [4, 5]),
        (["--limit", "0"], [1, 2, 3, 4, 5]),
        (["--since", "2000-01-01"], [1, 2, 3, 4, 5]),
        (["--since", "2999-01-01T00:00:00Z"], []),
    ],
)
async def test_filters(caught: Path, flags: list[str], ids: list[int]) -> None:
    """Each filter selects what it says, in the table and in --json alike."""
    table = events("--store", str(caught), *flags)
    assert table.exit_code == 0
    assert table_ids(table.stdout) == ids
    lines = events("--store", str(caught), "--json", *flags).stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids


async def test_limit_says_what_it_left_out(caught: Path) -> None:
    """When --limit cuts the list, a note says how many there are and how to see them."""
    out = events("--store", str(caught), "--limit", "2").stderr
    assert "the newest 2 of 5; --limit 0 shows them all" in out
    assert "newest" not in events("--store", str(caught), "--limit", "5").stderr


async def test_no_match_says_so(caught: Path) -> None:
    """Filters that match nothing say so, naming how many are stored."""
    result = events("--store", str(caught), "--status", "expired")
    assert result.exit_code == 0
    assert "none of the 5 events in" in result.stderr and "match these filters" in result.stderr


def test_empty_store_says_so(tmp_path: Path) -> None:
    """A store with nothing in it (or no file yet) says so; --json prints nothing on stdout."""
    path = tmp_path / "none.sqlite3"
    result = events("--store", str(path))
    assert result.exit_code == 0
    assert f"no events in {path} yet" in result.stderr
    as_json = events("--store", str(path), "--json")
    assert (as_json.exit_code, as_json.stdout) == (0, "")
    assert not path.exists()


def test_store_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --store, VERIFYCLI_STORE names the store, as for the other commands."""
    path = tmp_path / "env.sqlite3"
    monkeypatch.setenv("VERIFYCLI_STORE", str(path))
    assert f"no events in {path} yet" in events().stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--verdict", "good"], "Invalid value for '--verdict'"),
        (["--limit", "-1"], "Invalid value for '--limit'"),
        (["--since", "last week"], "--since needs an ISO 8601 time"),
    ],
)
def test_bad_filters_exit_2(tmp_path: Path, flags: list[str], message: str) -> None:
    """A bad filter is a one-line usage error."""
    result = events("--store", str(tmp_path / "s.sqlite3"), *flags)
    assert result.exit_code == 2
    assert message in result.stderr


async def test_show_has_the_whole_callback(caught: Path) -> None:
    """show: method, public URL, headers, the form body pretty, Plivo fields, verdict, answer."""
    result = events("show", "2", "--store", str(caught))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"POST {PUBLIC}/verify/callback" in out
    assert "application/x-www-form-urlencoded" in out
    assert "X-Plivo-Signature-V2-Nonce" in out
    assert re.search(r"SessionUUID\s+aaaa1111-session", out)
    assert re.search(r"ChannelErrorCode\s+\(blank\)", out)
    assert "valid (v2)" in out and "v2 matches PLIVO_AUTH_TOKEN" in out
    assert "#1 → #2" in out and "a retry of #1" in out
    assert re.search(r"answer\s+200", out)


async def test_show_explains_an_invalid_signature(caught: Path) -> None:
    """show gives the diagnosis of a mismatch: here, signed with a trailing slash."""
    out = events("show", "3", "--store", str(caught)).stdout
    assert "invalid (v2)" in out
    assert "with a trailing slash" in " ".join(out.split())


async def test_show_pretty_prints_json_and_get(caught: Path) -> None:
    """A JSON body is indented; a GET shows its query fields and an empty body."""
    json_out = events("show", "4", "--store", str(caught)).stdout
    assert '"ChannelErrorCode": "50"' in json_out
    assert "unsigned" in json_out
    get_out = events("show", "5", "--store", str(caught)).stdout
    assert "(empty)" in get_out and re.search(r"ChannelStatus\s+queued", get_out)


async def test_show_json_is_the_stored_record(caught: Path) -> None:
    """show --json prints the record exactly as events --json and export have it."""
    result = events("show", "3", "--json", "--store", str(caught))
    assert result.exit_code == 0
    [line] = result.stdout.splitlines()
    assert json.loads(line) == json.loads(list(StoreReader(caught).iter_json())[2])


async def test_group_options_reach_show(caught: Path) -> None:
    """`events --store X --json show ID` uses the group's --store and --json."""
    result = events("--store", str(caught), "--json", "show", "1")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["id"] == 1


async def test_show_unknown_id_exits_2(caught: Path) -> None:
    """An id that is not stored exits 2 with one line."""
    result = events("show", "42", "--store", str(caught))
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == f"error: no event #42 in {caught}; `verifycli events` lists them"
    )


async def test_markup_in_a_callback_is_shown_as_text(listener: Listener) -> None:
    """Rich markup sent by a caller ([/], [bold]) is printed literally, never crashes the view."""
    hostile = fields("[bold]s[/bold]", "[/]", ChannelErrorCode="[red]x")
    async with aiohttp.ClientSession() as http:
        async with http.post(listener.local_url + "/[/]", data=hostile) as r:
            assert r.status == 200
    path = str(listener.store.path)
    table = events("--store", path)
    assert table.exit_code == 0, table.stderr
    assert "[bold]s[" in table.stdout and "[red]x" in table.stdout
    show = events("show", "1", "--store", path)
    assert show.exit_code == 0, show.stderr
    assert "[/]" in show.stdout


async def test_error_codes_come_with_their_meaning(caught: Path) -> None:
    """The failed callback's ChannelErrorCode 50 is explained in the table, in `show` and in
    the record's channel_error_text; callbacks without an error have null there."""
    records = [
        json.loads(line) for line in events("--store", str(caught), "--json").stdout.splitlines()
    ]
    texts = {r["id"]: r["channel_error_text"] for r in records}
    failed = next(r["id"] for r in records if r["channel_error_code"] == "50")
    assert texts.pop(failed) == "Invalid Destination Number"
    assert set(texts.values()) == {None}
    assert "50 (Invalid Destination Number)" in events("--store", str(caught)).stdout
    shown = events("show", str(failed), "--store", str(caught)).stdout
    assert "50  (Invalid Destination Number)" in shown
