"""A real Chromium for the inspector's browser tests: the system package, driven by Playwright.

In CI (`CI` set) a missing browser fails the tests; elsewhere they skip, saying why.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A name that resolves to loopback, as a DNS-rebinding attack makes one.
    "--host-resolver-rules=MAP rebind.test 127.0.0.1",
]
REBIND_HOST = "rebind.test"


def chromium_path() -> Path | None:
    given = os.environ.get("VERIFYCLI_CHROMIUM")
    for candidate in (given, "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


def require_browser() -> Path:
    """The Chromium to launch; fail in CI, skip elsewhere, when it or Playwright is missing."""
    why = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        why = "Playwright is not installed: pip install -e '.[test]'"
    found = chromium_path()
    if why is None and found is None:
        why = "no Chromium at /usr/bin/chromium: apt-get install chromium (or VERIFYCLI_CHROMIUM)"
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {why}")
        pytest.skip(why)
    assert found is not None
    return found
