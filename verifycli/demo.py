"""`verifycli demo`: the send flow end to end against the built-in Plivo simulator, offline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from verifycli.config import Secret, Settings, default_store_path
from verifycli.errors import ConfigError
from verifycli.flows import Running, Where
from verifycli.listener import ListenOptions, Sink
from verifycli.send import CodeSource, Outcome, SendRequest, Tracker, run_send
from verifycli.simulator import (
    DEMO_AUTH_ID,
    DEMO_AUTH_TOKEN,
    DEMO_RECIPIENT,
    RETRY_DELAYS,
    SCENARIOS,
    Scenario,
    Simulator,
)

DEMO_MAIN_TOKEN = "demo-simulator-main-token-not-a-secret"
# Real seconds per simulated second: brisk enough to watch, slow enough to see each status.
TIME_FACTOR = 0.5
# Plivo retries after 60, 120 and 240 s; the retries scenario squeezes that into seconds.
RETRIES_TIME_FACTOR = 0.02
EXPIRY_SECONDS = 12.0


def demo_store_path() -> Path:
    """The demo keeps its own store, so made-up sessions never mix with real ones."""
    return default_store_path().with_name("demo.sqlite3")


class AutoCode(CodeSource):
    """--auto: type the code the simulated phone got, as a person would after delivery."""

    def __init__(self, read: Callable[[], str], never: bool = False) -> None:
        self.read = read
        self.never = never

    async def code(self, attempt: int) -> str | None:
        if self.never:  # the expired scenario: nobody types, the session runs out
            await asyncio.Event().wait()
        return self.read()


def check_scenario(scenario: str) -> Scenario:
    if scenario not in SCENARIOS:
        raise ConfigError(f"--scenario must be one of {', '.join(SCENARIOS)}, not {scenario!r}")
    return scenario


async def run_demo(
    scenario: Scenario,
    request: SendRequest,
    store_path: Path | None,
    sinks: list[Sink],
    tracker: Tracker,
    codes: CodeSource | None,
    on_message: Callable[[str, str], None],
    on_ready: Callable[[Running], None] | None = None,
    on_session: Callable[[str], None] | None = None,
    auto: bool = False,
    time_factor: float | None = None,
) -> Outcome:
    """Start the simulator, point the SDK at it, and run `send` with no tunnel."""
    factor = time_factor or (RETRIES_TIME_FACTOR if scenario == "retries" else TIME_FACTOR)
    simulator = Simulator(
        DEMO_AUTH_ID,
        DEMO_AUTH_TOKEN,
        DEMO_MAIN_TOKEN,
        scenario=scenario,
        time_factor=factor,
        on_message=on_message,
        expiry_seconds=EXPIRY_SECONDS,
    )
    api_url = await simulator.start()
    try:
        settings = Settings(
            auth_id=DEMO_AUTH_ID,
            auth_token=Secret(DEMO_AUTH_TOKEN),
            main_auth_token=Secret(DEMO_MAIN_TOKEN),
            api_url=api_url,
            store_path=store_path or demo_store_path(),
        )
        if auto:
            codes = AutoCode(
                lambda: simulator.code_for(tracker.session_uuid or ""), never=scenario == "expired"
            )
        options = ListenOptions(host="127.0.0.1", port=0, fail_first=scenario == "retries")
        if scenario == "retries":
            request = replace(request, linger=sum(RETRY_DELAYS) * factor + 5.0)
        return await run_send(
            settings,
            request,
            options,
            Where(no_tunnel=True),
            sinks,
            tracker,
            codes,
            on_ready=on_ready,
            on_session=on_session,
        )
    finally:
        await simulator.close()


__all__ = ["DEMO_RECIPIENT", "run_demo", "check_scenario", "demo_store_path"]
