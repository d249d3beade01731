"""Run pyngrok against the stand-in agent in tests/helpers/fake_ngrok, and look at what it did.

    from helpers.ngrok_stub import fake_ngrok  # noqa: F401  (in conftest.py, to share the fixture)

`fake_ngrok` gives a FakeNgrok: `.path` for open_tunnel(ngrok_path=...), `.config_path` for
its config_path (a file pyngrok creates), `.relay_url(public_url)` for the loopback address
that really relays a tunnel's traffic, and `.pid()` for the agent's process id.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

FAKE_NGROK = Path(__file__).parent / "fake_ngrok" / "ngrok"
TOKEN = "2fAkEt0kEn_0123456789abcdefghijklmnopqrstuvwxyzABC"


class FakeNgrok:
    """One test's stand-in ngrok: its launcher, config and state file, all under tmp_path."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        # A launcher per test: the stand-in runs under the Python running the tests, and pyngrok,
        # which keeps one agent per executable path, never hands one test another's agent.
        self.path = str(directory / "ngrok")
        Path(self.path).write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_NGROK}" "$@"\n')
        os.chmod(self.path, 0o755)
        self.config_path = str(directory / "ngrok.yml")
        self.state_path = directory / "state.json"

    def state(self) -> dict[str, Any]:
        """What the agent last wrote: pid, api_url, argv, authtoken and tunnels."""
        data: dict[str, Any] = json.loads(self.state_path.read_text())
        return data

    def started(self) -> bool:
        return self.state_path.exists()

    def pid(self) -> int:
        pid: int = self.state()["pid"]
        return pid

    def relay_url(self, public_url: str) -> str:
        """The loopback URL that relays to the tunnel published at public_url."""
        for tunnel in self.state()["tunnels"]:
            if tunnel["public_url"].rstrip("/") == public_url.rstrip("/"):
                relay: str = tunnel["relay_url"]
                return relay
        raise AssertionError(f"the stand-in ngrok has no tunnel {public_url}")

    def kill(self) -> None:
        """End the agent the way a crash would: SIGKILL, no goodbye."""
        os.kill(self.pid(), signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """True while a process with that id exists; an unreaped zombie counts as alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll predicate until it holds, failing the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


@contextlib.contextmanager
def fake_ngrok_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNgrok]:
    """Set up a stand-in ngrok and, afterwards, end any agent a failing test left to pyngrok."""
    fake = FakeNgrok(tmp_path / "fake-ngrok")
    monkeypatch.setenv("FAKE_NGROK_STATE", str(fake.state_path))
    for name in ("FAKE_NGROK_FAIL", "NGROK_AUTHTOKEN", "NGROK_API_KEY", "PYNGROK_NGROK_PATH"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield fake
    finally:
        from pyngrok import conf, ngrok

        ngrok.kill(conf.PyngrokConfig(ngrok_path=fake.path, config_path=fake.config_path))


@pytest.fixture
def fake_ngrok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNgrok]:
    """A stand-in ngrok for pyngrok, with no authtoken in the environment."""
    with fake_ngrok_env(tmp_path, monkeypatch) as fake:
        yield fake
