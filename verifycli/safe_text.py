"""Text from a callback made safe to show: no control character reaches a terminal raw."""

from __future__ import annotations

import re

# C0 (but tab and newline, which a multi-line view may keep), DEL and C1 (U+0080-U+009F: a
# terminal reads U+009B as CSI, as ESC [ ). Each is shown as its escape, e.g. "\x1b".
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROLS_AND_LINES = re.compile("[\x00-\x1f\x7f-\x9f]")
_C1 = re.compile("[\x80-\x9f]")


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def safe(text: str) -> str:
    """`text` on one line: every C0/C1 control, tab and newline included, as a visible escape."""
    if text.isprintable():  # no control in it (the usual case): 10x faster than the regex
        return text
    return _CONTROLS_AND_LINES.sub(_escape, text)


def safe_lines(text: str) -> str:
    """`text` with its tabs and newlines kept and every other control as a visible escape."""
    return _CONTROLS.sub(_escape, text)


def json_safe(line: str) -> str:
    """A JSON text with U+0080-U+009F written as \\u escapes (JSON escapes C0 already); valid
    JSON still, since these can only occur inside strings."""
    if line.isascii() or _C1.search(line) is None:  # isascii: 100x faster than the search
        return line
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
