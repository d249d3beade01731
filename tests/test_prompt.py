"""The code prompt sits at the bottom of the live view, and callbacks keep arriving above it
while a person types: the real `demo` on a pseudo-terminal, read through a terminal emulator."""

from __future__ import annotations

import re
from pathlib import Path

import pexpect
from helpers.prompt_term import Terminal
from helpers.screen import table_rows

PROMPT = "code (try 1 of 3): "


def rows(lines: list[str]) -> list[str]:
    found = table_rows(lines)
    return found[1] if found else []


def prompt_line(lines: list[str]) -> str:
    return next((line for line in reversed(lines) if line.startswith(PROMPT)), "")


def test_callbacks_appear_while_the_code_is_typed(tmp_path: Path) -> None:
    """Half the code typed, a retry arrives and shows above the prompt at once; the rest of
    the code is then accepted and the session verified (exit 0)."""
    term = Terminal(["demo", "--scenario", "retries", "--store", str(tmp_path / "d.sqlite3")])
    try:
        lines = term.until("prompt", lambda ls: prompt_line(ls) != "")
        assert lines[-1].startswith(PROMPT), "the prompt is the view's bottom line"
        code = re.search(rb"verification code is (\d{6})", term.raw)
        assert code is not None
        digits = code.group(1).decode()
        term.child.send(digits[:3])
        lines = term.until("masked digits", lambda ls: "•••" in prompt_line(ls))
        assert digits[:3] not in prompt_line(lines)  # masked
        before = len(rows(lines))
        lines = term.until(
            "a callback while typing",
            lambda ls: len(rows(ls)) > before and "•••" in prompt_line(ls),
        )
        assert any("↻" in row for row in rows(lines)[before:]), "the retry, shown while typing"
        assert not any("verified" in row for row in rows(lines)), "nothing was submitted yet"
        term.child.send(digits[3:] + "\r")
        term.child.expect(pexpect.EOF)
        term.stream.feed(term.child.before or b"")
        term.child.close()
        assert term.child.exitstatus == 0, "\n".join(term.lines())
        assert any("✓ verified: the code was right" in line for line in term.lines())
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)


def test_ctrl_c_at_the_prompt_is_an_interruption(tmp_path: Path) -> None:
    """Ctrl-C while the code is asked: exit 130 with one line, and the terminal's echo back."""
    term = Terminal(["demo", "--store", str(tmp_path / "d.sqlite3")])
    try:
        term.until("prompt", lambda ls: prompt_line(ls) != "")
        term.child.send("12")
        term.until("masked digits", lambda ls: "••" in prompt_line(ls))
        term.child.sendintr()
        term.child.expect(pexpect.EOF)
        term.stream.feed(term.child.before or b"")
        assert term.child.getecho(), "the prompt gave the terminal its echo back"
        term.child.close()
        assert term.child.exitstatus == 130
        assert any(line.startswith("error: interrupted") for line in term.lines())
    finally:
        if term.child.isalive():
            term.child.terminate(force=True)
