"""Each `send` flag that shapes the Verify session, through the real command: what the
simulator (standing in for Plivo's API) received, read back through its test endpoint."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.env import AUTH_ID, AUTH_TOKEN, MAIN_TOKEN, cli_env
from helpers.procs import SimThread, run_cli, simulator
from helpers.signing import RECIPIENT

from verifycli.simulator import Simulator

APP = "4f3b6c1e-9d2a-4b8e-a1c7-2e5f6d7a8b9c"


@pytest.fixture
def sim() -> Iterator[SimThread]:
    yield from simulator(lambda: Simulator(AUTH_ID, AUTH_TOKEN, MAIN_TOKEN, time_factor=0.02))


def _send(tmp_path: Path, sim: SimThread, *flags: str, **env: str) -> dict[str, Any]:
    """Run `send --no-prompt` to its end; the one session the simulator holds, as it shows it."""
    store = tmp_path / "send.sqlite3"
    argv = ["send", RECIPIENT, "--no-tunnel", "--port", "0", "--no-prompt", "--store", str(store)]
    environ = cli_env(
        PLIVO_AUTH_ID=AUTH_ID,
        PLIVO_AUTH_TOKEN=AUTH_TOKEN,
        VERIFYCLI_PLIVO_API_URL=sim.api_url,
        **env,
    )
    result = run_cli([*argv, *flags], environ, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(store)
    try:
        [(session,)] = conn.execute("SELECT DISTINCT session_uuid FROM events").fetchall()
        methods = {
            row[0] for row in conn.execute("SELECT json_extract(record, '$.method') FROM events")
        }
    finally:
        conn.close()
    with urllib.request.urlopen(f"{sim.api_url}/_simulator/sessions/{session}") as answer:
        shown: dict[str, Any] = json.load(answer)
    shown["stored_methods"] = methods
    return shown


def test_session_flags_reach_plivo(tmp_path: Path, sim: SimThread) -> None:
    """--app-uuid, --locale, --brand-name, --code-length, --path and --method GET are what the
    API was asked for, and the callbacks came back by GET to that path."""
    shown = _send(
        tmp_path,
        sim,
        *("--app-uuid", APP, "--locale", "es", "--brand-name", "Acme"),
        *("--code-length", "4", "--path", "/hooks/verify", "--method", "GET"),
    )
    session = shown["session"]
    assert (session["app_uuid"], session["locale"], session["alias"]) == (APP, "es", "Acme")
    assert len(shown["otp"]) == 4
    [attempt] = shown["attempts"]
    assert attempt["method"] == "GET"
    assert attempt["url"].split("?")[0].endswith("/hooks/verify")
    assert shown["stored_methods"] == {"GET"}


def test_app_uuid_from_the_environment(tmp_path: Path, sim: SimThread) -> None:
    """Without --app-uuid, PLIVO_VERIFY_APP_UUID names the Verify application."""
    shown = _send(tmp_path, sim, PLIVO_VERIFY_APP_UUID=APP)
    assert shown["session"]["app_uuid"] == APP


def test_flag_beats_the_environment_for_app_uuid(tmp_path: Path, sim: SimThread) -> None:
    """--app-uuid wins over PLIVO_VERIFY_APP_UUID."""
    other = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    shown = _send(tmp_path, sim, "--app-uuid", APP, PLIVO_VERIFY_APP_UUID=other)
    assert shown["session"]["app_uuid"] == APP


def test_defaults_are_sms_post_six_digits(tmp_path: Path, sim: SimThread) -> None:
    """With no flags: an SMS session, callbacks by POST to /verify/callback, a 6-digit code."""
    shown = _send(tmp_path, sim, PLIVO_VERIFY_APP_UUID=APP)
    [attempt] = shown["attempts"]
    assert (attempt["channel"], attempt["method"]) == ("sms", "POST")
    assert attempt["url"].endswith("/verify/callback")
    assert len(shown["otp"]) == 6 and shown["stored_methods"] == {"POST"}
