"""The SQLite store: durable appends, retries and replays, refusing foreign files."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers.events import form_event, make_event
from helpers.ngrok_stub import wait_until

from verifycli.callbacks import CallbackEvent
from verifycli.errors import ConfigError, EventNotFound, StoreError, StoreWriteError
from verifycli.signature import SignatureResult
from verifycli.store import EventStore, Filters, StoreReader


async def test_append_assigns_increasing_ids(store: EventStore) -> None:
    """Each append gets the next id and is readable at once by another connection."""
    first = await store.append(make_event(1))
    second = await store.append(make_event(2, status="delivered"))
    assert (first.id, second.id) == (1, 2)
    assert [e.id for e in StoreReader(store.path).iter_events()] == [1, 2]


async def test_concurrent_writers_all_land(store: EventStore) -> None:
    """500 concurrent appends all get distinct ids and are all on disk."""
    events = await asyncio.gather(
        *(store.append(make_event(i, attempt=f"a{i}")) for i in range(500))
    )
    assert len({e.id for e in events}) == 500
    assert StoreReader(store.path).count() == 500


async def test_concurrent_writers_are_group_committed(store: EventStore) -> None:
    """Concurrent appends share transactions: fewer commits than events."""
    commits = []
    store._conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    await asyncio.gather(*(store.append(make_event(i, attempt=f"a{i}")) for i in range(200)))
    assert 0 < len(commits) < 200


async def test_retry_of_points_at_first_delivery(store: EventStore) -> None:
    """The same AttemptUUID + ChannelStatus + SessionStatus again is a retry of the first."""
    first = await store.append(make_event(1, nonce="n1"))
    again = await store.append(make_event(1, nonce="n2"))
    third = await store.append(make_event(1, nonce="n3"))
    other = await store.append(make_event(1, status="delivered", nonce="n4"))
    assert (again.retry_of, third.retry_of, other.retry_of) == (first.id, first.id, None)


async def test_same_nonce_same_body_is_a_duplicate(store: EventStore) -> None:
    """A nonce seen before on the same body keeps its verdict and points at the first."""
    first = await store.append(make_event(1, nonce="n1", attempt="x"))
    dup = await store.append(make_event(1, nonce="n1", attempt="x"))
    assert dup.signature.verdict == "valid"
    assert dup.retry_of == first.id


async def test_a_replay_is_not_a_retry_of_the_request_it_copied(store: EventStore) -> None:
    """A valid nonce on another callback's body (another attempt) is `replayed` and points at
    nothing as its first delivery: the nonce's first use is named only in the detail."""
    await store.append(make_event(1, nonce="n1", attempt="a1"))
    forged = await store.append(make_event(2, nonce="n1", attempt="a2", body="AttemptUUID=a2"))
    assert (forged.signature.verdict, forged.retry_of) == ("replayed", None)


async def test_a_body_over_64_kib_is_encoded_by_the_writer_and_kept_whole(
    store: EventStore,
) -> None:
    """A callback too large to encode on the event loop is encoded in the writer: stored, its
    body whole, its retry found like any other."""
    big = "a=" + "x" * (70 * 1024)
    first = await store.append(make_event(1, nonce="n1", body=big))
    again = await store.append(make_event(1, nonce="n1", body=big))
    stored = StoreReader(store.path).get(again.id or 0)
    assert (stored.body, stored.retry_of) == (big, first.id)


async def test_a_duplicate_of_a_retry_points_at_the_first_delivery(store: EventStore) -> None:
    """An unsigned first delivery, a signed retry, then that retry again (same nonce, same
    body): both point at the first, so its chain holds all three."""
    first = await store.append(make_event(1, verdict="unsigned"))
    retry = await store.append(make_event(1, nonce="n1"))
    again = await store.append(make_event(1, nonce="n1"))
    assert (retry.retry_of, again.retry_of, again.signature.verdict) == (1, 1, "valid")
    assert StoreReader(store.path).chain(first) == [1, 2, 3]
    together = await asyncio.gather(  # the same three stored in one group
        store.append(make_event(2, verdict="unsigned", attempt="a2")),
        store.append(make_event(2, nonce="n2", attempt="a2")),
        store.append(make_event(2, nonce="n2", attempt="a2")),
    )
    assert [e.retry_of for e in together] == [None, 4, 4]


