"""Reading Plivo's parameters from every body shape a sender can use."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest
from helpers.env import local_zone
from helpers.events import form_event
from hypothesis import given, settings
from hypothesis import strategies as st

from verifycli.callbacks import (
    MAX_FIELDS,
    CallbackEvent,
    decode_body,
    encode_body,
    form_pairs,
    has_surrogates,
    header_params,
    join_record,
    parse_params,
    utc_now,
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


def _full_event(**more: object) -> CallbackEvent:
    """An event with every field set to a value no other field has."""
    return form_event(
        {"SessionUUID": "s-é", "ChannelStatus": "sent", "Recipient": "1415"},
        SignatureResult("invalid", "ma-v2", "why", "n"),
        body="SessionUUID=s-%C3%A9",
        received_at="2026-12-03T01:02:03.000004+00:00",
        id=7,
        retry_of=3,
        response_status=500,
        forward={"url": "http://app/cb", "status": 204, "note": "é"},
        parse_error="none really",
        **more,
    )


def test_from_record_reads_every_key_into_its_own_field() -> None:
    """Each record key lands in the field of the same name; the nonce is not in a record."""
    event = _full_event()
    event.query = "a=1"
    event.headers = {"X-A": "1"}
    event.content_type = "text/plain"
    event.method, event.url, event.path = "GET", "http://h/p?a=1", "/p"
    back = CallbackEvent.from_record(event.to_record())
    assert back == CallbackEvent(
        method="GET",
        url="http://h/p?a=1",
        path="/p",
        query="a=1",
        headers={"X-A": "1"},
        content_type="text/plain",
        body="SessionUUID=s-%C3%A9",
        body_encoding="utf-8",
        fields={"SessionUUID": "s-é", "ChannelStatus": "sent", "Recipient": "1415"},
        signature=SignatureResult("invalid", "ma-v2", "why"),
        received_at="2026-12-03T01:02:03.000004+00:00",
        parse_error="none really",
        id=7,
        retry_of=3,
        response_status=500,
        forward={"url": "http://app/cb", "status": 204, "note": "é"},
    )


def test_from_record_fills_what_an_older_record_lacks() -> None:
    """Without signature, id, retry, status, forward or parse error: unchecked and None."""
    record = form_event({}).to_record()
    for key in ("signature", "id", "retry_of", "response_status", "forward", "parse_error"):
        del record[key]
    back = CallbackEvent.from_record(record)
    assert back.signature == SignatureResult("unchecked", None, "")
    assert (back.id, back.retry_of, back.response_status, back.forward, back.parse_error) == (
        None,
        None,
        None,
        None,
        None,
    )


def test_a_record_has_designs_keys_in_designs_order() -> None:
    """Users script against the record's keys and their order."""
    assert list(_full_event().to_record()) == [
        "id",
        "received_at",
        "method",
        "url",
        "path",
        "query",
        "headers",
        "content_type",
        "body",
        "body_encoding",
        "fields",
        "parse_error",
        "session_uuid",
        "attempt_uuid",
        "attempt_sequence",
        "channel",
        "channel_status",
        "session_status",
        "channel_error_code",
        "recipient",
        "request_time",
        "channel_error_text",
        "signature",
        "retry_of",
        "response_status",
        "forward",
    ]


def test_to_json_is_compact_utf8_with_or_without_the_stored_text() -> None:
    """One compact line, non-ASCII kept; from the store's text it is the same line."""
    event = _full_event()
    line = event.to_json()
    assert line == json.dumps(event.to_record(), ensure_ascii=False, separators=(",", ":"))
    assert "é" in line and ", " not in line and '": ' not in line
    rest = event.to_record()
    for key in ("id", "retry_of", "response_status", "forward"):
        del rest[key]
    event.stored_json = json.dumps(rest, ensure_ascii=False, separators=(",", ":"))
    assert json.loads(event.to_json()) == event.to_record()
    assert event.to_json().startswith('{"id":7,"received_at":')
    assert event.to_json().endswith(
        ',"retry_of":3,"response_status":500,"forward":{"url":"http://app/cb","status":204,'
        '"note":"é"}}'
    )


