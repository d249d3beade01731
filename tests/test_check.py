"""check: real handlers written here, on 127.0.0.1, each graded as a person reading it would."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Iterator
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from helpers.env import AUTH_TOKEN, MAIN_TOKEN
from helpers.net import free_port
from helpers.receiver import Received, Receiver
from typer.testing import CliRunner, Result

from verifycli.check import CheckSpec
from verifycli.cli import app
from verifycli.errors import ConfigError

runner = CliRunner()
Answer = Callable[[web.Request, bytes], Awaitable[web.Response]]

REQUIRED = [
    "accepts a real callback",
    "answers fast",
    "survives a duplicate delivery",
    "accepts Ma-V2 alone",
    "rejects unsigned",
    "rejects the wrong token",
    "rejects another URL's signature (trailing slash)",
    "rejects another URL's signature (http vs https)",
]
STALE = "rejects a stale nonce with a new body (informational)"
ALL = [*REQUIRED, STALE]


class Handler(Receiver):
    """A user's handler: a real aiohttp server in its own thread that answers with `answer`."""

    def __init__(self, answer: Answer) -> None:
        super().__init__()
        self.answer = answer

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        got = Received(
            request.method,
            request.raw_path,
            tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers),
            body,
        )
        with self._seen:
            self.requests.append(got)
            self._seen.notify_all()
        return await self.answer(request, body)


def v2(token: str, url: str, nonce: str) -> str:
    """Plivo's V2, written from its documentation: Base64(HMAC-SHA256(token, URL + nonce))."""
    mac = hmac.new(token.encode(), (url + nonce).encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class Strict:
    """Checks V2 or Ma-V2 against the URL it believes it is at, remembers nonces, and answers
    `ok` to what it accepts; optionally slow on its first answer or failing on a repeat."""

    def __init__(
        self,
        ok: int = 200,
        public_base: str | None = None,
        main_token: str | None = None,
        v2_only: bool = False,
        first_delay: float = 0.0,
        fail_repeats: bool = False,
    ) -> None:
        self.ok = ok
        self.public_base = public_base
        self.main_token = main_token or AUTH_TOKEN
        self.v2_only = v2_only
        self.first_delay = first_delay
        self.fail_repeats = fail_repeats
        self.nonces: dict[str, bytes] = {}
        self.attempts: set[str] = set()

    async def __call__(self, request: web.Request, body: bytes) -> web.Response:
        if self.first_delay:
            delay, self.first_delay = self.first_delay, 0.0
            await asyncio.sleep(delay)  # the timing under test, on the first answer only
        base = self.public_base or f"http://{request.host}"
        url = base + request.path
        nonce = request.headers.get("X-Plivo-Signature-V2-Nonce", "")
        sent_v2 = request.headers.get("X-Plivo-Signature-V2", "")
        sent_ma = request.headers.get("X-Plivo-Signature-Ma-V2", "")
        good = bool(nonce) and (
            hmac.compare_digest(sent_v2, v2(AUTH_TOKEN, url, nonce))
            or (not self.v2_only and hmac.compare_digest(sent_ma, v2(self.main_token, url, nonce)))
        )
        if not good:
            raise web.HTTPForbidden(text="bad signature\n")
        signed_body = body or request.query_string.encode()
        if self.nonces.setdefault(nonce, signed_body) != signed_body:
            raise web.HTTPForbidden(text="nonce reused on another body\n")
        fields = dict(parse_qsl(signed_body.decode(), keep_blank_values=True))
        if self.fail_repeats and fields["AttemptUUID"] in self.attempts:
            raise web.HTTPInternalServerError(text="duplicate key value violates unique\n")
        self.attempts.add(fields["AttemptUUID"])
        return web.Response(status=self.ok, text="ok\n")


async def lax(request: web.Request, body: bytes) -> web.Response:
    """Takes everything."""
    return web.Response(text="ok\n")


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], Handler]]:
    started: list[Handler] = []

    def start(answer: Answer) -> Handler:
        handler = Handler(answer)
        handler.__enter__()
        started.append(handler)
        return handler

    yield start
    for handler in started:
        handler.__exit__(None, None, None)


def check(*args: str, token: str | None = AUTH_TOKEN, main: str | None = None) -> Result:
    env = {"COLUMNS": "200"}
    if token:
        env["PLIVO_AUTH_TOKEN"] = token
    if main:
        env["PLIVO_MAIN_AUTH_TOKEN"] = main
    result = runner.invoke(app, ["check", *args], env=env)
    for secret in (AUTH_TOKEN, MAIN_TOKEN):
        assert secret not in result.stdout + result.stderr
    return result


def graded(*args: str, main: str | None = None) -> tuple[int, dict[str, dict[str, object]]]:
    """Exit code and the --json objects by check name."""
    result = check(*args, "--json", main=main)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return result.exit_code, {line["check"]: line for line in lines}


