"""Everything Rich: the live table, the header and session panels, event details, errors."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from rich.console import Console, Group, RenderableType
from rich.control import strip_control_codes
from rich.live import Live
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from verifycli.callbacks import PLIVO_FIELDS, CallbackEvent
from verifycli.plivo import DONE, FAILED, ON_ITS_WAY

if TYPE_CHECKING:
    from verifycli.check import Result
    from verifycli.config import Settings
    from verifycli.doctor import Check
    from verifycli.flows import Running
    from verifycli.listener import Sink
    from verifycli.relay import Outcome
    from verifycli.session import SessionResult, SessionState
    from verifycli.store import Filters, StoreReader

# Plivo's statuses by what they mean, and signature verdicts alongside them.
GOOD = DONE | {"valid"}
BAD = FAILED | {"invalid", "replayed"}
WAIT = ON_ITS_WAY | {"unsigned", "unchecked"}


def tone(value: str | None) -> str:
    """The colour a status is shown in: green done, red failed, yellow on its way."""
    if value in GOOD:
        return "green"
    if value in BAD:
        return "red"
    if value in WAIT:
        return "yellow"
    return ""


def human_console(json_mode: bool) -> Console:
    """Where people read: stdout on a terminal, stderr when stdout is data or a pipe."""
    to_stdout = not json_mode and sys.stdout.isatty()
    return Console(stderr=not to_stdout, highlight=False, soft_wrap=False)


def error_console() -> Console:
    return Console(stderr=True, highlight=False)


def print_error(message: str, console: Console | None = None) -> None:
    console = console or error_console()
    console.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)


def print_warning(message: str, console: Console | None = None) -> None:
    console = console or error_console()
    console.print(Text.assemble(("warning: ", "bold yellow"), message), soft_wrap=True)


def print_note(message: str, console: Console | None = None) -> None:
    (console or error_console()).print(message, soft_wrap=True, highlight=False, markup=False)


def _clock(received_at: str) -> str:
    try:
        moment = datetime.fromisoformat(received_at).astimezone()
    except ValueError:
        return received_at
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _signature_cell(event: CallbackEvent) -> Text:
    sig = event.signature
    mark = {"valid": "✓", "invalid": "✗", "replayed": "✗"}.get(sig.verdict, "·")
    label = f"{mark} {sig.verdict}" + (f" {sig.scheme}" if sig.scheme else "")
    return Text(label, style=tone(sig.verdict))


def _ok_style(status: int | None) -> str:
    return "green" if status is not None and 200 <= status < 300 else "red"


# Plivo retries "if an HTTP 200 status code is not returned": 201 and 204 are retried too.
WILL_RETRY = "Plivo will retry"


def _answer_words(status: int | None) -> str:
    if status is None:
        return "—"
    return str(status) if status == 200 else f"{status} ({WILL_RETRY})"


def _answer_cell(event: CallbackEvent) -> Text:
    status = event.response_status
    style = "green" if status == 200 else "yellow" if _ok_style(status) == "green" else "red"
    return Text(_answer_words(status), style=style)


def forward_summary(forward: dict[str, Any]) -> str:
    """`201 in 12 ms`, or the error: what the user's app made of a forwarded callback."""
    status = forward.get("status")
    elapsed = forward.get("elapsed_ms")
    took = f" in {elapsed:.0f} ms" if isinstance(elapsed, (int, float)) else ""
    if status is not None:
        return f"{status}{took}"
    return f"✗ {forward.get('error') or 'no answer'}"


def _short_error(error: str) -> str:
    """A forward error in a table cell: the reason in parentheses, or the start of it."""
    if error.startswith("no answer within "):
        return "no answer in " + error.removeprefix("no answer within ")
    if error.endswith(")") and "(" in error:
        error = error[error.rindex("(") + 1 : -1]
    return error if len(error) <= 22 else error[:21] + "…"


def _forward_cell(event: CallbackEvent) -> Text:
    fwd = event.forward
    if not fwd:
        return Text("")
    status = fwd.get("status")
    if status is None:
        return Text(f"✗ {_short_error(str(fwd.get('error') or 'no answer'))}", style="red")
    return Text(forward_summary(fwd), style=_ok_style(status if isinstance(status, int) else None))


COLUMNS = (
    "#",
    "time",
    "session",
    "seq",
    "channel",
    "channel status",
    "session status",
    "error",
    "signature",
    "retry",
    "answer",
)
FORWARD_COLUMN = "forwarded"


