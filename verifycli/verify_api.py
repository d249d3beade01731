"""Plivo Verify through the plivo SDK: create a session, validate its code, read it back.

Every failure leaves as one line a person can act on: PlivoApiError (exit 3) for what
Plivo or the network did, ConfigError (exit 2) for what the user gave, FlowFailed (exit 1)
when the session can no longer be verified. The auth token never appears in a message.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from plivo import RestClient
from plivo.exceptions import PlivoRestError, ValidationError

from verifycli.config import Secret, check_auth_id, require_token
from verifycli.errors import ConfigError, FlowFailed, PlivoApiError, VerifyCliError

PLIVO_API = "https://api.plivo.com"
VALIDATED = "session validated successfully."  # Plivo's documented answer to a right code
API_TIMEOUT = 10.0  # seconds to wait for any one answer from the API

T = TypeVar("T")

_WRONG_CODE_WORDS = ("incorrect", "invalid", "wrong", "mismatch", "does not match")
_CODE_WORDS = ("otp", "code", "passcode")
_GIVEN = re.compile(r"\(actual value: (.*)\)\s*$")
_ARGUMENT_HINTS = {
    "recipient": "the recipient must be a phone number in E.164 format, like +14155550100",
    "url": "the callback URL must be a full http:// or https:// URL",
    "channel": "the channel must be sms or voice",
    "method": "the callback method must be GET or POST",
    "app_uuid": "the app uuid must be text, as shown in the Plivo console",
    "otp": "the code must be text",
    "session_uuid": "the session uuid must be text",
}


@dataclass(frozen=True)
class Validation:
    """Plivo's answer to one code: verified or not, and Plivo's message as it was sent."""

    verified: bool
    message: str


def _is_wrong_code(text: str) -> bool:
    lowered = text.lower()
    return any(w in lowered for w in _CODE_WORDS) and any(w in lowered for w in _WRONG_CODE_WORDS)


class _HttpFailure(Exception):
    """Plivo answered an error status; carries it, since the SDK's exceptions do not."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _sdk_message(exc: BaseException) -> str:
    first = exc.args[0] if exc.args else ""
    if isinstance(first, (list, tuple)):
        return "; ".join(str(part) for part in first)
    return str(first)