def test_joined_json_spells_missing_values_null() -> None:
    """A record joined from the store's text has null id, retry, status and forward when unset."""
    assert join_record(None, '{"a":1}', None, None, None) == (
        '{"id":null,"a":1,"retry_of":null,"response_status":null,"forward":null}'
    )
    assert join_record(1, '{"a":1,"b":2}', 2, 3, '{"x":1}') == (
        '{"id":1,"a":1,"b":2,"retry_of":2,"response_status":3,"forward":{"x":1}}'
    )


def test_a_utf8_body_is_kept_as_text() -> None:
    """A UTF-8 body is stored as its text, and encoded back to the same bytes."""
    assert encode_body("é=1".encode()) == ("é=1", "utf-8")
    assert decode_body("é=1", "utf-8") == "é=1".encode()
    assert encode_body(b"\xff") == ("/w==", "base64")


MULTIPART = "multipart/form-data; boundary=b"


def _multipart(*parts: bytes, end: bytes = b"--b--\r\n") -> bytes:
    return b"".join(b"--b\r\n" + part + b"\r\n" for part in parts) + end


def test_header_params_unquote_lower_case_names_and_keep_the_first() -> None:
    """`; Name="a \\"b\\""` reads as name -> a "b"; a repeated name keeps its first value;
    a lone quote is kept as it is."""
    params = header_params('form-data; Name="a \\"b\\"" ; name=second; filename=";x"; q="')
    assert params == {"name": 'a "b"', "filename": ";x", "q": '"'}
    assert header_params('x; e=""') == {"e": ""}


def test_a_part_with_lf_line_ends_is_read() -> None:
    """A multipart body written with bare LF (no CR) is read the same."""
    body = (
        b'--b\nContent-Disposition: form-data; name="a"\n\n1\n'
        b'--b\nContent-Disposition: form-data; name="c"\n\n2\n--b--\n'
    )
    assert parse_params("POST", MULTIPART, body, "").fields == {"a": "1", "c": "2"}


def test_part_transfer_encodings_are_decoded() -> None:
    """base64 and quoted-printable parts are decoded (any case); a bad base64 one is kept."""

    def part(name: str, encoding: str, payload: bytes) -> bytes:
        head = f'Content-Disposition: form-data; name="{name}"\r\n{encoding}\r\n\r\n'
        return head.encode() + payload

    body = _multipart(
        part("b64", "Content-Transfer-Encoding: BASE64", b"c21z"),
        part("qp", "content-transfer-encoding: quoted-printable", b"caf=C3=A9"),
        part("bad", "Content-Transfer-Encoding: base64", b"c21"),
        part("raw", "Content-Transfer-Encoding: 8bit", b"c21z"),
    )
    assert parse_params("POST", MULTIPART, body, "").fields == {
        "b64": "sms",
        "qp": "café",
        "bad": "c21",
        "raw": "c21z",
    }


def test_a_part_without_a_name_is_left_out_and_a_file_is_described() -> None:
    """A part with no form-data name is no field; a file part gives its name and size."""
    body = _multipart(
        b"Content-Disposition: form-data\r\n\r\nlost",
        b"X-Other: 1\r\n\r\nlost too",
        b'Content-Disposition: form-data; name="f"; filename=""\r\n\r\n\xff\xfe',
        b'Content-Disposition: form-data; name="kept"\r\n\r\nyes',
    )
    assert parse_params("POST", MULTIPART, body, "").fields == {
        "f": "<file , 2 bytes>",
        "kept": "yes",
    }


def test_a_part_head_over_the_cap_is_an_error() -> None:
    """A part whose headers pass MAX_PART_HEAD bytes is refused, naming the cap."""
    from verifycli.callbacks import MAX_PART_HEAD

    head = b'Content-Disposition: form-data; name="a"; x="' + b"y" * MAX_PART_HEAD + b'"'
    parsed = parse_params("POST", MULTIPART, _multipart(head + b"\r\n\r\n1"), "")
    assert parsed.error == (
        "body could not be parsed as multipart/form-data: a multipart part's headers are longer "
        "than 8192 bytes"
    )
    fits = b"X: " + b"y" * (MAX_PART_HEAD - 45) + b'\r\nContent-Disposition: form-data; name="a"'
    assert len(fits) == MAX_PART_HEAD
    assert parse_params("POST", MULTIPART, _multipart(fits + b"\r\n\r\n1"), "").fields == {"a": "1"}


