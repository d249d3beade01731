"""The command line: read options, build objects, call one core function, map errors to exits."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, NoReturn, TypeVar

import typer
import typer.core

from verifycli import __version__
from verifycli.errors import ConfigError, ExitCode, VerifyCliError

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from verifycli.config import Settings
    from verifycli.flows import Running
    from verifycli.listener import Sink
    from verifycli.send import CodeSource, Outcome, Status, Tracker
    from verifycli.ui import Header, LiveView

T = TypeVar("T")

COMMAND_ORDER = (
    "send",
    "demo",
    "listen",
    "ui",
    "events",
    "export",
    "replay",
    "trigger",
    "check",
    "doctor",
)


class _Ordered(typer.core.TyperGroup):
    """Lists commands in the order a newcomer needs them, not the order they are defined."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: COMMAND_ORDER.index(n) if n in COMMAND_ORDER else 99)


app = typer.Typer(
    rich_markup_mode=None,
    name="verifycli",
    cls=_Ordered,
    help="Watch, check and keep Plivo Verify status callbacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
)
events_app = typer.Typer(
    help="Stored callbacks: list them, or show one whole.",
    short_help="List stored callbacks, or show one whole.",
    rich_markup_mode=None,
)
app.add_typer(events_app, name="events")

_state = {"debug": False}


class FlowHooks(NamedTuple):
    """Callbacks a flow makes into the view: listener ready, session created."""

    ready: Callable[[Running], None]
    session: Callable[[str], None]


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


def _show_running(header: Header, view: LiveView, running: Running, waiting: str) -> None:
    """Fill the header panel from a listener that is up, then start the live view."""
    header.local_url = running.listener.local_url
    header.public_url = running.public_url if running.tunnel_kind != "none" else None
    header.counts = running.listener.stats.shown
    view.start(waiting)


def _opening(no_tunnel: bool, public_url: str | None) -> str:
    """What the spinner says while the listener (and the tunnel) start."""
    return "starting the listener" if no_tunnel or public_url else "opening the ngrok tunnel"


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


def run(action: Callable[[], T]) -> T:
    """Run a command's core; turn our errors into one line and an exit code."""
    try:
        return action()
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


