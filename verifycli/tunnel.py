"""The public URL that callbacks reach: an ngrok tunnel through pyngrok, a URL given, or none."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from verifycli.config import check_http_url
from verifycli.errors import ConfigError, TunnelError
from verifycli.plivo import bracket
from verifycli.pyngrok_private import monitor_thread, registered_process, silence_download_progress

if TYPE_CHECKING:
    from pyngrok.conf import PyngrokConfig
    from pyngrok.log import NgrokLog
    from pyngrok.process import NgrokProcess

    from verifycli.config import Secret

__all__ = ["WAY_OUT", "Tunnel", "TunnelKind", "TunnelSpec", "check_public_url", "open_tunnel"]

TunnelKind = Literal["ngrok", "public-url", "none"]

WAY_OUT = "use --public-url URL with another tunnel (cloudflared, ssh -R), or --no-tunnel"
AUTHTOKEN_HINT = (
    "set NGROK_AUTHTOKEN to your authtoken (https://dashboard.ngrok.com/get-started/your-authtoken)"
)
_AUTH_CODES = {"ERR_NGROK_105", "ERR_NGROK_106", "ERR_NGROK_107", "ERR_NGROK_4018"}
_PYNGROK_LOGGERS = (
    "pyngrok",
    "pyngrok.agent",
    "pyngrok.installer",
    "pyngrok.ngrok",
    "pyngrok.process",
    "pyngrok.process.ngrok",
)
_REDACTED = "********"
# A listener bound to every interface is reached by the agent through loopback.
_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}
_MAX_MESSAGE = 400


class Tunnel:
    """Where Plivo should send callbacks; for kind "ngrok" it also owns the agent process."""

    def __init__(self, public_url: str, kind: TunnelKind, *, agent: _Agent | None = None) -> None:
        self.public_url = public_url
        self.kind: TunnelKind = kind
        self._agent = agent
        self._closed = False

    def alive(self) -> bool:
        """False once closed, or once the ngrok agent behind the tunnel has exited."""
        if self._closed:
            return False
        return self._agent is None or self._agent.alive()

    def close(self) -> None:
        """Take the tunnel down and end the ngrok agent; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._agent is not None:
            self._agent.stop()

    def __enter__(self) -> Tunnel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Tunnel({self.public_url!r}, kind={self.kind!r})"


def open_tunnel(
    *,
    local_host: str,
    local_port: int,
    public_url: str | None = None,
    no_tunnel: bool = False,
    ngrok_authtoken: Secret | None = None,
    ngrok_path: str | None = None,
    config_path: str | None = None,
    timeout: float = 15.0,
) -> Tunnel:
    """Give the listener at local_host:local_port a public URL, or raise TunnelError.

    Without `public_url` or `no_tunnel`, starts ngrok through pyngrok: `ngrok_path` None means
    pyngrok's choice (PYNGROK_NGROK_PATH, else its default path, downloading ngrok there when
    missing). While the agent starts, this process's stderr (fd 2) points at the null device,
    because ngrok prints fatal errors, authtoken included, to the stderr it inherits.
    """
    if public_url is not None:
        return Tunnel(check_public_url(public_url), "public-url")
    if no_tunnel:
        return Tunnel(f"http://{_hostport(local_host, local_port)}", "none")
    return _open_ngrok(
        upstream=f"http://{_hostport(_LOOPBACK.get(local_host, local_host), local_port)}",
        authtoken=ngrok_authtoken.reveal() if ngrok_authtoken else None,
        ngrok_path=ngrok_path,
        config_path=config_path,
        timeout=timeout,
    )