async def test_same_nonce_other_body_is_replayed(store: EventStore) -> None:
    """A nonce seen with a valid signature, now on a different body, is `replayed`."""
    first = await store.append(make_event(1, nonce="n1"))
    forged = await store.append(make_event(1, nonce="n1", body="ChannelStatus=delivered"))
    assert forged.signature.verdict == "replayed"
    assert f"#{first.id}" in forged.signature.detail
    # The record's JSON, made before the look-back, is made again with the new verdict.
    assert forged.id is not None
    stored = StoreReader(store.path).get(forged.id)
    assert stored.signature.verdict == "replayed"
    assert '"verdict":"replayed"' in forged.to_json()


async def test_policy_sees_the_final_verdict(store: EventStore) -> None:
    """The answer policy runs after replay detection, and its status is stored."""
    await store.append(make_event(1, nonce="n1"))
    forged = await store.append(
        make_event(1, nonce="n1", body="x=1"),
        lambda e: 403 if e.signature.verdict == "replayed" else 200,
    )
    assert forged.response_status == 403
    assert StoreReader(store.path).get(forged.id or 0).response_status == 403


async def test_set_forward_updates_the_record(store: EventStore) -> None:
    """A forward's outcome and the status it decided are written onto the event."""
    event = await store.append(make_event(1), lambda e: 200)
    fwd = {"url": "http://app/cb", "status": 502, "elapsed_ms": 3.2, "error": None}
    await store.set_forward(event.id or 0, fwd, 502)
    stored = StoreReader(store.path).get(event.id or 0)
    assert stored.forward == fwd
    assert stored.response_status == 502


async def test_write_failure_raises_and_store_recovers(store: EventStore) -> None:
    """A failed write raises StoreWriteError, stores nothing, and later writes succeed."""
    store._conn.execute("PRAGMA query_only = 1")
    with pytest.raises(StoreWriteError):
        await store.append(make_event(1))
    store._conn.execute("PRAGMA query_only = 0")
    ok = await store.append(make_event(2))
    assert ok.id == 1
    assert StoreReader(store.path).count() == 1


def test_foreign_sqlite_file_is_refused_untouched(tmp_path: Path) -> None:
    """Another application's SQLite database is refused and left byte-for-byte as it was."""
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a verifycli store"):
        EventStore(path)
    assert path.read_bytes() == before
    assert not (tmp_path / "other.db-wal").exists()


def test_text_file_is_refused_untouched(tmp_path: Path) -> None:
    """A file that is not SQLite at all is refused, unchanged."""
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(StoreError, match="not a verifycli store"):
        EventStore(path)
    with pytest.raises(StoreError, match="not a verifycli store"):
        StoreReader(path)
    assert path.read_text() == "hello\n"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A store written by a newer verifycli is refused with an upgrade hint."""
    path = tmp_path / "s.db"
    EventStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer verifycli"):
        EventStore(path)


def test_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    """A store path under a regular file cannot be created: StoreError, exit 2."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as caught:
        EventStore(blocker / "events.sqlite3")
    assert caught.value.exit_code == 2


def test_reopen_keeps_events(tmp_path: Path) -> None:
    """Closing and reopening a store keeps its events and continues the ids."""
    path = tmp_path / "s.db"

    async def put(n: int) -> int | None:
        with EventStore(path) as s:
            return (await s.append(make_event(n, attempt=f"a{n}"))).id

    assert asyncio.run(put(1)) == 1
    assert asyncio.run(put(2)) == 2


async def test_reader_filters_and_limit(store: EventStore) -> None:
    """Filters select by session, status and verdict; limit keeps the newest, oldest first."""
    for i in range(5):
        await store.append(make_event(i, session="A" if i % 2 else "B", attempt=f"a{i}"))
    await store.append(make_event(9, status="delivered", verdict="invalid", attempt="z"))
    reader = StoreReader(store.path)
    assert [e.id for e in reader.iter_events(Filters(session="A"))] == [2, 4]
    assert [e.id for e in reader.iter_events(Filters(status="delivered"))] == [6]
    assert [e.id for e in reader.iter_events(Filters(verdict="invalid"))] == [6]
    assert [e.id for e in reader.iter_events(limit=2)] == [5, 6]


def test_missing_store_reads_as_empty(tmp_path: Path) -> None:
    """Reading a store that does not exist yet yields nothing and creates nothing."""
    reader = StoreReader(tmp_path / "none.db")
    assert list(reader.iter_json()) == []
    assert not (tmp_path / "none.db").exists()