@pytest.mark.parametrize(
    ("content_type", "body", "error"),
    [
        ("multipart/form-data", b"--b--", "multipart body without a usable boundary"),
        (
            "multipart/form-data; boundary=" + "b" * 201,
            b"",
            "multipart body without a usable boundary",
        ),
        (
            "multipart/form-data; boundary=zz",
            b"no delimiter here",
            "multipart body without its boundary",
        ),
    ],
)
def test_a_multipart_body_without_a_usable_boundary_is_an_error(
    content_type: str, body: bytes, error: str
) -> None:
    """No boundary, one over 200 characters, or a body without it: a parse error, no fields."""
    parsed = parse_params("POST", content_type, body, "")
    assert (parsed.fields, parsed.error) == (
        {},
        f"body could not be parsed as multipart/form-data: {error}",
    )


def test_a_200_character_boundary_is_used() -> None:
    """The longest boundary accepted is 200 characters."""
    boundary = "b" * 200
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--{boundary}--'
    parsed = parse_params("POST", f"multipart/form-data; boundary={boundary}", body.encode(), "")
    assert parsed.fields == {"a": "1"}


def test_max_fields_parts_without_a_closing_delimiter_are_read() -> None:
    """MAX_FIELDS parts (the body cut before its closing delimiter) are read; one more is
    refused with the cap in the message."""
    part = b'Content-Disposition: form-data; name="n"\r\n\r\nv'
    fits = parse_params("POST", MULTIPART, _multipart(*[part] * MAX_FIELDS, end=b""), "")
    assert (fits.error, len(fits.params["n"])) == (None, MAX_FIELDS)
    over = parse_params("POST", MULTIPART, _multipart(*[part] * (MAX_FIELDS + 1), end=b""), "")
    assert over.error == (
        f"body could not be parsed as multipart/form-data: more than {MAX_FIELDS} multipart parts"
    )


def test_max_fields_parts_with_their_closing_delimiter_are_read() -> None:
    """A whole multipart body of MAX_FIELDS parts is within the cap, like a form of
    MAX_FIELDS fields."""
    part = b'Content-Disposition: form-data; name="n"\r\n\r\nv'
    fits = parse_params("POST", MULTIPART, _multipart(*[part] * MAX_FIELDS), "")
    assert (fits.error, len(fits.params["n"])) == (None, MAX_FIELDS)
    over = parse_params("POST", MULTIPART, _multipart(*[part] * (MAX_FIELDS + 1)), "")
    assert over.error == (
        f"body could not be parsed as multipart/form-data: more than {MAX_FIELDS} multipart parts"
    )


def test_delimiters_in_the_epilogue_are_not_counted_as_parts() -> None:
    """After the closing delimiter everything is epilogue, even text that looks like more
    delimiters: one part, and no cap reached."""
    body = _multipart(b'Content-Disposition: form-data; name="a"\r\n\r\n1') + b"\r\n--b" * (
        MAX_FIELDS + 5
    )
    assert parse_params("POST", MULTIPART, body, "") == parse_params(
        "POST", MULTIPART, _multipart(b'Content-Disposition: form-data; name="a"\r\n\r\n1'), ""
    )


def test_a_blank_line_inside_a_value_stays_in_the_value() -> None:
    """A part's head ends at its first blank line (CRLF or LF); later ones are the value's."""
    crlf = _multipart(b'Content-Disposition: form-data; name="a"\r\n\r\nx\r\n\r\ny')
    lf = b'--b\nContent-Disposition: form-data; name="a"\n\nx\n\ny\n--b--\n'
    assert parse_params("POST", MULTIPART, crlf, "").fields == {"a": "x\r\n\r\ny"}
    assert parse_params("POST", MULTIPART, lf, "").fields == {"a": "x\n\ny"}


def test_a_colon_in_a_part_header_value_stays_in_the_value() -> None:
    """A part header is split at its first colon: a name with a colon is kept whole."""
    body = _multipart(b'Content-Disposition: form-data; name="urn:a"\r\n\r\n1')
    assert parse_params("POST", MULTIPART, body, "").fields == {"urn:a": "1"}


def test_bytes_that_are_not_utf8_in_a_part_are_replaced() -> None:
    """Non-UTF-8 bytes in a part's head or value read as U+FFFD, not as an error."""
    body = _multipart(
        b'Content-Disposition: form-data; name="caf\xe9"\r\n\r\nv\xff',
        b'Content-Disposition: form-data; name="f"; filename="\xe9.txt"\r\n\r\nabc',
    )
    parsed = parse_params("POST", MULTIPART, body, "")
    assert (parsed.error, parsed.fields) == (
        None,
        {"caf\ufffd": "v\ufffd", "f": "<file \ufffd.txt, 3 bytes>"},
    )


