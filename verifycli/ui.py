"""Everything Rich: the live table, the header and session panels, event details, errors."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from verifycli import layout
from verifycli.callbacks import PLIVO_FIELDS, CallbackEvent
from verifycli.errors import ConfigError
from verifycli.plivo import DONE, FAILED, ON_ITS_WAY
from verifycli.safe_text import json_safe, safe, safe_lines

if TYPE_CHECKING:
    from verifycli.check import Result
    from verifycli.config import Settings
    from verifycli.doctor import Check
    from verifycli.flows import Running
    from verifycli.listener import Sink
    from verifycli.relay import Outcome
    from verifycli.session import SessionResult, SessionState
    from verifycli.store import Filters, StoreReader
    from verifycli.tunnel import TunnelSpec

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
    console.print(Text.assemble(("error: ", "bold red"), safe_lines(message)), soft_wrap=True)


def print_warning(message: str, console: Console | None = None) -> None:
    console = console or error_console()
    console.print(Text.assemble(("warning: ", "bold yellow"), safe_lines(message)), soft_wrap=True)


def print_note(message: str, console: Console | None = None) -> None:
    (console or error_console()).print(message, soft_wrap=True, highlight=False, markup=False)


def _local(received_at: str) -> datetime | None:
    try:
        return datetime.fromisoformat(received_at).astimezone()
    except ValueError:
        return None


def _clock(received_at: str) -> str:
    moment = _local(received_at)
    if moment is None:
        return received_at
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _stamp(received_at: str) -> str:
    """The local time whole, with its date and offset: for pipes, where no header says them."""
    moment = _local(received_at)
    if moment is None:
        return received_at
    return moment.isoformat(timespec="milliseconds")


def local_zone() -> str:
    """The offset every shown time is in, said once: `UTC+01:00`."""
    offset = datetime.now().astimezone().strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"


def _cell_text(value: object) -> str:
    """The one place a cell's text is made from what a sender sent: one line, as received.

    Every cell of the table and of the plain lines goes through here, so a sanitiser for
    control characters plugs in at this one point.
    """
    text = "" if value is None else str(value)
    text = " ".join(text.split()) if any(c in text for c in "\t\n\r\v\f") else text
    return safe(text)


def _verdict_mark(verdict: str) -> str:
    return {"valid": "✓", "invalid": "✗", "replayed": "✗"}.get(verdict, "·")


def _signature_cell(event: CallbackEvent) -> Text:
    sig = event.signature
    label = f"{_verdict_mark(sig.verdict)} {sig.verdict}" + (f" {sig.scheme}" if sig.scheme else "")
    return Text(label, style=tone(sig.verdict))


def _ok_style(status: int | None) -> str:
    return "green" if status is not None and 200 <= status < 300 else "red"


# Plivo retries "if an HTTP 200 status code is not returned": 201 and 204 are retried too.
WILL_RETRY = "Plivo will retry"


def _answer_words(status: int | None) -> str:
    if status is None:
        return "—"
    return str(status) if status == 200 else f"{status} ({WILL_RETRY})"


def _answer_style(status: int | None) -> str:
    return "green" if status == 200 else "yellow" if _ok_style(status) == "green" else "red"


def _answer_cell(event: CallbackEvent) -> Text:
    status = event.response_status
    return Text(_answer_words(status), style=_answer_style(status))


def forward_summary(forward: dict[str, Any]) -> str:
    """`201 in 12 ms`, or the error: what the user's app made of a forwarded callback."""
    status = forward.get("status")
    elapsed = forward.get("elapsed_ms")
    took = f" in {elapsed:.0f} ms" if isinstance(elapsed, (int, float)) else ""
    if status is not None:
        return f"{status}{took}"
    return f"✗ {safe(str(forward.get('error') or 'no answer'))}"


def _short_error(error: str) -> str:
    """A forward error in a table cell: the reason in its parentheses (`connection refused`)."""
    if error.startswith("no answer within "):
        return "no answer in " + error.removeprefix("no answer within ")
    if error.endswith(")") and "(" in error:
        error = error[error.rindex("(") + 1 : -1]
    return error