def _error_field(response: requests.Response) -> str | None:
    """Plivo's own `error` text; the SDK drops it for statuses it has no exception for."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return str(error) if error else None


class _PinnedClient(RestClient):  # type: ignore[misc]
    """RestClient whose API base stays where it was put.

    `Client.request()` writes https://api.plivo.com into `base_uri` before every call, so a
    plain attribute cannot point the SDK at the simulator; this property ignores that write.
    """

    def __init__(self, base_uri: str, auth_id: str, auth_token: str, timeout: float) -> None:
        self._pinned_base_uri = base_uri
        super().__init__(auth_id, auth_token, timeout=timeout)

    @property
    def base_uri(self) -> str:
        return self._pinned_base_uri

    @base_uri.setter
    def base_uri(self, value: str) -> None:
        pass

    def process_response(
        self,
        method: str,
        response: requests.Response,
        response_type: Any = None,
        objects_type: Any = None,
    ) -> Any:
        try:
            return super().process_response(method, response, response_type, objects_type)
        except PlivoRestError as exc:
            said = _error_field(response) or _sdk_message(exc)
            raise _HttpFailure(response.status_code, said) from exc


class VerifyApi:
    """The three Verify calls verifycli makes, run off the event loop."""

    def __init__(
        self,
        auth_id: str | None,
        auth_token: Secret | None,
        api_url: str | None = None,
        timeout: float = API_TIMEOUT,
    ) -> None:
        self.auth_id = check_auth_id(auth_id)
        self._token = require_token(auth_token)
        self.api_url = _check_api_url(api_url) if api_url else PLIVO_API
        self.timeout = timeout
        self._client = _PinnedClient(
            self.api_url + "/v1/Account", self.auth_id, self._token.reveal(), timeout
        )
        # One requests.Session is shared by every call; keep them from interleaving on it.
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the SDK's HTTP connections."""
        self._client.session.close()
        self._client.multipart_session.close()

    def __enter__(self) -> VerifyApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def create(
        self,
        recipient: str,
        *,
        app_uuid: str | None = None,
        channel: str = "sms",
        url: str | None = None,
        method: str = "POST",
        locale: str | None = None,
        brand_name: str | None = None,
        code_length: int | None = None,
    ) -> str:
        """Start a Verify session that sends a code to `recipient`; return its session uuid."""
        answer = await self._call(
            "create the Verify session",
            lambda: self._client.verify_session.create(
                recipient=recipient,
                app_uuid=app_uuid,
                channel=channel,
                url=url,
                method=method,
                locale=locale,
                brand_name=brand_name,
                code_length=code_length,
            ),
        )
        session_uuid = getattr(answer, "session_uuid", None)
        if not isinstance(session_uuid, str) or not session_uuid:
            raise PlivoApiError(
                f"Plivo accepted the session but sent no session_uuid back ({self.api_url}): "
                "check VERIFYCLI_PLIVO_API_URL points at Plivo"
            )
        return session_uuid

    async def validate(self, session_uuid: str, otp: str) -> bool:
        """True when Plivo verified the code, False when the code is wrong."""
        return (await self.check_code(session_uuid, otp)).verified

    async def check_code(self, session_uuid: str, otp: str) -> Validation:
        """Validate `otp`: verified only on Plivo's documented answer, 200 with "session
        validated successfully."; a wrong code is a Validation with Plivo's message.

        Any other answer, a 200 carrying an error included, is not a verification: an expired
        session or too many validations raise FlowFailed, the rest PlivoApiError, each with
        Plivo's message as it was sent.
        """
        doing = f"validate the code of session {session_uuid}"
        try:
            answer = await self._call(
                doing,
                lambda: self._client.verify_session.validate(session_uuid, otp=otp),
                session_uuid,
                raw_400=True,
            )
        except _HttpFailure as failure:
            said = failure.message
            status = failure.status
        else:
            message = str(getattr(answer, "message", "") or "")
            error = str(getattr(answer, "error", "") or "")
            if not error and message.strip().lower() == VALIDATED:
                return Validation(True, message)
            said, status = _one_line(error or message) or "no message", 200
        if _is_wrong_code(said):
            return Validation(False, said)
        lowered = said.lower()
        if "expired" in lowered:
            raise FlowFailed(
                f"session {session_uuid} expired before the code was checked (Plivo: {said!r}): "
                "send a new code"
            )
        if "attempt" in lowered or "maximum" in lowered or "exceeded" in lowered:
            raise FlowFailed(
                f"too many validations for session {session_uuid} (Plivo: {said!r}): "
                "send a new code"
            )
        if status == 200:
            raise PlivoApiError(
                self._scrub(
                    f"Plivo answered 200 to {doing} without confirming it (Plivo: {said!r}): "
                    "the session is not verified"
                )
            )
        raise self._error(_HttpFailure(status, said), doing, session_uuid)

    async def get(self, session_uuid: str) -> dict[str, Any]:
        """The session as Plivo describes it: status, attempt_details, charges and so on."""
        answer = await self._call(
            f"read session {session_uuid}",
            lambda: self._client.verify_session.get(session_uuid),
            session_uuid,
        )
        plain = _plain(answer)
        if not isinstance(plain, dict):
            raise PlivoApiError(f"Plivo sent no session details for {session_uuid}: try again")
        return plain

    async def _call(
        self,
        doing: str,
        request: Callable[[], T],
        session_uuid: str | None = None,
        raw_400: bool = False,
    ) -> T:
        return await asyncio.to_thread(self._blocking_call, doing, request, session_uuid, raw_400)

    def _blocking_call(
        self, doing: str, request: Callable[[], T], session_uuid: str | None, raw_400: bool
    ) -> T:
        try:
            with self._lock:
                return request()
        except _HttpFailure as failure:
            if raw_400 and failure.status == 400:
                failure.message = self._scrub(failure.message)
                raise
            raise self._error(failure, doing, session_uuid) from failure
        except ValidationError as exc:
            # Only the SDK's own argument checks get here: server answers are _HttpFailure.
            raise ConfigError(self._scrub(_argument_problem(exc))) from exc
        except requests.Timeout as exc:
            raise PlivoApiError(
                f"Plivo did not answer within {self.timeout:g} s ({self.api_url}) while trying to "
                f"{doing}: check your network and try again"
            ) from exc
        except requests.ConnectionError as exc:
            raise PlivoApiError(
                f"cannot connect to {self.api_url} ({_connection_reason(exc)}) to {doing}: "
                "check your network, proxy and VERIFYCLI_PLIVO_API_URL"
            ) from exc
        except requests.RequestException as exc:
            raise PlivoApiError(
                self._scrub(f"the request to {doing} failed ({type(exc).__name__}): try again")
            ) from exc
        except PlivoRestError as exc:
            raise PlivoApiError(
                self._scrub(f"the plivo SDK refused to {doing}: {_sdk_message(exc)}")
            ) from exc

    def _error(
        self, failure: _HttpFailure, doing: str, session_uuid: str | None = None
    ) -> VerifyCliError:
        status = failure.status
        said = _one_line(failure.message) or "no reason given"
        if status == 401:
            line = (
                f"Plivo rejected the credentials (401) when trying to {doing}: check "
                "PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN on the Plivo console's Overview page"
            )
        elif status == 400:
            line = f"Plivo refused to {doing} (400 bad request: {said}): fix that and try again"
        elif status == 403:
            line = (
                f"Plivo forbade this account to {doing} (403: {said}): check the account's "
                "permissions, such as Verify geo permissions for this country"
            )
        elif status == 404 and session_uuid is not None:
            line = (
                f"Plivo has no Verify session {session_uuid} (404: {said}): check the session "
                "uuid, and that it was created with this PLIVO_AUTH_ID"
            )
        elif status == 404:
            line = (
                f"Plivo answered 404 to the request to {doing} ({said}): check PLIVO_AUTH_ID "
                "and VERIFYCLI_PLIVO_API_URL"
            )
        elif status == 429:
            line = f"Plivo is rate limiting this account (429) on trying to {doing}: wait a minute"
        elif status >= 500:
            line = (
                f"Plivo had a server error ({status}) on trying to {doing}: try again in a few "
                "minutes, and see status.plivo.com"
            )
        else:
            line = f"Plivo answered HTTP {status} on trying to {doing} ({said}): try again"
        return PlivoApiError(self._scrub(line))

    def _scrub(self, text: str) -> str:
        token = self._token.reveal()
        return _one_line(text.replace(token, "********") if token else text)


