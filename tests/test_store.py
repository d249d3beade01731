"""The SQLite store: durable appends, retries and replays, refusing foreign files."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers.events import make_event

from verifycli.callbacks import CallbackEvent
from verifycli.errors import EventNotFound, StoreError, StoreWriteError
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
        return CallbackEvent(
            method="POST",
            url="http://x/cb",
            path="/cb",
            query="",
            headers={},
            content_type="",
            body="",
            body_encoding="utf-8",
            fields={"SessionUUID": session},
            signature=SignatureResult("unsigned", None, ""),
        )

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
    gate = threading.Event()
    held = asyncio.ensure_future(store._submit(lambda conn: gate.wait(10)))
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
    # The held job came alone, or first in the same group.
    assert groups in ([1, len(events)], [len(events) + 1]), groups
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