# Options shared by several commands.
StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="SQLite file of captured callbacks (env VERIFYCLI_STORE; default: user data dir).",
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
HostOpt = Annotated[str, typer.Option("--host", help="Address to listen on.")]
PortOpt = Annotated[int, typer.Option("--port", help="Port to listen on; 0 picks a free one.")]
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
    int, typer.Option("--respond-status", help="Status to answer callbacks with.")
]
FailRateOpt = Annotated[
    float,
    typer.Option(
        "--fail-rate", help="Answer 500 to this share (0..1) of callbacks, to see retries."
    ),
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
    int, typer.Option("--max-body", help="Largest body accepted, in bytes; larger gets 413.")
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


@app.command(short_help="Catch, check and store callbacks, live.")
def listen(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8080,
    public_url: PublicUrlOpt = None,
    no_tunnel: NoTunnelOpt = False,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
    respond_status: RespondOpt = 200,
    fail_rate: FailRateOpt = 0.0,
    fail_first: FailFirstOpt = False,
    reject_invalid: RejectOpt = False,
    max_body: MaxBodyOpt = 1024 * 1024,
    session: SessionOpt = None,
    forward_to: ForwardOpt = None,
    answer_from_forward: AnswerFromForwardOpt = False,
    ui_on: UiOpt = False,  # inspector (issue 14)
    ui_host: UiHostOpt = "127.0.0.1",
    ui_port: UiPortOpt = 4050,
    open_browser: OpenOpt = False,
) -> None:
    """Catch every callback sent to a local listener (through a tunnel), check and store it."""

    def action() -> ExitCode:
        from verifycli.flows import Where, run_listen
        from verifycli.listener import ListenOptions
        from verifycli.ui import Header, JsonLines, LiveView, human_console

        settings = load_settings_for(store)
        options = ListenOptions(
            host=host,
            port=port,
            respond_status=respond_status,
            fail_rate=fail_rate,
            fail_first=fail_first,
            reject_invalid=reject_invalid,
            max_body=max_body,
            forward_to=forward_to,
            answer_from_forward=answer_from_forward,
        )
        where = Where(public_url=public_url, no_tunnel=no_tunnel)
        console = human_console(json_out)
        header = Header(store_path=str(settings.store_path))
        view = LiveView(console, header, session_filter=session, json_mode=json_out)
        sinks: list[Sink] = [view]
        if json_out:
            sinks.append(JsonLines(session_filter=session))

        if not settings.auth_token:
            header.note = "PLIVO_AUTH_TOKEN is not set: signatures are not checked"

        def ready(running: Running) -> None:
            _show_running(header, view, running, "waiting for the first callback")

        import asyncio

        from verifycli.errors import TunnelError
        from verifycli.ui import print_listen_summary

        ui = _ui_request(ui_on or open_browser, ui_host, ui_port, open_browser, settings)
        stop = asyncio.Event()
        view.begin(_opening(no_tunnel, public_url))
        try:
            code = asyncio.run(
                _with_ui(  # the inspector, when --ui (issue 14)
                    ui,
                    settings.store_path,
                    sinks,
                    header,
                    lambda: run_listen(settings, options, where, sinks, ready, stop),
                    forward_to,
                    port,
                )
            )
        except TunnelError:
            # Ctrl-C reaches ngrok too, which then exits mid-start: that is the stop asked for.
            if not stop.is_set():
                raise
            code = ExitCode.OK
        finally:
            view.stop()
        if view.ready:
            print_listen_summary(header)
        return code

    raise typer.Exit(run(action))


@app.command(short_help="Write stored callbacks as JSON, JSONL or CSV.")
def export(
    store: StoreOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="json (one array), jsonl or csv.")
    ] = "json",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; default stdout.")
    ] = None,
    session: SessionOpt = None,
    status: StatusOpt = None,
    verdict: VerdictOpt = None,
    since: SinceOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="Only the newest N; 0 exports all.")] = 0,
) -> None:
    """Write stored callbacks as JSON, JSON Lines or CSV, streaming."""

    def action() -> None:
        from verifycli import export as exporter
        from verifycli.store import StoreReader

        if fmt not in exporter.FORMATS:
            raise ConfigError(f"--format must be one of json, jsonl, csv, not {fmt!r}")
        if limit < 0:
            raise ConfigError(f"--limit must be 0 (all) or more, not {limit}")
        settings = load_settings_for(store)
        reader = StoreReader(settings.store_path)
        filters = _filters(_whole_session(reader, session), status, verdict, since)
        lines = reader.iter_json(filters, limit or None)
        if output is None:
            exporter.write(lines, fmt, sys.stdout)
            return
        with exporter.open_output(output) as stream:
            count = exporter.write(lines, fmt, stream)
        from verifycli.ui import print_note

        print_note(f"wrote {count} events to {output}")

    run(action)


def load_settings_for(store: Path | None) -> Settings:
    from verifycli.config import load_settings

    return load_settings().with_store(store)


# -- work with what was caught: events, replay, trigger, doctor ------------------------------

if TYPE_CHECKING:
    from verifycli.callbacks import CallbackEvent
    from verifycli.store import Filters, StoreReader

VERDICTS = ("valid", "invalid", "unsigned", "unchecked", "replayed")