def _forward_cells(fwd: dict[str, Any] | None) -> tuple[str, str]:
    """The forward's outcome for a wide table (`201 in 12 ms`) and a narrower one (`201`)."""
    if not fwd:
        return "", ""
    status = fwd.get("status")
    if status is None:
        error = _cell_text(_short_error(str(fwd.get("error") or "no answer")))
        return f"✗ {error}", "✗ " + error.split()[-1]
    return _cell_text(forward_summary(fwd)), _cell_text(status)


def row_cells(event: CallbackEvent, with_date: bool = False) -> dict[str, str]:
    """Every text the table may show for `event`, by field; layout.fit picks which to show."""
    session = event.plivo("session_uuid") or ""
    error = _cell_text(event.plivo("channel_error_code") or "")
    meaning = event.channel_error_text
    sig = event.signature
    forward, forward_short = _forward_cells(event.forward)
    moment = _local(event.received_at)
    return {
        "id": str(event.id) if event.id is not None else "",
        "date": moment.strftime("%Y-%m-%d") if with_date and moment else "",
        "time": _clock(event.received_at),
        "clock": _clock(event.received_at)[:8],
        "session": _cell_text(session[:8]),
        "seq": _cell_text(event.plivo("attempt_sequence") or ""),
        "method": _cell_text(event.method),
        "path": _cell_text(event.path),
        "channel": _cell_text(event.plivo("channel") or ""),
        "channel_status": _cell_text(event.plivo("channel_status") or ""),
        "session_status": _cell_text(event.plivo("session_status") or ""),
        "error": error,
        "error_paren": f"({error})" if error else "",
        # The short form of the code's meaning (Plivo's published tables): `(Network Error)`.
        "error_text": f"({_cell_text(meaning.split(':', 1)[0])})" if error and meaning else "",
        "verdict": f"{_verdict_mark(sig.verdict)} {sig.verdict}",
        # Narrow: a tick and the scheme say "valid"; any other verdict keeps its word.
        "verdict_compact": f"✓ {sig.scheme}"
        if sig.verdict == "valid" and sig.scheme
        else sig.verdict,
        "scheme": sig.scheme or "",
        "retry": f"↻ #{event.retry_of}" if event.retry_of else "",
        "retry_short": f"↻{event.retry_of}" if event.retry_of else "",
        "retry_mark": "↻" if event.retry_of else "",
        "answer": str(event.response_status) if event.response_status is not None else "—",
        "answer_note": f"({WILL_RETRY})" if event.response_status not in (None, 200) else "",
        "forward": forward,
        "forward_short": forward_short,
    }


def _error_words(event: CallbackEvent) -> str:
    """The error code with the short form of its meaning: `20 (Network Error)`."""
    code = event.plivo("channel_error_code") or ""
    text = event.channel_error_text
    if not code.strip() or text is None:
        return code
    return f"{code} ({text.split(':', 1)[0]})"


def _part_style(event: CallbackEvent, part: str) -> str:
    if part in ("channel_status", "session_status"):
        return tone(event.plivo(part))
    if part in ("verdict", "scheme", "verdict_compact"):
        return tone(event.signature.verdict)
    if part in ("retry", "retry_short", "retry_mark"):
        return "yellow"
    if part in ("error", "error_paren", "error_text"):
        return "red"
    if part in ("answer", "answer_note"):
        return _answer_style(event.response_status)
    if part in ("forward", "forward_short") and event.forward:
        status = event.forward.get("status")
        return _ok_style(status if isinstance(status, int) else None)
    if part in ("date", "clock", "time"):
        return "dim" if part == "date" else ""
    return ""


def _styled(event: CallbackEvent, cells: dict[str, str], column: layout.Column) -> Text:
    # Every cell is Text: a str cell is read as Rich markup, and a sender's "[/]" would crash.
    text = Text(no_wrap=True, overflow="ignore")
    for part in column.parts:
        value = cells.get(part, "")
        if value:
            if text:
                text.append(" ")
            text.append(value, style=_part_style(event, part))
    return text


