"""doctor: check credentials, .env, ngrok, the store, the port and packages; say what to fix.

Each check is a function returning one Check. None of them writes anything, prints a
secret, or (without `online`) leaves this machine.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from verifycli import __version__
from verifycli.config import ENV_VARS, Secret, Settings, check_auth_id, load_settings, read_env_file
from verifycli.errors import ConfigError, ExitCode, PlivoApiError, StoreError, VerifyCliError

Status = Literal["ok", "warn", "fail"]

DEFAULT_PORT = 8080
# A session id no one has: asking for it proves the credentials without touching an account.
PROBE_SESSION = "00000000-0000-4000-8000-000000000000"
_TOKEN_FORM = re.compile(r"^[A-Za-z0-9]{40}$")
_UUID_FORM = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_OUR_PREFIXES = ("PLIVO_", "NGROK_", "VERIFYCLI_")
_NGROK_DOWNLOAD = "https://ngrok.com/download"
_NGROK_TOKEN_PAGE = "https://dashboard.ngrok.com/get-started/your-authtoken"
_NO_TUNNEL = "or skip ngrok with listen --public-url URL / --no-tunnel"


@dataclass(frozen=True)
class Check:
    """One finding: `warn` is worth a look but does not fail doctor."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def _ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


# -- configuration -------------------------------------------------------------------------


def check_env_file(
    env_file: Path, environ: Mapping[str, str] | None = None
) -> tuple[Check, Settings]:
    """Read `.env` the way every command does; the settings come back for the other checks."""
    name = ".env"
    if not env_file.exists():
        detail = f"none in {Path.cwd()} (optional): settings come from the environment"
        return _ok(name, detail), load_settings(environ, env_file=None)
    try:
        values = read_env_file(env_file)
    except ConfigError as exc:
        fix = "make it readable UTF-8 KEY=value lines, or remove it"
        failed = Check(name, "fail", str(exc).split(";", 1)[0], fix)
        return failed, load_settings(environ, env_file=None)
    settings = load_settings(environ, env_file=env_file)
    ours = sorted(k for k in values if k.startswith(_OUR_PREFIXES))
    unknown = [k for k in ours if k not in ENV_VARS]
    detail = f"read {env_file.resolve()}: {len(ours)} verifycli settings"
    if unknown:
        return (
            Check(
                name,
                "warn",
                f"{detail}; verifycli does not know {', '.join(unknown)}",
                f"rename to one of {', '.join(ENV_VARS)} (a typo leaves the setting unset)",
            ),
            settings,
        )
    return _ok(name, detail + " (the real environment wins over it)"), settings


def check_auth_id_set(auth_id: str | None) -> Check:
    name = "PLIVO_AUTH_ID"
    try:
        check_auth_id(auth_id)
    except ConfigError:
        if not auth_id:
            return Check(
                name,
                "fail",
                "not set",
                "export PLIVO_AUTH_ID=… or put it in .env; it is on the Overview page of "
                "console.plivo.com",
            )
        return Check(
            name,
            "fail",
            f"malformed: {len(auth_id)} characters starting {auth_id[:2]!r}",
            "it is 20 letters and digits starting MA (main account) or SA (subaccount): "
            "copy it again from the Overview page of console.plivo.com",
        )
    assert auth_id is not None
    kind = "main account" if auth_id.startswith("MA") else "subaccount"
    return _ok(name, f"{auth_id} ({kind})")


def _token_problem(name: str, token: Secret, auth_id: str | None) -> Check | None:
    value = token.reveal()
    if any(ch.isspace() or not ch.isprintable() for ch in value) or value[0] in "'\"":
        return Check(
            name,
            "fail",
            "contains spaces, quotes or control characters",
            f"set {name} to the token alone, as copied from console.plivo.com",
        )
    if auth_id and value == auth_id:
        return Check(
            name,
            "fail",
            "is the auth id, not the auth token",
            f"set {name} to the auth token shown next to the auth id on console.plivo.com",
        )
    if not _TOKEN_FORM.match(value):
        return Check(
            name,
            "warn",
            f"set, but {len(value)} characters: Plivo auth tokens are 40 letters and digits",
            "check it was copied whole; signatures will not match with a wrong token",
        )
    return None


