"""The store's schema 2 and its writer: no index on a random key, the look-back in temp tables
fed by `keys`, a group's appends in one statement each, and stores written by schema 1 read as
they are and upgraded by the first writer."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from helpers.events import make_event

from verifycli.doctor import check_store
from verifycli.errors import StoreError, StoreWriteError
from verifycli.store import EventStore, Filters, StoreReader

# How schema 1 (verifycli 0.1) indexed its events: a page written for each random key.
_SCHEMA_1_INDEXES = (
    "CREATE INDEX events_session ON events (session_uuid)",
    "CREATE INDEX events_retry ON events (attempt_uuid, channel_status, session_status)"
    " WHERE attempt_uuid IS NOT NULL",
    "CREATE INDEX events_nonce ON events (nonce) WHERE nonce IS NOT NULL",
)


def _sql(path: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def _schema_1_store(path: Path) -> None:
    """A store as verifycli 0.1 left it: the same events, its indexes, no `keys`."""

    async def fill() -> None:
        with EventStore(path) as store:
            await store.append(make_event(1, nonce="n1", attempt="a1", session="s-old"))
            await store.append(make_event(2, nonce="n2", attempt="a2", session="s-old"))

    asyncio.run(fill())
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER events_keys")
        conn.execute("DROP TABLE keys")
        for statement in _SCHEMA_1_INDEXES:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
    finally:
        conn.close()


async def test_a_new_store_indexes_no_random_key(store: EventStore) -> None:
    """Only `received_at`, which grows at its end, is indexed; the keys have their own
    narrow table, filled by a trigger in the same insert."""
    await store.append(make_event(1, nonce="n1", attempt="a1", session="s1"))
    indexes = _sql(store.path, "SELECT name FROM sqlite_master WHERE type = 'index'")
    assert {name for (name,) in indexes if not str(name).startswith("sqlite_")} == {
        "events_received"
    }
    assert _sql(store.path, "SELECT * FROM keys") == [
        (1, "s1", "a1", "sent", "in-progress", "n1", store_digest(store.path, 1))
    ]
    assert _sql(store.path, "PRAGMA user_version") == [(2,)]


def store_digest(path: Path, event_id: int) -> str:
    return str(_sql(path, f"SELECT body_sha256 FROM events WHERE id = {event_id}")[0][0])


async def test_an_invalid_event_lends_its_nonce_to_no_look_back(store: EventStore) -> None:
    """Only a valid event's nonce is kept: a forged request cannot make the real one that
    follows it look replayed."""
    forged = await store.append(make_event(1, nonce="n1", attempt="a1", verdict="invalid"))
    real = await store.append(make_event(1, nonce="n1", attempt="a9", body="real"))
    assert _sql(store.path, "SELECT nonce FROM keys ORDER BY id") == [(None,), ("n1",)]
    assert (real.signature.verdict, real.retry_of) == ("valid", None)
    assert forged.id is not None


def test_a_schema_1_store_is_upgraded_and_its_events_looked_back(tmp_path: Path) -> None:
    """The first writer moves the keys of a schema-1 store into `keys` and drops its indexes;
    a delivery of an event stored before is still a retry, a reused nonce still a replay."""
    path = tmp_path / "old.sqlite3"
    _schema_1_store(path)

    async def deliver() -> tuple[object, ...]:
        with EventStore(path) as store:
            again = await store.append(make_event(1, nonce="n1", attempt="a1", session="s-old"))
            forged = await store.append(make_event(9, nonce="n2", attempt="zz", body="other"))
            retry = await store.append(make_event(2, nonce="n3", attempt="a2", session="s-old"))
            return again.retry_of, forged.signature.verdict, retry.retry_of

    assert asyncio.run(deliver()) == (1, "replayed", 2)
    assert _sql(path, "PRAGMA user_version") == [(2,)]
    names = {n for (n,) in _sql(path, "SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert not names & {"events_session", "events_retry", "events_nonce"}
    assert [i for (i,) in _sql(path, "SELECT id FROM keys ORDER BY id")] == [1, 2, 3, 4, 5]


def test_a_schema_1_store_reads_by_session_without_being_upgraded(tmp_path: Path) -> None:
    """`events`, export and the inspector read a schema-1 store as it is (they write nothing),
    its sessions included; doctor passes it."""
    path = tmp_path / "old.sqlite3"
    _schema_1_store(path)
    reader = StoreReader(path)
    assert [e.id for e in reader.iter_events(Filters(session="s-old"))] == [1, 2]
    assert reader.count(Filters(session_prefix="s-o")) == 2
    assert reader.count(Filters(sessions=("s-old", "s-new"))) == 2
    assert reader.sessions(5) == ["s-old"]
    assert reader.whole_session("s-o") == "s-old"
    assert check_store(path).status == "ok"
    assert _sql(path, "PRAGMA user_version") == [(1,)]


async def test_sessions_read_from_keys(store: EventStore) -> None:
    """A session, its prefix and the inspector's `after` select the same events through
    `keys` as through the records."""
    for n, session in enumerate(["s-a", "s-b", "s-a", "s-c", "s-a"]):
        await store.append(make_event(n, attempt=f"a{n}", session=session, nonce=f"n{n}"))
    reader = StoreReader(store.path)
    assert [e.id for e in reader.iter_events(Filters(session="s-a"))] == [1, 3, 5]
    assert [e.id for e in reader.iter_events(Filters(session_prefix="s-a", after=1))] == [3, 5]
    assert reader.count(Filters(session="s-b")) == 1
    assert [e.id for e in reader.iter_events(Filters(sessions=("s-c", "s-b")))] == [2, 4]
    assert reader.count(Filters(sessions=())) == 0
    assert reader.sessions(2) == ["s-a", "s-c"]
    assert reader.sessions_starting("s-") == ["s-a", "s-b", "s-c"]


async def test_two_writers_on_one_store_look_back_across(tmp_path: Path) -> None:
    """Two listens on one store (two writers): each sees what the other stored, so a
    delivery that reaches the second is still a retry, a reused nonce still a replay."""
    path = tmp_path / "shared.sqlite3"
    with EventStore(path) as one, EventStore(path) as two:
        first = await one.append(make_event(1, nonce="n1", attempt="a1"))
        again = await two.append(make_event(1, nonce="n1", attempt="a1"))
        forged = await two.append(make_event(5, nonce="n1", attempt="b1", body="other"))
        retry = await one.append(make_event(7, nonce="n7", attempt="b1", body="other"))
    assert (again.retry_of, again.signature.verdict) == (first.id, "valid")
    assert forged.signature.verdict == "replayed" and f"#{first.id}" in forged.signature.detail
    assert retry.retry_of == forged.id


async def test_a_group_that_rolls_back_leaves_nothing_to_look_back_on(store: EventStore) -> None:
    """When a group's transaction fails as a whole, its events are not stored and the
    look-back forgets them too: the sender's retry is stored as a first delivery."""
    gate = threading.Event()
    held = asyncio.ensure_future(store._submit(lambda conn: gate.wait(10)))
    lost = asyncio.ensure_future(store.append(make_event(1, nonce="n1", attempt="a1")))
    broken = asyncio.ensure_future(store._submit(lambda conn: conn.execute("INSERT INTO nowhere")))
    await asyncio.sleep(0)  # both queued behind the held job: one group
    gate.set()
    await asyncio.gather(held, return_exceptions=True)  # alone, or failed with its group
    with pytest.raises(StoreWriteError):
        await lost
    with pytest.raises(StoreWriteError):
        await broken
    retried = await store.append(make_event(1, nonce="n1", attempt="a1"))
    assert (retried.id, retried.retry_of, retried.signature.verdict) == (1, None, "valid")


