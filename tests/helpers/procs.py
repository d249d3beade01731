"""verifycli as a real subprocess, and the Plivo simulator on a thread of its own, for tests
that drive the command line the way a user does (faults, bad configuration, secrets)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from verifycli.simulator import Simulator

T = TypeVar("T")
CODE = "246810"  # the code PinnedCode sends, known before any session exists
LOCAL_URL = re.compile(r"http://127\.0\.0\.1:(\d+)")


class Cli:
    """One `python -m verifycli ...` process; its stdout and stderr are read as they come."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        cwd: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "verifycli", *args],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=preexec_fn,
        )
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _drain(self, stream: Any, into: list[bytes]) -> None:
        # Pipes, never files: a test may cap the process's file size (RLIMIT_FSIZE).
        for line in iter(stream.readline, b""):
            with self._changed:
                into.append(line)
                self._changed.notify_all()
        stream.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stdout(self) -> str:
        with self._changed:
            return b"".join(self._out).decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        with self._changed:
            return b"".join(self._err).decode("utf-8", "replace")

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 15.0) -> re.Match[str]:
        """The first match of `pattern` in stderr, waiting for it; fails if the process ends."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = regex.search(b"".join(self._err).decode("utf-8", "replace"))
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._readers_alive()):
                    raise AssertionError(
                        f"no {regex.pattern!r} on stderr within {timeout}s "
                        f"(exit {self.proc.poll()}):\n{self.stderr}"
                    )
                self._changed.wait(min(left, 0.1))

    def _readers_alive(self) -> bool:
        return any(reader.is_alive() for reader in self._readers)

    def port(self, timeout: float = 15.0) -> int:
        """The local port from the header the command prints once it listens."""
        return int(self.wait_for(LOCAL_URL, timeout).group(1))

    def finish(self, timeout: float = 20.0) -> int:
        """Wait for the exit code; the process is killed if it outlives `timeout`."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"still running after {timeout}s:\n{self.stderr}") from None
        for reader in self._readers:
            reader.join(5)
        return code

    def stop(self) -> None:
        """Make sure the process is gone (for teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for reader in self._readers:
            reader.join(5)


def run_cli(
    args: list[str], env: Mapping[str, str], cwd: Path | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end and return its exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "verifycli", *args],
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class SimThread:
    """A started Simulator serving from its own event loop on a daemon thread."""

    def __init__(self, make: Callable[[], Simulator]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start() -> Simulator:
            sim = make()
            await sim.start()
            return sim

        self.sim = self.call(start())
        self.api_url = self.sim.api_url

    def call(self, work: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def fail_next(self, status: int | None, hang: float = 0.0) -> None:
        async def arm() -> None:
            self.sim.fail_next(status, hang=hang)

        self.call(arm())

    def close(self) -> None:
        self.call(self.sim.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def simulator(make: Callable[[], Simulator]) -> Iterator[SimThread]:
    """Generator for a fixture: a SimThread, closed afterwards."""
    running = SimThread(make)
    try:
        yield running
    finally:
        running.close()


class PinnedCode(Simulator):
    """The simulator, with a code the test knows before the session exists."""

    def _new_session(self, body, remote):  # type: ignore[no-untyped-def]
        session, attempt = super()._new_session(body, remote)
        session.code = CODE
        return session, attempt