def check_auth_token(token: Secret | None, auth_id: str | None) -> Check:
    name = "PLIVO_AUTH_TOKEN"
    if not token:
        return Check(
            name,
            "fail",
            "not set: signatures cannot be checked and send cannot call Plivo",
            "export PLIVO_AUTH_TOKEN=… or put it in .env (console.plivo.com, Overview page)",
        )
    return _token_problem(name, token, auth_id) or _ok(name, "set (40 characters, not shown)")


def check_main_token(main: Secret | None, token: Secret | None, auth_id: str | None) -> Check:
    name = "PLIVO_MAIN_AUTH_TOKEN"
    subaccount = bool(auth_id and auth_id.startswith("SA"))
    if not main:
        if subaccount:
            return Check(
                name,
                "warn",
                "not set: X-Plivo-Signature-Ma-* headers (signed with the main account's "
                "token) are left unchecked",
                "set it to the main account's auth token to check those too",
            )
        return _ok(name, "not set (only needed with a subaccount's auth id)")
    problem = _token_problem(name, main, auth_id)
    if problem is not None:
        return problem
    if token and main == token:
        return Check(
            name,
            "warn",
            "the same as PLIVO_AUTH_TOKEN",
            "set it to the main account's token, or unset it when the auth id is the main one",
        )
    return _ok(name, "set (not shown): Ma- signatures are checked")


def check_app_uuid(app_uuid: str | None) -> Check:
    name = "PLIVO_VERIFY_APP_UUID"
    if not app_uuid:
        return _ok(name, "not set (optional; send --app-uuid gives one per run)")
    if not _UUID_FORM.match(app_uuid):
        return Check(
            name,
            "fail",
            f"{app_uuid!r} is not a UUID",
            "copy the application's UUID from Verify > Applications on console.plivo.com",
        )
    return _ok(name, app_uuid)


def check_api_url(api_url: str | None) -> Check:
    name = "VERIFYCLI_PLIVO_API_URL"
    if not api_url:
        return _ok(name, "not set: API calls go to https://api.plivo.com")
    return Check(
        name,
        "warn",
        f"set to {api_url}: send and doctor --online call it instead of Plivo",
        "unset it unless you mean to use the simulator or a proxy",
    )


# -- ngrok ------------------------------------------------------------------------------------


def pyngrok_paths() -> tuple[str, str]:
    """Where `listen` will look for ngrok and its config: pyngrok's choice, as tunnel.py asks.

    A fresh PyngrokConfig, like tunnel.py builds, so PYNGROK_NGROK_PATH is read now.
    """
    from pyngrok import conf

    config = conf.PyngrokConfig()
    return config.ngrok_path, conf.get_config_path(config)