def failed(by_name: dict[str, dict[str, object]]) -> set[str]:
    return {name for name, line in by_name.items() if not line["passed"]}


def test_strict_handler_passes_everything(serve: Callable[[Answer], Handler]) -> None:
    """A handler that checks V2/Ma-V2 for its URL and remembers nonces passes all, exit 0."""
    handler = serve(Strict())
    code, by_name = graded(handler.url + "/verify/callback")
    assert code == 0
    assert list(by_name) == ALL
    assert failed(by_name) == set()
    assert by_name[STALE]["status"] == 403
    assert len(handler.requests) == 8  # "answers fast" times the first one, it sends nothing
    report = check(handler.url + "/verify/callback").stderr
    assert "all 8 required checks passed" in report and "✗" not in report


def test_lax_handler_fails_every_rejection(serve: Callable[[Answer], Handler]) -> None:
    """200 to everything: the four rejections fail with their causes, the stale one is a note."""
    handler = serve(lax)
    result = check(handler.url + "/verify/callback", main=MAIN_TOKEN)
    assert result.exit_code == 1
    report = result.stderr
    assert "4 of 8 required checks failed" in report
    assert "accepted an unsigned callback: your handler does not check X-Plivo-Signature-V2" in (
        report
    )
    assert f"signed for {handler.url}/verify/callback/" not in report  # said in words
    for got in handler.requests:
        sent = got.target + repr(got.headers) + got.body.decode()
        assert AUTH_TOKEN not in sent and MAIN_TOKEN not in sent
    assert f"made for {handler.url}/verify/callback/" in report
    assert "made for https://127.0.0.1" in report
    assert "only a handler that remembers nonces can refuse this" in report
    assert result.stdout == ""  # piped: the report is on stderr
    _, by_name = graded(handler.url + "/verify/callback")
    assert failed(by_name) == {
        "rejects unsigned",
        "rejects the wrong token",
        "rejects another URL's signature (trailing slash)",
        "rejects another URL's signature (http vs https)",
    }
    assert by_name[STALE]["passed"] is True and by_name[STALE]["status"] == 200


def test_201_handler_fails_the_acceptances(serve: Callable[[Answer], Handler]) -> None:
    """Answering 201 to good callbacks: Plivo retries it, so every acceptance fails."""
    handler = serve(Strict(ok=201))
    code, by_name = graded(handler.url + "/cb")
    assert code == 1
    assert failed(by_name) == {
        "accepts a real callback",
        "survives a duplicate delivery",
        "accepts Ma-V2 alone",
    }
    assert by_name["accepts a real callback"]["detail"] == (
        "answered 201: Plivo retries anything but 200"
    )
    assert by_name["accepts a real callback"]["status"] == 201


def test_slow_handler_fails_answers_fast_only(serve: Callable[[Answer], Handler]) -> None:
    """An answer slower than --max-time fails "answers fast", and nothing else."""
    handler = serve(Strict(first_delay=0.25))
    code, by_name = graded(handler.url + "/cb", "--max-time", "0.1", "--timeout", "5")
    assert code == 1
    assert failed(by_name) == {"answers fast"}
    fast = by_name["answers fast"]
    assert isinstance(fast["elapsed_ms"], float) and fast["elapsed_ms"] >= 250
    assert "over --max-time 0.1 s" in str(fast["detail"])


def test_answer_slower_than_timeout_is_a_failed_check(serve: Callable[[Answer], Handler]) -> None:
    """No answer within --timeout fails that check, with no status, and the run goes on."""
    handler = serve(Strict(first_delay=0.4))
    code, by_name = graded(handler.url + "/cb", "--max-time", "0.1", "--timeout", "0.2")
    assert code == 1
    real = by_name["accepts a real callback"]
    assert real == {
        "check": "accepts a real callback",
        "passed": False,
        "status": None,
        "elapsed_ms": None,
        "detail": "no answer within 0.2 s",
    }
    assert failed(by_name) == {"accepts a real callback", "answers fast"}


def test_handler_failing_on_duplicates(serve: Callable[[Answer], Handler]) -> None:
    """A handler that answers 500 to a second delivery fails the duplicate check only."""
    handler = serve(Strict(fail_repeats=True))
    code, by_name = graded(handler.url + "/cb")
    assert code == 1
    assert failed(by_name) == {"survives a duplicate delivery"}
    detail = str(by_name["survives a duplicate delivery"]["detail"])
    assert detail.startswith("answered 500 to a repeat of the first callback: Plivo retries")


def test_v2_only_handler_fails_ma_v2_alone(serve: Callable[[Answer], Handler]) -> None:
    """A handler that ignores X-Plivo-Signature-Ma-V2 fails "accepts Ma-V2 alone"."""
    handler = serve(Strict(v2_only=True))
    code, by_name = graded(handler.url + "/cb")
    assert code == 1
    assert failed(by_name) == {"accepts Ma-V2 alone"}
    assert "signed only by X-Plivo-Signature-Ma-V2" in str(by_name["accepts Ma-V2 alone"]["detail"])


