"""Fitting the callbacks table to a width: which columns show, which merge, when to use lines.

Pure functions over rows of cell texts (field name → text); ui.py renders what they decide.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

Row = Mapping[str, str]
Measure = Callable[[str], int]

# Spaces between two columns; ui.py draws the table with exactly this gap.
GAP = 2


def cell_width(text: str) -> int:
    """Terminal cells `text` takes: wide (East Asian, emoji) characters count 2, combining 0."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


@dataclass(frozen=True)
class Column:
    """A table column: its header and the fields whose texts fill each cell, space-joined."""

    header: str
    parts: tuple[str, ...]
    right: bool = False

    def text(self, row: Row) -> str:
        return " ".join(t for part in self.parts if (t := row.get(part, "")))


@dataclass(frozen=True)
class Layout:
    """What to draw: the columns and their widths, or no columns (one line per callback)."""

    columns: tuple[Column, ...]
    widths: tuple[int, ...]

    @property
    def lines(self) -> bool:
        return not self.columns

    @property
    def width(self) -> int:
        return table_width(self.widths)


LINES = Layout((), ())


@dataclass(frozen=True)
class Shape:
    """One way to draw the table, from the widest (the defaults) down to the most merged."""

    forward: str = "full"  # "full" (201 in 12 ms), "short" (201 / ✗ refused) or "none"
    error_text: bool = True  # the meaning of the error code beside it
    answer_note: bool = True  # `500 (Plivo will retry)` or `500`
    separate_channel: bool = True  # `sms` | `delivered`, or `sms delivered`
    separate_session: bool = True  # `372d1a2b` | `in-progress`, or `372d1a2b in-progress`
    separate_error: bool = True  # an error column, or the code in the channel cell: `(30)`
    long_headers: bool = True  # `answer` or `ans`
    separate_retry: bool = True  # a retry column, or `↻1` after the id
    verdict: str = "full"  # "full" (✓ valid v3) or "compact" (✓ v3, invalid, unsigned)
    millis: bool = True  # 13:59:31.123 or 13:59:31
    retry_of: bool = True  # `↻1` or only `↻`
    error: bool = True  # the error code (a failed status still says it failed)


def _narrowing() -> tuple[Shape, ...]:
    """Each step gives up a little more width than the one before; the first that fits wins."""
    steps: list[dict[str, Any]] = [
        {"forward": "short"},
        {"error_text": False},
        {"answer_note": False},
        {"separate_channel": False},
        {"separate_session": False},
        {"separate_error": False},
        {"long_headers": False},
        {"separate_retry": False},
        {"verdict": "compact"},
        {"millis": False},
        {"forward": "none"},
        {"retry_of": False},
        {"error": False},
    ]
    shapes = [Shape()]
    for step in steps:
        shapes.append(replace(shapes[-1], **step))
    return tuple(shapes)


SHAPES = _narrowing()


def _differ(rows: Sequence[Row], name: str) -> bool:
    return len({row.get(name, "") for row in rows}) > 1


def columns_for(rows: Sequence[Row], shape: Shape) -> tuple[Column, ...]:
    """The columns `shape` draws for `rows`: columns with nothing in any row are left out."""
    long = shape.long_headers
    retry = "retry_short" if shape.retry_of else "retry_mark"
    cols: list[Column] = [
        Column("#", ("id",) if shape.separate_retry else ("id", retry)),
        Column("time", ("date", "time" if shape.millis else "clock")),
    ]
    if shape.separate_session:
        cols.append(Column("session", ("session",)))
    else:
        cols.append(Column("session", ("session", "session_status")))
    if any(row.get("seq", "") not in ("", "1") for row in rows):
        cols.append(Column("seq" if long else "#", ("seq",), right=True))
    request = tuple(name for name in ("method", "path") if _differ(rows, name))
    if request:
        cols.append(Column("request" if long else "req", request))
    error = ("error", "error_text") if shape.error_text else ("error",)
    if shape.separate_channel:
        cols.append(Column("channel", ("channel",)))
        cols.append(Column("channel status", ("channel_status",)))
    elif shape.separate_error:
        cols.append(Column("channel", ("channel", "channel_status")))
    elif shape.error:
        cols.append(Column("channel", ("channel", "channel_status", "error_paren")))
    else:
        cols.append(Column("channel", ("channel", "channel_status")))
    if shape.separate_session:
        cols.append(Column("session status", ("session_status",)))
    if shape.separate_error:
        cols.append(Column("error", error))
    verdict = ("verdict", "scheme") if shape.verdict == "full" else ("verdict_compact",)
    cols.append(Column("signature" if long else "sig", verdict))
    if shape.separate_retry:
        cols.append(Column("retry", ("retry",)))
    answer = ("answer", "answer_note") if shape.answer_note else ("answer",)
    cols.append(Column("answer" if long else "ans", answer))
    if shape.forward != "none":
        forward = "forward" if shape.forward == "full" else "forward_short"
        cols.append(Column("forwarded" if long else "fwd", (forward,)))
    return tuple(col for col in cols if any(col.text(row) for row in rows))


def table_width(widths: Sequence[int]) -> int:
    return sum(widths) + GAP * max(len(widths) - 1, 0)


def measure(
    rows: Sequence[Row], columns: Sequence[Column], cells: Measure = cell_width
) -> tuple[int, ...]:
    """Each column's width: its widest cell or its header."""
    return tuple(
        max([cells(col.header), *(cells(col.text(row)) for row in rows)]) for col in columns
    )


def fit(rows: Sequence[Row], width: int, cells: Measure = cell_width) -> Layout:
    """The widest shape of table whose every cell is whole within `width`; else LINES."""
    for shape in SHAPES:
        columns = columns_for(rows, shape)
        widths = measure(rows, columns, cells)
        if table_width(widths) <= width:
            return Layout(columns, widths)
    return LINES


def spans_days(days: Sequence[str]) -> bool:
    """Whether the listing covers more than one local date, so times need their date."""
    return len(set(days)) > 1
