"""Sentinel secrets, the environment a verifycli subprocess runs in, and a sink that collects."""

from __future__ import annotations

import os
import sys

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