def _is_pyngrok_shim(path: str) -> bool:
    """pyngrok installs an `ngrok` script that runs (and first downloads) its own copy."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(1024)
    except OSError:
        return False
    return b"pyngrok" in head


def check_ngrok_binary(ngrok_path: str, path_env: str | None = None) -> Check:
    name = "ngrok"
    if os.path.isfile(ngrok_path) and os.access(ngrok_path, os.X_OK):
        return _ok(name, f"{ngrok_path} (pyngrok's copy, used by listen and send)")
    on_path = shutil.which("ngrok", path=path_env)
    if on_path and not _is_pyngrok_shim(on_path):
        return Check(
            name,
            "ok",
            f"{on_path} on PATH; listen uses pyngrok's copy at {ngrok_path}, downloading it "
            "there first",
            f"export PYNGROK_NGROK_PATH={on_path} to use this one instead",
        )
    return Check(
        name,
        "fail",
        f"not at {ngrok_path} and not on PATH",
        f"listen downloads it there on first use (needs internet), or install it from "
        f"{_NGROK_DOWNLOAD} and set PYNGROK_NGROK_PATH; {_NO_TUNNEL}",
    )


# An `authtoken:` key with a value, at the top (ngrok v2 files) or under `agent:` (v3). A line
# match rather than YAML: PyYAML is only pyngrok's dependency, not ours.
_AUTHTOKEN_LINE = re.compile(r"""^[ \t]*authtoken[ \t]*:[ \t]*["']?[^\s"'#]""", re.MULTILINE)


def _config_token(config_path: Path) -> bool:
    return bool(_AUTHTOKEN_LINE.search(config_path.read_text(encoding="utf-8")))


def check_ngrok_authtoken(token: Secret | None, config_path: str) -> Check:
    name = "ngrok authtoken"
    if token:
        return _ok(name, "NGROK_AUTHTOKEN is set (not shown)")
    path = Path(config_path)
    fix = (
        f"export NGROK_AUTHTOKEN=… or run `ngrok config add-authtoken …` "
        f"(your token: {_NGROK_TOKEN_PAGE}); {_NO_TUNNEL}"
    )
    if not path.exists():
        return Check(name, "fail", f"NGROK_AUTHTOKEN is not set and there is no {path}", fix)
    try:
        found = _config_token(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        return Check(name, "fail", f"cannot read {path}: {reason}", f"fix or remove it; {fix}")
    if found:
        return _ok(name, f"in {path} (not shown)")
    return Check(name, "fail", f"NGROK_AUTHTOKEN is not set and {path} has no authtoken", fix)


# -- the machine -------------------------------------------------------------------------------


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def check_store(path: Path) -> Check:
    """The store opens, is ours, is of this version, and can take writes (without writing)."""
    from verifycli.store import SCHEMA_VERSION, StoreReader

    name = "store"
    flag_fix = "choose another file with --store or VERIFYCLI_STORE"
    if not path.exists():
        where = _nearest_existing(path.parent)
        if where.is_dir() and os.access(where, os.W_OK | os.X_OK):
            return _ok(name, f"{path} does not exist yet; the first listen creates it")
        return Check(name, "fail", f"cannot create {path}: {where} is not writable", flag_fix)
    if path.is_dir():
        return Check(name, "fail", f"{path} is a directory, not a file", flag_fix)
    try:
        reader = StoreReader(path)
        version = reader.schema_version()
        count = reader.count()
    except StoreError as exc:
        return Check(name, "fail", str(exc).split(";", 1)[0], flag_fix)
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Check(name, "fail", f"cannot read {path}: {reason}", flag_fix)
    # An older store is read as it is, and brought up to date by the next listen.
    if version > SCHEMA_VERSION:
        return Check(
            name,
            "fail",
            f"{path} has schema {version}; this verifycli reads {SCHEMA_VERSION}",
            f"upgrade verifycli, or {flag_fix}",
        )
    # SQLite in WAL mode writes -wal and -shm files beside the store: the folder must take them.
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
        return Check(
            name,
            "fail",
            f"{path} is read-only: listen could not keep callbacks",
            f"make it and its folder writable, or {flag_fix}",
        )
    schema = f"schema {version}" if version else "empty, ready"
    return _ok(name, f"{path}: {count} events, {schema}, writable")


def check_port(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> Check:
    """Binds the port the way aiohttp will (SO_REUSEADDR on POSIX), then lets it go."""
    name = f"port {port}"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return Check(
                name,
                "fail",
                f"{host}:{port} is taken ({exc.strerror or exc})",
                f"stop what listens there (`lsof -i :{port}`), or run listen with --port N "
                "(0 picks a free one)",
            )
    return _ok(name, f"{host}:{port} is free for listen")


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^]]*\])?\s*(?:>=\s*([\w.]+))?")


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def _requirements() -> list[str]:
    try:
        declared = metadata.requires("verifycli") or []
    except metadata.PackageNotFoundError:
        return []
    return [r for r in declared if "extra ==" not in r]


