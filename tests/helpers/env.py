"""Sentinel secrets, the environment a verifycli subprocess runs in, sinks that collect, and
the process's local zone set for a test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator

from verifycli.callbacks import CallbackEvent

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


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a verifycli subprocess: this interpreter's, without Plivo settings."""
    env = {k: v for k, v in os.environ.items() if k not in PLIVO_ENV}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


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


class Published(Collect):
    """A sink that wants events once complete (after their forward), and wakes the test."""

    whole = True

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    def event(self, event: CallbackEvent) -> None:
        super().event(event)
        self.arrived.set()

    async def next(self, timeout: float = 10.0) -> CallbackEvent:
        await asyncio.wait_for(self.arrived.wait(), timeout)
        self.arrived.clear()
        return self.events[-1]


@contextlib.contextmanager
def local_zone(zone: str) -> Iterator[None]:
    """The process's local zone set to `zone` (a POSIX TZ string such as "IST-05:30", which
    needs no zone database), then put back."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
