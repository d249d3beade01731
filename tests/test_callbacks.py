"""Reading Plivo's parameters from every body shape a sender can use."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest
from helpers.events import form_event
from hypothesis import given, settings
from hypothesis import strategies as st

from verifycli.callbacks import (
    MAX_FIELDS,
    CallbackEvent,
    decode_body,
    encode_body,
    form_pairs,
    parse_params,
)
from verifycli.signature import SignatureResult

FORM = "application/x-www-form-urlencoded"


def test_form_keeps_blank_values() -> None:
    """A blank ChannelErrorCode is a real, signed value and is kept."""
    parsed = parse_params("POST", FORM, b"ChannelStatus=sent&ChannelErrorCode=", "")
    assert parsed.fields == {"ChannelStatus": "sent", "ChannelErrorCode": ""}


def test_get_reads_the_query() -> None:
    """GET callbacks carry their fields in the query string, which is also what is signed."""
    parsed = parse_params("GET", "", b"", "SessionUUID=abc&ChannelErrorCode=")
    assert parsed.fields == {"SessionUUID": "abc", "ChannelErrorCode": ""}
    assert parsed.params == {"SessionUUID": "abc", "ChannelErrorCode": ""}


def test_json_object() -> None:
    """A JSON object becomes fields; non-string values are kept as JSON text."""
    body = json.dumps({"SessionUUID": "abc", "AttemptSequence": 2, "x": None}).encode()
    parsed = parse_params("POST", "application/json; charset=utf-8", body, "")
    assert parsed.fields == {"SessionUUID": "abc", "AttemptSequence": "2", "x": "null"}
    assert parsed.error is None


def test_json_list_is_flagged() -> None:
    """A JSON list is not a callback: flagged, no fields."""
    parsed = parse_params("POST", "application/json", b"[1, 2]", "")
    assert parsed.fields == {}
    assert parsed.error == "JSON body is a list, not an object"


def test_broken_json_is_flagged() -> None:
    """Broken JSON is flagged with a reason instead of raising."""
    parsed = parse_params("POST", "application/json", b'{"a": ', "")
    assert parsed.error is not None and "application/json" in parsed.error


def test_multipart_fields() -> None:
    """multipart/form-data parts become fields; files are described, not inlined."""
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="ChannelStatus"\r\n\r\ndelivered\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="ChannelErrorCode"\r\n\r\n\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n\r\n\x00\x01\r\n'
        b"--XyZ--\r\n"
    )
    parsed = parse_params("POST", "multipart/form-data; boundary=XyZ", body, "")
    assert parsed.fields == {
        "ChannelStatus": "delivered",
        "ChannelErrorCode": "",
        "f": "<file a.bin, 2 bytes>",
    }


def test_bad_percent_encoding_does_not_raise() -> None:
    """Bad percent-encoding is read leniently, never an error."""
    parsed = parse_params("POST", FORM, b"a=%zz%&b=%E9", "")
    assert parsed.fields["a"] == "%zz%"
    assert parsed.error is None


def test_repeated_names_keep_every_value_for_signing() -> None:
    """Repeated parameters are all kept in params (they are all signed); fields shows the first."""
    parsed = parse_params("POST", FORM, b"a=1&a=2", "")
    assert parsed.params == {"a": ["1", "2"]}
    assert parsed.fields == {"a": "1"}


def test_non_utf8_body_round_trips_as_base64() -> None:
    """Bytes that are not UTF-8 are kept base64 and decode back to the same bytes."""
    raw = b"\xff\x00\xfe"
    text, encoding = encode_body(raw)
    assert encoding == "base64"
    assert decode_body(text, encoding) == raw


def test_record_round_trip() -> None:
    """to_record and from_record are inverses, and the record has DESIGN's keys."""
    event = CallbackEvent(
        method="POST",
        url="https://x.example/cb",
        path="/cb",
        query="",
        headers={"Content-Type": FORM},
        content_type=FORM,
        body="SessionUUID=s&ChannelStatus=sent",
        body_encoding="utf-8",
        fields={"SessionUUID": "s", "ChannelStatus": "sent"},
        signature=SignatureResult("valid", "v3", "ok"),
        id=3,
        response_status=200,
    )
    record = event.to_record()
    assert record["session_uuid"] == "s" and record["channel_status"] == "sent"
    assert record["recipient"] is None
    assert record["signature"] == {"verdict": "valid", "scheme": "v3", "detail": "ok"}
    assert CallbackEvent.from_record(record).to_record() == record


def _with_error(channel: str, code: str) -> CallbackEvent:
    fields = {"Channel": channel, "ChannelErrorCode": code, "ChannelStatus": "failed"}
    return form_event(fields)


def test_channel_error_text_says_what_the_code_means() -> None:
    """channel_error_text: Plivo's meaning, null when blank, "unknown code" when not in the
    tables, and a simulator-only code labelled a placeholder."""
    assert _with_error("sms", "20").to_record()["channel_error_text"].startswith("Network Error")
    assert _with_error("voice", "2010").channel_error_text == (
        "Destination Out Of Service: the number is unavailable or out of service"
    )
    assert _with_error("sms", "").to_record()["channel_error_text"] is None
    assert _with_error("sms", "999").channel_error_text == "unknown code"
    assert "placeholder" in (_with_error("voice", "3020").channel_error_text or "")
    assert _with_error("sms", "3020").channel_error_text == "unknown code"


def test_the_plain_line_shows_the_meaning_beside_the_code() -> None:
    """The one-line view (pipes, logs) gives the code and the short meaning."""
    from verifycli.ui import plain_line

    assert "error=20 (Network Error)" in plain_line(_with_error("sms", "20"))
    assert "error=-" in plain_line(_with_error("sms", ""))


def test_every_answer_but_200_is_marked_as_one_plivo_will_retry() -> None:
    """Plivo retries unless it gets exactly 200: 201 and 204 are marked too, 200 is not."""
    from verifycli.ui import events_table, plain_line

    event = _with_error("sms", "")
    for status, marked in ((200, False), (201, True), (204, True), (500, True)):
        event.response_status = status
        assert ("Plivo will retry" in plain_line(event)) is marked, status
    event.response_status = 204
    import io

    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=200).print(events_table([event]))
    assert "204 (Plivo will retry)" in out.getvalue()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab=&+%2B0fFé\x00 ;"), max_size=40))
def test_form_pairs_is_parse_qsl(text: str) -> None:
    """The form parser gives exactly parse_qsl's pairs (blanks kept, bad escapes replaced)."""
    expected = parse_qsl(text, keep_blank_values=True, errors="replace", max_num_fields=MAX_FIELDS)
    assert form_pairs(text) == expected


def test_form_pairs_caps_fields_as_parse_qsl_does() -> None:
    """More than MAX_FIELDS fields is refused before any is read."""
    with pytest.raises(ValueError, match="Max number of fields"):
        form_pairs("a=1" + "&a=1" * MAX_FIELDS)
    assert len(form_pairs("a=1" + "&a=1" * (MAX_FIELDS - 1))) == MAX_FIELDS
