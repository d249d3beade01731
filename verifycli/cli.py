"""The command line: Typer declarations; each command builds a spec and makes one core call.

Errors become one line and an exit code in one place, `_exit_code`; nothing else here
decides anything. Heavy modules are imported inside the commands that use them, so
`verifycli --help` stays fast.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TypeVar

import typer
import typer.core

from verifycli import __version__
from verifycli.choices import Channel as CheckChannel
from verifycli.choices import CheckMethod
from verifycli.errors import ConfigError, ExitCode, VerifyCliError
from verifycli.plivo import Channel, ChannelStatus, Method, Scenario, SessionStatus

if TYPE_CHECKING:
    from verifycli.config import Settings
    from verifycli.flows import ListenSpec
    from verifycli.inspector.run import UiRequest
    from verifycli.store import Filters, StoreReader

T = TypeVar("T")

COMMAND_ORDER = (
    "send",
    "demo",
    "listen",
    "ui",
    "simulator",
    "events",
    "export",
    "replay",
    "trigger",
    "check",
    "doctor",
)
# Choices whose owners import too much for `--help` to stay fast (email, hashlib, aiohttp);
# tests/test_cli.py holds each equal to its owner's list.
Scheme = Literal["v2", "v3", "all"]  # signature.SCHEME_CHOICES
Format = Literal["json", "jsonl", "csv"]  # export.FORMATS
Verdict = Literal["valid", "invalid", "unsigned", "unchecked", "replayed"]  # signature.Verdict
CONTEXT = {"help_option_names": ["-h", "--help"]}


class _Ordered(typer.core.TyperGroup):
    """Lists commands in the order a newcomer needs them, not the order they are defined."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: COMMAND_ORDER.index(n) if n in COMMAND_ORDER else 99)