def events_table(
    events: Iterable[CallbackEvent], width: int = 10_000, with_date: bool | None = None
) -> RenderableType:
    """The callbacks as a table that fits `width` whole; one line per callback when none can."""
    rows = list(events)
    if with_date is None:
        with_date = layout.spans_days([e.received_at[:10] for e in rows])
    cells = [row_cells(event, with_date) for event in rows]
    fitted = layout.fit(cells, width, cell_len)
    if fitted.lines:
        return Group(*(Text(plain_line(event)) for event in rows))
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, layout.GAP - 1, 0, 0),
        header_style="bold",
        expand=False,
    )
    for column, size in zip(fitted.columns, fitted.widths, strict=True):
        table.add_column(
            column.header,
            width=size,
            no_wrap=True,
            overflow="ignore",
            justify="right" if column.right else "left",
        )
    for event, row in zip(rows, cells, strict=True):
        table.add_row(*(_styled(event, row, column) for column in fitted.columns))
    return table


def plain_line(event: CallbackEvent, stamp: bool = False) -> str:
    """One line per event for logs and pipes, every field whole; `stamp`: date and offset too."""
    sig = event.signature
    text = _cell_text
    parts = [
        f"#{event.id}",
        _stamp(event.received_at) if stamp else _clock(event.received_at),
        text(event.method),
        text(event.path),
        f"session={text(event.plivo('session_uuid') or '-')}",
        f"seq={text(event.plivo('attempt_sequence') or '-')}",
        f"channel={text(event.plivo('channel') or '-')}",
        f"status={text(event.plivo('channel_status') or '-')}"
        f"/{text(event.plivo('session_status') or '-')}",
        f"error={text(_error_words(event)) or '-'}",
        f"signature={sig.verdict}" + (f"({sig.scheme})" if sig.scheme else ""),
    ]
    if event.retry_of:
        parts.append(f"retry-of=#{event.retry_of}")
    parts.append(f"answer={_answer_words(event.response_status)}")
    if event.forward:
        parts.append(f"forward={text(forward_summary(event.forward))}")
    return " ".join(parts)


TSV_COLUMNS = (
    "id",
    "received_at",
    "method",
    "path",
    "session_uuid",
    "attempt_sequence",
    "channel",
    "channel_status",
    "session_status",
    "channel_error_code",
    "verdict",
    "scheme",
    "retry_of",
    "response_status",
    "forward",
)


def tsv_line(event: CallbackEvent) -> str:
    """One event as tab-separated values in TSV_COLUMNS' order; tabs and newlines become spaces."""
    sig = event.signature
    values: list[object] = [
        event.id,
        _stamp(event.received_at),
        event.method,
        event.path,
        *(event.plivo(name) for name in TSV_COLUMNS[4:10]),
        sig.verdict,
        sig.scheme,
        event.retry_of,
        event.response_status,
        forward_summary(event.forward) if event.forward else None,
    ]
    return "\t".join(_cell_text(v) for v in values)


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
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    # Text, not str: a path or URL with "[/]" in it is not Rich markup.
    public = Text(safe(header.public_url)) if header.public_url else None
    grid.add_row("public URL", public or Text("none: listening locally only", "yellow"))
    grid.add_row("local", Text(safe(header.local_url)))
    grid.add_row("store", Text(safe(header.store_path)))
    if header.inspector_url:
        grid.add_row("inspector", Text(safe(header.inspector_url)))
    counts = header.counts()
    line = Text()
    for name, value in counts.items():
        style = "red" if name in ("invalid", "write errors") and value else ""
        if line:
            line.append("   ")
        # No-break spaces: a narrow terminal wraps between counts, never inside one.
        line.append(f"{name} {value}".replace(" ", "\u00a0"), style=style)
    grid.add_row("counts", line)
    grid.add_row("times", Text(f"local, {local_zone()}"))
    if header.note:
        grid.add_row("note", Text(header.note, "yellow"))
    # Only as wide as what it holds: a header that fills 200 columns is mostly border.
    return Panel(grid, title="verifycli", title_align="left", border_style="blue", expand=False)


def _session_panel(state: SessionState) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("recipient", state.recipient)
    grid.add_row("channel", state.channel)
    grid.add_row("session", state.session_uuid or "…")
    grid.add_row("elapsed", f"{state.elapsed():.1f} s")
    grid.add_row("state", Text(state.state, style=tone(state.state) or "bold"))
    return Panel(
        grid, title="Verify session", title_align="left", border_style="magenta", expand=False
    )