def event_row(event: CallbackEvent, forward: bool = False) -> list[RenderableType]:
    # Every cell is Text: a str cell is read as Rich markup, and a sender's "[/]" would crash.
    session = event.plivo("session_uuid") or ""
    channel_status = event.plivo("channel_status")
    session_status = event.plivo("session_status")
    row: list[RenderableType] = [
        Text(str(event.id) if event.id is not None else ""),
        Text(_clock(event.received_at)),
        Text(session[:8]) if session else Text(event.path[:12], style="dim"),
        Text(event.plivo("attempt_sequence") or ""),
        Text(event.plivo("channel") or ""),
        Text(channel_status or "", style=tone(channel_status)),
        Text(session_status or "", style=tone(session_status)),
        _error_cell(event),
        _signature_cell(event),
        Text(f"↻ #{event.retry_of}", style="yellow") if event.retry_of else Text(""),
        _answer_cell(event),
    ]
    if forward:
        row.append(_forward_cell(event))
    return row


def _error_words(event: CallbackEvent) -> str:
    """The error code with the short form of its meaning: `20 (Network Error)`."""
    code = event.plivo("channel_error_code") or ""
    text = event.channel_error_text
    if not code.strip() or text is None:
        return code
    return f"{code} ({text.split(':', 1)[0]})"


def _error_cell(event: CallbackEvent) -> Text:
    return Text(_error_words(event), style="red" if event.channel_error_text else "")


def events_table(events: Iterable[CallbackEvent], title: str | None = None) -> Table:
    """The callbacks table; a `forwarded` column joins when any event was forwarded."""
    rows = list(events)
    forward = any(event.forward for event in rows)
    table = Table(title=title, expand=False, header_style="bold", pad_edge=False)
    for name in (*COLUMNS, FORWARD_COLUMN) if forward else COLUMNS:
        table.add_column(name, no_wrap=True, justify="right" if name in ("#", "seq") else "left")
    for event in rows:
        table.add_row(*event_row(event, forward))
    return table


def plain_line(event: CallbackEvent) -> str:
    """One line per event for logs and pipes, where a live table cannot redraw."""
    sig = event.signature
    parts = [
        f"#{event.id}",
        _clock(event.received_at),
        event.method,
        event.path,
        f"session={(event.plivo('session_uuid') or '-')[:8]}",
        f"seq={event.plivo('attempt_sequence') or '-'}",
        f"channel={event.plivo('channel') or '-'}",
        f"status={event.plivo('channel_status') or '-'}/{event.plivo('session_status') or '-'}",
        f"error={_error_words(event) or '-'}",
        f"signature={sig.verdict}" + (f"({sig.scheme})" if sig.scheme else ""),
    ]
    if event.retry_of:
        parts.append(f"retry-of=#{event.retry_of}")
    parts.append(f"answer={_answer_words(event.response_status)}")
    if event.forward:
        parts.append(f"forward={forward_summary(event.forward)}")
    return " ".join(parts)


@dataclass
class Header:
    """What the header panel shows; the flow fills it in as things start."""

    public_url: str | None = None
    local_url: str = ""
    store_path: str = ""
    note: str = ""
    counts: Callable[[], dict[str, int]] = dict
    inspector_url: str | None = None


def _header_panel(header: Header) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("public URL", header.public_url or Text("none: listening locally only", "yellow"))
    grid.add_row("local", header.local_url)
    grid.add_row("store", header.store_path)
    if header.inspector_url:
        grid.add_row("inspector", header.inspector_url)
    counts = header.counts()
    line = Text()
    for name, value in counts.items():
        style = "red" if name in ("invalid", "write errors") and value else ""
        line.append(f"{name} {value}   ", style=style)
    grid.add_row("counts", line)
    if header.note:
        grid.add_row("note", Text(header.note, "yellow"))
    return Panel(grid, title="verifycli", title_align="left", border_style="blue")


def _session_panel(state: SessionState) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("recipient", state.recipient)
    grid.add_row("channel", state.channel)
    grid.add_row("session", state.session_uuid or "…")
    grid.add_row("elapsed", f"{state.elapsed():.1f} s")
    grid.add_row("state", Text(state.state, style=tone(state.state) or "bold"))
    return Panel(grid, title="Verify session", title_align="left", border_style="magenta")


