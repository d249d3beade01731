"""Grades a user's callback handler: sends Verify callbacks whose right answers are known.

Every probe is signed as Plivo documents for Verify callbacks (V2 + Ma-V2 + V2-Nonce) or
spoiled on purpose in one way; the results are data for the CLI to render.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from verifycli import __version__
from verifycli.choices import Channel, CheckMethod
from verifycli.errors import ConfigError, ExitCode, FlowFailed

if TYPE_CHECKING:
    import aiohttp

    from verifycli.config import Secret, Settings
    from verifycli.relay import Outcome
    from verifycli.trigger import Prepared

# aiohttp and the sending code are imported where they are used: `verifycli --help` stays fast.

USER_AGENT = f"verifycli-check/{__version__}"
V2 = ("v2",)  # what the Verify guide promises: X-Plivo-Signature-V2, -Ma-V2 and -V2-Nonce

ACCEPTS = "accepts a real callback"
FAST = "answers fast"
DUPLICATE = "survives a duplicate delivery"
MA_ALONE = "accepts Ma-V2 alone"
UNSIGNED = "rejects unsigned"
WRONG_TOKEN = "rejects the wrong token"
SLASH = "rejects another URL's signature (trailing slash)"
SCHEME = "rejects another URL's signature (http vs https)"
STALE = "rejects a stale nonce with a new body (informational)"


E = TypeVar("E", bound=Enum)


def _choice(kind: type[E], value: object, flag: str) -> E:
    if isinstance(value, kind):
        return value
    for member in kind:
        if str(value).lower() == str(member.value).lower():
            return member
    allowed = ", ".join(str(m.value) for m in kind)
    raise ConfigError(f"{flag} must be one of {allowed}, not {value!r}")


@dataclass(frozen=True)
class CheckSpec:
    """What to grade and how: the flags of `check`, checked."""

    url: str
    method: CheckMethod = CheckMethod.POST
    channel: Channel = Channel.SMS
    public_url: str | None = None
    timeout: float = 10.0
    max_time: float = 5.0

    def __post_init__(self) -> None:
        from verifycli.config import check_target

        set_ = object.__setattr__
        set_(self, "url", check_target(self.url, "URL"))
        if self.public_url is not None:
            set_(self, "public_url", check_target(self.public_url, "--public-url"))
        set_(self, "method", _choice(CheckMethod, self.method, "--method"))
        set_(self, "channel", _choice(Channel, self.channel, "--channel"))
        if self.timeout <= 0:
            raise ConfigError("--timeout must be more than 0 seconds")
        if self.max_time <= 0:
            raise ConfigError("--max-time must be more than 0 seconds")
        if self.max_time > self.timeout:
            raise ConfigError(
                f"--max-time ({self.max_time:g} s) must not be more than --timeout "
                f"({self.timeout:g} s): no answer is waited for longer than --timeout"
            )

    @property
    def signed_for(self) -> str:
        """The URL the handler believes it is at, which Plivo signs: --public-url, else URL."""
        return self.public_url or self.url


@dataclass(frozen=True)
class Result:
    """One graded check: what was sent, what came back, and whether that was right."""

    check: str
    sent: str
    passed: bool
    status: int | None
    elapsed_ms: float | None
    detail: str
    required: bool = True

    def to_json(self) -> dict[str, Any]:
        elapsed = None if self.elapsed_ms is None else round(self.elapsed_ms, 1)
        return {
            "check": self.check,
            "passed": self.passed,
            "status": self.status,
            "elapsed_ms": elapsed,
            "detail": self.detail,
        }


def passed(results: list[Result]) -> bool:
    """Every required check passed (informational ones never fail a run)."""
    return all(r.passed for r in results if r.required)


Grade = Callable[["Outcome"], tuple[bool, str]]


def _no_answer(outcome: Outcome) -> str:
    return outcome.error or "no answer"


def _accepts(outcome: Outcome) -> tuple[bool, str]:
    status = outcome.status
    if status is None:
        return False, _no_answer(outcome)
    if status == 200:
        return True, "answered 200"
    if 400 <= status < 500:
        return False, (
            f"answered {status} to a callback signed as Plivo signs Verify (V2 + Ma-V2, no V3): "
            "your handler refuses what Plivo sends; check its token and the URL it rebuilds "
            "(behind a proxy or tunnel, pass that URL as --public-url)"
        )
    if status >= 500:
        return (
            False,
            f"answered {status}: your handler failed on a valid callback, Plivo retries it",
        )
    return False, f"answered {status}: Plivo retries anything but 200"


def _duplicate(outcome: Outcome) -> tuple[bool, str]:
    if outcome.status == 200:
        return True, "answered 200 again"
    if outcome.status is None:
        return False, _no_answer(outcome)
    return False, (
        f"answered {outcome.status} to a repeat of the first callback: Plivo retries "
        "deliveries, so answer 200 to a repeat too (make the handler idempotent)"
    )


def _ma_alone(outcome: Outcome) -> tuple[bool, str]:
    ok, detail = _accepts(outcome)
    if outcome.status is not None and 400 <= outcome.status < 500:
        detail = (
            f"answered {outcome.status} to a callback signed only by X-Plivo-Signature-Ma-V2: "
            "accept it when Ma-V2 matches the main account's token, not only when V2 does"
        )
    return ok, detail


def _rejects(accepted_cause: str) -> Grade:
    def grade(outcome: Outcome) -> tuple[bool, str]:
        status = outcome.status
        if status is None:
            return False, _no_answer(outcome)
        if 400 <= status < 500:
            return True, f"refused with {status}"
        if 200 <= status < 300:
            return False, accepted_cause
        return False, f"answered {status}, not a 4xx: refuse a bad signature with 403"

    return grade


def _stale(outcome: Outcome) -> tuple[bool, str]:
    status = outcome.status
    if status is not None and 400 <= status < 500:
        return True, f"refused with {status}: your handler remembers nonces"
    if status == 200:
        return True, (
            "accepted: V2 signs the URL and nonce, not the body, so only a handler that "
            "remembers nonces can refuse this (not required)"
        )
    if status is None:
        return False, _no_answer(outcome)
    return False, f"answered {status}: expected 4xx, or 200 from a handler that keeps no nonces"


def _fast(outcome: Outcome, max_time: float) -> tuple[bool, str]:
    if outcome.status is None:
        return False, _no_answer(outcome)
    seconds = outcome.elapsed_ms / 1000
    if seconds < max_time:
        return True, f"answered in {outcome.elapsed_ms:.1f} ms (limit {max_time:g} s)"
    return False, (
        f"took {seconds:.2f} s, over --max-time {max_time:g} s: answer 200 first and do slow "
        "work after"
    )


@dataclass(frozen=True)
class Probe:
    """One request of the battery and how to grade its answer."""

    check: str
    sent: str
    request: Prepared
    grade: Grade
    required: bool = True


def _made_up_token() -> str:
    import secrets

    return secrets.token_urlsafe(24)


def _probes(spec: CheckSpec, method: str, token: str, main: str | None) -> list[Probe]:
    """The battery for one method, the real callback first; every other probe is new but for
    the duplicate and the stale nonce, which reuse the real one's signature."""
    from verifycli.signature import swap_scheme, toggle_slash
    from verifycli.trigger import compose, made_up_fields, sign

    channel = spec.channel.value
    where = spec.signed_for
    # Plivo signs Ma-V2 with the main account's token; for a main account that is the same token.
    ma_token = main or token
    ma_name = "PLIVO_MAIN_AUTH_TOKEN" if main else "PLIVO_AUTH_TOKEN"
    one_session = made_up_fields(channel)["SessionUUID"]

    def fresh() -> Prepared:
        fields = made_up_fields(channel, session=one_session)
        return compose(method, spec.url, fields, USER_AGENT)

    def signed(for_url: str = where) -> Prepared:
        return sign(fresh(), token, ma_token, V2, for_url)

    real = signed()
    # The real callback's signature headers on a different body: V2 does not cover the body,
    # so a captured header would pass on a forged "verified".
    forged = compose(method, spec.url, {**real.fields, "SessionStatus": "verified"}, USER_AGENT)
    slash_url, slash_how = toggle_slash(where)
    scheme_url, scheme_how = swap_scheme(where)
    other_url = "check it against the exact URL Plivo calls"
    return [
        Probe(ACCEPTS, f"{method}, V2 + Ma-V2", real, _accepts),
        Probe(DUPLICATE, "the same again", real, _duplicate),
        Probe(
            MA_ALONE,
            f"Ma-V2 only ({ma_name})",
            sign(fresh(), None, ma_token, V2, where),
            _ma_alone,
        ),
        Probe(
            UNSIGNED,
            "no signature headers",
            fresh(),
            _rejects(
                "accepted an unsigned callback: your handler does not check X-Plivo-Signature-V2"
            ),
        ),
        Probe(
            WRONG_TOKEN,
            "V2 + Ma-V2, made-up tokens",
            sign(fresh(), _made_up_token(), _made_up_token(), V2, where),
            _rejects(
                "accepted a signature made with another token: your handler checks that "
                "X-Plivo-Signature-V2 is there, not that it matches your auth token"
            ),
        ),
        Probe(
            SLASH,
            f"signed for the URL {slash_how}",
            signed(slash_url),
            _rejects(f"accepted a signature made for {slash_url}: {other_url}"),
        ),
        Probe(
            SCHEME,
            f"signed for the URL {scheme_how}",
            signed(scheme_url),
            _rejects(f"accepted a signature made for {scheme_url}: {other_url}"),
        ),
        Probe(
            STALE,
            "first nonce, new body",
            replace(forged, headers=real.headers),
            _stale,
            required=False,
        ),
    ]