def test_ma_v2_is_signed_with_the_main_token(serve: Callable[[Answer], Handler]) -> None:
    """With PLIVO_MAIN_AUTH_TOKEN set, Ma-V2 is made with it: a handler checking so passes."""
    handler = serve(Strict(main_token=MAIN_TOKEN))
    code, by_name = graded(handler.url + "/cb", main=MAIN_TOKEN)
    assert (code, failed(by_name)) == (0, set())
    code, by_name = graded(handler.url + "/cb")  # Ma-V2 made with the auth token instead
    assert failed(by_name) == {"accepts Ma-V2 alone"}


def test_both_methods(serve: Callable[[Answer], Handler]) -> None:
    """--method both runs the battery as POST, then as GET with the fields in the query."""
    handler = serve(Strict())
    code, by_name = graded(handler.url + "/cb", "--method", "both", "--channel", "voice")
    assert code == 0
    assert list(by_name) == [f"POST: {n}" for n in ALL] + [f"GET: {n}" for n in ALL]
    gets = [r for r in handler.requests if r.method == "GET"]
    assert len(gets) == 8 and all(r.body == b"" for r in gets)
    assert all("Channel=voice" in r.target for r in gets)


def test_public_url_signs_for_the_url_the_handler_believes(
    serve: Callable[[Answer], Handler],
) -> None:
    """Behind a proxy: signed for --public-url while sent to URL; without it, refused."""
    handler = serve(Strict(public_base="https://hooks.example.com"))
    public = "https://hooks.example.com/plivo/cb"
    code, by_name = graded(handler.url + "/plivo/cb", "--public-url", public)
    assert (code, failed(by_name)) == (0, set())
    result = check(handler.url + "/plivo/cb", "--public-url", public)
    assert f"(signed for {public})" in result.stderr
    code, by_name = graded(handler.url + "/plivo/cb")
    assert code == 1
    assert "accepts a real callback" in failed(by_name)
    assert "pass that URL as --public-url" in str(by_name["accepts a real callback"]["detail"])


def test_json_is_one_object_per_check_and_nothing_else(serve: Callable[[Answer], Handler]) -> None:
    """--json: stdout holds only objects with exactly check, passed, status, elapsed_ms, detail."""
    handler = serve(lax)
    result = check(handler.url + "/cb", "--json")
    lines = result.stdout.splitlines()
    assert len(lines) == 9
    for line in lines:
        record = json.loads(line)
        assert list(record) == ["check", "passed", "status", "elapsed_ms", "detail"]
        assert isinstance(record["passed"], bool) and isinstance(record["status"], int)
        assert isinstance(record["elapsed_ms"], float) and isinstance(record["detail"], str)
    assert result.stderr == ""


def test_connection_refused_is_one_line_exit_1() -> None:
    """Nothing listening: one error line, exit 1, no report."""
    port = free_port()
    result = check(f"http://127.0.0.1:{port}/cb")
    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and f"127.0.0.1:{port}" in line
    assert "connection refused" in line


def test_no_token_exits_2_and_sends_nothing(serve: Callable[[Answer], Handler]) -> None:
    """Without PLIVO_AUTH_TOKEN: one line saying what to set, exit 2, nothing sent."""
    handler = serve(lax)
    result = check(handler.url + "/cb", token=None)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: PLIVO_AUTH_TOKEN is not set: export it or put it in .env"
    ]
    assert handler.requests == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--method", "PUT"], "'PUT' is not one of 'POST', 'GET', 'both'"),
        (["--channel", "fax"], "'fax' is not one of 'sms', 'voice'"),
        (["--timeout", "0"], "--timeout must be more than 0 seconds"),
        (["--max-time", "20"], "--max-time (20 s) must not be more than --timeout (10 s)"),
        (["--public-url", "ftp://x/cb"], "--public-url needs an http:// or https:// URL"),
    ],
)
def test_bad_flags_exit_2(
    serve: Callable[[Answer], Handler], flags: list[str], message: str
) -> None:
    """Each bad flag is a usage error, exit 2, with nothing sent."""
    handler = serve(lax)
    result = check(handler.url + "/cb", *flags)
    assert result.exit_code == 2
    assert message in result.stderr
    assert handler.requests == []


def test_bad_url_is_a_config_error() -> None:
    """URL must be an absolute http(s) URL; the spec says so itself."""
    with pytest.raises(ConfigError, match="URL"):
        CheckSpec(url="localhost:3000/cb")
    with pytest.raises(ConfigError, match="--method must be one of POST, GET, both"):
        CheckSpec(url="http://127.0.0.1/cb", method="PUT")  # type: ignore[arg-type]
