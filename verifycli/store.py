"""The event store: SQLite in WAL mode, one writer thread, group commit, streaming reads."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from verifycli.callbacks import CallbackEvent, join_record
from verifycli.errors import ConfigError, EventNotFound, StoreError, StoreWriteError
from verifycli.signature import SignatureResult

SCHEMA_VERSION = 2
APPLICATION_ID = 0x56434C49  # "VCLI": tells our files from any other SQLite database
_SQLITE_MAGIC = b"SQLite format 3\x00"
_BATCH_MAX = 512
# Checkpoints (WAL pages copied into the database) run in their own thread, at most this
# often; the writer checkpoints itself only if the WAL ever reaches _WRITER_CHECKPOINT pages.
_CHECKPOINT_EVERY = 0.1
_WRITER_CHECKPOINT = 10_000
_FETCH = 1000
_SQLITE_MAX_INT = 2**63 - 1  # the largest id or LIMIT SQLite can take

_EVENTS = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    session_uuid TEXT,
    attempt_uuid TEXT,
    channel_status TEXT,
    session_status TEXT,
    verdict TEXT NOT NULL,
    nonce TEXT,
    body_sha256 TEXT,
    retry_of INTEGER,
    response_status INTEGER,
    record TEXT NOT NULL,
    forward TEXT
)"""
# Every index of a store grows only at its end. An index keyed on a random id (a session, an
# attempt, a nonce) takes one more page to the WAL and its fsync for each callback, which
# halved ingest (docs/performance.md); so those keys are copied, by a trigger in the same
# insert, into `keys`, a narrow table that grows at its end too. The writer looks back in
# the writer connection's temp copies of it (_LOOK_BACK_TABLES); readers scan it, not the
# records.
_KEYS = (
    """CREATE TABLE keys (
    id INTEGER PRIMARY KEY,
    session_uuid TEXT,
    attempt_uuid TEXT,
    channel_status TEXT,
    session_status TEXT,
    nonce TEXT,
    body_sha256 TEXT
)""",
    # `nonce` only for a valid event: the look-back asks for the first valid use of a nonce.
    """CREATE TRIGGER events_keys AFTER INSERT ON events BEGIN
    INSERT INTO keys VALUES (new.id, new.session_uuid, new.attempt_uuid, new.channel_status,
        new.session_status, CASE WHEN new.verdict = 'valid' THEN new.nonce END,
        CASE WHEN new.verdict = 'valid' THEN new.body_sha256 END);
END""",
)
_SCHEMA = (_EVENTS, "CREATE INDEX events_received ON events (received_at)", *_KEYS)
# Schema 1 kept those keys in indexes of `events`: moved into `keys` when a writer opens it.
_FROM_1 = (
    *_KEYS,
    "INSERT INTO keys SELECT id, session_uuid, attempt_uuid, channel_status, session_status,"
    " CASE WHEN verdict = 'valid' THEN nonce END,"
    " CASE WHEN verdict = 'valid' THEN body_sha256 END FROM events ORDER BY id",
    "DROP INDEX IF EXISTS events_session",
    "DROP INDEX IF EXISTS events_retry",
    "DROP INDEX IF EXISTS events_nonce",
)
# The writer's look-back: the first valid use of each nonce and the first delivery of each
# attempt's status, in the writer connection's temp tables. They are in its transactions, so a
# group that rolls back leaves them as they were; SQLite keeps them in a temporary file of its
# own, deleted as it is opened and never synced, behind a page cache of ~2 MB, so memory stays
# flat as the store grows (in memory they took ~190 bytes a callback). A row with a NULL key
# part matches nothing, as `= NULL` matches nothing, so none is kept.
_LOOK_BACK_TABLES = (
    "PRAGMA temp_store = FILE",
    "CREATE TEMP TABLE first_nonce (nonce TEXT PRIMARY KEY, id INTEGER NOT NULL, body_sha256 TEXT)"
    " WITHOUT ROWID",
    "CREATE TEMP TABLE first_retry (attempt_uuid TEXT, channel_status TEXT, session_status TEXT,"
    " id INTEGER NOT NULL, PRIMARY KEY (attempt_uuid, channel_status, session_status))"
    " WITHOUT ROWID",
    """CREATE TEMP TRIGGER keys_first AFTER INSERT ON main.keys BEGIN
    INSERT OR IGNORE INTO first_nonce SELECT new.nonce, new.id, new.body_sha256
        WHERE new.nonce IS NOT NULL;
    INSERT OR IGNORE INTO first_retry
        SELECT new.attempt_uuid, new.channel_status, new.session_status, new.id
        WHERE new.attempt_uuid IS NOT NULL AND new.channel_status IS NOT NULL
        AND new.session_status IS NOT NULL;
END""",
)
# Keys other writers (another listen on the same store) added since `?`, read in id order so
# that the first stays first: run while the write lock is held, before a group looks back.
_CATCH_UP = (
    "INSERT OR IGNORE INTO temp.first_nonce SELECT nonce, id, body_sha256 FROM main.keys"
    " WHERE id > ? AND nonce IS NOT NULL ORDER BY id",
    "INSERT OR IGNORE INTO temp.first_retry"
    " SELECT attempt_uuid, channel_status, session_status, id FROM main.keys"
    " WHERE id > ? AND attempt_uuid IS NOT NULL AND channel_status IS NOT NULL"
    " AND session_status IS NOT NULL ORDER BY id",
)