async def _grade(
    session: aiohttp.ClientSession, spec: CheckSpec, probes: list[Probe], tag: str
) -> list[Result]:
    """Send the probes one after another and grade each answer; "answers fast" is graded on
    the real callback's answer, not sent on its own."""
    from verifycli.trigger import send_prepared

    results: list[Result] = []
    for probe in probes:
        outcome = await send_prepared(session, probe.request, spec.timeout)
        if outcome.unreachable:
            raise FlowFailed(f"{spec.url}: {outcome.error}")
        status = outcome.status
        elapsed = None if status is None else outcome.elapsed_ms
        ok, detail = probe.grade(outcome)
        results.append(
            Result(tag + probe.check, probe.sent, ok, status, elapsed, detail, probe.required)
        )
        if probe.check == ACCEPTS:
            ok, detail = _fast(outcome, spec.max_time)
            results.append(Result(tag + FAST, "(the same, timed)", ok, status, elapsed, detail))
    return results


async def check_handler(
    spec: CheckSpec, auth_token: Secret | None, main_auth_token: Secret | None = None
) -> list[Result]:
    """Send the battery to `spec.url` (for each method asked) and grade every answer.

    Raises ConfigError without an auth token, and FlowFailed when the handler cannot be
    reached at all.
    """
    import aiohttp

    from verifycli.config import require_token

    token = require_token(auth_token).reveal()
    main = main_auth_token.reveal() if main_auth_token else None
    results: list[Result] = []
    async with aiohttp.ClientSession() as session:
        for method in spec.method.methods:
            tag = f"{method}: " if spec.method is CheckMethod.BOTH else ""
            results += await _grade(session, spec, _probes(spec, method, token, main), tag)
    return results


def run(spec: CheckSpec, settings: Settings, show: Callable[[list[Result], str], None]) -> ExitCode:
    """`check`: send the battery, show the report, and exit 0 when every required check passed."""
    import asyncio

    results = asyncio.run(check_handler(spec, settings.auth_token, settings.main_auth_token))
    show(results, spec.url + (f" (signed for {spec.public_url})" if spec.public_url else ""))
    return ExitCode.OK if passed(results) else ExitCode.FLOW_FAILED