def check_public_url(url: str) -> str:
    """The --public-url value, checked and without its trailing slash; ConfigError otherwise."""
    text, parts = check_http_url(url, "--public-url", "like https://example.trycloudflare.com")
    if "?" in text or "#" in text:
        raise ConfigError(
            f"--public-url {text!r} must not have a query (?) or fragment (#): "
            "give the tunnel's base URL, which callbacks get their own paths under"
        )
    return f"{parts.scheme.lower()}://{parts.netloc}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class TunnelSpec:
    """How the outside world reaches the listener: ngrok, a public URL the user runs, or none."""

    kind: TunnelKind = "ngrok"
    public_url: str | None = None
    ngrok_path: str | None = None
    ngrok_config: str | None = None

    def __post_init__(self) -> None:
        if self.public_url is not None:
            object.__setattr__(self, "public_url", check_public_url(self.public_url))
            object.__setattr__(self, "kind", "public-url")
        elif self.kind == "public-url":
            raise ConfigError("a tunnel you run needs its address: --public-url URL")

    @classmethod
    def from_flags(cls, public_url: str | None, no_tunnel: bool) -> TunnelSpec:
        """--public-url wins over --no-tunnel; neither means ngrok."""
        return cls("none" if no_tunnel else "ngrok", public_url)

    def open(
        self, host: str, port: int, ngrok_authtoken: Secret | None, timeout: float = 15.0
    ) -> Tunnel:
        """The tunnel to the listener at host:port (blocking: ngrok takes seconds to start)."""
        return open_tunnel(
            local_host=host,
            local_port=port,
            public_url=self.public_url,
            no_tunnel=self.kind == "none",
            ngrok_authtoken=ngrok_authtoken,
            ngrok_path=self.ngrok_path,
            config_path=self.ngrok_config,
            timeout=timeout,
        )


def _hostport(host: str, port: int) -> str:
    return f"{bracket(host)}:{port}"


class _Agent:
    """A running ngrok agent that pyngrok started for one of our tunnels."""

    def __init__(self, config: PyngrokConfig, process: NgrokProcess, ngrok_url: str) -> None:
        self.config = config
        self.process = process
        self.ngrok_url = ngrok_url
        # Kept now: pyngrok drops its reference when the thread ends, and stop() must join it
        # before closing the pipe the thread reads.
        self.monitor = monitor_thread(process)

    def alive(self) -> bool:
        return self.process.proc.poll() is None

    def stop(self) -> None:
        from pyngrok import ngrok
        from pyngrok.exception import PyngrokError

        try:
            if self.alive():
                # Only a courtesy to the agent: killing it below ends the tunnel anyway.
                with contextlib.suppress(PyngrokError, OSError):
                    ngrok.disconnect(self.ngrok_url, self.config)
        finally:
            _end_agent(self.config, self.process, self.monitor)


def _end_agent(
    config: PyngrokConfig,
    process: NgrokProcess | None,
    monitor: threading.Thread | None = None,
) -> None:
    """Kill the agent and close its pipe, so no process or descriptor outlives the tunnel."""
    from pyngrok import ngrok

    ngrok.kill(config)
    if process is None:
        return
    proc = process.proc
    if proc.poll() is None:  # pyngrok had already forgotten it
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()
    monitor = monitor or monitor_thread(process)
    if monitor is not None and monitor is not threading.current_thread():
        monitor.join(timeout=2.0)
        if monitor.is_alive():
            return  # closing the pipe under a reading thread would fail in that thread
    if proc.stdout is not None:
        with contextlib.suppress(OSError):
            proc.stdout.close()


class _StartupWatch:
    """Kills an agent still starting after `timeout` seconds.

    pyngrok checks its startup timeout only between log lines, so an agent that goes quiet
    (waiting on a cloud it cannot reach) would block it forever.
    """

    def __init__(self, ngrok_path: str, timeout: float) -> None:
        self.ngrok_path = ngrok_path
        self.timeout = timeout
        self.process: NgrokProcess | None = None
        self.fired = False
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="verifycli-ngrok-startup", daemon=True
        )

    def saw(self, log: NgrokLog) -> None:
        """pyngrok's log_event_callback: the first line proves our agent is registered."""
        if self.process is None:
            self.process = registered_process(self.ngrok_path)

    def __enter__(self) -> _StartupWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        deadline: float | None = None
        while not self._done.wait(0.02):
            if self.process is None:
                self.process = registered_process(self.ngrok_path)
            if self.process is None:
                continue
            if deadline is None:
                # Counted from the spawn, as pyngrok counts its own startup_timeout.
                deadline = time.monotonic() + self.timeout
            if time.monotonic() >= deadline and self.process.proc.poll() is None:
                self.fired = True
                with contextlib.suppress(OSError):
                    self.process.proc.kill()
                return


