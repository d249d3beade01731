"""Settings from flags, then the environment, then a `.env` file; secrets never shown."""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from verifycli.errors import ConfigError

ENV_VARS: dict[str, str] = {
    "PLIVO_AUTH_ID": "Your Plivo auth id (20 characters, MA… or SA…); needed by send.",
    "PLIVO_AUTH_TOKEN": "Your Plivo auth token: checks callback signatures and calls the API.",
    "PLIVO_MAIN_AUTH_TOKEN": "The main account's token, to check X-Plivo-Signature-Ma-* headers.",
    "PLIVO_VERIFY_APP_UUID": "The Verify application to send with (send --app-uuid).",
    "NGROK_AUTHTOKEN": "Your ngrok authtoken, passed to the ngrok agent.",
    "VERIFYCLI_STORE": "Path of the SQLite file that keeps every callback.",
    "VERIFYCLI_PLIVO_API_URL": "Replaces https://api.plivo.com (the simulator); unset in real use.",
    "VERIFYCLI_UI_TOKEN": "The browser inspector's access token (default: a new one per run).",
}


class Secret:
    """A string that never shows itself in repr, str or format."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __format__(self, spec: str) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


def default_store_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("verifycli", appauthor=False)) / "events.sqlite3"


@dataclass(frozen=True)
class Settings:
    """Everything verifycli reads from its environment."""

    auth_id: str | None = None
    auth_token: Secret | None = None
    main_auth_token: Secret | None = None
    app_uuid: str | None = None
    ngrok_authtoken: Secret | None = None
    store_path: Path = field(default_factory=default_store_path)
    api_url: str | None = None
    # Printed on purpose, in the inspector's URL.
    ui_token: Secret | None = None

    def with_store(self, path: Path | None) -> Settings:
        """--store (or VERIFYCLI_STORE, which the parser reads into it) over the default."""
        return self if path is None else replace(self, store_path=path.expanduser())


def read_env_file(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines from a .env file; an unreadable one is a configuration error."""
    from dotenv import dotenv_values

    try:
        with path.open(encoding="utf-8") as stream:
            values = dotenv_values(stream=stream)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(f"cannot read {path}: {reason}; fix or remove the file") from None
    return {k: v for k, v in values.items() if v is not None}


def _env_file_there(path: Path) -> bool:
    """Whether a .env is there to read; one that cannot be (a FIFO, which would block every
    command, a folder, a link to nothing) is a ConfigError, not silently passed over."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ConfigError(
                f"{path} is a link to {os.readlink(path)}, which does not exist; "
                "fix or remove the link"
            ) from None
        return False
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}; fix or remove it") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path} is not a regular file (a folder, a FIFO): fix or remove it")
    return True


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Settings from the real environment, falling back to `env_file` when it exists."""
    env = dict(os.environ if environ is None else environ)
    if env_file is not None and _env_file_there(env_file):
        for key, value in read_env_file(env_file).items():
            env.setdefault(key, value)

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    store = get("VERIFYCLI_STORE")
    try:
        store_path = Path(store).expanduser() if store else default_store_path()
    except RuntimeError:  # ~someone who is not a user here
        raise ConfigError(
            f"VERIFYCLI_STORE={store}: its ~ names no user here; give the full path"
        ) from None
    return Settings(
        auth_id=get("PLIVO_AUTH_ID"),
        auth_token=_secret(get("PLIVO_AUTH_TOKEN")),
        main_auth_token=_secret(get("PLIVO_MAIN_AUTH_TOKEN")),
        app_uuid=get("PLIVO_VERIFY_APP_UUID"),
        ngrok_authtoken=_secret(get("NGROK_AUTHTOKEN")),
        store_path=store_path,
        api_url=get("VERIFYCLI_PLIVO_API_URL"),
        ui_token=_secret(get("VERIFYCLI_UI_TOKEN")),
    )


def check_auth_id(auth_id: str | None) -> str:
    """The auth id, or a ConfigError saying what is wrong with it."""
    if not auth_id:
        raise ConfigError("PLIVO_AUTH_ID is not set: export it or put it in .env")
    if len(auth_id) != 20 or auth_id[:2] not in ("MA", "SA") or not auth_id.isalnum():
        raise ConfigError(
            "PLIVO_AUTH_ID is malformed: it is 20 letters and digits starting MA or SA "
            "(see the Overview page of the Plivo console)"
        )
    return auth_id


def require_token(token: Secret | None) -> Secret:
    if not token:
        raise ConfigError("PLIVO_AUTH_TOKEN is not set: export it or put it in .env")
    return token


def check_http_url(url: str, flag: str, example: str) -> tuple[str, SplitResult]:
    """An absolute http(s) URL given to `flag`, stripped and split; ConfigError otherwise."""
    text = url.strip()
    if not text or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ConfigError(f"{flag} needs a URL without spaces, {example}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r} is not a valid URL: check its host and port, {example}"
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{flag} needs an http:// or https:// URL, {example}; not {text!r}")
    return text, parts


def check_target(url: str, flag: str) -> str:
    """A URL to send callbacks to (forward, replay, trigger, check): absolute http(s), no
    #fragment; ConfigError otherwise."""
    text, parts = check_http_url(url, flag, "like http://127.0.0.1:3000/plivo/verify")
    if parts.fragment:
        raise ConfigError(f"{flag} {text!r} must not have a #fragment")
    return text


def check_timeout(seconds: float, flag: str = "--timeout") -> float:
    """A wait given on the command line: finite (inf would never end) and longer than nothing."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{flag} must be more than 0 seconds, and finite; not {seconds}")
    return seconds
