"""Signed callbacks: Plivo's documented HMACs written out independently (the reference the
signer is checked against), and a Verify callback's fields posted signed to a listener."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
from urllib.parse import parse_qsl, urlencode, urlsplit

from verifycli.signature import signed_headers

RECIPIENT = "+14155550100"
# One delivered SMS callback, every field Plivo's guide lists, as Plivo posts it.
DELIVERED = {
    "SessionUUID": "4124e518-a8c9-4feb-8cff-d86636ba9234",
    "AttemptUUID": "9a0c1d2e-0000-4feb-8cff-d86636ba9234",
    "AttemptSequence": "1",
    "Channel": "sms",
    "ChannelStatus": "delivered",
    "SessionStatus": "in-progress",
    "ChannelErrorCode": "",
    "Recipient": "14155550100",
    "RequestTime": "2026-11-28 08:30:00 +0000 UTC",
}


def mac(token: str, message: str) -> str:
    digest = hmac.new(token.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def ref_v2(url: str, nonce: str, token: str) -> str:
    """V2: HMAC-SHA256 over the URL without its query, then the nonce."""
    p = urlsplit(url)
    return mac(token, f"{p.scheme}://{p.netloc}{p.path}{nonce}")


def ref_v3(method: str, url: str, params: dict[str, str], nonce: str, token: str) -> str:
    """V3: URL with sorted query; for POST the sorted name+value pairs follow; then .nonce."""
    p = urlsplit(url)
    base = f"{p.scheme}://{p.netloc}{p.path}"
    query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(p.query, keep_blank_values=True)))
    if method == "GET" or not params:
        canonical = base + (f"?{query}" if query else "")
    else:
        body = "".join(f"{k}{v}" for k, v in sorted(params.items()))
        canonical = f"{base}?{query}{'.' if query else ''}{body}"
    return mac(token, f"{canonical}.{nonce}")


def post_signed(
    host_port: tuple[str, int],
    path: str,
    form: dict[str, str],
    token: str,
    signed_url: str | None = None,
    timeout: float = 10.0,
) -> int:
    """POST `form` signed (V2 and Ma-V2, as Plivo documents for Verify) for `signed_url`; returns
    the status."""
    host, port = host_port
    url = signed_url or f"http://{host}:{port}{path}"

    body = urlencode(form).encode()
    headers = signed_headers("POST", url, form, token)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def fields(
    session: str, status: str = "sent", session_status: str = "in-progress"
) -> dict[str, str]:
    """A Verify status callback's fields, as Plivo posts them, for one made-up session."""
    return {
        "SessionUUID": session,
        "SessionStatus": session_status,
        "Channel": "sms",
        "ChannelStatus": status,
        "ChannelErrorCode": "",
        "AttemptUUID": f"attempt-{session}",
        "AttemptSequence": "1",
        "Recipient": RECIPIENT.lstrip("+"),
    }
