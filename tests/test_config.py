"""Settings: each variable lands in its field, blank means unset, and errors say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from verifycli.config import (
    ENV_VARS,
    Secret,
    check_auth_id,
    check_target,
    default_store_path,
    load_settings,
    read_env_file,
    require_token,
)
from verifycli.errors import ConfigError

# Each variable, a value for it, and how to read that value back from Settings.
FIELDS = {
    "PLIVO_AUTH_ID": ("MAXXXXXXXXXXXXXXXXXX", lambda s: s.auth_id),
    "PLIVO_AUTH_TOKEN": ("auth-token", lambda s: s.auth_token.reveal()),
    "PLIVO_MAIN_AUTH_TOKEN": ("main-token", lambda s: s.main_auth_token.reveal()),
    "PLIVO_VERIFY_APP_UUID": ("app-uuid-1", lambda s: s.app_uuid),
    "NGROK_AUTHTOKEN": ("ngrok-token", lambda s: s.ngrok_authtoken.reveal()),
    "VERIFYCLI_STORE": ("/tmp/x/events.sqlite3", lambda s: str(s.store_path)),
    "VERIFYCLI_PLIVO_API_URL": ("http://127.0.0.1:9/", lambda s: s.api_url),
    "VERIFYCLI_UI_TOKEN": ("ui-token-0123456789", lambda s: s.ui_token.reveal()),
}


def test_every_documented_variable_has_a_field_test() -> None:
    """The table below covers every variable the README documents (ENV_VARS)."""
    assert set(FIELDS) <= set(ENV_VARS)
    assert {"PLIVO_AUTH_ID", "PLIVO_VERIFY_APP_UUID", "VERIFYCLI_STORE"} <= set(FIELDS)


@pytest.mark.parametrize("name", list(FIELDS))
def test_each_variable_lands_in_its_field(name: str, tmp_path: Path) -> None:
    """A variable in the environment is read into its own setting, and only there."""
    value, read = FIELDS[name]
    settings = load_settings({name: f"  {value}  "}, tmp_path / "absent.env")
    assert read(settings) == value  # surrounding blanks are not part of a value


@pytest.mark.parametrize("name", list(FIELDS))
def test_each_variable_is_read_from_env_file(name: str, tmp_path: Path) -> None:
    """The same variable in `.env` alone is read too."""
    value, read = FIELDS[name]
    env_file = tmp_path / ".env"
    env_file.write_text(f"{name}={value}\n")
    assert read(load_settings({}, env_file)) == value


def test_blank_values_are_unset(tmp_path: Path) -> None:
    """An empty or blank variable counts as not set."""
    settings = load_settings({"PLIVO_AUTH_TOKEN": "  ", "PLIVO_VERIFY_APP_UUID": ""}, None)
    assert settings.auth_token is None and settings.app_uuid is None


def test_default_store_lives_in_the_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without VERIFYCLI_STORE the store is events.sqlite3 in verifycli's user data folder."""
    monkeypatch.setenv("XDG_DATA_HOME", "/tmp/data-home")
    assert default_store_path() == Path("/tmp/data-home/verifycli/events.sqlite3")
    assert load_settings({}, None).store_path == default_store_path()


def test_env_file_that_is_not_utf8_says_so(tmp_path: Path) -> None:
    """A .env that is not UTF-8 text is one line naming the file and the reason."""
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"PLIVO_AUTH_ID=\xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        read_env_file(env_file)
    assert str(caught.value) == f"cannot read {env_file}: not UTF-8 text; fix or remove the file"


def test_env_file_that_cannot_be_opened_gives_the_system_reason(tmp_path: Path) -> None:
    """An unreadable .env (here a folder) names the operating system's reason."""
    with pytest.raises(ConfigError) as caught:
        read_env_file(tmp_path)
    assert str(caught.value) == f"cannot read {tmp_path}: Is a directory; fix or remove the file"


@pytest.mark.parametrize(
    ("auth_id", "message"),
    [
        (None, "PLIVO_AUTH_ID is not set: export it or put it in .env"),
        (
            "MA123",
            "PLIVO_AUTH_ID is malformed: it is 20 letters and digits starting MA or SA "
            "(see the Overview page of the Plivo console)",
        ),
    ],
)
def test_auth_id_errors_say_what_to_do(auth_id: str | None, message: str) -> None:
    """A missing or malformed auth id is refused with the exact sentence the user sees."""
    with pytest.raises(ConfigError) as caught:
        check_auth_id(auth_id)
    assert str(caught.value) == message


@pytest.mark.parametrize("auth_id", ["MAXXXXXXXXXXXXXXXXXX", "SA0123456789ABCDEFGH"])
def test_good_auth_ids_pass(auth_id: str) -> None:
    """Main-account and subaccount ids of 20 letters and digits are accepted as they are."""
    assert check_auth_id(auth_id) == auth_id


def test_missing_token_says_what_to_set() -> None:
    """No auth token: the exact sentence naming PLIVO_AUTH_TOKEN."""
    with pytest.raises(ConfigError) as caught:
        require_token(None)
    assert str(caught.value) == "PLIVO_AUTH_TOKEN is not set: export it or put it in .env"
    assert require_token(Secret("t")).reveal() == "t"


def test_a_secret_never_shows_its_value() -> None:
    """repr, str, format and f-strings of a Secret all show stars; equality and hashing still
    compare the values, and an empty secret is false."""
    secret = Secret("s3cr3t-value")
    shown = [repr(secret), str(secret), f"{secret}", f"{secret:>20}", format(secret, "")]
    assert all("s3cr3t" not in text for text in shown)
    assert repr(secret) == "Secret('********')" and str(secret) == "********"
    assert secret == Secret("s3cr3t-value") and secret != Secret("other")
    assert hash(secret) == hash(Secret("s3cr3t-value"))
    assert bool(secret) and not Secret("")


def test_a_url_with_a_fragment_is_refused_with_the_flag_named() -> None:
    """A #fragment never reaches a server, so a URL carrying one is refused, naming the flag."""
    with pytest.raises(ConfigError) as caught:
        check_target("http://127.0.0.1:3000/hook#x", "--forward-to")
    assert "--forward-to" in str(caught.value) and "#fragment" in str(caught.value)