StatusOpt = Annotated[
    str | None,
    typer.Option("--status", help="Only this ChannelStatus (queued, sent, delivered, failed, …)."),
]
VerdictOpt = Annotated[
    str | None,
    typer.Option("--verdict", help=f"Only this signature verdict: {', '.join(VERDICTS)}."),
]
LimitOpt = Annotated[int, typer.Option("--limit", help="Show the newest N; 0 shows all.")]
ToOpt = Annotated[
    str, typer.Option("--to", help="URL to send to: your handler.", show_default=False)
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for each answer.")]


def _filters(
    session: str | None, status: str | None, verdict: str | None, since: str | None
) -> Filters:
    from verifycli.export import parse_since
    from verifycli.store import Filters

    if verdict is not None and verdict not in VERDICTS:
        raise ConfigError(f"--verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    return Filters(
        session=session,
        status=status,
        verdict=verdict,
        since=parse_since(since) if since else None,
    )


def _whole_session(reader: StoreReader, session: str | None) -> str | None:
    """The stored session id that `session` starts (the table's 8 characters will do)."""
    if not session:
        return session
    found = reader.sessions_starting(session)
    if session in found or not found:
        return session
    if len(found) == 1:
        return found[0]
    shown = ", ".join(found[:5]) + (", …" if len(found) > 5 else "")
    raise ConfigError(
        f"--session {session} matches more than one session ({shown}): give more of it"
    )


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
    limit: LimitOpt = 50,
) -> None:
    """List stored callbacks, newest last; `events show ID` shows one whole."""
    if ctx.invoked_subcommand is not None:
        # `events --store X show 7` means event 7 of X: hand the group's options down.
        ctx.obj = {"store": _store_or_demo(store, demo), "json": json_out}
        return

    def action() -> None:
        from verifycli.safe_text import json_safe
        from verifycli.store import StoreReader
        from verifycli.ui import print_events

        if limit < 0:
            raise ConfigError(f"--limit must be 0 (all) or more, not {limit}")
        if json_out and tsv:
            raise ConfigError("--json and --tsv do not go together: pick one")
        settings = load_settings_for(_store_or_demo(store, demo))
        reader = StoreReader(settings.store_path)
        filters = _filters(_whole_session(reader, session), status, verdict, since)
        cap = limit or None
        if json_out:
            written = 0
            for line in reader.iter_json(filters, cap):
                sys.stdout.write(json_safe(line) + "\n")
                written += 1
            sys.stdout.flush()
            if not written:
                print_events([], str(settings.store_path), stored=reader.count())
            return
        shown = list(reader.iter_events(filters, cap))
        full = cap is not None and len(shown) == cap
        print_events(
            shown,
            str(settings.store_path),
            stored=None if shown else reader.count(),
            matched=reader.count(filters) if full else len(shown),
            tsv=tsv,
        )

    run(action)


def _store_or_demo(store: Path | None, demo: bool) -> Path | None:
    if not demo:
        return store
    if store is not None:
        raise ConfigError("--demo and --store do not go together: --demo is the demo's store")
    from verifycli.demo import demo_store_path

    return demo_store_path()


@events_app.command("show")
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
    parent = ctx.obj if isinstance(ctx.obj, dict) else {}
    path = store or parent.get("store")
    as_json = json_out or bool(parent.get("json"))

    def action() -> None:
        from verifycli.store import StoreReader
        from verifycli.ui import listing_console, print_event_detail, print_record

        reader = StoreReader(load_settings_for(path).store_path)
        event = reader.get(event_id)
        if as_json:
            print_record(event.to_record())
            return
        print_event_detail(listing_console(), event, reader.chain(event))

    run(action)


