"""Plivo callback signatures: sign() for senders, check() for the listener.

Plivo's Verify guide promises X-Plivo-Signature-V2, -Ma-V2 and -V2-Nonce on every callback, so
senders here sign V2 unless asked for more; V3 is documented for Voice callbacks, not Verify.
The listener checks whatever arrives. The canonical strings and the V3 HMAC come from
`plivo.utils`; when a signature does not match, check() tries the usual culprits (trailing
slash, scheme, port, local address, the other account's token) and says which one was signed.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Literal
from urllib.parse import urlparse, urlsplit, urlunparse, urlunsplit

Verdict = Literal["valid", "invalid", "unsigned", "unchecked", "replayed"]
Scheme = Literal["v3", "ma-v3", "v2", "ma-v2"]
Params = Mapping[str, "str | Sequence[str]"]

SCHEMES: tuple[Scheme, ...] = ("v3", "ma-v3", "v2", "ma-v2")
# What a sender signs with unless told otherwise: the headers the Verify guide documents.
DEFAULT_FAMILIES: tuple[str, ...] = ("v2",)
# The --scheme choices of trigger and simulator; v3 (alone or in all) is not documented for
# Verify, only for Voice callbacks.
SCHEME_CHOICES: dict[str, tuple[str, ...]] = {
    "v2": ("v2",),
    "v3": ("v3",),
    "all": ("v3", "v2"),
}
HEADER: dict[Scheme, str] = {
    "v3": "X-Plivo-Signature-V3",
    "ma-v3": "X-Plivo-Signature-Ma-V3",
    "v2": "X-Plivo-Signature-V2",
    "ma-v2": "X-Plivo-Signature-Ma-V2",
}
NONCE_HEADER = {"v3": "X-Plivo-Signature-V3-Nonce", "v2": "X-Plivo-Signature-V2-Nonce"}
_TOKEN_NAME = {False: "PLIVO_AUTH_TOKEN", True: "PLIVO_MAIN_AUTH_TOKEN"}
# A header may carry several comma-separated signatures; only the first 64 are tried, so one
# request cannot buy unbounded HMAC work. The README says so.
_MAX_SIGNATURES = 64
# The only methods Plivo calls back with; plivo.utils refuses to validate V3 for any other.
_SIGNED_METHODS = ("GET", "POST")


@dataclass(frozen=True)
class SignatureResult:
    """What check() concluded about one request."""

    verdict: Verdict
    scheme: Scheme | None
    detail: str
    nonce: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"verdict": self.verdict, "scheme": self.scheme, "detail": self.detail}

    def replayed(self, earlier_id: int) -> SignatureResult:
        return SignatureResult(
            "replayed",
            self.scheme,
            f"nonce {self.nonce!r} was already used by event #{earlier_id} with a different "
            "body: a captured signature is being reused, do not trust this request",
            self.nonce,
        )


@functools.cache
def _sdk() -> SimpleNamespace:
    """plivo.utils, imported on first use: importing it loads the whole SDK (about 80 ms), which
    `export`, `events` and `--help` do not need."""
    from plivo.utils import validate_signature
    from plivo.utils.signature_v3 import construct_get_url

    return SimpleNamespace(validate_v2=validate_signature, construct_get_url=construct_get_url)


@functools.lru_cache(maxsize=256)
def _v3_url_part(url: str, no_params: bool) -> str:
    """The URL's part of the V3 canonical string; callbacks come to one URL, so it is parsed
    once instead of on every request."""
    canonical: bytes = _sdk().construct_get_url(url, {}, no_params)
    return canonical.decode()


def _sorted_params(params: Params) -> str:
    """plivo's get_sorted_params_string for string values: each name and value run together,
    names sorted, a repeated name once per sorted value. The SDK's generic version (bytes,
    numbers, nested dicts, a format() per value) took a third of a callback's handling."""
    parts = []
    for name in sorted(params):
        value = params[name]
        if isinstance(value, str):
            parts.append(name + value)
        else:
            parts.append("".join(name + v for v in sorted(value)))
    return "".join(parts)


def _v3_digest(method: str, url: str, params: Params, nonce: str, token: str) -> bytes:
    # The same string as plivo's construct_get_url / construct_post_url, the URL part cached;
    # the same HMAC as its get_signature_v3 (whose base64 of 32 bytes has no line break).
    if method.upper() == "GET":
        canonical = _v3_url_part(url, True)
    else:
        canonical = _v3_url_part(url, not params) + _sorted_params(params)
    message = f"{canonical}.{nonce}".encode()
    return base64.b64encode(hmac.new(token.encode(), message, hashlib.sha256).digest())