async def test_appends_in_one_group_share_one_look_back_and_one_insert(
    store: EventStore,
) -> None:
    """Appends committed together are looked back on and inserted by one statement each (every
    statement makes the writer win the GIL back from the event loop), not two a callback."""
    await store.append(make_event(0, attempt="warm", nonce="w"))
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    gate = threading.Event()
    held = asyncio.ensure_future(store._submit(lambda conn: gate.wait(10)))
    appends = [
        asyncio.ensure_future(store.append(make_event(n, attempt=f"a{n}", nonce=f"n{n}")))
        for n in range(20)
    ]
    await asyncio.sleep(0)  # all queued behind the held job
    gate.set()
    await held
    stored = await asyncio.gather(*appends)
    store._conn.set_trace_callback(None)
    assert [e.id for e in stored] == list(range(2, 22))
    # SQLite's trace repeats a statement for each trigger it fires: count distinct texts.
    inserts = {s for s in statements if s.startswith("INSERT INTO events")}
    looks = {s for s in statements if s.startswith("WITH g(")}
    assert len(inserts) == len(looks) == 1
    assert next(iter(inserts)).startswith("INSERT INTO events (id,")  # the ids given at once
    assert not [s for s in statements if s.startswith("SELECT n.id")]  # no one-by-one look


async def test_a_job_that_fails_unexpectedly_fails_its_group_not_the_writer(
    store: EventStore,
) -> None:
    """Whatever a job raises, its group is rolled back and told (503 for a callback), and the
    writer goes on: appends after it are stored instead of waiting for ever."""

    def broken(conn: sqlite3.Connection) -> None:
        raise RuntimeError("a bug in a job")

    with pytest.raises(StoreWriteError):
        await asyncio.wait_for(store._submit(broken), 10)
    after = await asyncio.wait_for(store.append(make_event(1, nonce="n1")), 10)
    assert after.id == 1


def test_an_upgrade_sqlite_refuses_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    """A schema-1 store that already has a table named `keys` (someone's own): the upgrade
    fails with SQLite's reason and what to do, and the store keeps its version and events."""
    path = tmp_path / "events.sqlite3"
    _schema_1_store(path)
    _sql(path, "CREATE TABLE keys (mine)")
    with pytest.raises(StoreError) as caught:
        EventStore(path)
    assert str(caught.value) == (
        f"cannot write the store {path}: table keys already exists; choose a writable --store"
    )
    assert _sql(path, "PRAGMA user_version") == [(1,)]
    assert [e.id for e in StoreReader(path).iter_events()] == [1, 2]