@app.command(short_help="Send a stored callback again.")
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
        str | None, typer.Option("--session", help="With --all: the session (SessionUUID).")
    ] = None,
    store: StoreOpt = None,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Send a stored callback again: same method, body, content type and signature headers."""

    def action() -> ExitCode:
        import asyncio
        from urllib.parse import urlsplit

        from verifycli import relay
        from verifycli.errors import EventNotFound
        from verifycli.store import Filters, StoreReader
        from verifycli.ui import human_console, print_answer, print_note

        if all_events == (event_id is not None):
            raise ConfigError("give the ID of one event, or --all --session UUID; not both")
        if all_events and not session:
            raise ConfigError("--all needs --session UUID: the session whose callbacks to send")
        if session and not all_events:
            raise ConfigError("--session goes with --all; to replay one event give its ID only")
        relay.check_timeout(timeout)
        target = relay.check_target(to, "--to")
        reader = StoreReader(load_settings_for(store).store_path)
        if event_id is not None:
            chosen = [reader.get(event_id)]
        else:
            chosen = list(reader.iter_events(Filters(session=_whole_session(reader, session))))
            if not chosen:
                raise EventNotFound(
                    f"no stored callbacks of session {session} in {reader.path}; "
                    "`verifycli events` lists what is stored"
                )
        console = human_console(False)

        def shown(event: CallbackEvent, outcome: relay.Outcome) -> None:
            what = event.plivo("channel_status") or event.path
            where = target + (" (with its query)" if event.query else "")
            print_answer(console, f"#{event.id} {event.method} {what} → {where}", outcome)

        outcomes = asyncio.run(relay.replay(chosen, target, timeout, shown))
        if len(chosen) > 1:
            good = sum(o.ok for o in outcomes)
            unsent = len(chosen) - len(outcomes)
            tail = f"; {unsent} not sent after the connection failed" if unsent else ""
            print_note(f"{good} of {len(chosen)} answered 2xx{tail}", console)

        def base(url: str) -> str:
            parts = urlsplit(url)
            return f"{parts.scheme}://{parts.netloc}{parts.path}"

        # A refusal is most often the handler's signature check, made for a URL it now is not.
        refused = any(o.status is not None and 400 <= o.status < 500 for o in outcomes)
        signed = next((e for e in chosen if e.signature.verdict != "unsigned"), None)
        if refused and signed is not None and base(signed.url) != base(target):
            print_note(
                f"note: these signatures were made for {base(signed.url)}; a handler that checks "
                "them against its own URL refuses them (`verifycli trigger` signs for --to)",
                console,
            )
        done = len(outcomes) == len(chosen) and all(o.ok for o in outcomes)
        return ExitCode.OK if done else ExitCode.FLOW_FAILED

    raise typer.Exit(run(action))


@app.command(short_help="Send a signed, made-up callback to your app.")
def trigger(
    to: ToOpt,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="ChannelStatus. sms: queued, sent, delivered, failed, undelivered; voice: "
            "ringing, in-progress, completed, no-answer, busy, failed, cancel, timeout "
            "(default: delivered, completed).",
            show_default=False,
        ),
    ] = None,
    channel: Annotated[str, typer.Option("--channel", help="sms or voice.")] = "sms",
    session: Annotated[
        str | None,
        typer.Option(
            "--session", help="SessionUUID to send (default: a new one).", show_default=False
        ),
    ] = None,
    session_status: Annotated[
        str, typer.Option("--session-status", help="SessionStatus: in-progress, verified, expired.")
    ] = "in-progress",
    method: Annotated[
        str, typer.Option("--method", help="POST (fields in a form) or GET (in the query).")
    ] = "POST",
    scheme: Annotated[
        str,
        typer.Option(
            "--scheme",
            help="Signature headers: v2 (V2, Ma-V2, V2-Nonce, as the Verify guide documents), "
            "v3 or all (add V3 headers: not documented for Verify).",
        ),
    ] = "v2",
    count: Annotated[
        int, typer.Option("--count", help="How many callbacks to send, one after another.")
    ] = 1,
    timeout: TimeoutOpt = 10.0,
) -> None:
    """Send a made-up Verify callback signed with PLIVO_AUTH_TOKEN, to test your own handler."""

    def action() -> ExitCode:
        import asyncio

        from verifycli import relay
        from verifycli.config import load_settings, require_token
        from verifycli.trigger import Prepared, TriggerSpec, trigger
        from verifycli.ui import human_console, print_answer

        spec = TriggerSpec(
            to=to,
            status=status,
            channel=channel,
            session_uuid=session,
            session_status=session_status,
            method=method,
            scheme=scheme,
            count=count,
            timeout=timeout,
        )
        settings = load_settings()
        require_token(settings.auth_token)
        console = human_console(False)

        def shown(sent: Prepared, outcome: relay.Outcome) -> None:
            fields = sent.fields
            label = (
                f"{sent.method} {fields['ChannelStatus']} ({fields['Channel']}, session "
                f"{fields['SessionUUID']}, attempt {fields['AttemptSequence']}) signed "
                f"{', '.join(sent.schemes)} → {spec.to}"
            )
            print_answer(console, label, outcome)

        outcomes = asyncio.run(trigger(spec, settings.auth_token, settings.main_auth_token, shown))
        done = len(outcomes) == spec.count and all(o.ok for o in outcomes)
        return ExitCode.OK if done else ExitCode.FLOW_FAILED

    raise typer.Exit(run(action))


@app.command(short_help="Check the setup and say what to fix.")
def doctor(
    store: StoreOpt = None,
    port: Annotated[
        int, typer.Option("--port", help="The port to check is free, as listen would use it.")
    ] = 8080,
    online: Annotated[
        bool, typer.Option("--online", help="Also call the Plivo API once with the credentials.")
    ] = False,
) -> None:
    """Check credentials, .env, ngrok, the store, the port and packages; say what to fix."""

    def action() -> ExitCode:
        import asyncio

        from verifycli.doctor import Machine, diagnose, passed
        from verifycli.ui import listing_console, print_checks

        if not 0 < port <= 65535:
            raise ConfigError(f"--port must be 1-65535, not {port}")
        checks = asyncio.run(diagnose(Machine(port=port), store=store, online=online))
        print_checks(listing_console(), checks)
        return ExitCode.OK if passed(checks) else ExitCode.USAGE

    raise typer.Exit(run(action))


# -- send and demo -------------------------------------------------------------------------

ChannelOpt = Annotated[str, typer.Option("--channel", help="sms or voice.")]
AutoOpt = Annotated[bool, typer.Option("--auto", help="Type the simulated phone's code yourself.")]


def _follow_session(
    json_out: bool,
    run_flow: Callable[
        [list[Sink], Tracker, CodeSource | None, FlowHooks], Coroutine[Any, Any, Outcome]
    ],
    status: Status,
    store_path: str,
    codes: Callable[[LiveView], CodeSource | None],
    note: str = "",
    ui: UiRequest | None = None,
    replay_to: str | None = None,
    opening: str = "opening the ngrok tunnel",
) -> ExitCode:
    """Shared by send and demo: the live view with the session panel, then the summary."""
    from verifycli.send import Tracker
    from verifycli.ui import Header, JsonLines, LiveView, human_console, print_summary

    console = human_console(json_out)
    header = Header(store_path=store_path, note=note)
    view = LiveView(console, header, session=status, json_mode=json_out)
    tracker = Tracker(status, JsonLines() if json_out else None)

    def ready(running: Running) -> None:
        _show_running(header, view, running, "creating the Verify session")

    def bound(session_uuid: str) -> None:
        view.session_filter = session_uuid
        view.waiting = "waiting for the first callback"

    async def until_terminated() -> Outcome:
        # SIGTERM would otherwise end the process without closing the tunnel and ngrok.
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            sinks: list[Sink] = [view]
            return await _with_ui(  # the inspector, when --ui (issue 14)
                ui,
                Path(store_path),
                sinks,
                header,
                lambda: run_flow(sinks, tracker, codes(view), FlowHooks(ready, bound)),
                replay_to,
            )
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None

    import asyncio

    view.begin(opening)
    try:
        outcome = asyncio.run(until_terminated())
    finally:
        view.stop()
    print_summary(console, status, outcome.message, outcome.code == ExitCode.OK)
    return outcome.code


def _prompt_codes(view: LiveView) -> CodeSource:
    from verifycli.send import PromptCode

    if view.live:
        # The prompt is the live view's bottom line: callbacks keep arriving while it waits.
        return PromptCode(lambda attempt: view.ask_code(attempt, 3), _nothing, _nothing)
    return PromptCode(lambda attempt: view.ask_code(attempt, 3), view.pause, view.resume)


def _nothing() -> None:
    pass


def _need_terminal(way_out: str) -> None:
    """A prompt needs a person at a terminal: without one, stop before anything starts."""
    if not sys.stdin.isatty():
        raise ConfigError(f"stdin is not a terminal: {way_out}")


@app.command(short_help="Send a code and follow it to the end.")
def send(
    recipient: Annotated[
        str, typer.Argument(help="Phone number in E.164 form, e.g. +14155550100.")
    ],
    channel: ChannelOpt = "sms",
    app_uuid: Annotated[
        str | None,
        typer.Option("--app-uuid", help="Verify application (env PLIVO_VERIFY_APP_UUID)."),
    ] = None,
    locale: Annotated[
        str | None, typer.Option("--locale", help="Language of the message, e.g. en.")
    ] = None,
    brand_name: Annotated[
        str | None, typer.Option("--brand-name", help="Brand in the message.")
    ] = None,
    code_length: Annotated[
        int | None, typer.Option("--code-length", help="Digits in the code, 4 to 8.")
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="How Plivo calls back: POST or GET.")
    ] = "POST",
    path: Annotated[
        str, typer.Option("--path", help="Path of the callback URL.")
    ] = "/verify/callback",
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 0,
    public_url: PublicUrlOpt = None,
    no_tunnel: NoTunnelOpt = False,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
    respond_status: RespondOpt = 200,
    fail_rate: FailRateOpt = 0.0,
    forward_to: ForwardOpt = None,
    answer_from_forward: AnswerFromForwardOpt = False,
    otp: Annotated[
        str | None, typer.Option("--otp", help="Validate this code instead of asking.")
    ] = None,
    no_prompt: Annotated[
        bool, typer.Option("--no-prompt", help="Ask no code: succeed once delivered.")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Give up after this many seconds.")
    ] = 600.0,
    ui_on: UiOpt = False,  # inspector (issue 14)
    ui_host: UiHostOpt = "127.0.0.1",
    ui_port: UiPortOpt = 4050,
    open_browser: OpenOpt = False,
) -> None:
    """Send a code with Plivo Verify and follow its status callbacks to the end."""

    def action() -> ExitCode:
        from verifycli.flows import Where
        from verifycli.listener import ListenOptions
        from verifycli.send import FixedCode, SendRequest, Status, run_send

        settings = load_settings_for(store)
        request = SendRequest(
            recipient=recipient,
            channel=channel,
            app_uuid=app_uuid or settings.app_uuid,
            locale=locale,
            brand_name=brand_name,
            code_length=code_length,
            method=method,
            path=path,
            timeout=timeout,
        )
        if otp is not None and no_prompt:
            raise ConfigError("--otp and --no-prompt do not go together: pick one")
        options = ListenOptions(
            host=host,
            port=port,
            respond_status=respond_status,
            fail_rate=fail_rate,
            forward_to=forward_to,
            answer_from_forward=answer_from_forward,
        )
        where = Where(public_url=public_url, no_tunnel=no_tunnel)
        # Credentials are checked before anything starts.
        from verifycli.config import check_auth_id, require_token

        check_auth_id(settings.auth_id)
        require_token(settings.auth_token)
        if otp is None and not no_prompt:
            _need_terminal("pass --otp CODE or --no-prompt")

        def flow(
            sinks: list[Sink], tracker: Tracker, codes: CodeSource | None, hooks: FlowHooks
        ) -> Coroutine[Any, Any, Outcome]:
            return run_send(
                settings,
                request,
                options,
                where,
                sinks,
                tracker,
                codes,
                on_ready=hooks.ready,
                on_session=hooks.session,
            )

        def codes(view: LiveView) -> CodeSource | None:
            if no_prompt:
                return None
            return FixedCode(otp) if otp is not None else _prompt_codes(view)

        status = Status(request.recipient, request.channel)
        ui = _ui_request(ui_on or open_browser, ui_host, ui_port, open_browser, settings)
        return _follow_session(
            json_out,
            flow,
            status,
            str(settings.store_path),
            codes,
            ui=ui,
            replay_to=forward_to,
            opening=_opening(no_tunnel, public_url),
        )

    raise typer.Exit(run(action))


@app.command(short_help="The send flow against a built-in simulator.")
def demo(
    auto: AutoOpt = False,
    channel: ChannelOpt = "sms",
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario", help="delivered, undelivered, failed, no-answer, expired or retries."
        ),
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
    ui_on: UiOpt = False,  # inspector (issue 14)
    ui_host: UiHostOpt = "127.0.0.1",
    ui_port: UiPortOpt = 4050,
    open_browser: OpenOpt = False,
) -> None:
    """Run the whole send flow against the built-in Plivo simulator: no account, no network.

    What the simulator imitates, and which parts are documented by Plivo or our guess:
    docs/fidelity.md.
    """

    def action() -> ExitCode:
        from verifycli.demo import check_scenario, demo_store_path, run_demo
        from verifycli.send import SendRequest, Status
        from verifycli.ui import phone_message

        chosen = check_scenario(scenario)
        if not auto:
            _need_terminal("pass --auto")
        request = SendRequest(recipient=recipient, channel=channel, brand_name="verifycli demo")
        path = store or demo_store_path()
        status = Status(request.recipient, request.channel)
        shown: list[LiveView] = []

        def flow(
            sinks: list[Sink], tracker: Tracker, codes: CodeSource | None, hooks: FlowHooks
        ) -> Coroutine[Any, Any, Outcome]:
            return run_demo(
                chosen,
                request,
                path,
                sinks,
                tracker,
                codes,
                on_message=lambda to, text: phone_message(shown[0].console, to, text),
                on_ready=hooks.ready,
                on_session=hooks.session,
                auto=auto,
            )

        def codes(view: LiveView) -> CodeSource | None:
            shown.append(view)
            return None if auto else _prompt_codes(view)

        note = f"demo: simulated Plivo, scenario {chosen}" + (
            ", code typed for you" if auto else ""
        )
        ui = _ui_request(ui_on or open_browser, ui_host, ui_port, open_browser, None)
        try:
            return _follow_session(
                json_out,
                flow,
                status,
                str(path),
                codes,
                note,
                ui=ui,
                opening="starting the simulator",
            )
        finally:
            from verifycli.ui import print_note

            see = "verifycli events --demo" if store is None else f"verifycli events --store {path}"
            print_note(f"the demo's callbacks are kept in {path}: `{see}` lists them")

    raise typer.Exit(run(action))


# -- the browser inspector (issue 14): `verifycli ui`, and --ui on listen, send and demo ------

if TYPE_CHECKING:
    from verifycli.inspector.run import UiRequest

# Typer reads these annotations when the app is built, so they may come after their users.
UiOpt = Annotated[
    bool, typer.Option("--ui", help="Also serve the browser inspector (its URL is printed).")
]
UiHostOpt = Annotated[
    str, typer.Option("--ui-host", help="Address for the inspector; not loopback warns.")
]
UiPortOpt = Annotated[
    int, typer.Option("--ui-port", help="Port for the inspector; 0 picks a free one.")
]
OpenOpt = Annotated[
    bool, typer.Option("--open", help="Open the inspector in the browser (implies --ui).")
]


def _ui_request(
    on: bool, host: str, port: int, open_browser: bool, settings: Settings | None
) -> UiRequest | None:
    """The inspector the flags ask for, or None; its token from VERIFYCLI_UI_TOKEN or new.

    `settings` None: read them only now that they are needed (demo reads none otherwise).
    """
    if not on:
        return None
    from verifycli.config import load_settings
    from verifycli.inspector.run import UiRequest

    settings = settings or load_settings()
    token = settings.ui_token.reveal() if settings.ui_token else None
    return UiRequest(host=host, port=port, open_browser=open_browser, token=token)


def _announce(header: Header | None) -> Callable[[str, bool], None]:
    """The inspector's URL: one line on stderr, and a row of the header panel."""

    def announce(url: str, exposed: bool) -> None:
        from verifycli.ui import print_note, print_warning

        if header is not None:
            header.inspector_url = url
        print_note(f"inspector: {url}")
        if exposed:
            print_warning(
                "the inspector listens beyond this machine: anyone who can reach it and has "
                "the token sees every callback (--ui-host 127.0.0.1 keeps it local)"
            )

    return announce


