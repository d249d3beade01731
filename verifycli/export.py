"""Writers for stored events: JSON (one array), JSON Lines and CSV, all streaming."""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

from verifycli.callbacks import PLIVO_FIELDS
from verifycli.errors import ConfigError
from verifycli.safe_text import json_safe

Format = Literal["json", "jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("json", "jsonl", "csv")

CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "received_at",
    "method",
    "url",
    "path",
    "query",
    "content_type",
    "body",
    "body_encoding",
    "parse_error",
    *PLIVO_FIELDS,
    "channel_error_text",
    "signature_verdict",
    "signature_scheme",
    "signature_detail",
    "retry_of",
    "response_status",
    "forward_url",
    "forward_status",
    "forward_error",
    "other_fields",
)
_KNOWN = frozenset(PLIVO_FIELDS.values())
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def parse_since(value: str) -> str:
    """An ISO 8601 time (a date, or a time with or without an offset; local when none) in the
    store's form: UTC with microseconds."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.astimezone()
        return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
    except (ValueError, OverflowError):
        raise ConfigError(
            f"--since needs an ISO 8601 time like 2026-11-28T09:30 or 2026-11-28T09:30:00Z, "
            f"not {value!r}"
        ) from None


def open_output(path: Path) -> IO[str]:
    """`path` opened to write an export; a new file is 0600: exports hold phone numbers."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    return open(fd, "w", encoding="utf-8", newline="")


def _cell(value: Any) -> Any:
    """A text cell a spreadsheet will show, not run: formula-like text gets a leading '."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_row(record: dict[str, Any]) -> list[Any]:
    sig = record.get("signature") or {}
    fwd = record.get("forward") or {}
    others = {k: v for k, v in record["fields"].items() if k not in _KNOWN}
    flat = {
        **record,
        "signature_verdict": sig.get("verdict"),
        "signature_scheme": sig.get("scheme"),
        "signature_detail": sig.get("detail"),
        "forward_url": fwd.get("url"),
        "forward_status": fwd.get("status"),
        "forward_error": fwd.get("error"),
        "other_fields": json.dumps(others, ensure_ascii=False) if others else None,
    }
    return ["" if flat.get(name) is None else _cell(flat[name]) for name in CSV_COLUMNS]


def _chunks(lines: Iterable[str], size: int = 256) -> Iterator[str]:
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield "".join(batch)
            batch.clear()
    if batch:
        yield "".join(batch)


def write(json_lines: Iterable[str], fmt: Format, out: IO[str]) -> int:
    """Write records given as JSON text to `out`; returns how many were written."""
    count = 0

    def framed(first: str, between: str, after: str) -> Iterator[str]:
        nonlocal count
        for line in json_lines:
            yield (between if count else first) + json_safe(line) + after
            count += 1

    if fmt == "jsonl":
        for chunk in _chunks(framed("", "", "\n")):
            out.write(chunk)
    elif fmt == "json":
        out.write("[")
        for chunk in _chunks(framed("\n", ",\n", "")):
            out.write(chunk)
        out.write("\n]\n" if count else "]\n")
    else:
        # Every text cell quoted: a CR or newline inside one stays inside its row.
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(CSV_COLUMNS)
        for line in json_lines:
            writer.writerow(csv_row(json.loads(line)))
            count += 1
    return count


def write_to(json_lines: Iterable[str], fmt: Format, output: Path | None) -> int:
    """Write to `output` (a file, created or replaced) or to stdout when None; the count."""
    if output is None:
        return write(json_lines, fmt, sys.stdout)
    with open_output(output) as stream:
        return write(json_lines, fmt, stream)