class _PlainUsage(typer.core.TyperCommand):
    """Usage lines name a required argument as RECIPIENT, as man pages do, not {RECIPIENT}."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces: list[str] = super().collect_usage_pieces(ctx)
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]


app = typer.Typer(
    rich_markup_mode=None,
    name="verifycli",
    cls=_Ordered,
    help="Watch, check and keep Plivo Verify status callbacks.",
    no_args_is_help=True,
    context_settings=CONTEXT,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)
events_app = typer.Typer(
    help="Stored callbacks: list them, or show one whole.",
    short_help="List stored callbacks, or show one whole.",
    rich_markup_mode=None,
    context_settings=CONTEXT,
)
app.add_typer(events_app, name="events")

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"verifycli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    """Watch, check and keep Plivo Verify status callbacks."""
    _state["debug"] = debug


# -- errors → one line and an exit code: the one place -------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    from verifycli.ui import print_error

    print_error(message)
    raise typer.Exit(code)


def _quiet_pipe_end() -> NoReturn:
    """The reader of stdout went away (`| head`): that is the end, not an error."""
    import os

    # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(ExitCode.OK)


def _exit_code(core: Callable[[], ExitCode | None]) -> int:
    """Run a command's core; turn our errors into one line and an exit code."""
    try:
        return int(core() or ExitCode.OK)
    except VerifyCliError as exc:
        if _state["debug"]:  # the traceback, and still the exit code the table promises
            import traceback

            traceback.print_exc()
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", ExitCode.INTERRUPTED)
    except BrokenPipeError:
        _quiet_pipe_end()
    except OSError as exc:
        if _state["debug"]:
            import traceback

            traceback.print_exc()
        _fail(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", ExitCode.USAGE)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if _state["debug"]:
            raise
        _fail(
            f"unexpected {type(exc).__name__}: {exc} (run again with --debug for the traceback)",
            ExitCode.FLOW_FAILED,
        )


def _command(
    group: typer.Typer = app, name: str | None = None, short_help: str | None = None
) -> Callable[[Callable[..., ExitCode | None]], Callable[..., None]]:
    """Declare a command whose body returns an exit code; errors map through `_exit_code`."""

    def declare(body: Callable[..., ExitCode | None]) -> Callable[..., None]:
        @functools.wraps(body)
        def command(*args: Any, **kwargs: Any) -> None:
            raise typer.Exit(_exit_code(lambda: body(*args, **kwargs)))

        return group.command(name, cls=_PlainUsage, short_help=short_help)(command)

    return declare


def _listen_spec(given: dict[str, Any]) -> ListenSpec:
    from verifycli.flows import ListenSpec
    from verifycli.listener import ListenOptions
    from verifycli.tunnel import TunnelSpec

    ui = [given.pop(name, None) for name in INSPECTOR]
    tunnel = TunnelSpec.from_flags(given.pop("public_url", None), given.pop("no_tunnel", False))
    return ListenSpec(ListenOptions(**given), tunnel, _inspector(*ui))


def _inspector(
    on: bool | None, host: str | None, port: int | None, open_browser: bool | None
) -> UiRequest | None:
    """The inspector --ui (or --open) asks for, or None; its token from VERIFYCLI_UI_TOKEN."""
    if not (on or open_browser) or host is None or port is None:
        return None
    from verifycli.config import load_settings
    from verifycli.inspector.run import UiRequest

    token = load_settings().ui_token  # read only now: demo reads no settings otherwise
    secret = token.reveal() if token else None
    return UiRequest(host=host, port=port, open_browser=bool(open_browser), token=secret)


def _settings(store: Path | None, demo: bool = False) -> Settings:
    """Settings with --store (or, with --demo, the demo's store) in place of the default."""
    from verifycli.config import load_settings

    if demo:
        if store is not None:
            raise ConfigError("--demo and --store do not go together: --demo is the demo's store")
        from verifycli.session import demo_store_path

        store = demo_store_path()
    return load_settings().with_store(store)


def _reader(store: Path | None, demo: bool = False) -> StoreReader:
    from verifycli.store import StoreReader

    return StoreReader(_settings(store, demo).store_path)


def _filters(
    reader: StoreReader,
    session: str | None,
    status: str | None,
    verdict: str | None,
    since: str | None,
) -> Filters:
    """The filters as given; --session may be any unique start of a stored SessionUUID."""
    from verifycli.export import parse_since
    from verifycli.store import Filters

    whole = reader.whole_session(session)
    return Filters(whole, status, verdict, parse_since(since) if since else None)


# -- options shared by several commands ------------------------------------------------------

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        envvar="VERIFYCLI_STORE",
        help="SQLite file of captured callbacks (default: user data dir).",
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="One event record per line on stdout, nothing else there.")
]
SessionOpt = Annotated[
    str | None,
    typer.Option(
        "--session", help="Only this Verify session: its SessionUUID or any unique start of it."
    ),
]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="Only events received at or after this ISO time.")
]
StatusOpt = Annotated[
    str | None,
    typer.Option("--status", help="Only this ChannelStatus (queued, sent, delivered, failed, …)."),
]
VerdictOpt = Annotated[
    Verdict | None, typer.Option("--verdict", help="Only this signature verdict.")
]
HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on.")]
PortOpt = Annotated[
    int, typer.Option("--port", min=0, max=65535, help="Port to listen on; 0 picks a free one.")
]
PublicUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--public-url", help="Public URL of a tunnel you run (cloudflared, ssh -R); no ngrok."
    ),
]
NoTunnelOpt = Annotated[
    bool, typer.Option("--no-tunnel", help="No tunnel: senders call http://HOST:PORT.")
]
RespondOpt = Annotated[
    int,
    typer.Option("--respond-status", min=100, max=599, help="Status to answer callbacks with."),
]
FailRateOpt = Annotated[
    float,
    typer.Option(
        "--fail-rate",
        min=0.0,
        max=1.0,
        help="Answer 500 to this share (0..1) of callbacks, to see retries.",
    ),
]
ForwardOpt = Annotated[
    str | None,
    typer.Option("--forward-to", help="Also send every callback to this URL (your app)."),
]
AnswerFromForwardOpt = Annotated[
    bool,
    typer.Option(
        "--answer-from-forward", help="Answer Plivo with your app's status instead of our own."
    ),
]
ChannelOpt = Annotated[
    Channel, typer.Option("--channel", case_sensitive=False, help="How the code travels.")
]
MethodOpt = Annotated[
    Method,
    typer.Option(
        "--method", case_sensitive=False, help="POST (fields in a form) or GET (in the query)."
    ),
]
ToOpt = Annotated[
    str, typer.Option("--to", help="URL to send to: your handler.", show_default=False)
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0, help="Seconds to wait for each answer (more than 0).")
]
SchemeOpt = Annotated[
    Scheme,
    typer.Option(
        "--scheme",
        case_sensitive=False,
        help="Signature headers: v2 (V2, Ma-V2, V2-Nonce, as the Verify guide documents), "
        "v3 or all (add V3 headers: not documented for Verify).",
    ),
]
AnswersJsonOpt = Annotated[
    bool, typer.Option("--json", help="One JSON object per answer on stdout, nothing else there.")
]
FailFirstOpt = Annotated[
    bool,
    typer.Option("--fail-first", help="Answer 500 to every first delivery, 200 to its retries."),
]
RejectOpt = Annotated[
    bool,
    typer.Option(
        "--reject-invalid", help="Answer 403 to invalid or replayed signatures (still stored)."
    ),
]
MaxBodyOpt = Annotated[
    int,
    typer.Option("--max-body", min=1, help="Largest body accepted, in bytes; larger gets 413."),
]

