"""A pytest plugin for mutation runs only (`[tool.mutmut]` loads it): a test that starts
verifycli as a subprocess is skipped there.

Such a process imports the installed verifycli, never the mutated copy, so it cannot tell a
mutant from the original; and at `nice -n 19` beside other work its 30 s waits time out,
which fails mutmut's stats collection (three times in a row on 2026-12-03). Mutants such
tests would have caught through their in-process parts count as surviving: scores stay
lower bounds. The suite itself never loads this plugin.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Any

import pexpect
import pytest

SKIP = "starts verifycli as a subprocess, which runs the installed code, not the mutant"


def _starts_verifycli(args: Any) -> bool:
    words = [args] if isinstance(args, (str, bytes)) else list(args or [])
    text = [w.decode() if isinstance(w, bytes) else str(w) for w in words]
    return any(w.endswith("verifycli") or "benchmarks/" in w for w in text) or any(
        a == "-m" and b == "verifycli" for a, b in pairwise(text)
    )


@pytest.fixture(autouse=True)
def _no_verifycli_subprocess(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    popen_init = subprocess.Popen.__init__
    spawn_init = pexpect.spawn.__init__

    def popen(self: subprocess.Popen[Any], args: Sequence[str], *rest: Any, **kw: Any) -> None:
        if _starts_verifycli(args):
            pytest.skip(SKIP)
        popen_init(self, args, *rest, **kw)

    def spawn(
        self: pexpect.spawn, command: str, args: Sequence[str] = (), *rest: Any, **kw: Any
    ) -> None:
        if _starts_verifycli([command, *args]):
            pytest.skip(SKIP)
        spawn_init(self, command, args, *rest, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", popen)
    monkeypatch.setattr(pexpect.spawn, "__init__", spawn)
    yield
