"""export's writers cell by cell: each CSV column holds its record value, every format is whole
across chunk boundaries, files are private, and --since reads every documented spelling."""

from __future__ import annotations

import csv
import io
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from verifycli.callbacks import PLIVO_FIELDS
from verifycli.errors import ConfigError
from verifycli.export import CSV_COLUMNS, csv_row, open_output, parse_since, write

RECORD: dict[str, Any] = {
    "id": 7,
    "received_at": "2026-11-28T09:30:00.000001+00:00",
    "method": "POST",
    "url": "https://x.example/cb?a=1",
    "path": "/cb",
    "query": "a=1",
    "content_type": "application/x-www-form-urlencoded",
    "body": "ChannelStatus=failed",
    "body_encoding": "utf-8",
    "parse_error": None,
    "fields": {name: f"v-{name}" for name in PLIVO_FIELDS.values()} | {"Extra": "x"},
    **{key: f"v-{name}" for key, name in PLIVO_FIELDS.items()},
    "channel_error_text": "Network Error",
    "signature": {"verdict": "invalid", "scheme": "v2", "detail": "wrong token"},
    "retry_of": 3,
    "response_status": 503,
    "forward": {"url": "http://127.0.0.1:9/app", "status": 502, "error": "refused"},
}
EXPECTED = {
    "id": 7,
    "received_at": RECORD["received_at"],
    "method": "POST",
    "url": RECORD["url"],
    "path": "/cb",
    "query": "a=1",
    "content_type": RECORD["content_type"],
    "body": RECORD["body"],
    "body_encoding": "utf-8",
    "parse_error": "",
    **{key: f"v-{name}" for key, name in PLIVO_FIELDS.items()},
    "channel_error_text": "Network Error",
    "signature_verdict": "invalid",
    "signature_scheme": "v2",
    "signature_detail": "wrong token",
    "retry_of": 3,
    "response_status": 503,
    "forward_url": "http://127.0.0.1:9/app",
    "forward_status": 502,
    "forward_error": "refused",
    "other_fields": '{"Extra": "x"}',
}


def test_every_csv_column_holds_its_record_value() -> None:
    """Column by column, a CSV row says what the record says (None as an empty cell; fields
    that are not Plivo's go to other_fields as JSON)."""
    assert set(EXPECTED) == set(CSV_COLUMNS)
    assert dict(zip(CSV_COLUMNS, csv_row(RECORD), strict=True)) == EXPECTED


def test_a_record_without_signature_or_forward_gives_empty_cells() -> None:
    """No signature, no forward and only Plivo's fields: those cells are empty, not 'None'."""
    bare = {**RECORD, "signature": None, "forward": None, "fields": {}}
    row = dict(zip(CSV_COLUMNS, csv_row(bare), strict=True))
    empty = ("signature_verdict", "signature_scheme", "signature_detail", "forward_url")
    assert [row[c] for c in (*empty, "forward_status", "forward_error", "other_fields")] == [""] * 7


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
@pytest.mark.parametrize("count", [0, 1, 255, 256, 257, 600])
def test_every_format_is_whole_across_chunks(fmt: str, count: int) -> None:
    """Writes are batched 256 records at a time: at and around those edges every record is
    written once, in order, and the document parses."""
    lines = (json.dumps({**RECORD, "id": i}) for i in range(count))
    out = io.StringIO()
    assert write(lines, fmt, out) == count  # type: ignore[arg-type]
    text = out.getvalue()
    if fmt == "json":
        ids = [r["id"] for r in json.loads(text)]
    elif fmt == "jsonl":
        ids = [json.loads(line)["id"] for line in text.splitlines()]
    else:
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == list(CSV_COLUMNS)
        ids = [int(float(row[0])) for row in rows[1:]]
    assert ids == list(range(count))


def test_export_files_are_private_and_replaced(tmp_path: Path) -> None:
    """An export file is created 0600 (it holds phone numbers) and an old one is replaced."""
    path = tmp_path / "out.json"
    path.write_text("old content that is longer than the new one\n")
    path.chmod(0o600)
    with open_output(path) as stream:
        stream.write("new\n")
    assert path.read_text() == "new\n"
    fresh = tmp_path / "fresh.csv"
    with open_output(fresh) as stream:
        stream.write("a\r\nb")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert fresh.read_bytes() == b"a\r\nb"  # newline="" keeps CSV's CRLF as written


def test_an_unwritable_export_path_is_one_line() -> None:
    """A path that cannot be written is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="cannot write /nonexistent-dir/x.json"):
        open_output(Path("/nonexistent-dir/x.json"))


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2026-11-28T09:30:00Z", "2026-11-28T09:30:00.000000+00:00"),
        ("2026-11-28T09:30:00z", "2026-11-28T09:30:00.000000+00:00"),
        (" 2026-11-28T11:30:00+02:00 ", "2026-11-28T09:30:00.000000+00:00"),
        ("2026-11-28T09:30:00.5+00:00", "2026-11-28T09:30:00.500000+00:00"),
    ],
)
def test_since_spellings(given: str, stored: str) -> None:
    """--since takes Z or z, an offset, blanks around, fractions; stored as UTC microseconds."""
    assert parse_since(given) == stored


def test_since_refusal_names_the_flag_and_the_value() -> None:
    """A time that cannot be read is refused with an example and the value given."""
    with pytest.raises(ConfigError) as caught:
        parse_since("yesterday")
    assert str(caught.value) == (
        "--since needs an ISO 8601 time like 2026-11-28T09:30 or 2026-11-28T09:30:00Z, "
        "not 'yesterday'"
    )