def test_a_boundary_that_is_not_latin1_is_not_an_error() -> None:
    """A boundary Latin-1 cannot spell is looked for with `?` in its place, never an error."""
    body = b'--b?\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b?--'
    parsed = parse_params("POST", "multipart/form-data; boundary=b\u20ac", body, "")
    assert (parsed.error, parsed.fields) == (None, {"a": "1"})


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("Application/X-WWW-Form-Urlencoded; charset=utf-8", b"a=1&b=2"),
        ("", b"a=1&b=2"),
        ("application/vnd.api+json", b'{"a": "1", "b": 2}'),
        (" APPLICATION/JSON ", b'{"a": "1", "b": 2}'),
    ],
)
def test_the_body_kind_comes_from_the_media_type_in_any_case(
    content_type: str, body: bytes
) -> None:
    """The media type is read without its parameters, in any case; a body with `=` and no
    type is a form; any +json type is JSON."""
    fields = parse_params("POST", content_type, body, "").fields
    assert fields == {"a": "1", "b": "2"}


def test_a_body_of_another_type_gives_no_fields() -> None:
    """text/plain, or no type and no `=`, is kept as a body with no fields and no error."""
    for content_type, body in (("text/plain", b"a=1"), ("", b"hello")):
        parsed = parse_params("POST", content_type, body, "")
        assert (parsed.fields, parsed.params, parsed.error) == ({}, {}, None)


def test_an_empty_json_body_is_an_empty_object() -> None:
    """A JSON request with a blank body has no fields and no error."""
    parsed = parse_params("POST", "application/json", b"  \n", "")
    assert (parsed.fields, parsed.error) == ({}, None)


def test_a_json_object_over_the_cap_is_an_error() -> None:
    """More than MAX_FIELDS keys is refused; exactly MAX_FIELDS is read."""
    fits = json.dumps({f"k{i}": i for i in range(MAX_FIELDS)}).encode()
    assert len(parse_params("POST", "application/json", fits, "").fields) == MAX_FIELDS
    over = json.dumps({f"k{i}": i for i in range(MAX_FIELDS + 1)}).encode()
    parsed = parse_params("POST", "application/json", over, "")
    assert (
        parsed.error
        == f"body could not be parsed as application/json: more than {MAX_FIELDS} fields"
    )


def test_a_form_over_the_cap_names_the_cap_and_a_form_without_a_type() -> None:
    """A form of MAX_FIELDS + 1 fields sent without a type: "a form", the cap in words."""
    body = "&".join(f"f{i}=" for i in range(MAX_FIELDS + 1)).encode()
    parsed = parse_params("POST", "", body, "")
    assert parsed.error == f"body could not be parsed as a form: more than {MAX_FIELDS} fields"


def test_a_query_over_the_cap_is_an_error_and_the_body_still_read() -> None:
    """Too many query fields: said once, and a POST body is still read."""
    query = "&".join(f"q{i}=" for i in range(MAX_FIELDS + 1))
    parsed = parse_params("POST", FORM, b"a=1", query)
    assert (parsed.error, parsed.fields) == (
        f"query not read: more than {MAX_FIELDS} fields",
        {"a": "1"},
    )


def test_a_post_signs_its_body_and_shows_query_fields_under_body_fields() -> None:
    """POST params are the body's; fields are the query's overlaid with the body's."""
    parsed = parse_params("POST", FORM, b"a=body&b=2", "a=query&c=3&c=4")
    assert parsed.params == {"a": "body", "b": "2"}
    assert parsed.fields == {"a": "body", "c": "3", "b": "2"}


def test_a_get_signs_its_query_even_when_it_has_a_body() -> None:
    """GET params are the query's, repeats kept; its body fields still show."""
    parsed = parse_params("get", FORM, b"b=2", "a=1&a=3")
    assert parsed.params == {"a": ["1", "3"]}
    assert parsed.fields == {"a": "1", "b": "2"}


