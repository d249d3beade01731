"""Shared fixtures: real store files, a real listener, sentinel secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers.env import AUTH_TOKEN, MAIN_TOKEN, PLIVO_ENV, Collect
from helpers.listeners import MAX_BODY, ThreadedListener
from helpers.ngrok_stub import FakeNgrok, fake_ngrok_env

from verifycli.listener import Listener, ListenOptions
from verifycli.signature import Checker
from verifycli.store import EventStore


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test starts with no Plivo settings and no .env in its working directory."""
    for name in PLIVO_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "events.sqlite3"


@pytest.fixture
def store(store_path: Path) -> Iterator[EventStore]:
    with EventStore(store_path) as opened:
        yield opened


@pytest.fixture
def sink() -> Collect:
    return Collect()


@pytest.fixture
async def listener(store: EventStore, sink: Collect) -> AsyncIterator[Listener]:
    """A real listener on a free loopback port, checking with AUTH_TOKEN and MAIN_TOKEN."""
    running = Listener(store, Checker(AUTH_TOKEN, MAIN_TOKEN), ListenOptions(port=0), sinks=[sink])
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
def ngrok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNgrok]:
    """The stand-in ngrok agent, set up for pyngrok's real code path (helpers/ngrok_stub.py)."""
    with fake_ngrok_env(tmp_path, monkeypatch) as fake:
        yield fake


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedListener]:
    """One listener per test module on its own thread, for synchronous and raw-socket clients:
    a MAX_BODY body cap and half-second idle and body timeouts, so stalls end quickly."""
    running = ThreadedListener(
        tmp_path_factory.mktemp("served") / "events.sqlite3",
        ListenOptions(port=0, max_body=MAX_BODY, idle_timeout=0.5, body_timeout=0.5),
    )
    yield running
    running.close()
