"""CallbackEvent: one captured request and the Plivo fields read from it."""

from __future__ import annotations

import base64
import binascii
import json
import quopri
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, unquote

from verifycli.error_codes import describe
from verifycli.signature import SignatureResult

_SURROGATE = re.compile("[\ud800-\udfff]")

# Plivo sends nine fields; a body with more than this is not a Verify callback and is kept
# whole but read no further, so no sender can make one request cost seconds of parsing.
MAX_FIELDS = 256
# A multipart part's headers (name, filename, content type) fit in far less; a longer head is
# hostile (thousands of parameters or encoded-words), and is not read.
MAX_PART_HEAD = 8192
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')

# Record field -> Plivo callback parameter.
PLIVO_FIELDS: dict[str, str] = {
    "session_uuid": "SessionUUID",
    "attempt_uuid": "AttemptUUID",
    "attempt_sequence": "AttemptSequence",
    "channel": "Channel",
    "channel_status": "ChannelStatus",
    "session_status": "SessionStatus",
    "channel_error_code": "ChannelErrorCode",
    "recipient": "Recipient",
    "request_time": "RequestTime",
}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass
class Parsed:
    """Parameters read from a request: `params` keeps repeats (for signing), `fields` does not."""

    params: dict[str, str | list[str]]
    fields: dict[str, str]
    error: str | None = None


def clean_text(text: str) -> str:
    """`text` with each lone surrogate made U+FFFD: they stand for bytes that were not UTF-8
    (in headers, multipart names) or come from JSON's \\ud800 escapes, and neither SQLite
    nor a UTF-8 stream can take them."""
    return _SURROGATE.sub("\ufffd", text)


def has_surrogates(texts: Iterable[str]) -> bool:
    """Whether any of `texts` needs clean_text: one search instead of one per text, and none
    when all are ASCII (the usual headers), which isascii() tells far faster."""
    joined = "".join(texts)
    return not joined.isascii() and _SURROGATE.search(joined) is not None


def form_pairs(text: str) -> list[tuple[str, str]]:
    """What `parse_qsl(text, keep_blank_values=True, errors="replace",
    max_num_fields=MAX_FIELDS)` returns, without a call to unquote for each name and value
    that has nothing to unquote (a Plivo form is mostly such): half the time."""
    if text and MAX_FIELDS < 1 + text.count("&"):
        raise ValueError("Max number of fields exceeded")
    pairs = []
    for piece in text.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors="replace")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, errors="replace")
        pairs.append((name, value))
    return pairs


def _collect(pairs: Iterable[tuple[str, str]], clean: bool = True) -> dict[str, str | list[str]]:
    params: dict[str, str | list[str]] = {}
    for key, value in pairs:
        if clean:
            key, value = clean_text(key), clean_text(value)
        have = params.get(key)
        if have is None:
            params[key] = value
        elif isinstance(have, list):
            have.append(value)
        else:
            params[key] = [have, value]
    return params


def _first(params: Mapping[str, str | list[str]]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else v[0] for k, v in params.items()}


def header_params(value: str) -> dict[str, str]:
    """The `; name=value` parameters of a header, lower-cased names, quotes removed: linear
    time, no RFC 2047/2231 decoding (the `email` package's is quadratic on hostile input)."""
    params: dict[str, str] = {}
    for match in _PARAM.finditer(value):
        raw = match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) > 1:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(match.group(1).lower(), raw)
    return params