async def _with_ui(
    ui: UiRequest | None,
    store_path: Path,
    sinks: list[Sink],
    header: Header,
    flow: Callable[[], Coroutine[Any, Any, T]],
    replay_to: str | None = None,
    listener_port: int | None = None,
) -> T:
    """Run a flow, with the inspector beside it when --ui asked for one."""
    if ui is None:
        return await flow()
    from verifycli.inspector.run import beside

    return await beside(ui, store_path, sinks, _announce(header), flow, replay_to, listener_port)


@app.command(short_help="Browse stored callbacks in a browser.")
def ui(
    store: StoreOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to serve on; not loopback warns.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to serve on; 0 picks a free one.")
    ] = 4050,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the inspector in the browser.")
    ] = False,
) -> None:
    """The browser inspector over the stored history, until Ctrl-C (listen --ui serves it live)."""

    def action() -> ExitCode:
        import asyncio

        from verifycli.flows import stop_on_signals
        from verifycli.inspector.run import alone
        from verifycli.store import StoreReader

        settings = load_settings_for(store)
        StoreReader(settings.store_path)  # a foreign or newer file is refused before serving
        request = _ui_request(True, host, port, open_browser, settings)
        assert request is not None

        async def serve() -> None:
            stop = asyncio.Event()
            with stop_on_signals(stop):
                await alone(request, settings.store_path, _announce(None), stop)

        asyncio.run(serve())
        return ExitCode.OK

    raise typer.Exit(run(action))


