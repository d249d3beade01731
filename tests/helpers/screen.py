"""A real terminal emulator (pyte) for view tests: what a person would see, cell by cell."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pyte
from rich.console import Console, RenderableType

from verifycli.callbacks import CallbackEvent


def terminal(width: int, lines: int = 200) -> tuple[pyte.Screen, pyte.ByteStream]:
    screen = pyte.Screen(width, lines)
    screen.set_mode(pyte.modes.LNM)  # a bare \n starts a new line, as a tty's onlcr does
    return screen, pyte.ByteStream(screen)


def shown(screen: pyte.Screen) -> list[str]:
    """The screen's lines, trailing blanks dropped, empty lines at the end dropped."""
    out = [line.rstrip() for line in screen.display]
    while out and not out[-1]:
        out.pop()
    return out


def render(
    draw: Callable[[Console], None] | RenderableType, width: int, height: int = 60
) -> list[str]:
    """What `draw` puts on a `width`-column terminal (colours and all, through the emulator)."""
    buf = io.StringIO()
    console = Console(
        file=buf, force_terminal=True, width=width, height=height, color_system="truecolor"
    )
    if callable(draw):
        draw(console)
    else:
        console.print(draw)
    screen, stream = terminal(width)
    stream.feed(buf.getvalue().encode())
    return shown(screen)


def table_rows(lines: list[str]) -> tuple[str, list[str]] | None:
    """The table's header line and its rows (the lines under the rule), or None: no table."""
    for index, line in enumerate(lines):
        if line.startswith("#") and index + 1 < len(lines) and set(lines[index + 1]) == {"─"}:
            rows = []
            for row in lines[index + 2 :]:
                if not re.match(r"^\d+\s", row):
                    break
                rows.append(row)
            return line, rows
    return None


def columns(header: str) -> list[tuple[str, int, int]]:
    """Each header's name and the span of cells it heads (to the next header)."""
    found = [(m.group(), m.start()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    return [
        (name, start, found[i + 1][1] if i + 1 < len(found) else 10_000)
        for i, (name, start) in enumerate(found)
    ]


VERDICT_WORDS = ("✓", "invalid", "replayed", "unsigned", "unchecked")


def check_readable(lines: list[str], events: list[CallbackEvent], width: int) -> None:
    """What a person checks on the screen: every event there, in full, none cut, none blank."""
    text = "\n".join(lines)
    assert "…" not in text, text
    assert all(len(line) <= width for line in lines)
    table = table_rows(lines)
    if table is None:  # one line per callback (it may wrap, never cut)
        first = next(i for i, line in enumerate(lines) if re.match(r"#\d+ ", line))
        blocks = re.split(r"\n(?=#\d+ )", "\n".join(lines[first:]))
        assert [int(b.split()[0][1:]) for b in blocks] == [e.id for e in events], text
        for block, event in zip(blocks, events, strict=True):
            flat = " ".join(block.split())
            assert f"session={event.plivo('session_uuid')}" in flat
            assert f"status={event.plivo('channel_status')}/{event.plivo('session_status')}" in flat
            assert f"signature={event.signature.verdict}" in flat
        return
    header, rows = table
    assert [int(row.split()[0]) for row in rows] == [e.id for e in events], text
    for name, start, end in columns(header):
        assert any(row[start:end].strip() for row in rows), f"column {name!r} is blank:\n{text}"
    for row, event in zip(rows, events, strict=True):
        words = row.split()
        assert (event.plivo("session_uuid") or "")[:8] in words, row
        assert event.plivo("channel_status") in words, row
        assert event.plivo("session_status") in words, row
        assert event.plivo("channel") in words, row
        assert re.search(r"\b\d\d:\d\d:\d\d\b", row), row
        assert any(word in row for word in VERDICT_WORDS), row