# Keys kept in their own columns, so they can change after the insert.
_COLUMN_KEYS = ("id", "retry_of", "response_status", "forward")

T = TypeVar("T")
Policy = Callable[[CallbackEvent], int]


@dataclass(frozen=True)
class Filters:
    """What `events` and `export` select; None means any."""

    session: str | None = None
    status: str | None = None
    verdict: str | None = None
    since: str | None = None
    ids: tuple[int, ...] | None = None
    # The inspector's filters: a SessionUUID prefix, words anywhere in the record, new ids.
    session_prefix: str | None = None
    sessions: tuple[str, ...] | None = None  # any of these SessionUUIDs
    text: str | None = None
    after: int | None = None

    def where(self, keyed: bool) -> tuple[str, list[Any]]:
        """The WHERE clause and its arguments. `keyed`: the store has the `keys` table (schema
        2), whose narrow rows are scanned for a session instead of the records."""
        clauses: list[str] = []
        args: list[Any] = []
        session: list[str] = []  # conditions on the session, with their arguments in `held`
        held: list[Any] = []
        if self.session is not None:
            session.append("session_uuid = ?")
            held.append(self.session)
        if self.session_prefix:
            session.append("substr(session_uuid, 1, ?) = ?")
            held.extend((len(self.session_prefix), self.session_prefix))
        if self.sessions is not None:
            session.append(f"session_uuid IN ({','.join('?' * len(self.sessions))})")
            held.extend(self.sessions)
        if session and keyed:
            # Only the rows after `after` are read again when the inspector asks for new ones.
            if self.after is not None:
                session.append("id > ?")
                held.append(self.after)
            clauses.append(f"id IN (SELECT id FROM keys WHERE {' AND '.join(session)})")
            args.extend(held)
        else:
            clauses.extend(session)
            args.extend(held)
        for column, value in (("channel_status", self.status), ("verdict", self.verdict)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if self.since is not None:
            clauses.append("received_at >= ?")
            args.append(self.since)
        if self.ids is not None:
            clauses.append(f"id IN ({','.join('?' * len(self.ids))})")
            args.extend(self.ids)
        if self.text:
            # ASCII case folding only (SQLite's lower()); the record is JSON with raw UTF-8.
            clauses.append("instr(lower(record), lower(?)) > 0")
            args.append(self.text)
        if self.after is not None:
            clauses.append("id > ?")
            args.append(self.after)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _sessions(conn: sqlite3.Connection) -> str:
    """The table to read sessions from: the narrow `keys`, or the records in a schema-1 store."""
    return "keys" if _keyed(conn) else "events"


def _keyed(conn: sqlite3.Connection) -> bool:
    """Whether the store has the `keys` table (schema 2); one written by verifycli before has
    its session index instead, until a listen opens it."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'keys'")
    return found.fetchone() is not None


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection that leaves nothing behind. Even a read-only look at a WAL file
    leaves -wal and -shm beside it; with no -wal (or -journal: a store being created) there,
    the file is whole and can be read as immutable, which creates nothing."""
    idle = not any(path.with_name(path.name + s).exists() for s in ("-wal", "-journal"))
    mode = "mode=ro&immutable=1" if idle else "mode=ro"
    # A timeout: another listen may be creating this very file this instant (locked).
    return sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=5)