def really_a_terminal(stream: IO[str]) -> bool:
    """Whether `stream` is a terminal, whatever FORCE_COLOR says: it adds colour, not redraws."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class LiveView:
    """The live table of callbacks; plain lines instead when the console is not a terminal.

    With `json_mode` the records on stdout are the display: no live redraws, no lines.
    It is the session runner's View too: waiting / ready / bound / message / pause / resume /
    ask / note / finish / inspector.
    """

    def __init__(
        self,
        console: Console,
        header: Header,
        session_filter: str | None = None,
        session: SessionState | None = None,
        max_rows: int | None = None,
        json_mode: bool = False,
    ) -> None:
        self.console = console
        self.header = header
        self.session_filter = session_filter
        self.session = session
        # render() shows the newest rows that fit the screen; this only bounds the memory.
        self._rows: deque[CallbackEvent] = deque(maxlen=max_rows or 500)
        self._live: Live | None = None
        self._lock = threading.Lock()
        self.live = console.is_terminal and really_a_terminal(console.file) and not json_mode
        self.lines = not json_mode
        self.up = False  # the listener is up: the panels are shown
        # What the spinner says it waits for; "" hides it.
        self._awaited = ""
        self._prompt: Text | None = None
        self._asking = threading.Event()
        self._idle = threading.Event()  # no prompt holds the terminal's settings
        self._idle.set()

    @property
    def whole(self) -> bool:
        """Plain lines cannot be redrawn, so they wait for the forward's outcome."""
        return not self.live

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def waiting(self, what: str) -> None:
        """Say what is awaited, with a spinner while no callback is shown (terminal only)."""
        self._awaited = what
        if self.live:
            self._start_live()

    def start(self) -> None:
        """The listener is up: show the header (once, when the output is not a terminal)."""
        first = not self.up
        self.up = True
        if self.live:
            self._start_live()
        elif first:
            self.console.print(_header_panel(self.header))

    def _start_live(self) -> None:
        if self._live is None:
            self._live = Live(
                console=self.console,
                get_renderable=self.render,
                refresh_per_second=4,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def stop(self) -> None:
        self._asking.clear()
        # A prompt left waiting (the code failed to deliver) gives the terminal back first.
        self._idle.wait(1.0)
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
        else:  # listen: nothing more to start; the session runner says what it awaits itself
            self._awaited = "waiting for the first callback"
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
        """The code: on the live view's bottom line while callbacks keep arriving above it;
        on a terminal without the live view, a hidden prompt with the view paused."""
        if self.live and really_a_terminal(sys.stdin):
            return self.ask_code(attempt, tries)
        self.pause()
        try:
            return ask_code(self.console, attempt, tries)
        finally:
            self.resume()

    def note(self, message: str) -> None:
        print_note(message, self.console)

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
            prompt = self._prompt
        width, height = self.console.size
        parts: list[RenderableType] = []
        if self.up:
            parts.append(_header_panel(self.header))
        if self.session is not None and self.up:
            parts.append(_session_panel(self.session))
        footer: RenderableType | None = None
        if prompt is not None:
            footer = prompt
        elif self._awaited and not rows:
            footer = Spinner("dots", Text(f"{self._awaited}… (Ctrl-C to stop)", style="dim"))
        used = sum(self._height(part, width) for part in parts) + (1 if footer else 0)
        if rows:
            parts.append(self._table(rows, width, max(height - used - 1, 1)))
        if footer is not None:
            parts.append(footer)
        return Group(*parts)

    def _height(self, part: RenderableType, width: int) -> int:
        options = self.console.options.update_width(width)
        return len(self.console.render_lines(part, options, pad=False))

    def _table(self, rows: list[CallbackEvent], width: int, budget: int) -> RenderableType:
        """The newest rows that fit in `budget` lines, as a table or as wrapped lines."""
        shown = rows[-max(budget - 2, 1) :]
        table = events_table(shown, width)
        while len(shown) > 1 and self._height(table, width) > budget:
            shown = shown[1:]
            table = events_table(shown, width)
        return table

    def event(self, event: CallbackEvent) -> None:
        if self.session_filter and not (event.plivo("session_uuid") or "").startswith(
            self.session_filter
        ):
            return
        with self._lock:
            self._rows.append(event)
        if not self.live and self.lines:
            self._print_line(plain_line(event))

    def _print_line(self, line: str) -> None:
        """What `console.print(Text(line), soft_wrap=True)` writes to a file or a pipe, without
        Rich's rendering: that cost more than the rest of handling a callback."""
        console = self.console
        if console.record or console.is_terminal:
            console.print(Text(line), highlight=False, soft_wrap=True)
        elif not console.quiet:
            stream = console.file
            stream.write(line + "\n")  # made safe by plain_line
            stream.flush()

    def ask_code(self, attempt: int, tries: int) -> str | None:
        """Read the code, masked, on the bottom line of the live view while it keeps updating.

        None when there is no terminal to read from, or the person ended input (Ctrl-D).
        """
        if not self.live or not really_a_terminal(sys.stdin):
            return ask_code(self.console, attempt, tries)
        suffix = f" (try {attempt} of {tries})" if tries > 1 else ""
        label = f"code{suffix}: "
        typed: list[str] = []

        def show() -> None:
            prompt = Text.assemble((label, "bold"), "•" * len(typed), ("▏", "blink"))
            with self._lock:
                self._prompt = prompt
            if self._live is not None:
                self._live.refresh()

        self._asking.set()
        self._idle.clear()
        show()
        try:
            return _read_masked(sys.stdin.fileno(), typed, show, self._asking)
        finally:
            with self._lock:
                self._prompt = None
            self._idle.set()

    def warn(self, message: str) -> None:
        print_warning(message, self.console)


def _read_masked(
    fd: int, typed: list[str], changed: Callable[[], None], asking: threading.Event
) -> str | None:
    """Read a line from the terminal `fd` with echo off, one key at a time, so nothing it types
    lands in the live view; stops (None) when `asking` is cleared or input ends."""
    import select
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)  # keys one by one, no echo; Ctrl-C still interrupts
        while asking.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(fd, 64)
            if not data:
                return None
            for char in data.decode("utf-8", "replace"):
                if char in "\r\n":
                    return "".join(typed)
                if char == "\x04":
                    return None
                if char in "\x7f\b":
                    if typed:
                        typed.pop()
                elif char == "\x15":  # Ctrl-U: start again
                    typed.clear()
                elif char.isprintable():
                    typed.append(char)
            changed()
        return None
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class JsonLines:
    """NDJSON on stdout: one event record per line and nothing else."""

    whole = True  # with --forward-to, a line is written once the forward is known

    def __init__(self, stream: IO[str] | None = None, session_filter: str | None = None) -> None:
        self.stream = stream or sys.stdout
        self.session_filter = session_filter

    def event(self, event: CallbackEvent) -> None:
        if self.session_filter and not (event.plivo("session_uuid") or "").startswith(
            self.session_filter
        ):
            return
        try:
            self.stream.write(json_safe(event.to_json()) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            # The reader left (`| head`): stdout now goes nowhere, so neither this nor Python's
            # flush at exit fails again; the listener drops this sink and goes on storing.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
            raise

    def warn(self, message: str) -> None:
        """Warnings are for people; they never go to the data stream."""


def listing_console() -> Console:
    """Listings are data: stdout always; when it is not a terminal, never cut to a width."""
    if really_a_terminal(sys.stdout):
        return Console(highlight=False, soft_wrap=False)
    return Console(highlight=False, soft_wrap=False, width=_UNCUT)


_UNCUT = 100_000


def print_events(
    events: list[CallbackEvent],
    store_path: str,
    *,
    stored: int | None = None,
    matched: int | None = None,
    tsv: bool = False,
) -> None:
    """The stored events on stdout, or why there are none (on stderr); notes when --limit cut
    some off. A terminal gets the table; a pipe gets one whole line per event, or TSV."""
    notes = error_console()
    if not events:
        if tsv:
            sys.stdout.write("\t".join(TSV_COLUMNS) + "\n")
        if stored == 0:
            message = f"no events in {store_path} yet: `verifycli listen` catches some"
        elif stored is not None:
            message = f"none of the {stored} events in {store_path} match these filters"
        else:
            message = f"no events stored in {store_path} match"
        notes.print(Text(message, style="yellow"))
        return
    if tsv:
        write_lines(["\t".join(TSV_COLUMNS), *(tsv_line(event) for event in events)])
    elif really_a_terminal(sys.stdout):
        console = listing_console()
        console.print(events_table(events, console.width))
        console.print(Text(f"times are local, {local_zone()}", style="dim"))
    else:
        write_lines(plain_line(event, stamp=True) for event in events)
    if matched is not None and matched > len(events):
        note = f"the newest {len(events)} of {matched}; --limit 0 shows them all"
        notes.print(Text(note, style="dim"))


def write_lines(lines: Iterable[str]) -> None:
    """Lines to stdout as they are: a pipe gets every character, a closed pipe ends quietly."""
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")
    out.flush()


_BODY_CHARS = 20_000


def _pretty_body(event: CallbackEvent) -> RenderableType:
    if event.body_encoding == "base64":
        size = len(event.raw_body())
        return Text(f"(not UTF-8: {size} bytes, shown base64) {event.body[:400]}", style="dim")
    # Shown as it was sent, but for control characters: as escapes, never raw.
    if not event.body:
        return Text("(empty)", style="dim")
    mime = event.content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            pretty = json.dumps(json.loads(event.body), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            pass
        else:
            pretty = safe_lines(json_safe(pretty))
            return Syntax(_clip(pretty), "json", word_wrap=True, background_color="default")
    if mime == "application/x-www-form-urlencoded":
        pairs = parse_qsl(event.body, keep_blank_values=True)
        if pairs:
            return _name_values(pairs)
    return Text(_clip(safe_lines(event.body)))


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
        shown = Text(safe(value), style=style(value)) if value else Text("(blank)", style="dim")
        grid.add_row(Text(safe(name)), shown)
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
    # The one zone every shown time is in (local), its offset written out.
    received = _stamp(event.received_at)
    console.print(Text.assemble((f"event #{event.id}", "bold"), "  ", (received, "dim")))
    request = Table.grid(padding=(0, 2))
    request.add_column(style="bold", no_wrap=True)
    request.add_column(overflow="fold")
    request.add_row("request", Text.assemble((safe(event.method), "bold"), " ", safe(event.url)))
    kind = safe(event.content_type) or "no content type"
    request.add_row("body", Text(f"{kind}, {size} bytes"))
    console.print(request)
    # An empty grid would measure as wide as the console: a piped one is not cut to a width.
    headers: RenderableType = (
        _name_values(event.headers.items()) if event.headers else Text("(none)", style="dim")
    )
    console.print(Panel(headers, title="headers", title_align="left", expand=False))
    console.print(Panel(_pretty_body(event), title="body", title_align="left", expand=False))
    plivo = [(PLIVO_FIELDS[n], v) for n in PLIVO_FIELDS if (v := event.plivo(n)) is not None]
    if meaning := event.channel_error_text:
        plivo = [
            (name, f"{value}  ({meaning})" if name == "ChannelErrorCode" else value)
            for name, value in plivo
        ]
    others = [(k, v) for k, v in event.fields.items() if k not in PLIVO_FIELDS.values()]
    if plivo or others:
        fields = _name_values([*plivo, *others], tone)
        console.print(Panel(fields, title="Plivo fields", title_align="left", expand=False))
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
        outcome.add_row("", Text(safe(sig.detail)))
    if sig.verdict not in ("unsigned",):
        outcome.add_row("checked for", Text(safe(event.url), style="dim"))
    outcome.add_row("deliveries", _chain_text(event, chain))
    outcome.add_row("answer", _answer_cell(event))
    if event.forward:
        fwd = event.forward
        status = fwd.get("status")
        outcome.add_row(
            "forwarded",
            Text.assemble(
                f"{safe(str(fwd.get('url')))}  ",
                (forward_summary(fwd), _ok_style(status if isinstance(status, int) else None)),
            ),
        )
    console.print(outcome)


def print_answer(console: Console, label: str, outcome: Outcome, lines: int = 5) -> None:
    """What a target answered a sent callback: status, time, the first lines of the body.

    A request that got no answer at all is one error line.
    """
    if outcome.status is None:
        print_error(safe(f"{label}: {outcome.error}"))
        return
    console.print(Text(safe(label)), soft_wrap=True)
    status = Text.assemble(
        "  ",
        (safe(f"{outcome.status} {outcome.reason}".rstrip()), f"bold {_ok_style(outcome.status)}"),
        (f" in {outcome.elapsed_ms:.1f} ms", "dim"),
    )
    console.print(status)
    body = outcome.body_head.splitlines()
    for line in body[:lines]:
        shown = line if len(line) <= 160 else line[:159] + "…"
        console.print(Text.assemble(("  │ ", "dim"), safe(shown)), soft_wrap=True)
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
            why.add_row(mark, Text.assemble((f"{result.check}: ", "bold"), safe(result.detail)))
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
    table.add_column(f"time ({local_zone()})")
    table.add_column("status")
    for when, what in state.timeline:
        table.add_row(_clock(when), Text(what, style=tone(what.split()[-1])))
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


def print_listen_summary(header: Header) -> None:
    """listen's last line: what it caught and where it is kept."""
    counts = header.counts()
    caught = ", ".join(f"{counts.get(name, 0)} {name}" for name in ("received", "valid", "invalid"))
    print_note(f"{caught}; stored in {header.store_path}: `verifycli events` lists them")


def print_record(record: dict[str, Any]) -> None:
    sys.stdout.write(json_safe(json.dumps(record, ensure_ascii=False)) + "\n")


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
    settings: Settings, as_json: bool, session_filter: str | None, tunnel: TunnelSpec
) -> Iterator[tuple[LiveView, list[Sink]]]:
    """`listen`'s outputs: the live view (and NDJSON on stdout with --json); stopped after,
    then one line on what was caught, once the listener was up."""
    header = Header(store_path=str(settings.store_path))
    if not settings.auth_token:
        header.note = "PLIVO_AUTH_TOKEN is not set: signatures are not checked"
    view = LiveView(
        human_console(as_json), header, session_filter=session_filter, json_mode=as_json
    )
    sinks: list[Sink] = [view]
    if as_json:
        sinks.append(JsonLines(session_filter=session_filter))
    view.waiting(opening(tunnel))
    try:
        yield view, sinks
    finally:
        view.stop()
        if view.up:
            print_listen_summary(header)


def opening(tunnel: TunnelSpec) -> str:
    """What the spinner says while the listener (and the tunnel) start."""
    return "opening the ngrok tunnel" if tunnel.kind == "ngrok" else "starting the listener"


def session_view(as_json: bool, store_path: object, note: str) -> tuple[LiveView, Sink | None]:
    """send/demo's outputs: the live view with the session panel, and NDJSON with --json."""
    header = Header(store_path=str(store_path), note=note)
    view = LiveView(human_console(as_json), header, json_mode=as_json)
    return view, JsonLines() if as_json else None


def list_events(
    reader: StoreReader, filters: Filters, limit: int, as_json: bool, tsv: bool = False
) -> None:
    """`events`: the newest `limit` matches (0: all) as a table, one JSON record a line, or TSV;
    on stdout, never cut to a width when piped."""
    if as_json and tsv:
        raise ConfigError("--json and --tsv do not go together: pick one")
    cap = limit or None
    store_path = str(reader.path)
    if as_json:
        written = 0
        for line in reader.iter_json(filters, cap):
            sys.stdout.write(json_safe(line) + "\n")
            written += 1
        sys.stdout.flush()
        if not written:
            print_events([], store_path, stored=reader.count())
        return
    shown = list(reader.iter_events(filters, cap))
    full = cap is not None and len(shown) == cap
    print_events(
        shown,
        store_path,
        stored=None if shown else reader.count(),
        matched=reader.count(filters) if full else len(shown),
        tsv=tsv,
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
            line = json_safe(json.dumps(event, ensure_ascii=False))
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