def test_get_unknown_id(store: EventStore) -> None:
    """Asking for an id that is not there is EventNotFound (exit 2)."""
    with pytest.raises(EventNotFound):
        StoreReader(store.path).get(42)


async def test_a_record_sqlite_cannot_take_fails_alone(store: EventStore) -> None:
    """Text SQLite refuses (a lone surrogate) fails only its own append, not its batch-mates."""

    def event(session: str) -> CallbackEvent:
        return form_event({"SessionUUID": session}, SignatureResult("unsigned", None, ""))

    results = await asyncio.gather(
        *(store.append(event(s)) for s in ["a", "b", "\ud800", "c", "d"]),
        return_exceptions=True,
    )
    assert isinstance(results[2], StoreWriteError)
    good = [r for i, r in enumerate(results) if i != 2]
    assert all(isinstance(r, CallbackEvent) and r.id is not None for r in good)
    assert [r["session_uuid"] for r in StoreReader(store.path).iter_records()] == list("abcd")


async def _in_one_group(store: EventStore, events: list[CallbackEvent]) -> list[object]:
    """Append `events` while the writer is held, so that it commits them in one transaction."""
    gate, holding = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> bool:
        holding.set()
        return gate.wait(10)

    held = asyncio.ensure_future(store._submit(hold))
    # The writer is inside the held job (its group taken alone) before any append is queued:
    # otherwise it may take some of them into the held job's group.
    assert await asyncio.to_thread(holding.wait, 10)
    groups: list[int] = []
    commit = store._commit

    def spy(jobs: list[Any]) -> None:
        groups.append(len(jobs))
        commit(jobs)

    store._commit = spy  # type: ignore[method-assign]
    try:
        appends = [asyncio.ensure_future(store.append(e)) for e in events]
        await asyncio.sleep(0)  # every append is queued behind the held job
        gate.set()
        await held
        results = await asyncio.gather(*appends, return_exceptions=True)
    finally:
        del store._commit
    assert groups == [len(events)], groups  # the held job was in its own group already
    return results


async def test_deliveries_in_one_group_see_each_other(store: EventStore) -> None:
    """Within one group commit, a later delivery sees the earlier ones as if stored before it:
    the same nonce and body is a retry, the same nonce on another body is replayed, the same
    attempt and status under a new nonce is a retry of the first."""
    earlier = await store.append(make_event(0, attempt="other", nonce="n0"))
    first, dup, forged, retry, old_nonce = await _in_one_group(
        store,
        [
            make_event(1, nonce="n1", attempt="x"),
            make_event(1, nonce="n1", attempt="x"),
            make_event(1, nonce="n1", attempt="y", body="ChannelStatus=delivered"),
            make_event(1, nonce="n2", attempt="x"),
            make_event(2, nonce="n0", attempt="z", body="other"),
        ],
    )
    assert isinstance(first, CallbackEvent) and first.retry_of is None
    assert isinstance(dup, CallbackEvent) and isinstance(forged, CallbackEvent)
    assert isinstance(retry, CallbackEvent) and isinstance(old_nonce, CallbackEvent)
    assert (dup.signature.verdict, dup.retry_of) == ("valid", first.id)
    assert forged.signature.verdict == "replayed" and f"#{first.id}" in forged.signature.detail
    assert (retry.signature.verdict, retry.retry_of) == ("valid", first.id)
    assert old_nonce.signature.verdict == "replayed" and f"#{earlier.id}" in (
        old_nonce.signature.detail
    )
    ids = [e.id for e in (first, dup, forged, retry, old_nonce)]
    assert ids == list(range((earlier.id or 0) + 1, (earlier.id or 0) + 6))
    # What each caller got is what was stored.
    for event in (first, dup, forged, retry, old_nonce):
        stored = StoreReader(store.path).get(event.id or 0)
        assert (stored.signature.verdict, stored.retry_of) == (
            event.signature.verdict,
            event.retry_of,
        )
        assert stored.to_json() == event.to_json()