UiOpt = Annotated[
    bool, typer.Option("--ui", help="Also serve the browser inspector (its URL is printed).")
]
UiHostOpt = Annotated[
    str, typer.Option("--ui-host", help="Address for the inspector; not loopback warns.")
]
UiPortOpt = Annotated[
    int,
    typer.Option("--ui-port", min=0, max=65535, help="Port for the inspector; 0 picks a free one."),
]
OpenOpt = Annotated[
    bool, typer.Option("--open", help="Open the inspector in the browser (implies --ui).")
]

# The listener's flags, declared once: name → (declaration, default).
_LISTENER_FLAGS: dict[str, tuple[Any, Any]] = {
    "host": (HostOpt, "127.0.0.1"),
    "port": (PortOpt, 8080),
    "public_url": (PublicUrlOpt, None),
    "no_tunnel": (NoTunnelOpt, False),
    "respond_status": (RespondOpt, 200),
    "fail_rate": (FailRateOpt, 0.0),
    "forward_to": (ForwardOpt, None),
    "answer_from_forward": (AnswerFromForwardOpt, False),
    "fail_first": (FailFirstOpt, False),
    "reject_invalid": (RejectOpt, False),
    "max_body": (MaxBodyOpt, 1024 * 1024),
    "ui_on": (UiOpt, False),
    "ui_host": (UiHostOpt, "127.0.0.1"),
    "ui_port": (UiPortOpt, 4050),
    "open_browser": (OpenOpt, False),
}
INSPECTOR = ("ui_on", "ui_host", "ui_port", "open_browser")
SESSION_FLAGS = (*list(_LISTENER_FLAGS)[:8], *INSPECTOR)  # send: no --fail-first etc.