def _v2_digest(url: str, nonce: str, token: str) -> bytes:
    # urlparse, as plivo.utils.validate_signature does: a `;params` part of the last path
    # segment is left out of the signed URL, with the query and the fragment.
    parts = urlparse(url)
    base = urlunparse((parts.scheme, parts.netloc, parts.path, "", "", "")) + nonce
    mac = hmac.new(token.encode(), base.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac)


def sign_v3(method: str, url: str, params: Params, nonce: str, token: str) -> str:
    """The X-Plivo-Signature-V3 value Plivo would send for this request."""
    return _v3_digest(method, url, params, nonce, token).decode()


def sign_v2(url: str, nonce: str, token: str) -> str:
    """The X-Plivo-Signature-V2 value Plivo would send for this URL."""
    return _v2_digest(url, nonce, token).decode()


def new_nonce() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(20))


def signed_headers(
    method: str,
    url: str,
    params: Params,
    token: str | None,
    main_token: str | None = None,
    schemes: Sequence[str] = DEFAULT_FAMILIES,
) -> dict[str, str]:
    """Signature headers for a request: V2 + Ma-V2 + V2-Nonce, as the Verify guide documents, and
    V3 + Ma-V3 + V3-Nonce only when `schemes` asks for "v3".

    Ma- headers are signed with `main_token`, or with `token` when there is none: a main
    account signs both with its own token.
    """
    headers: dict[str, str] = {}
    for family in ("v3", "v2"):
        if family not in schemes:
            continue
        nonce = new_nonce()
        headers[NONCE_HEADER[family]] = nonce
        for is_main, tok in ((False, token), (True, main_token or token)):
            if not tok:
                continue
            scheme: Scheme = "ma-" + family if is_main else family  # type: ignore[assignment]
            value = sign_v3(method, url, params, nonce, tok) if family == "v3" else None
            headers[HEADER[scheme]] = value or sign_v2(url, nonce, tok)
    return headers


def _matches(
    scheme: Scheme, method: str, url: str, params: Params, nonce: str, token: str, sent: list[bytes]
) -> bool:
    if scheme in ("v3", "ma-v3"):
        expected = _v3_digest(method, url, params, nonce, token)
        return any(hmac.compare_digest(expected, s) for s in sent)
    # V2 goes through the SDK's own validator: it is the reference users compare against.
    validate = _sdk().validate_v2
    return any(validate(url, nonce, s.decode("latin-1"), token) for s in sent)


def toggle_slash(url: str) -> tuple[str, str]:
    """`url` with its trailing slash taken off or put on, and how it differs, in words."""
    p = urlsplit(url)
    if p.path.endswith("/") and len(p.path) > 1:
        return urlunsplit(p._replace(path=p.path[:-1])), "without the trailing slash"
    return urlunsplit(p._replace(path=p.path + "/")), "with a trailing slash"


def swap_scheme(url: str) -> tuple[str, str]:
    """`url` with http:// for https:// or the reverse, and how it differs, in words."""
    p = urlsplit(url)
    other = "http" if p.scheme == "https" else "https"
    return urlunsplit(p._replace(scheme=other)), f"with {other}:// instead of {p.scheme}://"


def _toggle_port(url: str) -> tuple[str, str] | None:
    p = urlsplit(url)
    default = {"http": 80, "https": 443}.get(p.scheme)
    if default is None or p.hostname is None:
        return None
    host = p.hostname if ":" not in p.hostname else f"[{p.hostname}]"
    if p.port is None:
        return urlunsplit(p._replace(netloc=f"{host}:{default}")), f"with the port :{default}"
    if p.port == default:
        return urlunsplit(p._replace(netloc=host)), f"without the port :{default}"
    return None


def _url_variants(url: str, local_url: str | None) -> list[tuple[str, str]]:
    variants = [toggle_slash(url), swap_scheme(url)]
    port = _toggle_port(url)
    if port:
        variants.append(port)
    if local_url and local_url != url:
        variants.append((local_url, "for the local address instead of the public URL"))
    return variants


