"""export: JSON, JSON Lines and CSV from a real store, through the command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from helpers.events import make_event
from typer.testing import CliRunner

from verifycli.cli import app
from verifycli.export import CSV_COLUMNS, parse_since
from verifycli.store import EventStore

runner = CliRunner()


@pytest.fixture
async def filled(store: EventStore) -> Path:
    for i in range(3):
        await store.append(
            make_event(i, session="A" if i < 2 else "B", attempt=f"a{i}"), lambda e: 200
        )
    return store.path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


async def test_json_is_one_array_of_records(filled: Path) -> None:
    """--format json writes one array holding every record, oldest first."""
    code, out = invoke("export", "--store", str(filled))
    assert code == 0
    records = json.loads(out)
    assert [r["id"] for r in records] == [1, 2, 3]
    assert records[0]["signature"]["verdict"] == "valid"
    assert list(records[0])[:3] == ["id", "received_at", "method"]


async def test_jsonl_is_one_record_a_line(filled: Path) -> None:
    """--format jsonl writes one JSON object per line."""
    code, out = invoke("export", "--store", str(filled), "--format", "jsonl")
    assert code == 0
    lines = out.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [1, 2, 3]


async def test_csv_has_scalar_and_plivo_columns(filled: Path) -> None:
    """--format csv: scalar fields, one column per Plivo field, a row per event."""
    code, out = invoke("export", "--store", str(filled), "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert rows[2]["session_uuid"] == "B"
    assert rows[0]["signature_verdict"] == "valid"
    assert json.loads(rows[0]["other_fields"]) == {"N": "0"}


async def test_session_filter_and_output_file(filled: Path, tmp_path: Path) -> None:
    """--session selects one session; -o writes a file and says how many."""
    target = tmp_path / "out.json"
    result = runner.invoke(
        app, ["export", "--store", str(filled), "--session", "A", "-o", str(target)]
    )
    assert result.exit_code == 0
    assert [r["session_uuid"] for r in json.loads(target.read_text())] == ["A", "A"]
    assert "wrote 2 events" in result.stderr


async def test_since_filter(filled: Path) -> None:
    """--since in the future selects nothing: an empty array."""
    code, out = invoke("export", "--store", str(filled), "--since", "2999-01-01T00:00:00Z")
    assert code == 0
    assert json.loads(out) == []


def test_empty_store_exports_empty_array(tmp_path: Path) -> None:
    """A store with no events (or no file yet) exports []."""
    code, out = invoke("export", "--store", str(tmp_path / "none.sqlite3"))
    assert (code, json.loads(out)) == (0, [])


def test_bad_format_exits_2(tmp_path: Path) -> None:
    """An unknown --format is refused by the parser: exit 2, naming the flag."""
    result = runner.invoke(app, ["export", "--store", str(tmp_path / "s"), "--format", "xml"])
    assert result.exit_code == 2
    assert "Invalid value for '--format'" in result.stderr


def test_bad_since_exits_2(tmp_path: Path) -> None:
    """An unparseable --since is a usage error naming the expected form."""
    result = runner.invoke(app, ["export", "--store", str(tmp_path / "s"), "--since", "yesterday"])
    assert result.exit_code == 2
    assert "ISO 8601" in result.stderr


def test_foreign_store_exits_2_untouched(tmp_path: Path) -> None:
    """Exporting from a file that is not a store exits 2 and leaves it alone."""
    path = tmp_path / "x.txt"
    path.write_text("not a db")
    result = runner.invoke(app, ["export", "--store", str(path)])
    assert result.exit_code == 2
    assert "not a verifycli store" in result.stderr
    assert path.read_text() == "not a db"


def test_parse_since_normalises_to_utc() -> None:
    """--since accepts Z and offsets and compares in the store's UTC form."""
    assert parse_since("2026-11-28T10:00:00+02:00") == "2026-11-28T08:00:00.000000+00:00"
    assert parse_since("2026-11-28T08:00:00Z") == "2026-11-28T08:00:00.000000+00:00"