def _inspect(path: Path) -> None:
    """Refuse, without writing a byte, a file that is not a verifycli store of a known version."""
    if path.is_dir():
        raise StoreError(
            f"{path} is a folder, not a store file: give --store a file such as "
            f"{path / 'events.sqlite3'}"
        )
    try:
        with path.open("rb") as stream:
            head = stream.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(
            f"cannot read the store {path} ({exc.strerror}); choose another --store"
        ) from None
    foreign = StoreError(
        f"{path} is not a verifycli store; choose another file with --store or VERIFYCLI_STORE"
    )
    if head != _SQLITE_MAGIC:
        raise foreign
    try:
        conn = _connect_read_only(path)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a whole database?
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        raise foreign from None
    # Our stores get their application id in the transaction that creates them, so a file
    # without it, even an empty SQLite database, is someone else's.
    if app_id != APPLICATION_ID:
        raise foreign
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer verifycli (schema {version}, this one reads "
            f"{SCHEMA_VERSION}); upgrade verifycli or use another --store"
        )


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at `path` (device, inode); None when none is."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _retry_locked(run: Callable[[], T], seconds: float = 5.0) -> T:
    """`run`, again while another process holds the lock SQLite's busy timeout does not wait
    for (switching a new file to WAL)."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        try:
            return run()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _row_json(row: tuple[int, str, int | None, int | None, str | None]) -> str:
    """One record's JSON, assembled from the stored text without parsing it."""
    return join_record(*row)


def _load_look_back(conn: sqlite3.Connection) -> int:
    """Make the writer connection's look-back tables and fill them from the store; returns
    the last id they hold."""
    for statement in _LOOK_BACK_TABLES:
        conn.execute(statement)
    conn.execute("BEGIN")
    _catch_up(conn, 0)
    known = _newest(conn)
    conn.execute("COMMIT")
    return known