def _part(chunk: bytes) -> tuple[str, str] | None:
    """(name, value) of one multipart part, or None when it has no form-data name."""
    head, sep, payload = chunk.partition(b"\r\n\r\n")
    if not sep:
        head, sep, payload = chunk.partition(b"\n\n")
    if len(head) > MAX_PART_HEAD:
        raise ValueError(f"a multipart part's headers are longer than {MAX_PART_HEAD} bytes")
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").splitlines():
        key, colon, value = line.partition(":")
        if colon:
            headers[key.strip().lower()] = value.strip()
    params = header_params(headers.get("content-disposition", ""))
    name = params.get("name")
    if name is None:
        return None
    encoding = headers.get("content-transfer-encoding", "").lower()
    try:
        if encoding == "base64":
            payload = binascii.a2b_base64(payload)
        elif encoding == "quoted-printable":
            payload = quopri.decodestring(payload)
    except binascii.Error:
        pass  # shown as it came
    filename = params.get("filename")
    if filename is not None:
        return name, f"<file {filename}, {len(payload)} bytes>"
    return name, payload.decode("utf-8", "replace")


def _multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """Form-data parts, read with hard caps (fields, header size) and in linear time."""
    boundary = header_params(content_type).get("boundary", "")
    if not 0 < len(boundary) <= 200:
        raise ValueError("multipart body without a usable boundary")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    # The preamble, then at most MAX_FIELDS parts and the closing delimiter's chunk ("--"
    # and the epilogue, which may hold more delimiters: the split stops before them).
    chunks = body.split(delimiter, MAX_FIELDS + 1)
    if len(chunks) < 2:
        raise ValueError("multipart body without its boundary")
    parts = chunks[1:]
    end = next((i for i, chunk in enumerate(parts) if chunk.startswith(b"--")), len(parts))
    if end > MAX_FIELDS:
        raise ValueError(f"more than {MAX_FIELDS} multipart parts")
    pairs = []
    for chunk in parts[:end]:
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        chunk = chunk[:-2] if chunk.endswith(b"\r\n") else chunk.removesuffix(b"\n")
        found = _part(chunk)
        if found is not None:
            pairs.append(found)
    return pairs


def _json_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def parse_params(method: str, content_type: str, body: bytes, query: str) -> Parsed:
    """Read the parameters a sender put in the body (form, multipart, JSON) or the query."""
    query_pairs: list[tuple[str, str]] = []
    body_params: dict[str, str | list[str]] = {}
    error = None
    if query:
        try:
            query_pairs = parse_qsl(
                query, keep_blank_values=True, errors="replace", max_num_fields=MAX_FIELDS
            )
        except ValueError:
            error = f"query not read: more than {MAX_FIELDS} fields"
    mime = content_type.split(";", 1)[0].strip().lower()
    try:
        if mime == "application/x-www-form-urlencoded" or (not mime and b"=" in body):
            text = body.decode("utf-8", "replace")
            # Decoded and unquoted with errors="replace": no lone surrogate can come out.
            body_params = _collect(form_pairs(text), clean=False)
        elif mime.startswith("multipart/"):
            body_params = _collect(_multipart(content_type, body))
        elif mime == "application/json" or mime.endswith("+json"):
            loaded = json.loads(body.decode("utf-8")) if body.strip() else {}
            if not isinstance(loaded, dict):
                error = f"JSON body is a {type(loaded).__name__}, not an object"
            elif len(loaded) > MAX_FIELDS:
                raise ValueError(f"more than {MAX_FIELDS} fields")
            else:
                body_params = {clean_text(k): clean_text(_json_value(v)) for k, v in loaded.items()}
    except (ValueError, RecursionError) as exc:
        if "Max number of fields" in str(exc):
            exc = ValueError(f"more than {MAX_FIELDS} fields")
        error = f"body could not be parsed as {mime or 'a form'}: {str(exc)[:120]}"
    # GET callbacks carry their parameters in the query; POST ones sign only the body.
    params = _collect(query_pairs) if method.upper() == "GET" else body_params
    fields = _first(_collect(query_pairs))
    fields.update(_first(body_params))
    return Parsed(params=params, fields=fields, error=error)


def encode_body(body: bytes) -> tuple[str, str]:
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def decode_body(text: str, encoding: str) -> bytes:
    return base64.b64decode(text) if encoding == "base64" else text.encode("utf-8")