@app.command(short_help="A local Plivo Verify API for your own app's tests.")
def simulator(
    host: HostOpt = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", help="Port to serve on; 0 picks a free one.")
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
        str,
        typer.Option(
            "--scenario", help="delivered, undelivered, failed, no-answer, expired or retries."
        ),
    ] = "delivered",
    time_factor: Annotated[
        float,
        typer.Option("--time-factor", help="Real seconds per simulated second (0.01 = 100x)."),
    ] = 1.0,
    scheme: Annotated[
        str,
        typer.Option(
            "--scheme",
            help="Callback signatures: v2 (as the Verify guide documents), v3 or all "
            "(add V3: not documented for Verify).",
        ),
    ] = "v2",
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object a line per event on stdout.")
    ] = False,
) -> None:
    """Serve an offline Plivo Verify API that your app's tests call instead of Plivo.

    Callbacks go, signed, to the url each session names; GET /_simulator/sessions/{uuid}
    answers the session with its "otp". What it imitates and how closely: docs/fidelity.md.
    """

    def action() -> ExitCode:
        import asyncio
        import json
        import re

        from verifycli.config import check_auth_id, load_settings
        from verifycli.simulator import (
            DEMO_AUTH_ID,
            DEMO_AUTH_TOKEN,
            ServeSpec,
            describe,
            serve_spec,
        )

        settings = load_settings()
        given_id = auth_id or settings.auth_id
        given_token = auth_token or (settings.auth_token.reveal() if settings.auth_token else None)
        main = main_auth_token or (
            settings.main_auth_token.reveal() if settings.main_auth_token else None
        )
        if given_id is None and given_token is None:
            given_id, given_token = DEMO_AUTH_ID, DEMO_AUTH_TOKEN
        if given_id is None or given_token is None:
            missing = (
                "--auth-id (PLIVO_AUTH_ID)"
                if given_id is None
                else "--auth-token (PLIVO_AUTH_TOKEN)"
            )
            raise ConfigError(f"{missing} is not set: give both, or neither for the demo account")
        spec = ServeSpec(
            auth_id=check_auth_id(given_id),
            auth_token=given_token,
            main_auth_token=main,
            host=host,
            port=port,
            scenario=scenario,
            time_factor=time_factor,
            scheme=scheme,
        )
        unprintable = re.compile(r"[\x00-\x1f\x7f-\x9f]")

        def shown(event: dict[str, Any]) -> None:
            if json_out:
                line = json.dumps(event, ensure_ascii=False)
            else:
                line = unprintable.sub("?", describe(event))
                if event["event"] == "listening" and spec.auth_id == DEMO_AUTH_ID:
                    line += f", auth token {DEMO_AUTH_TOKEN} (the demo account)"
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

        async def until_stopped() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, stop.set)
            await serve_spec(spec, shown, stop)

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(until_stopped())
        return ExitCode.OK

    raise typer.Exit(run(action))