def _newest(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM keys").fetchone()[0])


def _catch_up(conn: sqlite3.Connection, known: int) -> None:
    """Add to the look-back tables the keys stored after id `known`: by another writer, or
    all of them when `known` is 0. Called with the write lock held (no other writer can add
    any until this transaction ends), before the group looks back."""
    if _newest(conn) > known:
        for statement in _CATCH_UP:
            conn.execute(statement, (known,))


class _Job:
    __slots__ = ("run", "future", "loop", "append")

    def __init__(
        self,
        run: Callable[[sqlite3.Connection], Any],
        future: asyncio.Future[Any] | None,
        loop: asyncio.AbstractEventLoop | None,
        append: _Append | None = None,
    ) -> None:
        self.run = run  # the job alone; for an append, its one-by-one way
        self.future = future
        self.loop = loop
        self.append = append  # an append, which the writer may store with its neighbours


Encoded = tuple[SignatureResult, str]  # a record's JSON, with the signature it holds
_Append = tuple[CallbackEvent, "Policy | None", "Encoded | None"]


def _settle(batch: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for job, result, error in batch:
        fut = job.future
        if fut is None or fut.done():
            continue
        if error is not None:
            fut.set_exception(StoreWriteError(str(error)))
        else:
            fut.set_result(result)


class EventStore:
    """A store file opened for reading and writing; all writes go through one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._conn, self._known = self._open_writer(path)  # _known: the look-back's last id
        self._identity = _identity(path)
        self._generation = 0  # bumped when the file is opened again (it was deleted or replaced)
        self._notices: list[str] = []
        self._lost = False  # the file at the path is not ours: said once, until it is again
        self._thread = threading.Thread(
            target=self._write_loop, name="verifycli-store", daemon=True
        )
        self._committed = threading.Event()
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="verifycli-checkpoint", daemon=True
        )
        self._closed = False
        self._thread.start()
        self._checkpointer.start()

    @staticmethod
    def _open_writer(path: Path) -> tuple[sqlite3.Connection, int]:
        """The writer connection, the store created or brought to this schema, and the last
        id its look-back tables hold."""
        try:
            # A new folder is the user's only: the store holds phone numbers.
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            # mkdir says "File exists" or "Not a directory" when a file is where a folder goes.
            in_the_way = isinstance(exc, (FileExistsError, NotADirectoryError))
            why = "a file is in the way" if in_the_way else exc.strerror
            raise StoreError(
                f"cannot create the folder {path.parent} for the store ({why}); "
                "choose a writable --store"
            ) from None
        if path.exists() and path.stat().st_size > 0:
            _inspect(path)
        try:
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            # SQLite opens a file it may not write read-only, without a word: every callback
            # would then be answered 503. Say so now (the folder takes the -wal file).
            for where in (path, path.parent):
                if not os.access(where, os.W_OK):
                    raise OSError(13, "permission denied", str(where))
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            # Created in one transaction in rollback mode, before WAL: another process opening
            # the same new file at the same moment sees nothing or a whole store, never half.
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                if version == 0:
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                for statement in _SCHEMA if version == 0 else _FROM_1:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
            _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {_WRITER_CHECKPOINT}")
            known = _load_look_back(conn)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot write the store {path}: {exc}; choose a writable --store"
            ) from None
        except OSError as exc:
            raise StoreError(
                f"cannot write the store {path} ({exc.strerror}); choose a writable --store"
            ) from None
        return conn, known

    def take_notice(self) -> str | None:
        """A message for the user about the store itself (it was deleted, replaced), once."""
        return self._notices.pop(0) if self._notices else None

    def _still_ours(self) -> bool:
        """Whether the file at the path is still the one we write to; when it was deleted or
        replaced, open what is at the path now (a new store if nothing is). Writer thread only."""
        if _identity(self.path) == self._identity:
            return True
        try:
            opened = self._open_writer(self.path)
        except StoreError as exc:
            if not self._lost:
                self._lost = True
                self._notices.append(
                    f"the store {self.path} was deleted or replaced while listening and cannot "
                    f"be opened again ({exc}); callbacks are answered 503 until it can"
                )
            return False
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        self._conn, self._known = opened
        self._identity = _identity(self.path)
        self._generation += 1
        self._lost = False
        self._notices.append(
            f"the store {self.path} was deleted or replaced while listening: callbacks now go "
            "to the file at that path (events stored before are not in it)"
        )
        return True

    # -- writing -------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            stop = False
            while len(jobs) < _BATCH_MAX:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                jobs.append(more)
            self._commit(jobs)
            if stop:
                return

    def _commit(self, jobs: list[_Job]) -> None:
        done: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            if not self._still_ours():
                raise OSError(f"{self.path} is not the store it was")
            self._conn.execute("BEGIN IMMEDIATE")
            _catch_up(self._conn, self._known)
            appends: list[_Job] = []  # in a row: stored together
            for job in jobs:
                if job.append is not None:
                    appends.append(job)
                    continue
                done.extend(_append_all(self._conn, appends))
                appends = []
                done.append(_run_alone(self._conn, job))
            done.extend(_append_all(self._conn, appends))
            newest = _newest(self._conn)
            self._conn.execute("COMMIT")
            self._known = newest
            # Deleted while we wrote: committed to a file nobody can find, so not stored.
            if _identity(self.path) != self._identity:
                raise OSError(f"{self.path} was deleted or replaced as this was written")
            self._committed.set()
        except Exception as exc:  # noqa: BLE001 - the writer must outlive any one group
            # SQLite or the disk failed (or, a bug, a job raised something else): nothing of
            # the group is stored, every job in it is told so, and the writer goes on.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            done = [(job, None, exc) for job in jobs]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
        for item in done:
            if item[0].loop is not None:
                by_loop.setdefault(item[0].loop, []).append(item)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, items)

    def _checkpoint_loop(self) -> None:
        """Copy committed pages from the WAL into the database, off the commit path: SQLite's
        own checkpoint, inside every hundredth commit or so, made that callback wait for it."""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return  # the writer still checkpoints at _WRITER_CHECKPOINT pages
        generation = self._generation
        try:
            while not self._stop.is_set():
                self._committed.wait()
                self._committed.clear()
                if generation != self._generation:  # the writer opened the file anew
                    conn.close()
                    generation = self._generation
                    try:
                        conn = sqlite3.connect(self.path, isolation_level=None)
                    except sqlite3.Error:
                        return
                # PASSIVE: never waits for, nor blocks, the writer or a reader.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self._stop.wait(_CHECKPOINT_EVERY)
        finally:
            conn.close()

    async def _submit(self, run: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreWriteError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(run, future, loop))
        return await future

    async def append(self, event: CallbackEvent, policy: Policy | None = None) -> CallbackEvent:
        """Store `event` durably; returns it with id, retry_of and response_status set.

        `policy` chooses the answer status once replays and retries are known, so that
        the stored status is the one the sender gets.
        """
        encoded = None
        if len(event.body) <= _ENCODE_INLINE:
            # Encoded here, while the writer is busy with the previous group's fsync, instead
            # of in the writer, whose every microsecond under the GIL delays a whole group.
            encoded = (event.signature, _record_json(event))
        if self._closed:
            raise StoreWriteError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CallbackEvent] = loop.create_future()
        appended: _Append = (event, policy, encoded)
        # Alone (after its group failed), the same insert as a group of one.
        run: Callable[[sqlite3.Connection], CallbackEvent] = lambda conn: _insert_group(  # noqa: E731
            conn, [appended]
        )[0]
        self._queue.put(_Job(run, future, loop, appended))
        return await future

    async def durability(self) -> tuple[str, int]:
        """The writer connection's journal mode and synchronous level as it runs: the settings
        the no-loss promise rests on ("wal", 2 = FULL). Per connection, so asked of the writer."""

        def run(conn: sqlite3.Connection) -> tuple[str, int]:
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
            return str(journal), int(conn.execute("PRAGMA synchronous").fetchone()[0])

        return await self._submit(run)

    async def set_forward(
        self, event_id: int, forward: dict[str, Any], response_status: int | None = None
    ) -> None:
        """Record a forward's outcome (and, when it decided the answer, the new status)."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE events SET forward = ?, response_status = coalesce(?, response_status)"
                " WHERE id = ?",
                (json.dumps(forward), response_status, event_id),
            )

        await self._submit(run)

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._stop.set()
        self._committed.set()
        self._checkpointer.join()
        self._conn.close()  # last: the last connection to close removes the -wal and -shm files

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def content_digest(event: CallbackEvent) -> str:
    """What a nonce vouches for: the body and, when there is one, the query and the method.

    V2 signs neither body nor query, so a V2 nonce seen again on a different query (a GET
    callback's fields) is as much a replay as one on a different body. A POST without a query
    is digested as its body alone, as stores written before this were.
    """
    body = event.raw_body()
    if not event.query and event.method == "POST":
        return hashlib.sha256(body).hexdigest()
    query = event.query.encode("utf-8", "surrogateescape")
    head = f"{event.method} {len(body)} {len(query)}\n".encode("utf-8", "surrogateescape")
    return hashlib.sha256(head + body + query).hexdigest()


# A record with a body up to this many characters is encoded on the caller's thread (the event
# loop); a larger one in the writer, so that no callback holds the loop for milliseconds.
_ENCODE_INLINE = 64 * 1024
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _record_json(event: CallbackEvent) -> str:
    """The JSON kept in the record column: the record less the keys with their own columns."""
    record = event.to_record()
    for column in _COLUMN_KEYS:
        del record[column]
    return _ENCODE(record)


def _row(event: CallbackEvent) -> tuple[Any, ...]:
    """An event's columns after its id, in the order of _COLUMNS."""
    return (
        event.received_at,
        event.plivo("session_uuid"),
        event.plivo("attempt_uuid"),
        event.plivo("channel_status"),
        event.plivo("session_status"),
        event.signature.verdict,
        event.signature.nonce,
        event.body_sha256,
        event.retry_of,
        event.response_status,
        event.stored_json,
        json.dumps(event.forward) if event.forward is not None else None,
    )


def _resolve(
    event: CallbackEvent,
    digest: str,
    seen: tuple[int, str | None] | None,
    first: int | None,
    policy: Policy | None,
    encoded: Encoded | None,
) -> None:
    """Settle `event` against what came before it: `seen`, the first valid use of its nonce
    (id, body digest); `first`, the first delivery of its attempt's status. Then the answer
    its policy gives, and the record's JSON (encoded before only if the verdict held)."""
    duplicate = seen is not None and seen[1] == digest
    if seen is not None and not duplicate:
        event.signature = event.signature.replayed(seen[0])
    if event.retry_of is None:
        # Always the first delivery, so that one level reads a whole chain: the first of this
        # status when there is one (a nonce's first use may itself be a retry), else the
        # nonce's first use on this body.
        if first is not None:
            event.retry_of = first
        elif seen is not None and duplicate:
            event.retry_of = seen[0]
    if policy is not None:
        event.response_status = policy(event)
    if encoded is not None and encoded[0] is event.signature:
        event.stored_json = encoded[1]
    else:  # not encoded yet, or a replay changed the verdict
        event.stored_json = _record_json(event)


Done = tuple[_Job, Any, "BaseException | None"]
# Rows in one multi-row INSERT: 13 values each, under SQLite's oldest variable limit (999).
_GROUP_ROWS = 70
_COLUMNS = (
    "id, received_at, session_uuid, attempt_uuid, channel_status, session_status, verdict,"
    " nonce, body_sha256, retry_of, response_status, record, forward"
)


def _run_alone(conn: sqlite3.Connection, job: _Job) -> Done:
    try:
        return (job, job.run(conn), None)
    except (ValueError, TypeError) as exc:
        # This job's own data (text SQLite cannot take): only it fails, not the callbacks
        # committed with it.
        return (job, None, exc)


def _append_all(conn: sqlite3.Connection, jobs: list[_Job]) -> list[Done]:
    """Store appends that came in a row: a look-back and an insert for up to _GROUP_ROWS of
    them at once. Every SQLite statement gives the GIL up and must win it back from the busy
    event loop; one a callback made the writer's share of a group several times its CPU. A
    record SQLite cannot take sends its rows back to one at a time, where it fails alone."""
    done: list[Done] = []
    for start in range(0, len(jobs), _GROUP_ROWS):
        rows = jobs[start : start + _GROUP_ROWS]
        appends = [job.append for job in rows if job.append is not None]
        kept = [
            (e, e.signature, e.retry_of, e.response_status, e.stored_json) for e, _, _ in appends
        ]
        try:
            stored = _insert_group(conn, appends)
        except (ValueError, TypeError):
            for event, signature, retry_of, status, stored_json in kept:
                event.signature, event.retry_of = signature, retry_of
                event.response_status, event.stored_json, event.id = status, stored_json, None
            done.extend(_run_alone(conn, job) for job in rows)
            continue
        done.extend((job, event, None) for job, event in zip(rows, stored, strict=True))
    return done


def _group_look_back(count: int) -> str:
    """For `count` (nonce, attempt, channel status, session status) keys: one row holding the
    next id and, for each key by its position, the first valid use of the nonce (id, digest)
    and the first delivery of the attempt's status. One row, so that SQLite steps once."""
    values = ",".join(["(?,?,?,?,?)"] * count)
    return (
        f"WITH g(k, nonce, attempt, cs, ss) AS (VALUES {values})"
        " SELECT (SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
        " coalesce((SELECT max(id) FROM events), 0))),"
        " group_concat(g.k || ' ' || coalesce(n.id, '') || ' ' || coalesce(n.body_sha256, '')"
        " || ' ' || coalesce(r.id, ''), ',')"
        " FROM g LEFT JOIN temp.first_nonce AS n ON n.nonce = g.nonce"
        " LEFT JOIN temp.first_retry AS r ON r.attempt_uuid = g.attempt"
        " AND r.channel_status = g.cs AND r.session_status = g.ss"
    )


def _insert_group(conn: sqlite3.Connection, appends: list[_Append]) -> list[CallbackEvent]:
    """Settle each of `appends` against what is already stored (retry, replay) and insert
    them, in order, with one look-back and one insert: a later one sees the earlier ones as
    stored before it. Writer thread only.

    An append's `encoded` is its record's JSON made before the look-back, with the signature
    it holds. An empty nonce is a nonce too: every request signed with it shares it."""
    keys: list[Any] = []
    for k, (event, _, _) in enumerate(appends):
        nonce = event.signature.nonce if event.signature.verdict == "valid" else None
        keys.extend((k, nonce, *(event.retry_key or (None, None, None))))
    last, found = conn.execute(_group_look_back(len(appends)), keys).fetchone()
    stored: dict[int, tuple[int | None, str | None, int | None]] = {}
    for item in found.split(","):  # one item for each append: never NULL
        position, nonce_id, digest, retry_id = item.split(" ")
        stored[int(position)] = (
            int(nonce_id) if nonce_id else None,
            digest or None,
            int(retry_id) if retry_id else None,
        )
    # What this group adds, as the triggers will add it: later ones must see it.
    nonces: dict[str, tuple[int, str]] = {}
    retries: dict[tuple[str, str, str], int] = {}
    rows: list[Any] = []
    for k, (event, policy, encoded) in enumerate(appends):
        ident = int(last) + 1 + k
        digest = event.body_sha256 or content_digest(event)
        event.body_sha256 = digest
        nonce = event.signature.nonce
        seen_id, seen_digest, first = stored[k]
        seen = None if seen_id is None else (seen_id, seen_digest)
        if seen is None and event.signature.verdict == "valid" and nonce is not None:
            seen = nonces.get(nonce)
        key = event.retry_key
        if first is None and key is not None:
            first = retries.get(key)
        _resolve(event, digest, seen, first, policy, encoded)
        columns = (
            event.plivo("attempt_uuid"),
            event.plivo("channel_status"),
            event.plivo("session_status"),
        )
        if event.signature.verdict == "valid" and nonce is not None:
            nonces.setdefault(nonce, (ident, digest))
        if None not in columns:
            retries.setdefault(columns, ident)  # type: ignore[arg-type]
        rows.extend((ident, *_row(event)))
    placeholders = ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?,?)"] * len(appends))
    conn.execute(f"INSERT INTO events ({_COLUMNS}) VALUES {placeholders}", rows)
    for k, (event, _, _) in enumerate(appends):
        event.id = int(last) + 1 + k
    return [event for event, _, _ in appends]