def check_packages(requirements: Sequence[str] | None = None) -> Check:
    """Python and every declared dependency: installed, and at least the version asked for."""
    name = "packages"
    python = ".".join(map(str, sys.version_info[:3]))
    found = [f"Python {python}", f"verifycli {__version__}"]
    problems: list[str] = []
    for requirement in _requirements() if requirements is None else requirements:
        match = _REQUIREMENT.match(requirement)
        if match is None:
            continue
        package, minimum = match.groups()
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            problems.append(f"{package} is not installed")
            continue
        if minimum and _version_tuple(version) < _version_tuple(minimum):
            problems.append(f"{package} {version} is older than {minimum}")
        found.append(f"{package} {version}")
    if problems:
        return Check(
            name,
            "fail",
            "; ".join(problems),
            "pip install --upgrade verifycli (in the environment you run it from)",
        )
    return _ok(name, ", ".join(found))


# -- Plivo, online ----------------------------------------------------------------------------


async def check_plivo_api(settings: Settings, timeout: float = 10.0) -> Check:
    """One Verify API call with the credentials: a missing session is a yes, 401 a no."""
    from verifycli.verify_api import VerifyApi

    name = "Plivo API"
    try:
        api = VerifyApi(settings.auth_id, settings.auth_token, settings.api_url, timeout)
    except ConfigError as exc:
        return Check(name, "fail", f"not called: {exc}", "fix the checks above first")
    where = api.api_url
    with api:
        try:
            await api.get(PROBE_SESSION)
        except PlivoApiError as exc:
            # verify_api raises from the HTTP failure, which carries the status it got.
            status = getattr(exc.__cause__, "status", None)
            if status in (400, 404):
                return _ok(name, f"{where} accepted the credentials of {api.auth_id}")
            if status == 401:
                return Check(
                    name,
                    "fail",
                    f"{where} rejected PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN (401)",
                    "copy both again from the Overview page of console.plivo.com; a "
                    "subaccount's token only works with that subaccount's auth id",
                )
            return Check(name, "fail", str(exc), "try again; see status.plivo.com")
        except VerifyCliError as exc:
            return Check(name, "fail", str(exc), "fix that and run doctor --online again")
    return _ok(name, f"{where} accepted the credentials of {api.auth_id}")


# -- all of them ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """What doctor looks at beyond the settings; tests point these elsewhere."""

    env_file: Path = Path(".env")
    port: int = DEFAULT_PORT
    ngrok_path: str | None = None
    ngrok_config: str | None = None
    path_env: str | None = None
    requirements: tuple[str, ...] | None = None


async def diagnose(
    machine: Machine = Machine(),
    *,
    store: Path | None = None,
    online: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[Check]:
    """Every check, in the order a person fixes things; the API last and only when `online`."""
    env_check, settings = check_env_file(machine.env_file, environ)
    settings = settings.with_store(store)
    default_path, default_config = (
        pyngrok_paths() if machine.ngrok_path is None or machine.ngrok_config is None else ("", "")
    )
    checks = [
        env_check,
        check_auth_id_set(settings.auth_id),
        check_auth_token(settings.auth_token, settings.auth_id),
        check_main_token(settings.main_auth_token, settings.auth_token, settings.auth_id),
        check_app_uuid(settings.app_uuid),
        check_api_url(settings.api_url),
        check_ngrok_binary(machine.ngrok_path or default_path, machine.path_env),
        check_ngrok_authtoken(settings.ngrok_authtoken, machine.ngrok_config or default_config),
        check_store(settings.store_path),
        check_port(machine.port),
        check_packages(machine.requirements),
    ]
    if online:
        checks.append(await check_plivo_api(settings))
    return checks


def passed(checks: Iterable[Check]) -> bool:
    return not any(check.failed for check in checks)


def run(port: int, store: Path | None, online: bool) -> tuple[list[Check], ExitCode]:
    """`doctor`: every check, and exit 0 when none failed, else 2 (a setup to fix)."""
    import asyncio

    checks = asyncio.run(diagnose(Machine(port=port), store=store, online=online))
    return checks, ExitCode.OK if passed(checks) else ExitCode.USAGE