async def test_a_failed_record_in_a_group_is_not_seen_by_the_rest(store: EventStore) -> None:
    """A record SQLite cannot take fails alone in its group, and the later deliveries of
    the same attempt in that group point at the first stored one, not at it."""
    bad = make_event(1, nonce="n1", attempt="x")
    bad.fields["SessionUUID"] = "\ud800"
    failed, first, again = await _in_one_group(
        store, [bad, make_event(1, nonce="n2", attempt="x"), make_event(1, nonce="n3", attempt="x")]
    )
    assert isinstance(failed, StoreWriteError)
    assert isinstance(first, CallbackEvent) and isinstance(again, CallbackEvent)
    assert first.retry_of is None and again.retry_of == first.id
    assert [r["id"] for r in StoreReader(store.path).iter_records()] == [first.id, again.id]


async def _sessions(store: EventStore, *sessions: str) -> StoreReader:
    """A reader of `store` after one event per session, in the order given."""
    for i, session in enumerate(sessions):
        await store.append(make_event(i, session=session, attempt=f"a{i}"))
    return StoreReader(store.path)


async def test_sessions_starting_is_sorted_distinct_and_capped(store: EventStore) -> None:
    """Stored ids that begin with the prefix, each once, sorted, at most `most` of them."""
    reader = await _sessions(store, "ab3", "ab1", "ab2", "ab1", "xab", "Ab4")
    assert reader.sessions_starting("ab") == ["ab1", "ab2", "ab3"]
    assert reader.sessions_starting("ab", most=2) == ["ab1", "ab2"]


async def test_sessions_starting_reads_glob_characters_as_themselves(store: EventStore) -> None:
    """`*`, `?`, `[` and `]` in a prefix match only themselves; `_` and `%` too."""
    reader = await _sessions(store, "a*1", "ab1", "a?2", "a[3]", "a_4", "a%5")
    assert reader.sessions_starting("a*") == ["a*1"]
    assert reader.sessions_starting("a?") == ["a?2"]
    assert reader.sessions_starting("a[") == ["a[3]"]
    assert reader.sessions_starting("a_") == ["a_4"]
    assert reader.sessions_starting("a%") == ["a%5"]


async def test_whole_session_completes_a_unique_prefix(store: EventStore) -> None:
    """A prefix of one stored id is that id; a whole id, an unknown one or none is unchanged."""
    reader = await _sessions(store, "4124e518-aaaa", "4124e518-aaaa-retry", "9a0c1d2e-bbbb")
    assert reader.whole_session("9a0c") == "9a0c1d2e-bbbb"
    assert reader.whole_session("4124e518-aaaa") == "4124e518-aaaa"
    assert reader.whole_session("ffff") == "ffff"
    assert reader.whole_session("") == ""
    assert reader.whole_session(None) is None


async def test_an_ambiguous_session_prefix_names_five_matches_at_most(store: EventStore) -> None:
    """More than one match is a ConfigError listing up to five of them, then an ellipsis."""
    reader = await _sessions(store, "s1", "s2", "s3", "s4", "s5", "s6", "s7")
    with pytest.raises(ConfigError) as many:
        reader.whole_session("s")
    assert str(many.value) == (
        "--session s matches more than one session (s1, s2, s3, s4, s5, …): give more of it"
    )


async def test_two_matches_are_both_named_without_an_ellipsis(store: EventStore) -> None:
    """Up to five matches are all listed, with no ellipsis."""
    reader = await _sessions(store, "t1", "t2")
    with pytest.raises(ConfigError) as caught:
        reader.whole_session("t")
    assert (
        str(caught.value) == "--session t matches more than one session (t1, t2): give more of it"
    )


async def test_sessions_are_the_latest_heard_from_newest_first(store: EventStore) -> None:
    """sessions(n): the n sessions with the newest events, newest first, no blank session."""
    reader = await _sessions(store, "old", "mid", "new", "old")
    await store.append(CallbackEvent.from_record({**make_event(9).to_record(), "fields": {}}))
    assert reader.sessions(2) == ["old", "new"]
    assert reader.sessions(10) == ["old", "new", "mid"]


async def test_chain_is_the_first_delivery_and_its_retries(store: EventStore) -> None:
    """From any delivery of a callback, chain gives the ids of all of them, oldest first."""
    first = await store.append(make_event(1, nonce="n1"))
    await store.append(make_event(1, status="delivered", nonce="n2"))
    retry = await store.append(make_event(1, nonce="n3"))
    reader = StoreReader(store.path)
    assert reader.chain(first) == [1, 3]
    assert reader.chain(retry) == [1, 3]
    assert reader.chain(make_event(5)) == []


