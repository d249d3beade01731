"""A verifycli process on a pseudo-terminal, read through a terminal emulator (pyte)."""

from __future__ import annotations

import sys
import time

import pexpect
import pyte

from helpers.env import cli_env
from helpers.screen import shown

WIDTH, HEIGHT = 100, 50


class Terminal:
    """A verifycli process on a pty, and the screen a person would be looking at."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "verifycli", *args],
            env=env or cli_env(),
            dimensions=(HEIGHT, WIDTH),
            timeout=30,
        )
        self.screen = pyte.Screen(WIDTH, HEIGHT)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""

    def lines(self) -> list[str]:
        return shown(self.screen)

    def until(self, what: str, check, timeout: float = 30.0) -> list[str]:  # type: ignore[no-untyped-def]
        """Read output until `check(lines)` holds; fail, showing the screen, at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.1)
            except pexpect.TIMEOUT:
                data = b""
            except pexpect.EOF:
                data = b""
                if not self.child.isalive():
                    screen = "\n".join(self.lines())
                    raise AssertionError(f"exited before {what}:\n{screen}") from None
            self.raw += data
            self.stream.feed(data)
            lines = self.lines()
            if check(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s:\n" + "\n".join(lines))