class StoreReader:
    """Read-only, streaming access to a store file; a missing file reads as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists() and path.stat().st_size > 0:
            _inspect(path)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection | None]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            yield None
            return
        try:
            conn = _connect_read_only(self.path)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the store {self.path}: {exc}") from None
        try:
            yield conn
        finally:
            conn.close()

    def iter_json(self, filters: Filters = Filters(), limit: int | None = None) -> Iterator[str]:
        """Each selected record as a JSON line (no newline), oldest first, streamed."""
        columns = "id, record, retry_of, response_status, forward"
        if limit is not None and limit > _SQLITE_MAX_INT:
            raise ConfigError(f"--limit must be at most 2**63-1 ({_SQLITE_MAX_INT}), not {limit}")
        with self._connect() as conn:
            if conn is None:
                return
            where, args = filters.where(_keyed(conn))
            if limit is not None:
                sql = (
                    f"SELECT * FROM (SELECT {columns} FROM events{where} ORDER BY id DESC"
                    " LIMIT ?) ORDER BY id"
                )
                args = [*args, limit]
            else:
                sql = f"SELECT {columns} FROM events{where} ORDER BY id"
            cursor = conn.execute(sql, args)
            while rows := cursor.fetchmany(_FETCH):
                for row in rows:
                    yield _row_json(row)

    def iter_records(
        self, filters: Filters = Filters(), limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        for line in self.iter_json(filters, limit):
            yield json.loads(line)

    def iter_events(
        self, filters: Filters = Filters(), limit: int | None = None
    ) -> Iterator[CallbackEvent]:
        for record in self.iter_records(filters, limit):
            yield CallbackEvent.from_record(record)

    def get(self, event_id: int) -> CallbackEvent:
        if 0 <= event_id <= _SQLITE_MAX_INT:
            for event in self.iter_events(Filters(ids=(event_id,))):
                return event
        raise EventNotFound(f"no event #{event_id} in {self.path}; `verifycli events` lists them")

    def count(self, filters: Filters = Filters()) -> int:
        with self._connect() as conn:
            if conn is None:
                return 0
            where, args = filters.where(_keyed(conn))
            return int(conn.execute(f"SELECT count(*) FROM events{where}", args).fetchone()[0])

    def sessions_starting(self, prefix: str, most: int = 6) -> list[str]:
        """Up to `most` stored session ids that begin with `prefix`, sorted."""
        # GLOB, not LIKE: case-sensitive like the ids, and `_`/`%` in a prefix mean themselves.
        pattern = "".join(f"[{c}]" if c in "*?[]" else c for c in prefix) + "*"
        with self._connect() as conn:
            if conn is None:
                return []
            rows = conn.execute(
                f"SELECT DISTINCT session_uuid FROM {_sessions(conn)} WHERE session_uuid GLOB ?"
                " ORDER BY session_uuid LIMIT ?",
                (pattern, most),
            ).fetchall()
        return [r[0] for r in rows]

    def whole_session(self, session: str | None) -> str | None:
        """The stored session id that `session` starts (the table's 8 characters will do);
        `session` itself when it is whole or matches none; ConfigError when it is ambiguous."""
        if not session:
            return session
        found = self.sessions_starting(session)
        if session in found or not found:
            return session
        if len(found) == 1:
            return found[0]
        shown = ", ".join(found[:5]) + (", …" if len(found) > 5 else "")
        raise ConfigError(
            f"--session {session} matches more than one session ({shown}): give more of it"
        )

    def schema_version(self) -> int:
        """The file's schema version; 0 when it holds no store yet."""
        with self._connect() as conn:
            if conn is None:
                return 0
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def sessions(self, limit: int) -> list[str]:
        """The SessionUUIDs of the `limit` sessions heard from most recently, newest first."""
        with self._connect() as conn:
            if conn is None:
                return []
            rows = conn.execute(
                f"SELECT session_uuid FROM {_sessions(conn)} WHERE session_uuid IS NOT NULL"
                " GROUP BY session_uuid ORDER BY max(id) DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [r[0] for r in rows]

    def chain(self, event: CallbackEvent) -> list[int]:
        """Ids of every delivery of the same callback (the first and its retries)."""
        first = event.retry_of or event.id
        with self._connect() as conn:
            if conn is None or first is None:
                return []
            rows = conn.execute(
                "SELECT id FROM events WHERE id = ? OR retry_of = ? ORDER BY id", (first, first)
            ).fetchall()
        return [r[0] for r in rows]