# -- check: grade the user's own handler --------------------------------------------------

# Typer reads the choices when the command is declared; verifycli.choices is light to import.
from verifycli.choices import Channel, CheckMethod  # noqa: E402


@app.command(short_help="Grade your own callback handler.")
def check(
    url: Annotated[
        str, typer.Argument(metavar="URL", help="Your handler, as reachable from here.")
    ],
    method: Annotated[
        CheckMethod,
        typer.Option("--method", help="Call it as POST, GET, or each in turn."),
    ] = CheckMethod.POST,
    channel: Annotated[
        Channel,
        typer.Option("--channel", help="Channel the callbacks report on."),
    ] = Channel.SMS,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Sign for this URL (where the handler believes it is, behind a tunnel or "
            "proxy) while sending to URL.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each answer.")
    ] = 10.0,
    max_time: Annotated[
        float, typer.Option("--max-time", help="An answer slower than this fails 'answers fast'.")
    ] = 5.0,
    json_out: Annotated[
        bool,
        typer.Option("--json", help="One JSON object per check on stdout, nothing else there."),
    ] = False,
) -> None:
    """Send Verify callbacks, good and spoiled, to your handler and grade its answers."""

    def action() -> ExitCode:
        import asyncio

        from verifycli.check import CheckSpec, check_handler, passed
        from verifycli.config import load_settings
        from verifycli.ui import human_console, print_check_report, print_record

        spec = CheckSpec(
            url=url,
            method=method,
            channel=channel,
            public_url=public_url,
            timeout=timeout,
            max_time=max_time,
        )
        settings = load_settings()
        results = asyncio.run(check_handler(spec, settings.auth_token, settings.main_auth_token))
        if json_out:
            for result in results:
                print_record(result.to_json())
        else:
            where = spec.url + (f" (signed for {spec.public_url})" if spec.public_url else "")
            print_check_report(human_console(False), results, where)
        return ExitCode.OK if passed(results) else ExitCode.FLOW_FAILED

    raise typer.Exit(run(action))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