def test_lone_surrogates_from_json_and_query_are_replaced() -> None:
    """JSON's \\ud800 escapes and a query's are cleaned to U+FFFD; a form's never arise."""
    parsed = parse_params("GET", "application/json", b'{"k\\ud800": "v\\udfff"}', "q=%ED%A0%80")
    assert parsed.fields == {"k\ufffd": "v\ufffd", "q": "\ufffd\ufffd\ufffd"}
    assert has_surrogates(["ok", "\ud800"]) and not has_surrogates(["é", "ok"])


def test_a_json_value_that_is_not_text_is_kept_as_utf8_json() -> None:
    """A nested value is shown as its JSON, non-ASCII as it is (not \\u escapes)."""
    body = json.dumps({"a": ["é", 1], "b": {"c": None}}).encode()
    parsed = parse_params("POST", "application/json", body, "")
    assert parsed.fields == {"a": '["é", 1]', "b": '{"c": null}'}


def test_a_body_cut_after_its_first_part_still_gives_that_part() -> None:
    """One delimiter and no closing one: the part that came is read."""
    body = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1'
    parsed = parse_params("POST", MULTIPART, body, "")
    assert (parsed.fields, parsed.error) == ({"a": "1"}, None)


def test_nothing_after_the_closing_delimiter_is_read() -> None:
    """The epilogue after `--b--` is not parsed, even if it looks like a part."""
    late = b'--b\r\nContent-Disposition: form-data; name="late"\r\n\r\nx\r\n'
    body = _multipart(b'Content-Disposition: form-data; name="a"\r\n\r\n1') + late
    assert parse_params("POST", MULTIPART, body, "").fields == {"a": "1"}


def test_an_lf_part_keeps_its_values_blank_lines_but_one() -> None:
    """With LF line ends only the newline before the next delimiter is the delimiter's."""
    body = b'--b\nContent-Disposition: form-data; name="a"\n\nv\n\n\n--b--\n'
    assert parse_params("POST", MULTIPART, body, "").fields == {"a": "v\n\n"}


def test_a_repeated_field_keeps_every_value_in_order() -> None:
    """A name sent three times (form, multipart or GET query) has its three values, in the
    order sent; `fields` shows the first."""
    multipart = _multipart(
        *(f'Content-Disposition: form-data; name="a"\r\n\r\n{n}'.encode() for n in (1, 2, 3))
    )
    for parsed in (
        parse_params("POST", "application/x-www-form-urlencoded", b"a=1&a=2&a=3", ""),
        parse_params("POST", MULTIPART, multipart, ""),
        parse_params("GET", "", b"", "a=1&a=2&a=3"),
    ):
        assert (parsed.params, parsed.fields) == ({"a": ["1", "2", "3"]}, {"a": "1"})


def test_the_media_type_ends_at_the_first_parameter() -> None:
    """A content type with two parameters is still the form it names."""
    parsed = parse_params(
        "POST", "application/x-www-form-urlencoded; charset=utf-8; x=y", b"a=1", ""
    )
    assert (parsed.fields, parsed.error) == ({"a": "1"}, None)


def test_bytes_that_are_not_utf8_in_a_form_are_replaced() -> None:
    """A form body with a byte that is not UTF-8 is read, the byte as U+FFFD."""
    parsed = parse_params("POST", "application/x-www-form-urlencoded", b"a=\xff1", "")
    assert (parsed.fields, parsed.error) == ({"a": "\ufffd1"}, None)


def test_a_lone_surrogate_in_the_query_is_replaced() -> None:
    """A raw byte that is not UTF-8 in the request line reaches the query as a lone surrogate
    (aiohttp decodes it with surrogateescape): it is stored as U+FFFD, which SQLite and a
    UTF-8 stream can take."""
    parsed = parse_params("GET", "", b"", "a=\udcff")
    assert (parsed.params, parsed.fields) == ({"a": "\ufffd"}, {"a": "\ufffd"})


def test_received_at_is_utc_with_its_offset_and_microseconds() -> None:
    """The receive time is written in UTC, saying so (+00:00), to the microsecond, whatever
    the machine's own zone."""
    from datetime import datetime, timedelta

    with local_zone("IST-05:30"):
        stamp = utc_now()
    parsed = datetime.fromisoformat(stamp)
    assert stamp.endswith("+00:00") and len(stamp.split(".")[1]) == len("000000+00:00")
    assert parsed.utcoffset() == timedelta(0)