def test_a_missing_store_has_no_sessions_no_chain_and_schema_zero(tmp_path: Path) -> None:
    """Every read of a store that does not exist is empty, and creates nothing."""
    reader = StoreReader(tmp_path / "none.db")
    event = make_event(1)
    event.id = 1
    assert (reader.sessions(5), reader.sessions_starting("a"), reader.chain(event)) == ([], [], [])
    assert (reader.count(), reader.schema_version()) == (0, 0)
    assert not (tmp_path / "none.db").exists()


def test_a_store_is_schema_two(store: EventStore) -> None:
    """A store this version creates says schema 2."""
    assert StoreReader(store.path).schema_version() == 2


async def test_filters_since_ids_after_prefix_and_text(store: EventStore) -> None:
    """Each of the inspector's and export's filters selects exactly its events."""
    for i, (session, when) in enumerate(
        [("abc-1", "2026-12-01T00:00:00"), ("abd-2", "2026-12-02T00:00:00"), ("xyz", "2026-12-03")]
    ):
        event = make_event(i, session=session, attempt=f"a{i}")
        event.received_at = when
        await store.append(event)
    reader = StoreReader(store.path)

    def ids(filters: Filters) -> list[int]:
        return [e.id or 0 for e in reader.iter_events(filters)]

    assert ids(Filters(since="2026-12-02T00:00:00")) == [2, 3]
    assert ids(Filters(ids=(1, 3))) == [1, 3]
    assert ids(Filters(after=1)) == [2, 3]
    assert ids(Filters(session_prefix="ab")) == [1, 2]
    assert ids(Filters(text="XYZ")) == [3]
    assert ids(Filters(session_prefix="ab", after=1, text="abd")) == [2]
    assert reader.count(Filters(session_prefix="ab")) == 2


def test_a_limit_past_sqlites_largest_integer_is_a_config_error(store: EventStore) -> None:
    """--limit 2**63 is refused in a sentence, not left to overflow in SQLite."""
    reader = StoreReader(store.path)
    assert list(reader.iter_json(limit=2**63 - 1)) == []
    with pytest.raises(ConfigError) as caught:
        list(reader.iter_json(limit=2**63))
    assert str(caught.value) == (
        "--limit must be at most 2**63-1 (9223372036854775807), not 9223372036854775808"
    )


@pytest.mark.parametrize("event_id", [-1, 2**63])
async def test_an_id_sqlite_cannot_hold_is_not_found(store: EventStore, event_id: int) -> None:
    """A negative id or one past 2**63-1 is EventNotFound with the usual hint."""
    await store.append(make_event(1))
    with pytest.raises(EventNotFound) as caught:
        StoreReader(store.path).get(event_id)
    assert str(caught.value) == (
        f"no event #{event_id} in {store.path}; `verifycli events` lists them"
    )


async def test_a_deleted_store_is_made_again_and_the_user_told_once(store: EventStore) -> None:
    """The file deleted while open: the next callback goes to a new store at the path, ids
    start again, and one notice says the events before are not in it. (What a reader sees
    of the new file is not asserted: see docs/testing.md, a race with the old -wal file.)"""
    await store.append(make_event(1))
    store.path.unlink()
    again = await store.append(make_event(2))
    assert again.id == 1
    assert store.take_notice() == (
        f"the store {store.path} was deleted or replaced while listening: callbacks now go "
        "to the file at that path (events stored before are not in it)"
    )
    assert store.take_notice() is None
    await store.append(make_event(3))
    assert store.take_notice() is None


async def test_a_replaced_store_is_refused_until_it_is_a_store_again(store: EventStore) -> None:
    """A foreign file at the path: writes fail with the reason, one notice says so; a store
    put back there is used again, with a notice; replaced once more, the user is told again."""
    await store.append(make_event(1))
    store.path.unlink()
    store.path.write_text("not a store\n")
    for _ in range(2):
        with pytest.raises(StoreWriteError, match=f"^{store.path} is not the store it was$"):
            await store.append(make_event(2))
    notice = store.take_notice()
    assert notice is not None and notice.startswith(
        f"the store {store.path} was deleted or replaced while listening and cannot be opened "
        f"again ({store.path} is not a verifycli store"
    )
    assert notice.endswith("callbacks are answered 503 until it can")
    assert store.take_notice() is None
    store.path.unlink()
    assert (await store.append(make_event(3))).id == 1
    assert "now go to the file at that path" in (store.take_notice() or "")
    store.path.unlink()  # and replaced again: said again
    store.path.write_text("not a store\n")
    with pytest.raises(StoreWriteError):
        await store.append(make_event(4))
    assert "cannot be opened again" in (store.take_notice() or "")


