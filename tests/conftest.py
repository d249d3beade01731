"""Shared fixtures: real store files, a real listener, sentinel secrets."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from ngrok_stub import FakeNgrok, fake_ngrok_env

from verifycli.callbacks import CallbackEvent
from verifycli.listener import Listener, ListenOptions
from verifycli.signature import Checker
from verifycli.store import EventStore

# Sentinels: if one of these shows up in any output, a secret leaked.
AUTH_TOKEN = "SENTINEL-auth-token-7f3a9c"
MAIN_TOKEN = "SENTINEL-main-token-2b8e1d"
NGROK_TOKEN = "SENTINEL-ngrok-token-5c4f0a"
AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"

PLIVO_ENV = (
    "PLIVO_AUTH_ID",
    "PLIVO_AUTH_TOKEN",
    "PLIVO_MAIN_AUTH_TOKEN",
    "PLIVO_VERIFY_APP_UUID",
    "NGROK_AUTHTOKEN",
    "VERIFYCLI_STORE",
    "VERIFYCLI_PLIVO_API_URL",
    "VERIFYCLI_UI_TOKEN",
)


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


class Collect:
    """A sink that keeps what the listener publishes."""

    whole = False

    def __init__(self) -> None:
        self.events: list[CallbackEvent] = []
        self.warnings: list[str] = []

    def event(self, event: CallbackEvent) -> None:
        self.events.append(event)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


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
    """The stand-in ngrok agent, set up for pyngrok's real code path (tests/ngrok_stub.py)."""
    with fake_ngrok_env(tmp_path, monkeypatch) as fake:
        yield fake


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a verifycli subprocess: this interpreter's, without Plivo settings."""
    env = {k: v for k, v in os.environ.items() if k not in PLIVO_ENV}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env