def _check_api_url(api_url: str) -> str:
    parts = urlsplit(api_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ConfigError(
            f"VERIFYCLI_PLIVO_API_URL is not an http(s) base URL: {api_url!r}; "
            "use e.g. http://127.0.0.1:8099, or unset it to use Plivo"
        )
    return api_url.strip().rstrip("/")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _argument_problem(exc: ValidationError) -> str:
    said = _sdk_message(exc)
    hint = _ARGUMENT_HINTS.get(said.split(" ", 1)[0])
    if hint is None:
        return f"the plivo SDK refused an argument: {said}"
    given = _GIVEN.search(said)
    return f"{hint}, not {given.group(1)!r}" if given else f"{hint}; none was given"


def _connection_reason(exc: requests.ConnectionError) -> str:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
            return "connection refused: is anything listening there?"
        text = str(cause).lower()
        if "name or service not known" in text or "nodename nor servname" in text:
            return "the host name does not resolve"
        if "getaddrinfo" in text or "name resolution" in text:
            return "the host name does not resolve"
        cause = cause.__cause__ or cause.__context__
    return "the connection failed"


def _plain(value: Any) -> Any:
    """SDK response objects as plain JSON-like data, without the SDK's client reference."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return {
            k: _plain(v) for k, v in vars(value).items() if k != "client" and not k.startswith("_")
        }
    return value