class Checker:
    """Checks requests against the configured tokens; build once, call per request."""

    def __init__(self, auth_token: str | None, main_token: str | None = None) -> None:
        self._tokens: dict[bool, str | None] = {False: auth_token, True: main_token}
        if auth_token or main_token:
            _sdk()  # now, not in the first callback's answer

    def check(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        params: Params,
        local_url: str | None = None,
    ) -> SignatureResult:
        """Verdict for one request. `headers` must look names up case-insensitively."""
        for family in ("v3", "v2"):
            present = [s for s in SCHEMES if s.endswith(family) and headers.get(HEADER[s])]
            if present:
                return self._check_family(family, present, method, url, headers, params, local_url)
        return SignatureResult(
            "unsigned", None, "no X-Plivo-Signature headers: this request was not signed by Plivo"
        )

    def _check_family(
        self,
        family: str,
        present: list[Scheme],
        method: str,
        url: str,
        headers: Mapping[str, str],
        params: Params,
        local_url: str | None,
    ) -> SignatureResult:
        # An empty (or absent) nonce is checked as plivo.utils checks it: as the empty string.
        nonce = headers.get(NONCE_HEADER[family], "")
        first = present[0]
        if method.upper() not in _SIGNED_METHODS:
            return SignatureResult(
                "invalid",
                first,
                f"Plivo sends callbacks as GET or POST, and this is a {method.upper()}: "
                "its signature is not Plivo's for this request",
            )
        checkable = [s for s in present if self._tokens[s.startswith("ma-")]]
        if not checkable:
            missing = _TOKEN_NAME[first.startswith("ma-")]
            return SignatureResult(
                "unchecked",
                first,
                f"signed ({first}) but {missing} is not set: set it to check",
                nonce,
            )
        sent_by_scheme = {s: _split(headers[HEADER[s]]) for s in checkable}
        for scheme in checkable:
            token = self._tokens[scheme.startswith("ma-")]
            assert token is not None
            if _matches(scheme, method, url, params, nonce, token, sent_by_scheme[scheme]):
                name = _TOKEN_NAME[scheme.startswith("ma-")]
                return SignatureResult("valid", scheme, f"{scheme} matches {name}", nonce)
        scheme = checkable[0]
        why = self._diagnose(scheme, headers, method, url, params, nonce, local_url)
        return SignatureResult("invalid", scheme, why, nonce)

    def _diagnose(
        self,
        scheme: Scheme,
        headers: Mapping[str, str],
        method: str,
        url: str,
        params: Params,
        nonce: str,
        local_url: str | None,
    ) -> str:
        is_main = scheme.startswith("ma-")
        token = self._tokens[is_main]
        other = self._tokens[not is_main]
        assert token is not None
        sent = _split(headers[HEADER[scheme]])
        twin: Scheme = scheme[3:] if is_main else "ma-" + scheme  # type: ignore[assignment]
        twin_sent = _split(headers.get(HEADER[twin], ""))
        if twin_sent and _matches(twin, method, url, params, nonce, token, twin_sent):
            return (
                f"{_TOKEN_NAME[is_main]} matches {HEADER[twin]}, not {HEADER[scheme]}: it is the "
                f"{'subaccount' if is_main else 'main account'}'s token, set it as "
                f"{_TOKEN_NAME[not is_main]} instead"
            )
        for variant, how in _url_variants(url, local_url):
            if _matches(scheme, method, variant, params, nonce, token, sent):
                return f"signed for {variant} ({how}), not {url}: give Plivo the exact URL"
        if other and _matches(scheme, method, url, params, nonce, other, sent):
            return (
                f"signed with {_TOKEN_NAME[not is_main]}, not {_TOKEN_NAME[is_main]}: "
                "the request came from the other account"
            )
        if scheme.endswith("v3"):
            flipped = "POST" if method.upper() == "GET" else "GET"
            if _matches(scheme, flipped, url, params, nonce, token, sent):
                return f"signed as a {flipped} request but received as {method.upper()}"
        empty = f" ({NONCE_HEADER[scheme[-2:]]} is empty)" if not nonce else ""
        return (
            f"{scheme} does not match {_TOKEN_NAME[is_main]} for {url}{empty}: wrong token, "
            "or the URL or body changed on the way"
        )


def _split(value: str) -> list[bytes]:
    parts = [p.strip() for p in value.split(",", _MAX_SIGNATURES)[:_MAX_SIGNATURES]]
    return [p.encode("utf-8", "replace") for p in parts if p]