class _Redact(logging.Filter):
    """Takes secrets out of pyngrok's log records, whichever handler ends up showing them."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            redacted = _scrub(message, self.secrets)
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


_REDACT = _Redact()
_quieted = False
_setup_lock = threading.Lock()
_stderr_lock = threading.Lock()


def _quiet_pyngrok(secrets: Iterable[str]) -> None:
    global _quieted
    with _setup_lock:
        if not _quieted:
            # A handler here keeps logging's last-resort handler from printing pyngrok's
            # warnings and ngrok's error lines on a terminal nobody configured logging for.
            logging.getLogger("pyngrok").addHandler(logging.NullHandler())
            for name in _PYNGROK_LOGGERS:
                logging.getLogger(name).addFilter(_REDACT)
            _quieted = True
        _REDACT.secrets.update(s for s in secrets if s)
    silence_download_progress()


@contextlib.contextmanager
def _agent_environment(authtoken: str | None) -> Iterator[None]:
    """NGROK_AUTHTOKEN set (or unset) in the environment the agent inherits, only while
    pyngrok starts it; called under _stderr_lock, so no two starts mix their tokens."""
    saved = os.environ.get("NGROK_AUTHTOKEN")
    if authtoken:
        os.environ["NGROK_AUTHTOKEN"] = authtoken
    else:
        os.environ.pop("NGROK_AUTHTOKEN", None)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("NGROK_AUTHTOKEN", None)
        else:
            os.environ["NGROK_AUTHTOKEN"] = saved


@contextlib.contextmanager
def _agent_stderr_discarded() -> Iterator[None]:
    """Point fd 2 at the null device while pyngrok spawns the agent, which inherits it.

    pyngrok gives no way to choose the agent's stderr, where ngrok writes fatal errors with the
    authtoken in them; everything the agent logs still reaches pyngrok through its stdout.
    """
    with _stderr_lock:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:
            yield  # no stderr to protect
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def _open_ngrok(
    *,
    upstream: str,
    authtoken: str | None,
    ngrok_path: str | None,
    config_path: str | None,
    timeout: float,
) -> Tunnel:
    from pyngrok import conf, ngrok

    if ngrok_path is not None and not os.path.isfile(ngrok_path):
        # pyngrok would download ngrok to a missing path; one the user named is a mistake.
        raise TunnelError(f"ngrok was not found at {ngrok_path}: install it there, or {WAY_OUT}")
    config = conf.PyngrokConfig(
        ngrok_path=ngrok_path,
        config_path=config_path,
        auth_token=authtoken,
        startup_timeout=max(1, math.ceil(timeout)),
    )
    secrets = {s for s in (config.auth_token, config.api_key) if s}
    _quiet_pyngrok(secrets)
    # pyngrok would pass the token as `--authtoken TOKEN`, on a command line every local user
    # can read (ps); the agent reads NGROK_AUTHTOKEN from the environment it inherits instead.
    agent_token, config.auth_token = config.auth_token, None

    missing = not os.path.exists(config.ngrok_path)
    try:
        ngrok.install_ngrok(config)
    except Exception as exc:
        reason = _reason(exc, secrets)
        if missing:
            raise TunnelError(
                f"ngrok is not installed at {config.ngrok_path} and could not be downloaded "
                f"({reason}): install ngrok and set PYNGROK_NGROK_PATH to it, or {WAY_OUT}"
            ) from None
        raise TunnelError(
            f"the ngrok config {conf.get_config_path(config)} cannot be used ({reason}): "
            f"fix or remove it, or {WAY_OUT}"
        ) from None

    watch = _StartupWatch(config.ngrok_path, timeout)
    config.log_event_callback = watch.saw
    # A name of our own: pyngrok's default one embeds the upstream URL, slashes and all,
    # and the agent API path built from it cannot address the tunnel to take it down.
    name = f"verifycli-{uuid.uuid4().hex[:12]}"
    try:
        with watch, _agent_stderr_discarded(), _agent_environment(agent_token):
            created = ngrok.connect(upstream, "http", name=name, pyngrok_config=config)
        process = watch.process or registered_process(config.ngrok_path)
        if process is None or created.public_url is None:
            raise TunnelError(f"ngrok started no tunnel; {WAY_OUT}")
        url = created.public_url
        if not url.startswith("https://"):
            others = ngrok.get_tunnels(config)
            url = next(
                (
                    t.public_url
                    for t in others
                    if t.public_url and t.public_url.startswith("https:")
                ),
                url,
            )
    except BaseException as exc:
        # Described before the agent ends: the reason may still be unread in its pipe.
        described = None
        if isinstance(exc, Exception) and not isinstance(exc, TunnelError):
            described = _describe(exc, watch, config, secrets)
        _end_agent(config, watch.process)
        if described is not None:
            raise TunnelError(described) from None
        raise
    return Tunnel(url.rstrip("/"), "ngrok", agent=_Agent(config, process, created.public_url))


def _describe(
    exc: Exception, watch: _StartupWatch, config: PyngrokConfig, secrets: set[str]
) -> str:
    from pyngrok.exception import PyngrokNgrokError, PyngrokNgrokHTTPError, PyngrokNgrokURLError

    hint = ""
    if (
        type(exc) is PyngrokNgrokError
        and not exc.ngrok_error
        and watch.process is not None
        and (late := _late_error(watch.process))
    ):
        exc = PyngrokNgrokError(str(exc), exc.ngrok_logs, late)
    if isinstance(exc, PyngrokNgrokHTTPError):
        what = f"the ngrok agent refused the tunnel: {_api_error(exc.body) or exc.status_code}"
    elif isinstance(exc, PyngrokNgrokURLError):
        what = f"the ngrok agent's API did not answer ({exc.reason})"
    elif isinstance(exc, PyngrokNgrokError) and (exc.ngrok_error or watch.fired):
        error = _first_line(exc.ngrok_error or "")
        if exc.ngrok_error_code and exc.ngrok_error_code not in error:
            error = f"{error.rstrip('.')} ({exc.ngrok_error_code})"
        if watch.fired:
            what = f"ngrok did not start within {watch.timeout:g}s" + (
                f": {error}" if error else ""
            )
        else:
            what = f"ngrok could not start: {error}"
        if exc.ngrok_error_code in _AUTH_CODES or "authtoken" in error.lower():
            hint = AUTHTOKEN_HINT
    elif isinstance(exc, PyngrokNgrokError) and watch.process is not None:
        code = watch.process.proc.poll()
        what = "ngrok exited during startup" + (f" (exit code {code})" if code is not None else "")
    elif isinstance(exc, OSError):
        what = f"ngrok at {config.ngrok_path} cannot be run ({exc.strerror or exc})"
    else:
        what = f"ngrok failed: {_reason(exc, secrets)}"
    message = f"{what}; {hint + ', or ' if hint else ''}{WAY_OUT}"
    return _scrub(" ".join(message.split()), secrets)


def _late_error(process: NgrokProcess) -> str | None:
    """The error an agent logged just before it exited, when pyngrok stopped reading first.

    pyngrok's startup loop gives up as soon as the process has exited, which can be before
    it has read the error lines still in the pipe.
    """
    from pyngrok.log import NgrokLog

    stdout = process.proc.stdout
    if stdout is None or process.proc.poll() is None:
        return None
    try:
        rest = stdout.read()
    except (OSError, ValueError):
        return None
    for line in rest.splitlines():
        log = NgrokLog(line)
        if log.lvl in ("ERROR", "CRITICAL") and log.err:
            return log.err
    return None


def _api_error(body: str) -> str:
    """ngrok's `{"msg": ..., "details": {"err": ...}}` error body as one short phrase."""
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return _first_line(body)
    if not isinstance(data, dict):
        return _first_line(body)
    details = data.get("details")
    err = details.get("err") if isinstance(details, dict) else None
    parts = [str(p) for p in (data.get("msg"), err) if p]
    text = _first_line(": ".join(parts))
    code = next((w for w in str(err).split() if w.startswith("ERR_NGROK_")), None)
    return f"{text.rstrip('.')} ({code})" if code and code not in text else text


def _first_line(text: str) -> str:
    # ngrok's logfmt escapes newlines, so its multi-line errors arrive with literal "\n".
    for line in text.replace("\\r", "\n").replace("\\n", "\n").splitlines():
        if line.strip():
            return line.strip()[:_MAX_MESSAGE]
    return ""


def _reason(exc: BaseException, secrets: Iterable[str]) -> str:
    text = str(exc)
    if "downloading ngrok from" in text:
        text = text.split(": ", 1)[-1]
    text = text.removeprefix("<urlopen error ").removesuffix(">")
    return _scrub(_first_line(text) or type(exc).__name__, secrets)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, _REDACTED)
    return text
