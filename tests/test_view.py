"""The live view and `events` as a person sees them in a real terminal (pyte), at any width."""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path

import pexpect
import pytest
from helpers.env import cli_env
from helpers.mix import realistic_mix, store_mix
from helpers.screen import check_readable, columns, render, shown, table_rows, terminal

from verifycli import layout
from verifycli.ui import Header, LiveView, events_table, row_cells

WIDTHS = (60, 80, 120, 200)


def header() -> Header:
    counts = {"received": 11, "valid": 7, "invalid": 2, "retries": 1, "write errors": 0}
    return Header(
        public_url="https://abcd-12-34-56-78.ngrok-free.app",
        local_url="http://127.0.0.1:8080",
        store_path="/home/dev/.local/share/verifycli/events.sqlite3",
        counts=lambda: counts,
    )


def live_screen(width: int, height: int = 60) -> list[str]:
    events = realistic_mix()

    def draw(console):  # type: ignore[no-untyped-def]
        view = LiveView(console, header())
        view.live = True  # what start() decides on a real terminal
        view.up = True  # what ready() sets once the listener is up
        for event in events:
            view.event(event)
        console.print(view.render())

    return render(draw, width, height)


@pytest.mark.parametrize("width", WIDTHS)
def test_live_view_reads_at_every_width(width: int) -> None:
    """Every id, time, session, channel + status, session status and verdict whole at each width;
    no "…", no blank column; a table from 80 columns up, one line per callback below."""
    lines = live_screen(width)
    check_readable(lines, realistic_mix(), width)
    assert (table_rows(lines) is not None) == (width >= 80)


@pytest.mark.parametrize("width", WIDTHS)
async def test_events_reads_in_a_real_terminal(tmp_path: Path, width: int) -> None:
    """`verifycli events` on a pty of each width: the same promises, on stdout."""
    stored = await store_mix(tmp_path / "mix.sqlite3")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "verifycli", "events", "--store", str(tmp_path / "mix.sqlite3")],
        env=cli_env(TZ="UTC"),
        dimensions=(60, width),
        timeout=30,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    screen, stream = terminal(width)
    stream.feed(child.before)
    lines = shown(screen)
    check_readable([line for line in lines if not line.startswith("times are")], stored, width)
    assert lines[-1] == "times are local, UTC+00:00"


def test_80_columns_keeps_method_and_drops_what_is_empty() -> None:
    """GET and POST both show at 80 columns; columns empty in every row are not drawn."""
    header_line, rows = table_rows(live_screen(80)) or ("", [])
    assert any(" GET " in row for row in rows) and any(" POST " in row for row in rows)
    plain = [replace(e, forward=None, retry_of=None, method="POST") for e in realistic_mix()]
    for event in plain:
        event.fields["ChannelErrorCode"] = ""
    head, _ = table_rows(render(events_table(plain, 200), 200)) or ("", [])
    names = [name for name, _, _ in columns(head)]
    assert names[:3] == ["#", "time", "session"]
    for gone in ("error", "retry", "forwarded", "seq", "request"):
        assert gone not in names


def test_wide_terminals_get_more() -> None:
    """At 200 columns: separate channel and status, milliseconds, the forward's whole outcome."""
    head, rows = table_rows(live_screen(200)) or ("", [])
    names = [name for name, _, _ in columns(head)]
    for name in ("channel status", "session status", "error", "retry", "forwarded", "request"):
        assert name in names
    assert any("✗ connection refused" in row for row in rows)
    assert all(re.search(r"\d\d:\d\d:\d\d\.\d{3}", row) for row in rows)


def test_header_stays_compact_on_a_wide_terminal() -> None:
    """The header panel is as wide as what it holds, not the terminal's 200 columns."""
    lines = live_screen(200)
    top = next(line for line in lines if line.startswith("╭"))
    assert len(top) < 100
    assert any(re.search(r"times\s+local, UTC[+-]\d\d:\d\d", line) for line in lines)


def test_the_view_never_outgrows_the_screen() -> None:
    """With more callbacks than lines, the newest that fit are shown and nothing scrolls away."""
    many = [replace(e, id=i + 1) for i, e in enumerate(realistic_mix() * 5)]

    def draw(console):  # type: ignore[no-untyped-def]
        view = LiveView(console, header())
        view.live = view.up = True
        for event in many:
            view.event(event)
        console.print(view.render())

    for width in (60, 80, 200):
        lines = render(draw, width, height=30)
        assert len(lines) <= 30
        assert any(re.match(rf"^#?{len(many)}\s", line) for line in lines), "newest not shown"


def test_listing_over_days_shows_the_date() -> None:
    """A listing that spans two days shows each row's date; one day shows none."""
    events = realistic_mix()
    later = replace(events[-1], id=12, received_at="2026-12-04T09:00:00.000000+00:00")
    same_day = render(events_table(events, 200), 200)
    two_days = render(events_table([*events, later], 200), 200)
    assert not any("2026-12-02" in line for line in same_day)
    _, rows = table_rows(two_days) or ("", [])
    assert len(rows) == 12 and all(re.search(r"2026-12-0[24] ", row) for row in rows)


@pytest.mark.parametrize("width", range(20, 240, 7))
def test_fit_never_exceeds_the_width(width: int) -> None:
    """Whatever the width, the layout chosen fits it, or is one line per callback."""
    cells = [row_cells(e) for e in realistic_mix()]
    fitted = layout.fit(cells, width)
    assert fitted.lines or fitted.width <= width
    if not fitted.lines:
        assert fitted.widths == layout.measure(cells, fitted.columns)


def test_narrower_never_shows_more() -> None:
    """Each narrower shape is no wider than the one before it."""
    cells = [row_cells(e) for e in realistic_mix()]
    widths = [
        layout.table_width(layout.measure(cells, layout.columns_for(cells, s)))
        for s in layout.SHAPES
    ]
    assert widths == sorted(widths, reverse=True)