class LiveView:
    """The live table of callbacks; plain lines instead when the console is not a terminal.

    It is the session runner's View too: ready / bound / message / pause / resume / ask / finish.
    """

    def __init__(
        self,
        console: Console,
        header: Header,
        session_filter: str | None = None,
        session: SessionState | None = None,
        max_rows: int | None = None,
    ) -> None:
        self.console = console
        self.header = header
        self.session_filter = session_filter
        self.session = session
        self._max_rows = max_rows
        self._rows: deque[CallbackEvent] = deque(maxlen=self._fitting_rows())
        self._live: Live | None = None
        self._lock = threading.Lock()
        self.live = console.is_terminal

    def _fitting_rows(self) -> int:
        """As many rows as fit under the panels (the session panel takes six lines)."""
        panels = 20 if self.session else 14
        return self._max_rows or max(5, self.console.size.height - panels)

    @property
    def whole(self) -> bool:
        """Plain lines cannot be redrawn, so they wait for the forward's outcome."""
        return not self.live

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.live and self._live is None:
            self._live = Live(
                console=self.console,
                get_renderable=self.render,
                refresh_per_second=4,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        elif not self.live:
            self.console.print(_header_panel(self.header))

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def ready(self, running: Running, state: SessionState | None = None) -> None:
        """Fill the header from a listener that is up (and the session panel), then go live."""
        self.header.local_url = running.listener.local_url
        self.header.public_url = running.public_url
        self.header.counts = running.listener.stats.by_label
        if state is not None:
            self.session = state
            with self._lock:
                self._rows = deque(self._rows, maxlen=self._fitting_rows())
        self.start()

    def bound(self, session_uuid: str) -> None:
        """Show only this session's callbacks from now on."""
        self.session_filter = session_uuid

    def message(self, recipient: str, text: str) -> None:
        """The demo's simulated phone: what the recipient would see or hear."""
        phone_message(self.console, recipient, text)

    def pause(self) -> None:
        """Hand the terminal to a prompt; resume() redraws."""
        self.stop()

    def resume(self) -> None:
        self.start()

    def ask(self, attempt: int, tries: int) -> str | None:
        return ask_code(self.console, attempt, tries)

    def finish(self, state: SessionState, result: SessionResult) -> None:
        self.stop()
        print_summary(self.console, state, result.message, result.code == 0)

    def inspector(self, url: str, exposed: bool) -> None:
        """--ui: the inspector's URL in the header panel, and on stderr."""
        self.header.inspector_url = url
        announce_inspector(url, exposed)

    def render(self) -> RenderableType:
        with self._lock:
            rows = list(self._rows)
        parts: list[RenderableType] = [_header_panel(self.header)]
        if self.session is not None:
            parts.append(_session_panel(self.session))
        if rows:
            parts.append(events_table(rows))
        else:
            parts.append(Text("waiting for callbacks… (Ctrl-C to stop)", style="dim"))
        return Group(*parts)

    def event(self, event: CallbackEvent) -> None:
        if self.session_filter and event.plivo("session_uuid") != self.session_filter:
            return
        with self._lock:
            self._rows.append(event)
        if not self.live:
            self._print_line(plain_line(event))

    def _print_line(self, line: str) -> None:
        """What `console.print(Text(line), soft_wrap=True)` writes to a file or a pipe, without
        Rich's rendering: that cost more than the rest of handling a callback."""
        console = self.console
        if console.record or console.is_terminal:
            console.print(Text(line), highlight=False, soft_wrap=True)
        elif not console.quiet:
            stream = console.file
            stream.write(strip_control_codes(line) + "\n")
            stream.flush()

    def warn(self, message: str) -> None:
        print_warning(message, self.console)


class JsonLines:
    """NDJSON on stdout: one event record per line and nothing else."""

    whole = True  # with --forward-to, a line is written once the forward is known

    def __init__(self, stream: IO[str] | None = None, session_filter: str | None = None) -> None:
        self.stream = stream or sys.stdout
        self.session_filter = session_filter

    def event(self, event: CallbackEvent) -> None:
        if self.session_filter and event.plivo("session_uuid") != self.session_filter:
            return
        self.stream.write(event.to_json() + "\n")
        self.stream.flush()

    def warn(self, message: str) -> None:
        """Warnings are for people; they never go to the data stream."""


def print_events(
    console: Console,
    events: list[CallbackEvent],
    store_path: str,
    *,
    stored: int | None = None,
    matched: int | None = None,
) -> None:
    """The stored events as a table, or why there are none; notes when --limit cut some off."""
    if not events:
        if stored == 0:
            message = f"no events in {store_path} yet: `verifycli listen` catches some"
        elif stored is not None:
            message = f"none of the {stored} events in {store_path} match these filters"
        else:
            message = f"no events stored in {store_path} match"
        console.print(Text(message, style="yellow"))
        return
    console.print(events_table(events))
    if matched is not None and matched > len(events):
        note = f"the newest {len(events)} of {matched}; --limit 0 shows them all"
        console.print(Text(note, style="dim"))


_BODY_CHARS = 20_000


def _pretty_body(event: CallbackEvent) -> RenderableType:
    if event.body_encoding == "base64":
        size = len(event.raw_body())
        return Text(f"(not UTF-8: {size} bytes, shown base64) {event.body[:400]}", style="dim")
    if not event.body:
        return Text("(empty)", style="dim")
    mime = event.content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            pretty = json.dumps(json.loads(event.body), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            pass
        else:
            return Syntax(_clip(pretty), "json", word_wrap=True, background_color="default")
    if mime == "application/x-www-form-urlencoded":
        pairs = parse_qsl(event.body, keep_blank_values=True)
        if pairs:
            return _name_values(pairs)
    return Text(_clip(event.body))


def _clip(text: str) -> str:
    if len(text) <= _BODY_CHARS:
        return text
    more = len(text) - _BODY_CHARS
    return f"{text[:_BODY_CHARS]}\n… {more} more characters: `events show ID --json` has them all"


def _name_values(pairs: Iterable[tuple[str, str]], style: Callable[[str], str] = str) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="cyan", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in pairs:
        shown = Text(value, style=style(value)) if value else Text("(blank)", style="dim")
        grid.add_row(Text(name), shown)
    return grid


def _chain_text(event: CallbackEvent, chain: list[int]) -> Text:
    if len(chain) <= 1:
        return Text("first and only delivery")
    text = Text()
    for index, ident in enumerate(chain):
        if index:
            text.append(" → ")
        text.append(f"#{ident}", style="bold" if ident == event.id else "")
    which = "the first delivery" if event.retry_of is None else f"a retry of #{event.retry_of}"
    text.append(f"   (this is {which}; {len(chain) - 1} retries)", style="dim")
    return text


def print_event_detail(console: Console, event: CallbackEvent, chain: list[int]) -> None:
    """One stored callback whole: request, headers, body, Plivo fields, verdict, what followed."""
    size = len(event.raw_body())
    console.print(Text.assemble((f"event #{event.id}", "bold"), "  ", (event.received_at, "dim")))
    request = Table.grid(padding=(0, 2))
    request.add_column(style="bold", no_wrap=True)
    request.add_column(overflow="fold")
    request.add_row("request", Text.assemble((event.method, "bold"), " ", event.url))
    request.add_row("body", Text(f"{event.content_type or 'no content type'}, {size} bytes"))
    console.print(request)
    headers = _name_values(event.headers.items())
    console.print(Panel(headers, title="headers", title_align="left"))
    console.print(Panel(_pretty_body(event), title="body", title_align="left"))
    plivo = [(PLIVO_FIELDS[n], v) for n in PLIVO_FIELDS if (v := event.plivo(n)) is not None]
    if meaning := event.channel_error_text:
        plivo = [
            (name, f"{value}  ({meaning})" if name == "ChannelErrorCode" else value)
            for name, value in plivo
        ]
    others = [(k, v) for k, v in event.fields.items() if k not in PLIVO_FIELDS.values()]
    if plivo or others:
        fields = _name_values([*plivo, *others], tone)
        console.print(Panel(fields, title="Plivo fields", title_align="left"))
    if event.parse_error:
        print_warning(event.parse_error, console)

    sig = event.signature
    outcome = Table.grid(padding=(0, 2))
    outcome.add_column(style="bold", no_wrap=True)
    outcome.add_column(overflow="fold")
    verdict = Text(sig.verdict, style=tone(sig.verdict) or "bold")
    if sig.scheme:
        verdict.append(f" ({sig.scheme})")
    outcome.add_row("signature", verdict)
    if sig.detail:
        outcome.add_row("", Text(sig.detail))
    if sig.verdict not in ("unsigned",):
        outcome.add_row("checked for", Text(event.url, style="dim"))
    outcome.add_row("deliveries", _chain_text(event, chain))
    outcome.add_row("answer", _answer_cell(event))
    if event.forward:
        fwd = event.forward
        status = fwd.get("status")
        outcome.add_row(
            "forwarded",
            Text.assemble(
                f"{fwd.get('url')}  ",
                (forward_summary(fwd), _ok_style(status if isinstance(status, int) else None)),
            ),
        )
    console.print(outcome)


def print_answer(console: Console, label: str, outcome: Outcome, lines: int = 5) -> None:
    """What a target answered a sent callback: status, time, the first lines of the body.

    A request that got no answer at all is one error line.
    """
    if outcome.status is None:
        print_error(f"{label}: {outcome.error}")
        return
    console.print(Text(label), soft_wrap=True)
    status = Text.assemble(
        "  ",
        (f"{outcome.status} {outcome.reason}".rstrip(), f"bold {_ok_style(outcome.status)}"),
        (f" in {outcome.elapsed_ms:.1f} ms", "dim"),
    )
    console.print(status)
    body = outcome.body_head.splitlines()
    for line in body[:lines]:
        shown = line if len(line) <= 160 else line[:159] + "…"
        console.print(Text.assemble(("  │ ", "dim"), shown), soft_wrap=True)
    if len(body) > lines:
        console.print(Text(f"  │ … {len(body) - lines} more lines", style="dim"))


_MARK = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red")}


def print_checks(console: Console, checks: Iterable[Check], as_json: bool = False) -> None:
    """doctor's findings, one line each, with the fix under each one that needs it.

    As JSON: one object per check on stdout ({"name", "status", "detail", "fix"}).
    """
    if as_json:
        for check in checks:
            print_record(check.to_dict())
        return
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    failed = warned = 0
    for check in checks:
        mark, style = _MARK[check.status]
        failed += check.status == "fail"
        warned += check.status == "warn"
        grid.add_row(Text(mark, style=style), Text(check.name), Text(check.detail))
        if check.fix and check.status != "ok":
            grid.add_row("", "", Text(f"fix: {check.fix}", style=style))
    console.print(grid)
    if failed:
        console.print(Text(f"{failed} check{'s' if failed > 1 else ''} failed", style="bold red"))
    else:
        extra = f" ({warned} to look at)" if warned else ""
        console.print(Text(f"all checks passed{extra}", style="bold green"))


def print_check_report(console: Console, results: Iterable[Result], target: str) -> None:
    """check's report: a row per check (what was sent, what came back, pass or fail), then the
    likely cause of each fail, and the note of an informational check, in one sentence each."""
    table = Table(show_edge=False, header_style="bold", title=target, title_justify="left")
    table.add_column("check", overflow="fold")
    table.add_column("sent", overflow="fold", style="dim")
    table.add_column("answer", no_wrap=True)
    table.add_column("result", no_wrap=True)
    why = Table.grid(padding=(0, 1))
    why.add_column(no_wrap=True)
    why.add_column(overflow="fold")
    required = failed = 0
    for result in results:
        required += result.required
        failed += result.required and not result.passed
        if result.passed:
            verdict = Text("pass", style="green")
        else:
            verdict = Text("FAIL", "bold red") if result.required else Text("fail", "yellow")
        if result.status is None:
            answer = Text("none", style="red")
        else:
            ms = f" in {result.elapsed_ms:.1f} ms" if result.elapsed_ms is not None else ""
            answer = Text.assemble(str(result.status), (ms, "dim"))
        table.add_row(Text(result.check), Text(result.sent), answer, verdict)
        # A pass needs no reason, except an informational check's, whose note is the point.
        if not (result.passed and result.required):
            style = "red" if result.required else "yellow"
            mark = Text("✗" if not result.passed else "·", style=style)
            why.add_row(mark, Text.assemble((f"{result.check}: ", "bold"), result.detail))
    console.print(table)
    if why.row_count:
        console.print(why)
    if failed:
        console.print(Text(f"{failed} of {required} required checks failed", style="bold red"))
    else:
        console.print(Text(f"all {required} required checks passed", style="bold green"))


def print_summary(console: Console, state: SessionState, outcome: str, ok: bool) -> None:
    """The one-screen ending of send: the session's timeline, then the outcome."""
    console.print(
        Text.assemble(
            ("session ", "bold"),
            state.session_uuid or "(not created)",
            f"  {state.recipient} · {state.channel}",
        )
    )
    table = Table(show_edge=False, header_style="bold")
    table.add_column("time (UTC)")
    table.add_column("status")
    for when, what in state.timeline:
        table.add_row(when, Text(what, style=tone(what.split()[-1])))
    console.print(table)
    mark = "✓" if ok else "✗"
    console.print(
        Text(
            f"{mark} {outcome}  ({state.elapsed():.1f} s)", style="bold green" if ok else "bold red"
        )
    )


def ask_code(console: Console, attempt: int, tries: int) -> str | None:
    """Ask for the code, hidden; None when there is no one to answer."""
    from rich.prompt import Prompt

    suffix = f" (try {attempt} of {tries})" if tries > 1 else ""
    return Prompt.ask(f"code{suffix}", console=console, password=True)


def phone_message(console: Console, recipient: str, text: str) -> None:
    """The demo's simulated phone: what the recipient would see or hear."""
    console.print(
        Panel(
            Text(text, style="bold"),
            title=f"📱 {recipient}",
            title_align="left",
            border_style="green",
            expand=False,
        )
    )


def print_record(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


class Answers:
    """Answers to callbacks replay or trigger sent: readable on the console, or JSON on stdout."""

    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json
        self.console = human_console(as_json)

    def answer(self, label: str, outcome: Outcome, sent: dict[str, Any]) -> None:
        if not self.as_json:
            print_answer(self.console, label, outcome)
            return
        print_record(
            {
                **sent,
                "url": outcome.url,
                "status": outcome.status,
                "reason": outcome.reason or None,
                "elapsed_ms": round(outcome.elapsed_ms, 1),
                "error": outcome.error,
                "body_head": outcome.body_head,
            }
        )

    def note(self, message: str) -> None:
        print_note(message, self.console)


@contextlib.contextmanager
def listening(
    settings: Settings, as_json: bool, session_filter: str | None
) -> Iterator[tuple[LiveView, list[Sink]]]:
    """`listen`'s outputs: the live view (and NDJSON on stdout with --json); stopped after."""
    header = Header(store_path=str(settings.store_path))
    if not settings.auth_token:
        header.note = "PLIVO_AUTH_TOKEN is not set: signatures are not checked"
    view = LiveView(human_console(as_json), header, session_filter=session_filter)
    sinks: list[Sink] = [view]
    if as_json:
        sinks.append(JsonLines(session_filter=session_filter))
    try:
        yield view, sinks
    finally:
        view.stop()


def session_view(as_json: bool, store_path: object, note: str) -> tuple[LiveView, Sink | None]:
    """send/demo's outputs: the live view with the session panel, and NDJSON with --json."""
    view = LiveView(human_console(as_json), Header(store_path=str(store_path), note=note))
    return view, JsonLines() if as_json else None


def list_events(reader: StoreReader, filters: Filters, limit: int, as_json: bool) -> None:
    """`events`: the newest `limit` matches (0: all) as a table, or one JSON record a line."""
    cap = limit or None
    console = human_console(as_json)
    store_path = str(reader.path)
    if as_json:
        written = 0
        for line in reader.iter_json(filters, cap):
            sys.stdout.write(line + "\n")
            written += 1
        if not written:
            print_events(console, [], store_path, stored=reader.count())
        return
    shown = list(reader.iter_events(filters, cap))
    full = cap is not None and len(shown) == cap
    print_events(
        console,
        shown,
        store_path,
        stored=None if shown else reader.count(),
        matched=reader.count(filters) if full else len(shown),
    )


def announce_inspector(url: str, exposed: bool) -> None:
    """The inspector's URL, one line on stderr; a warning when it listens beyond loopback."""
    print_note(f"inspector: {url}")
    if exposed:
        print_warning(
            "the inspector listens beyond this machine: anyone who can reach it and has "
            "the token sees every callback (--ui-host 127.0.0.1 keeps it local)"
        )


def simulator_lines(as_json: bool, demo_token: str | None) -> Callable[[dict[str, Any]], None]:
    """`verifycli simulator`'s events on stdout: one readable line each, or one JSON object."""
    import re

    from verifycli.simulator import describe

    unprintable = re.compile(r"[\x00-\x1f\x7f-\x9f]")

    def shown(event: dict[str, Any]) -> None:
        if as_json:
            line = json.dumps(event, ensure_ascii=False)
        else:
            line = unprintable.sub("?", describe(event))
            if event["event"] == "listening" and demo_token:
                line += f", auth token {demo_token} (the demo account)"
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    return shown


def check_report(as_json: bool) -> Callable[[list[Result], str], None]:
    """check's results: the report on the console, or one JSON object per check on stdout."""

    def show(results: list[Result], target: str) -> None:
        if not as_json:
            print_check_report(human_console(False), results, target)
            return
        for result in results:
            print_record(result.to_json())

    return show
