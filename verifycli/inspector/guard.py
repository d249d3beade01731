"""Who may talk to the inspector: the token, the Host header, same-origin writes, and the
headers that keep callback content from running in the page."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from verifycli.errors import ConfigError

TOKEN_PARAM = "token"
MIN_TOKEN = 16
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
# Nothing inline, nothing from elsewhere: a callback's "<script>" has nowhere to run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_token(given: str | None) -> str:
    """The token to require: `given` (VERIFYCLI_UI_TOKEN) when long enough, else a fresh one."""
    if given is None:
        return secrets.token_urlsafe(32)
    if len(given) < MIN_TOKEN or not given.isprintable() or any(c.isspace() for c in given):
        raise ConfigError(
            f"VERIFYCLI_UI_TOKEN must be at least {MIN_TOKEN} printable characters without "
            "spaces; unset it to get a random one"
        )
    return given


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass
class Guard:
    """The rules for one running inspector: its token, and the address it is bound to."""

    token: str
    host: str
    port: int

    @property
    def cookie(self) -> str:
        # Cookies are per host, not per port: the port in the name keeps two inspectors apart.
        return f"verifycli_ui_{self.port}"

    def host_allowed(self, header: str | None) -> bool:
        """DNS rebinding defence: the Host header must name this server, not some domain that
        happens to resolve to it."""
        if not header:
            return False
        name, sep, port = header.rpartition(":")
        if not sep or "]" in port:  # no port, or a bare IPv6 literal
            name, port = header, "80"
        if port != str(self.port):
            return False
        name = name.lower()
        bound = self.host.lower()
        if name.strip("[]") == bound.strip("[]"):
            return True
        if bound in WILDCARDS:
            return name in LOOPBACK_NAMES or _is_ip(name)
        return is_loopback(bound) and name.strip("[]") in LOOPBACK_NAMES

    def token_matches(self, offered: str | None) -> bool:
        if not offered:
            return False
        return hmac.compare_digest(offered.encode(), self.token.encode())

    def same_origin(self, request: web.Request) -> bool:
        """A browser says where a write comes from; only this page's own origin may write."""
        origin = request.headers.get("Origin")
        if origin is not None:
            return origin == f"http://{request.headers.get('Host', '')}"
        return request.headers.get("Sec-Fetch-Site") == "same-origin"

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.host_allowed(request.headers.get("Host")):
            raise web.HTTPForbidden(text="verifycli inspector: this Host is not allowed\n")
        bearer = request.headers.get("Authorization", "")
        by_header = bearer.startswith("Bearer ") and self.token_matches(bearer[7:])
        by_cookie = self.token_matches(request.cookies.get(self.cookie))
        offered = request.query.get(TOKEN_PARAM)
        if offered is not None and request.method == "GET" and request.path == "/":
            if not self.token_matches(offered):
                raise web.HTTPForbidden(text="verifycli inspector: wrong token\n")
            # Traded for a cookie, then out of the address bar (and its history).
            found = web.HTTPSeeOther("/")
            found.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
            raise found
        if not (by_header or by_cookie):
            if bearer or request.cookies.get(self.cookie):
                raise web.HTTPForbidden(text="verifycli inspector: wrong token\n")
            raise web.HTTPUnauthorized(
                text="verifycli inspector: open the URL verifycli printed (it ends ?token=…)\n"
            )
        if (
            request.method not in ("GET", "HEAD")
            and not by_header
            and not self.same_origin(request)
        ):
            raise web.HTTPForbidden(text="verifycli inspector: cross-site request refused\n")
        return await handler(request)


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, refusals included (aiohttp's on_response_prepare signal)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