def join_record(
    ident: int | None, rest: str, retry_of: int | None, status: int | None, forward: str | None
) -> str:
    """A whole record's JSON from the stored JSON of the rest of it, without parsing that."""
    return (
        f'{{"id":{"null" if ident is None else ident},{rest[1:-1]},'
        f'"retry_of":{"null" if retry_of is None else retry_of},'
        f'"response_status":{"null" if status is None else status},'
        f'"forward":{forward or "null"}}}'
    )


@dataclass
class CallbackEvent:
    """One received request, as stored and shown."""

    method: str
    url: str
    path: str
    query: str
    headers: dict[str, str]
    content_type: str
    body: str
    body_encoding: str
    fields: dict[str, str]
    signature: SignatureResult
    received_at: str = field(default_factory=utc_now)
    parse_error: str | None = None
    id: int | None = None
    retry_of: int | None = None
    response_status: int | None = None
    forward: dict[str, Any] | None = None
    body_sha256: str | None = None
    # The record's JSON as the store wrote it, less the keys that live in their own columns;
    # set by the store so that `--json` does not encode every record a second time.
    stored_json: str | None = field(default=None, repr=False, compare=False)

    def plivo(self, name: str) -> str | None:
        """A Plivo field by record name (`channel_status`), or None when absent."""
        return self.fields.get(PLIVO_FIELDS[name])

    @property
    def channel_error_text(self) -> str | None:
        """What ChannelErrorCode means, from Plivo's published tables; None when blank."""
        return describe(self.plivo("channel"), self.plivo("channel_error_code"))

    @property
    def retry_key(self) -> tuple[str, str, str] | None:
        attempt = self.fields.get("AttemptUUID")
        if not attempt:
            return None
        return (attempt, self.fields.get("ChannelStatus", ""), self.fields.get("SessionStatus", ""))

    def to_record(self) -> dict[str, Any]:
        """The stable record shape of DESIGN.md; users script against these keys and their order."""
        record: dict[str, Any] = {
            "id": self.id,
            "received_at": self.received_at,
            "method": self.method,
            "url": self.url,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "content_type": self.content_type,
            "body": self.body,
            "body_encoding": self.body_encoding,
            "fields": self.fields,
            "parse_error": self.parse_error,
        }
        for name, plivo_name in PLIVO_FIELDS.items():
            record[name] = self.fields.get(plivo_name)
        record["channel_error_text"] = self.channel_error_text
        record["signature"] = self.signature.to_dict()
        record["retry_of"] = self.retry_of
        record["response_status"] = self.response_status
        record["forward"] = self.forward
        return record

    def to_json(self) -> str:
        """The record as one line of compact JSON (as `export --format jsonl` writes it)."""
        if self.stored_json is None:
            return json.dumps(self.to_record(), ensure_ascii=False, separators=(",", ":"))
        forward = None
        if self.forward is not None:
            forward = json.dumps(self.forward, ensure_ascii=False, separators=(",", ":"))
        return join_record(self.id, self.stored_json, self.retry_of, self.response_status, forward)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CallbackEvent:
        sig = record.get("signature") or {}
        return cls(
            id=record.get("id"),
            received_at=record["received_at"],
            method=record["method"],
            url=record["url"],
            path=record["path"],
            query=record["query"],
            headers=dict(record["headers"]),
            content_type=record["content_type"],
            body=record["body"],
            body_encoding=record["body_encoding"],
            fields=dict(record["fields"]),
            parse_error=record.get("parse_error"),
            signature=SignatureResult(
                sig.get("verdict", "unchecked"), sig.get("scheme"), sig.get("detail", "")
            ),
            retry_of=record.get("retry_of"),
            response_status=record.get("response_status"),
            forward=record.get("forward"),
        )

    def raw_body(self) -> bytes:
        return decode_body(self.body, self.body_encoding)