def _listener_flags(*names: str, **defaults: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Give a command the named listener flags (all when none); its body gets them as `listen`.

    The flags become keyword parameters of the command Typer sees (its `__signature__`),
    and are built into one ListenSpec before the body runs.
    """
    flags = [(n, *_LISTENER_FLAGS[n]) for n in names or _LISTENER_FLAGS]

    def add(body: Callable[..., T]) -> Callable[..., T]:
        own = [p for p in inspect.signature(body).parameters.values() if p.name != "listen"]
        added = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=defaults.get(name, d)
            )
            for name, kind, d in flags
        ]

        @functools.wraps(body)
        def command(*args: Any, **kwargs: Any) -> T:
            kwargs["listen"] = _listen_spec({name: kwargs.pop(name) for name, _, _ in flags})
            return body(*args, **kwargs)

        # The body's own annotations are strings (postponed); `listen`'s type is never needed.
        params = [p.replace(annotation=eval(p.annotation, body.__globals__)) for p in own]
        command.__signature__ = inspect.Signature([*params, *added])  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in [*params, *added]}
        return command

    return add


# -- catch: listen, send, demo ---------------------------------------------------------------


@_command(short_help="Catch, check and store callbacks, live.")
@_listener_flags()
def listen(
    listen: ListenSpec,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
    session: SessionOpt = None,
) -> ExitCode:
    """Catch every callback sent to a local listener (through a tunnel), check and store it."""
    from verifycli.flows import run_listen
    from verifycli.ui import listening

    settings = _settings(store)
    with listening(settings, json_out, session, listen.tunnel) as (view, sinks):
        return run_listen(settings, listen, sinks, view.ready, view.inspector)


@_command(short_help="Send a code and follow it to the end.")
@_listener_flags(*SESSION_FLAGS, port=0)
def send(
    listen: ListenSpec,
    recipient: Annotated[
        str,
        typer.Argument(metavar="RECIPIENT", help="Phone number in E.164 form, e.g. +14155550100."),
    ],
    channel: ChannelOpt = "sms",
    app_uuid: Annotated[
        str | None,
        typer.Option("--app-uuid", envvar="PLIVO_VERIFY_APP_UUID", help="Verify application."),
    ] = None,
    locale: Annotated[
        str | None, typer.Option("--locale", help="Language of the message, e.g. en.")
    ] = None,
    brand_name: Annotated[
        str | None, typer.Option("--brand-name", help="Brand in the message.")
    ] = None,
    code_length: Annotated[
        int | None, typer.Option("--code-length", min=4, max=8, help="Digits in the code.")
    ] = None,
    method: MethodOpt = "POST",
    path: Annotated[
        str, typer.Option("--path", help="Path of the callback URL.")
    ] = "/verify/callback",
    store: StoreOpt = None,
    json_out: JsonOpt = False,
    otp: Annotated[
        str | None, typer.Option("--otp", help="Validate this code instead of asking.")
    ] = None,
    no_prompt: Annotated[
        bool, typer.Option("--no-prompt", help="Ask no code: succeed once delivered.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0, help="Give up after this many seconds.")
    ] = 600.0,
) -> ExitCode:
    """Send a code with Plivo Verify and follow its status callbacks to the end."""
    from verifycli import session
    from verifycli.ui import session_view

    settings = _settings(store)
    spec = session.SessionRun(
        recipient,
        channel=channel,
        app_uuid=app_uuid,
        locale=locale,
        brand_name=brand_name,
        code_length=code_length,
        method=method,
        path=path,
        timeout=timeout,
        otp=otp,
        prompt=not no_prompt,
        listen=listen,
    )
    return session.run(spec, settings, *session_view(json_out, settings.store_path, spec.note))


@_command(short_help="The send flow against a built-in simulator.")
@_listener_flags(*INSPECTOR)
def demo(
    listen: ListenSpec,
    auto: Annotated[
        bool,
        typer.Option(
            "--auto", help="Type the code for you, as soon as the simulated phone gets it."
        ),
    ] = False,
    channel: ChannelOpt = "sms",
    scenario: Annotated[
        Scenario, typer.Option("--scenario", help="How the simulated session ends.")
    ] = "delivered",
    recipient: Annotated[
        str, typer.Option("--recipient", help="The made-up phone number.")
    ] = "+14155550100",
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            help="SQLite file for the demo's callbacks (default: demo.sqlite3, user data dir).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> ExitCode:
    """Run the whole send flow against the built-in Plivo simulator: no account, no network.

    What the simulator imitates, and which parts are documented by Plivo or our guess:
    docs/fidelity.md.
    """
    from verifycli import session
    from verifycli.config import Settings
    from verifycli.ui import session_view

    spec = session.SessionRun.demo(scenario, recipient, channel, auto, listen.inspector)
    settings = Settings(store_path=store or session.demo_store_path())
    return session.run(spec, settings, *session_view(json_out, settings.store_path, spec.note))


@_command(short_help="Browse stored callbacks in a browser.")
def ui(
    store: StoreOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to serve on; not loopback warns.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to serve on; 0 picks a free one.")
    ] = 4050,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the inspector in the browser.")
    ] = False,
) -> ExitCode:
    """The browser inspector over the stored history, until Ctrl-C (listen --ui serves it live)."""
    from verifycli.flows import run_inspector
    from verifycli.ui import announce_inspector

    request = _inspector(True, host, port, open_browser)
    assert request is not None
    return run_inspector(_settings(store), request, announce_inspector)


# -- what was caught: events, export ---------------------------------------------------------


@events_app.callback(invoke_without_command=True)
def events(
    ctx: typer.Context,
    store: StoreOpt = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="The demo's store (what `verifycli demo` caught).")
    ] = False,
    json_out: JsonOpt = False,
    tsv: Annotated[
        bool, typer.Option("--tsv", help="Tab-separated values with a header line, on stdout.")
    ] = False,
    session: SessionOpt = None,
    status: StatusOpt = None,
    verdict: VerdictOpt = None,
    since: SinceOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Show the newest N; 0 shows all.")
    ] = 50,
) -> None:
    """List stored callbacks, newest last; `events show ID` shows one whole."""
    if ctx.invoked_subcommand is not None:
        # `events --store X show 7` means event 7 of X: hand the group's options down.
        ctx.obj = {"store": store, "demo": demo, "json": json_out}
        return

    def core() -> None:
        from verifycli.ui import list_events

        reader = _reader(store, demo)
        list_events(reader, _filters(reader, session, status, verdict, since), limit, json_out, tsv)

    raise typer.Exit(_exit_code(core))


@_command(events_app, "show")
def events_show(
    ctx: typer.Context,
    event_id: Annotated[
        int, typer.Argument(metavar="ID", help="The event's # in `verifycli events`.")
    ],
    store: StoreOpt = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="The stored record as one JSON object on stdout.")
    ] = False,
) -> None:
    """One stored callback whole: request, headers, body, Plivo fields, signature diagnosis."""
    from verifycli.ui import listing_console, print_event_detail, print_record

    parent = ctx.obj if isinstance(ctx.obj, dict) else {}
    reader = _reader(store or parent.get("store"), parent.get("demo", False))
    event = reader.get(event_id)
    if json_out or parent.get("json"):
        return print_record(event.to_record())
    print_event_detail(listing_console(), event, reader.chain(event))


@_command(short_help="Write stored callbacks as JSON, JSONL or CSV.")
def export(
    store: StoreOpt = None,
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="json (one array), jsonl or csv.")
    ] = "json",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; default stdout.")
    ] = None,
    session: SessionOpt = None,
    status: StatusOpt = None,
    verdict: VerdictOpt = None,
    since: SinceOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Only the newest N; 0 exports all.")
    ] = 0,
) -> None:
    """Write stored callbacks as JSON, JSON Lines or CSV, streaming."""
    from verifycli.export import write_to
    from verifycli.ui import print_note

    reader = _reader(store)
    lines = reader.iter_json(_filters(reader, session, status, verdict, since), limit or None)
    count = write_to(lines, fmt, output)
    if output is not None:
        print_note(f"wrote {count} events to {output}")


# -- send callbacks: replay, trigger ---------------------------------------------------------


@_command(short_help="Send a stored callback again.")
def replay(
    to: ToOpt,
    event_id: Annotated[
        int | None,
        typer.Argument(metavar="ID", help="The stored event to send again.", show_default=False),
    ] = None,
    all_events: Annotated[
        bool, typer.Option("--all", help="Every stored callback of --session, oldest first.")
    ] = False,
    session: Annotated[
        str | None,
        typer.Option(
            "--session", help="With --all: the session (SessionUUID, or any unique start of it)."
        ),
    ] = None,
    store: StoreOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_out: AnswersJsonOpt = False,
) -> ExitCode:
    """Send a stored callback again: same method, body, content type and signature headers."""
    from verifycli import replay as core
    from verifycli.ui import Answers

    spec = core.ReplaySpec(to, event_id, all_events, session, timeout)
    return core.run(spec, _reader(store), Answers(json_out))


@_command(short_help="Send a signed, made-up callback to your app.")
def trigger(
    to: ToOpt,
    status: Annotated[
        ChannelStatus | None,
        typer.Option(
            "--status",
            help="ChannelStatus; sms: queued, sent, delivered, failed, undelivered; voice: "
            "ringing, in-progress, completed, no-answer, busy, failed, cancel, timeout "
            "(default: delivered, completed).",
            show_default=False,
        ),
    ] = None,
    channel: ChannelOpt = "sms",
    session: Annotated[
        str | None,
        typer.Option(
            "--session", help="SessionUUID to send (default: a new one).", show_default=False
        ),
    ] = None,
    session_status: Annotated[
        SessionStatus, typer.Option("--session-status", help="SessionStatus to send.")
    ] = "in-progress",
    method: MethodOpt = "POST",
    scheme: SchemeOpt = "v2",
    count: Annotated[
        int,
        typer.Option(
            "--count", min=1, max=1000, help="How many callbacks to send, one after another."
        ),
    ] = 1,
    timeout: TimeoutOpt = 10.0,
    json_out: AnswersJsonOpt = False,
) -> ExitCode:
    """Send a made-up Verify callback signed with PLIVO_AUTH_TOKEN, to test your own handler."""
    from verifycli import trigger as core
    from verifycli.config import load_settings
    from verifycli.ui import Answers

    spec = core.TriggerSpec(
        to, status, channel, session, session_status, method, scheme, count, timeout=timeout
    )
    return core.run(spec, load_settings(), Answers(json_out))


@_command(short_help="Check the setup and say what to fix.")
def doctor(
    store: StoreOpt = None,
    port: Annotated[
        int,
        typer.Option(
            "--port", min=1, max=65535, help="The port to check is free, as listen would use it."
        ),
    ] = 8080,
    online: Annotated[
        bool, typer.Option("--online", help="Also call the Plivo API once with the credentials.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object per check on stdout.")
    ] = False,
) -> ExitCode:
    """Check credentials, .env, ngrok, the store, the port and packages; say what to fix."""
    from verifycli.doctor import run
    from verifycli.ui import listing_console, print_checks

    checks, code = run(port, store, online)
    print_checks(listing_console(), checks, json_out)
    return code


@_command(short_help="A local Plivo Verify API for your own app's tests.")
def simulator(
    host: HostOpt = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to serve on; 0 picks a free one.")
    ] = 8099,
    auth_id: Annotated[
        str | None,
        typer.Option(
            "--auth-id", help="Auth id your app uses (env PLIVO_AUTH_ID).", show_default=False
        ),
    ] = None,
    auth_token: Annotated[
        str | None,
        typer.Option(
            "--auth-token",
            help="Auth token your app uses (env PLIVO_AUTH_TOKEN).",
            show_default=False,
        ),
    ] = None,
    main_auth_token: Annotated[
        str | None,
        typer.Option(
            "--main-auth-token",
            help="Signs Ma-V2 (env PLIVO_MAIN_AUTH_TOKEN; default: the auth token).",
            show_default=False,
        ),
    ] = None,
    scenario: Annotated[
        Scenario, typer.Option("--scenario", help="How each simulated session ends.")
    ] = "delivered",
    time_factor: Annotated[
        float,
        typer.Option(
            "--time-factor", min=0, help="Real seconds per simulated second (0.01 = 100x)."
        ),
    ] = 1.0,
    scheme: Annotated[
        Scheme,
        typer.Option(
            "--scheme",
            case_sensitive=False,
            help="Callback signatures: v2 (as the Verify guide documents), v3 or all "
            "(add V3: not documented for Verify).",
        ),
    ] = "v2",
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object a line per event on stdout.")
    ] = False,
) -> ExitCode:
    """Serve an offline Plivo Verify API that your app's tests call instead of Plivo.

    Callbacks go, signed, to the url each session names; GET /_simulator/sessions/{uuid}
    answers the session with its "otp". What it imitates and how closely: docs/fidelity.md.
    """
    from verifycli.config import load_settings
    from verifycli.flows import run_simulator, simulator_spec
    from verifycli.simulator import DEMO_AUTH_ID, DEMO_AUTH_TOKEN
    from verifycli.ui import simulator_lines

    flags = {"host": host, "port": port, "scenario": scenario, "time_factor": time_factor}
    spec = simulator_spec(
        load_settings(), auth_id, auth_token, main_auth_token, scheme=scheme, **flags
    )
    demo = DEMO_AUTH_TOKEN if spec.auth_id == DEMO_AUTH_ID else None
    return run_simulator(spec, simulator_lines(json_out, demo))


# -- check: grade the user's own handler --------------------------------------------------


@_command(short_help="Grade your own callback handler.")
def check(
    url: Annotated[
        str, typer.Argument(metavar="URL", help="Your handler, as reachable from here.")
    ],
    method: Annotated[
        CheckMethod,
        typer.Option("--method", help="Call it as POST, GET, or each in turn."),
    ] = CheckMethod.POST,
    channel: Annotated[
        CheckChannel,
        typer.Option("--channel", help="Channel the callbacks report on."),
    ] = CheckChannel.SMS,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Sign for this URL (where the handler believes it is, behind a tunnel or "
            "proxy) while sending to URL.",
            show_default=False,
        ),
    ] = None,
    timeout: TimeoutOpt = 10.0,
    max_time: Annotated[
        float,
        typer.Option("--max-time", min=0, help="An answer slower than this fails 'answers fast'."),
    ] = 5.0,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="One JSON object per check on stdout, nothing else there."),
    ] = False,
) -> ExitCode:
    """Send Verify callbacks, good and spoiled, to your handler and grade its answers."""
    from verifycli import check as core
    from verifycli.config import load_settings
    from verifycli.ui import check_report

    spec = core.CheckSpec(url, method, channel, public_url, timeout, max_time)
    return core.run(spec, load_settings(), check_report(json_out))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
