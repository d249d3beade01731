"""The promises the README makes, pinned: an answer waits for its commit, the store is WAL with
synchronous=FULL, and the documented timeouts are the ones in force."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import aiohttp

from verifycli import listener as listener_module
from verifycli.listener import Listener


async def test_answer_waits_for_the_commit(listener: Listener, store_path: Path) -> None:
    """While another connection holds the store's write lock, the callback is not answered;
    once the lock is released it is committed, then answered 200, and it is in the file."""
    blocker = sqlite3.connect(store_path, isolation_level=None, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")  # the write lock: the store's commit must wait for it
    try:
        async with aiohttp.ClientSession() as http:
            answer = asyncio.ensure_future(
                http.post(f"{listener.local_url}/cb", data={"AttemptUUID": "held-1"})
            )
            done, _ = await asyncio.wait({answer}, timeout=0.5)
            assert not done, "answered before the callback could be committed"
            blocker.execute("ROLLBACK")
            response = await asyncio.wait_for(answer, 10)
            assert response.status == 200
            response.release()
    finally:
        blocker.close()
    reader = sqlite3.connect(store_path)
    try:
        rows = reader.execute("SELECT attempt_uuid FROM events").fetchall()
    finally:
        reader.close()
    assert rows == [("held-1",)]


async def test_running_writer_is_wal_with_synchronous_full(listener: Listener) -> None:
    """The store's own writer connection, while the listener runs, is in WAL mode with
    synchronous=FULL (2): a commit is on disk before its callback is answered."""
    assert await listener.store.durability() == ("wal", 2)


async def test_store_runs_in_wal_mode(listener: Listener, store_path: Path) -> None:
    """The running store's journal is WAL (readers never block the writer)."""
    reader = sqlite3.connect(store_path)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        reader.close()


README = Path(__file__).resolve().parent.parent / "README.md"


def _seconds_after(pattern: str) -> float:
    """The number of seconds the README gives in the sentence matching `pattern`."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    found = re.search(pattern, text)
    assert found, f"the README no longer says {pattern!r}"
    return float(found.group(1))


def test_readme_states_the_body_timeout_in_force() -> None:
    """The README's "408 after N s" is the listener's body timeout."""
    assert _seconds_after(r"408 after (\d+(?:\.\d+)?) s") == listener_module.BODY_TIMEOUT


def test_readme_states_the_idle_timeout_in_force() -> None:
    """The README's "closed after N s" (an idle connection) is the listener's idle timeout."""
    assert _seconds_after(r"closed after (\d+(?:\.\d+)?) s") == listener_module.IDLE_TIMEOUT


def test_readme_states_the_forward_timeout_in_force() -> None:
    """The README's "The app gets N s" is how long a forward may take."""
    assert _seconds_after(r"The app gets (\d+(?:\.\d+)?) s") == listener_module.FORWARD_TIMEOUT


def test_listener_options_default_to_the_documented_timeouts() -> None:
    """A listener built without options uses the timeouts the README states."""
    options = listener_module.ListenOptions()
    assert (options.idle_timeout, options.body_timeout) == (
        listener_module.IDLE_TIMEOUT,
        listener_module.BODY_TIMEOUT,
    )
