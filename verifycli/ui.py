"""Everything Rich: the live table, the header and session panels, event details, errors."""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from verifycli.callbacks import CallbackEvent

if TYPE_CHECKING:
    from verifycli.send import Status

GOOD = {"delivered", "completed", "verified", "valid"}
BAD = {"failed", "undelivered", "no-answer", "expired", "invalid", "replayed", "busy"}
WAIT = {"queued", "sent", "ringing", "in-progress", "unsigned", "unchecked"}


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
    (console or error_console()).print(message, soft_wrap=True, highlight=False)


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


def _answer_cell(event: CallbackEvent) -> Text:
    status = event.response_status
    text = Text(
        str(status) if status is not None else "—", style="green" if status == 200 else "red"
    )
    fwd = event.forward
    if fwd:
        got = fwd.get("status")
        text.append(" → ")
        text.append(
            str(got) if got is not None else "error", style="green" if got == 200 else "red"
        )
    return text


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


def event_row(event: CallbackEvent) -> list[RenderableType]:
    session = event.plivo("session_uuid") or ""
    channel_status = event.plivo("channel_status")
    session_status = event.plivo("session_status")
    return [
        str(event.id) if event.id is not None else "",
        _clock(event.received_at),
        session[:8] or Text(event.path[:12], style="dim"),
        event.plivo("attempt_sequence") or "",
        event.plivo("channel") or "",
        Text(channel_status or "", style=tone(channel_status)),
        Text(session_status or "", style=tone(session_status)),
        event.plivo("channel_error_code") or "",
        _signature_cell(event),
        Text(f"↻ #{event.retry_of}", style="yellow") if event.retry_of else "",
        _answer_cell(event),
    ]


def events_table(events: Iterable[CallbackEvent], title: str | None = None) -> Table:
    table = Table(title=title, expand=False, header_style="bold", pad_edge=False)
    for name in COLUMNS:
        table.add_column(name, no_wrap=True, justify="right" if name in ("#", "seq") else "left")
    for event in events:
        table.add_row(*event_row(event))
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
        f"error={event.plivo('channel_error_code') or '-'}",
        f"signature={sig.verdict}" + (f"({sig.scheme})" if sig.scheme else ""),
    ]
    if event.retry_of:
        parts.append(f"retry-of=#{event.retry_of}")
    parts.append(f"answer={event.response_status}")
    if event.forward:
        parts.append(f"forward={event.forward.get('status') or event.forward.get('error')}")
    return " ".join(parts)


@dataclass
class Header:
    """What the header panel shows; the flow fills it in as things start."""

    public_url: str | None = None
    local_url: str = ""
    store_path: str = ""
    note: str = ""
    counts: Callable[[], dict[str, int]] = dict


def _header_panel(header: Header) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("public URL", header.public_url or Text("none: listening locally only", "yellow"))
    grid.add_row("local", header.local_url)
    grid.add_row("store", header.store_path)
    counts = header.counts()
    line = Text()
    for name, value in counts.items():
        style = "red" if name in ("invalid", "write errors") and value else ""
        line.append(f"{name} {value}   ", style=style)
    grid.add_row("counts", line)
    if header.note:
        grid.add_row("note", Text(header.note, "yellow"))
    return Panel(grid, title="verifycli", title_align="left", border_style="blue")


def _session_panel(state: Status) -> Panel:
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
    """The live table of callbacks; plain lines instead when the console is not a terminal."""

    def __init__(
        self,
        console: Console,
        header: Header,
        session_filter: str | None = None,
        session: Status | None = None,
        max_rows: int | None = None,
    ) -> None:
        self.console = console
        self.header = header
        self.session_filter = session_filter
        self.session = session
        rows = max_rows or max(5, console.size.height - (20 if session else 14))
        self._rows: deque[CallbackEvent] = deque(maxlen=rows)
        self._live: Live | None = None
        self._lock = threading.Lock()
        self.live = console.is_terminal

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

    def pause(self) -> None:
        """Hand the terminal to a prompt; resume() redraws."""
        self.stop()

    def resume(self) -> None:
        self.start()

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
            self.console.print(plain_line(event), highlight=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        print_warning(message, self.console)

    def note(self, message: str) -> None:
        print_note(message, self.console)


class JsonLines:
    """NDJSON on stdout: one event record per line and nothing else."""

    def __init__(self, stream: IO[str] | None = None, session_filter: str | None = None) -> None:
        self.stream = stream or sys.stdout
        self.session_filter = session_filter

    def event(self, event: CallbackEvent) -> None:
        if self.session_filter and event.plivo("session_uuid") != self.session_filter:
            return
        self.stream.write(json.dumps(event.to_record(), ensure_ascii=False) + "\n")
        self.stream.flush()

    def warn(self, message: str) -> None:
        """Warnings are for people; they never go to the data stream."""


def print_events(console: Console, events: list[CallbackEvent], store_path: str) -> None:
    if not events:
        console.print(f"no events stored in {store_path} match", style="yellow")
        return
    console.print(events_table(events))


def _pretty_body(event: CallbackEvent) -> RenderableType:
    if event.body_encoding == "base64":
        return Text(f"(not UTF-8; {len(event.raw_body())} bytes, base64) {event.body[:200]}")
    mime = event.content_type.split(";", 1)[0].strip().lower()
    if mime.endswith("json"):
        try:
            return Syntax(json.dumps(json.loads(event.body), indent=2), "json", word_wrap=True)
        except ValueError:
            pass
    if mime == "application/x-www-form-urlencoded" and event.fields:
        return Text("\n".join(f"{k}={v}" for k, v in event.fields.items()))
    return Text(event.body or "(empty)")


def print_event_detail(console: Console, event: CallbackEvent, chain: list[int]) -> None:
    sig = event.signature
    console.print(
        Text.assemble(
            (f"event #{event.id}  ", "bold"),
            (event.received_at, "dim"),
            "  ",
            (event.method, "bold"),
        )
    )
    console.print(Text.assemble(("url  ", "bold"), event.url))
    headers = Table.grid(padding=(0, 2))
    headers.add_column(style="cyan")
    headers.add_column()
    for name, value in event.headers.items():
        headers.add_row(name, value)
    console.print(Panel(headers, title="headers", title_align="left"))
    console.print(Panel(_pretty_body(event), title="body", title_align="left"))
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="cyan")
    fields.add_column()
    for name, value in event.fields.items():
        fields.add_row(name, Text(value, style=tone(value)) if value else Text("(blank)", "dim"))
    console.print(Panel(fields, title="Plivo fields", title_align="left"))
    if event.parse_error:
        print_warning(event.parse_error, console)
    verdict = Text.assemble(
        ("signature  ", "bold"),
        (sig.verdict, tone(sig.verdict)),
        f" ({sig.scheme})" if sig.scheme else "",
        " — ",
        sig.detail,
    )
    console.print(verdict, soft_wrap=True)
    if len(chain) > 1:
        console.print(Text.assemble(("deliveries  ", "bold"), " → ".join(f"#{i}" for i in chain)))
    console.print(Text.assemble(("answer  ", "bold"), str(event.response_status)))
    if event.forward:
        fwd = event.forward
        console.print(
            Text.assemble(
                ("forward  ", "bold"),
                f"{fwd.get('url')} → {fwd.get('status') or fwd.get('error')} "
                f"in {fwd.get('elapsed_ms')} ms",
            )
        )


def print_summary(console: Console, state: Status, outcome: str, ok: bool) -> None:
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