def test_a_folder_given_as_the_store_is_refused_with_a_file_to_use(tmp_path: Path) -> None:
    """--store DIR: the message suggests DIR/events.sqlite3."""
    for opener in (EventStore, StoreReader):
        with pytest.raises(StoreError) as caught:
            opener(tmp_path)
        assert str(caught.value) == (
            f"{tmp_path} is a folder, not a store file: give --store a file such as "
            f"{tmp_path / 'events.sqlite3'}"
        )


def test_foreign_and_newer_files_are_refused_in_exact_words(tmp_path: Path) -> None:
    """A foreign file names both ways to choose another; a newer store, both versions."""
    foreign = tmp_path / "other.db"
    foreign.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    with pytest.raises(StoreError) as caught:
        StoreReader(foreign)
    assert str(caught.value) == (
        f"{foreign} is not a verifycli store; choose another file with --store or VERIFYCLI_STORE"
    )
    newer = tmp_path / "newer.db"
    EventStore(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as too_new:
        StoreReader(newer)
    assert str(too_new.value) == (
        f"{newer} was written by a newer verifycli (schema 3, this one reads 2); upgrade "
        "verifycli or use another --store"
    )


def test_an_empty_sqlite_database_is_foreign(tmp_path: Path) -> None:
    """A whole SQLite file without our application id (even an empty one) is someone else's."""
    path = tmp_path / "empty.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="is not a verifycli store"):
        EventStore(path)


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    """A zero-byte file at the path (touch) is not foreign: it is made a store."""
    path = tmp_path / "events.sqlite3"
    path.touch()
    EventStore(path).close()
    assert StoreReader(path).schema_version() == 2


def test_a_file_where_the_folder_goes_is_named_in_the_error(tmp_path: Path) -> None:
    """A file in the way of the store's folder: the message says so and what to do."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError) as caught:
        EventStore(blocker / "sub" / "events.sqlite3")
    assert str(caught.value) == (
        f"cannot create the folder {blocker / 'sub'} for the store (a file is in the way); "
        "choose a writable --store"
    )


def test_a_folder_that_cannot_be_made_is_named_with_the_reason(tmp_path: Path) -> None:
    """A folder the system refuses for another reason than a file in the way: the message
    gives the system's own reason."""
    folder = tmp_path / ("f" * 300)  # longer than any file name may be
    with pytest.raises(StoreError) as caught:
        EventStore(folder / "events.sqlite3")
    assert str(caught.value) == (
        f"cannot create the folder {folder} for the store (File name too long); "
        "choose a writable --store"
    )


def test_a_one_byte_file_is_refused_as_foreign(tmp_path: Path) -> None:
    """Any file with content is looked at before it is written, even one byte: refused as not
    a store, and left as it was."""
    path = tmp_path / "events.sqlite3"
    path.write_bytes(b"x")
    with pytest.raises(StoreError) as caught:
        EventStore(path)
    assert str(caught.value) == (
        f"{path} is not a verifycli store; choose another file with --store or VERIFYCLI_STORE"
    )
    assert path.read_bytes() == b"x"


def test_a_store_in_new_nested_folders_is_created(tmp_path: Path) -> None:
    """Missing parent folders are made (0700), and an existing one is fine."""
    path = tmp_path / "a" / "b" / "events.sqlite3"
    EventStore(path).close()
    EventStore(path).close()
    assert (path.parent.stat().st_mode & 0o777, path.stat().st_mode & 0o777) == (0o700, 0o600)


def test_a_post_without_a_query_is_digested_as_its_body() -> None:
    """The digest a nonce vouches for: a plain POST's is its body's SHA-256."""
    import hashlib

    from verifycli.store import content_digest

    event = make_event(1, body="a=1")
    assert content_digest(event) == hashlib.sha256(b"a=1").hexdigest()


@pytest.mark.parametrize(("method", "query"), [("GET", "a=1"), ("POST", "a=1"), ("GET", "")])
def test_a_query_or_a_get_is_digested_with_the_method_and_lengths(method: str, query: str) -> None:
    """Method, body and query, with their lengths, so no two splits give one digest."""
    import hashlib

    from verifycli.store import content_digest

    event = make_event(1, body="b=2")
    event.method, event.query = method, query
    head = f"{method} 3 {len(query)}\n".encode()
    assert content_digest(event) == hashlib.sha256(head + b"b=2" + query.encode()).hexdigest()


async def test_the_writer_runs_wal_with_full_sync(store: EventStore) -> None:
    """The running writer connection: WAL, synchronous FULL (2), autocheckpoint 10000."""
    assert await store.durability() == ("wal", 2)
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10_000
    assert store._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def _in_the_file_itself(path: Path) -> int:
    """Events in the database file alone, as if its -wal were lost: what a checkpoint has
    copied there."""
    alone = path.with_name("alone.sqlite3")
    alone.write_bytes(path.read_bytes())
    try:
        with sqlite3.connect(alone) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        alone.unlink()


async def test_the_writer_and_the_checkpointer_are_named_daemon_threads(
    store: EventStore,
) -> None:
    """Both threads carry verifycli's names (what a thread dump shows) and are daemons: a
    program that never calls close() still exits."""
    threads = {t.name: t.daemon for t in threading.enumerate()}
    assert (threads.get("verifycli-store"), threads.get("verifycli-checkpoint")) == (True, True)


async def test_commits_reach_the_database_file_while_the_store_is_open(
    store: EventStore,
) -> None:
    """The checkpoint thread copies a commit from the WAL into the file within moments; the
    writer alone would wait for 10,000 pages. Again after the file was deleted and made anew:
    the checkpointer follows the new file."""
    await store.append(make_event(1))
    wait_until(lambda: _in_the_file_itself(store.path) == 1, 5, "a checkpoint")
    store.path.unlink()
    await store.append(make_event(2))
    await store.append(make_event(3))
    wait_until(lambda: _in_the_file_itself(store.path) == 2, 5, "a checkpoint of the new file")


async def test_a_forward_without_a_status_keeps_the_answer(store: EventStore) -> None:
    """set_forward with no status records the forward and leaves the answer as it was."""
    event = await store.append(make_event(1), lambda e: 202)
    await store.set_forward(event.id or 0, {"status": None, "error": "refused"})
    stored = StoreReader(store.path).get(event.id or 0)
    assert (stored.forward, stored.response_status) == ({"status": None, "error": "refused"}, 202)


async def test_a_closed_store_refuses_writes(store_path: Path) -> None:
    """After close, append, set_forward and durability raise StoreWriteError with the same
    sentence; closing twice is harmless."""
    opened = EventStore(store_path)
    opened.close()
    opened.close()
    with pytest.raises(StoreWriteError, match="^the store is closed$"):
        await opened.append(make_event(1))
    with pytest.raises(StoreWriteError, match="^the store is closed$"):
        await opened.set_forward(1, {"status": 200})
    with pytest.raises(StoreWriteError, match="^the store is closed$"):
        await opened.durability()


def test_an_empty_file_reads_as_an_empty_store_and_one_byte_is_foreign(tmp_path: Path) -> None:
    """A zero-byte file (a store being created) reads as empty; one byte is not a store."""
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    assert (StoreReader(empty).count(), list(StoreReader(empty).iter_json())) == (0, [])
    one = tmp_path / "one.sqlite3"
    one.write_bytes(b"S")
    with pytest.raises(StoreError, match="is not a verifycli store"):
        StoreReader(one)


async def test_close_writes_every_queued_append_first(store: EventStore) -> None:
    """close() queued behind 50 appends returns only once all 50 are committed."""
    import time

    entered, gate = threading.Event(), threading.Event()
    held = asyncio.ensure_future(store._submit(lambda conn: entered.set() or gate.wait(10)))
    assert await asyncio.to_thread(entered.wait, 10)  # the writer is inside the held job
    appends = [
        asyncio.ensure_future(store.append(make_event(i, attempt=f"a{i}"))) for i in range(50)
    ]
    await asyncio.sleep(0)  # each append has queued its job behind the held one
    closing = threading.Thread(target=store.close)
    closing.start()
    deadline = time.monotonic() + 10
    while store._queue.qsize() < 51:  # the 50 jobs, then close's stop mark
        assert time.monotonic() < deadline
        await asyncio.sleep(0.001)
    gate.set()
    await held
    stored = await asyncio.wait_for(asyncio.gather(*appends), 10)
    closing.join(10)
    assert not closing.is_alive()
    assert [e.id for e in stored] == list(range(1, 51))
    assert StoreReader(store.path).count() == 50


@pytest.mark.parametrize("writer_open", [False, True])
def test_a_reader_connection_cannot_write(store_path: Path, writer_open: bool) -> None:
    """Readers open the file read-only, idle (immutable) or beside a running writer."""
    from verifycli.store import _connect_read_only

    EventStore(store_path).close()
    writer = EventStore(store_path) if writer_open else None
    try:
        conn = _connect_read_only(store_path)
        try:
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                conn.execute("CREATE TABLE t (x)")
        finally:
            conn.close()
    finally:
        if writer is not None:
            writer.close()


async def test_five_matches_are_listed_without_an_ellipsis(store: EventStore) -> None:
    """Exactly five matching sessions are all named, with no ellipsis."""
    reader = await _sessions(store, "u1", "u2", "u3", "u4", "u5")
    with pytest.raises(ConfigError) as caught:
        reader.whole_session("u")
    assert str(caught.value) == (
        "--session u matches more than one session (u1, u2, u3, u4, u5): give more of it"
    )


def test_a_query_that_was_not_utf8_is_digested_as_its_bytes() -> None:
    """A query holding a raw byte that is not UTF-8 (a lone surrogate, as aiohttp decodes it)
    is digested as the bytes that came, not refused."""
    import hashlib

    from verifycli.store import content_digest

    event = make_event(1, body="b=2")
    event.method, event.query = "GET", "a=\udcff"
    expected = hashlib.sha256(b"GET 3 3\n" + b"b=2" + b"a=\xff").hexdigest()
    assert content_digest(event) == expected


async def test_a_cancelled_append_keeps_nobody_else_in_its_group_waiting(
    store: EventStore,
) -> None:
    """A caller that gave up (the sender hung up) while its callback waited for the writer:
    the others stored with it still get their answers, and its callback is stored too."""
    gate = threading.Event()
    held = asyncio.ensure_future(store._submit(lambda conn: gate.wait(10)))
    appends = [
        asyncio.ensure_future(store.append(make_event(i, attempt=f"a{i}"))) for i in range(3)
    ]
    await asyncio.sleep(0)  # every append is queued behind the held job
    appends[0].cancel()
    gate.set()
    await held
    stored = await asyncio.wait_for(asyncio.gather(*appends[1:]), 5)
    assert appends[0].cancelled() and [e.id for e in stored] == [2, 3]
    assert StoreReader(store.path).count() == 3


async def test_a_failed_write_says_sqlites_reason(store: EventStore) -> None:
    """The StoreWriteError a caller gets (and the user is warned with) is SQLite's sentence."""
    store._conn.execute("PRAGMA query_only = 1")
    try:
        with pytest.raises(StoreWriteError) as caught:
            await store.append(make_event(1))
    finally:
        store._conn.execute("PRAGMA query_only = 0")
    assert str(caught.value) == "attempt to write a readonly database"


async def test_a_failed_record_fails_alone_in_a_group_of_more_than_one_insert(
    store: EventStore,
) -> None:
    """75 appends in one group (two inserts of at most 70): a record SQLite cannot take in the
    first fails alone, and every one of the rest, in both inserts, is stored."""
    bad = make_event(0, attempt="a0")
    bad.fields["SessionUUID"] = "\ud800"
    events = [bad] + [make_event(i, attempt=f"a{i}") for i in range(1, 75)]
    results = await _in_one_group(store, events)
    assert isinstance(results[0], StoreWriteError)
    assert [getattr(r, "id", None) for r in results[1:]] == list(range(1, 75))


async def test_an_invalid_event_neither_lends_nor_borrows_a_nonce(store: EventStore) -> None:
    """A forged request reusing a real nonce stays `invalid` (not `replayed`: that is for a
    valid signature on another body), and a forged one first makes no later real one look
    replayed: one by one and in one group."""
    await store.append(make_event(1, nonce="n1", attempt="a1"))
    forged = await store.append(make_event(2, nonce="n1", attempt="a2", verdict="invalid"))
    assert forged.signature.verdict == "invalid"
    in_group = await _in_one_group(
        store,
        [
            make_event(3, nonce="n1", attempt="a3", verdict="invalid"),
            make_event(4, nonce="n4", attempt="a4", verdict="invalid"),
            make_event(5, nonce="n4", attempt="a5"),
        ],
    )
    assert [e.signature.verdict for e in in_group] == ["invalid", "invalid", "valid"]
