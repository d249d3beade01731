"""The pyngrok internals tunnel.py relies on, in one place: private attributes, no public API.

Written against pyngrok 9.1.0 (and checked on 7.2+); pyproject.toml caps pyngrok below the
next major version. When pyngrok changes one of these, only this file has to follow.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyngrok.process import NgrokProcess

PYNGROK_CHECKED = "9.1.0"


def monitor_thread(process: NgrokProcess) -> threading.Thread | None:
    """The thread pyngrok reads the agent's log with; it drops the reference when it ends."""
    return process._monitor_thread


def registered_process(ngrok_path: str) -> NgrokProcess | None:
    """The agent pyngrok holds for this path, read without pyngrok's lock.

    pyngrok keeps that lock for the whole startup, and its public getters start an agent when
    none runs: neither will do from a watchdog.
    """
    from pyngrok import process

    return process._current_processes.get(ngrok_path)


def silence_download_progress() -> None:
    """pyngrok prints download progress on stdout, which `--json` keeps for events only."""
    from pyngrok import installer

    installer._print_progress_enabled = False
