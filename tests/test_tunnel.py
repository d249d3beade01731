"""open_tunnel: ngrok through pyngrok's real code path with a stand-in agent, or a URL given."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from helpers.net import free_port
from helpers.ngrok_stub import TOKEN, FakeNgrok, fake_ngrok_env, pid_alive, wait_until
from pytest_aiohttp import AiohttpServer

from verifycli.config import Secret
from verifycli.errors import ConfigError, ExitCode, TunnelError
from verifycli.tunnel import WAY_OUT, Tunnel, check_public_url, open_tunnel

SECRET = Secret(TOKEN)


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNgrok]:
    with fake_ngrok_env(tmp_path, monkeypatch) as fake:
        yield fake


def open_fake(
    agent: FakeNgrok,
    port: int = 9,
    *,
    host: str = "127.0.0.1",
    token: Secret | None = SECRET,
    timeout: float = 15.0,
) -> Tunnel:
    return open_tunnel(
        local_host=host,
        local_port=port,
        ngrok_authtoken=token,
        ngrok_path=agent.path,
        config_path=agent.config_path,
        timeout=timeout,
    )


def fail_to_open(agent: FakeNgrok, *, token: Secret | None = SECRET, timeout: float = 15.0) -> str:
    with pytest.raises(TunnelError) as caught:
        open_fake(agent, token=token, timeout=timeout)
    error = caught.value
    assert error.exit_code == ExitCode.TUNNEL
    message = str(error)
    assert "\n" not in message
    assert message.endswith(WAY_OUT)
    assert TOKEN not in message
    return message


async def test_ngrok_tunnel_relays_requests_to_the_listener(
    agent: FakeNgrok, aiohttp_server: AiohttpServer
) -> None:
    """A request sent to the tunnel reaches a real listener with every part intact, and back."""
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.path_qs, dict(request.headers), await request.read()))
        return web.Response(status=201, text="stored", headers={"X-Listener": "yes"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    assert server.port is not None
    body = b"SessionUUID=abc&ChannelStatus=delivered&ChannelErrorCode="
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Plivo-Signature-V3": "c2ln,b3RoZXI=",
        "X-Plivo-Signature-V3-Nonce": "12345",
    }

    tunnel = await asyncio.to_thread(open_fake, agent, server.port)
    try:
        assert tunnel.kind == "ngrok"
        assert re.fullmatch(r"https://[0-9a-f-]+\.ngrok-free\.app", tunnel.public_url)
        relay = agent.relay_url(tunnel.public_url)
        async with aiohttp.ClientSession() as client:
            url = f"{relay}/hooks/verify?attempt=1&status=sent"
            async with client.post(url, data=body, headers=headers) as response:
                assert response.status == 201
                assert await response.text() == "stored"
                assert response.headers["X-Listener"] == "yes"
            async with client.get(f"{relay}/hooks/verify?SessionUUID=abc&Channel=sms") as response:
                assert response.status == 201
    finally:
        await asyncio.to_thread(tunnel.close)

    method, path_qs, received_headers, received = seen[0]
    assert (method, path_qs, received) == ("POST", "/hooks/verify?attempt=1&status=sent", body)
    for name, value in headers.items():
        assert received_headers[name] == value
    assert received_headers["Host"] == urlsplit(tunnel.public_url).hostname
    assert received_headers["X-Forwarded-Proto"] == "https"
    assert seen[1][:2] == ("GET", "/hooks/verify?SessionUUID=abc&Channel=sms")


def test_close_ends_the_agent_and_can_be_repeated(agent: FakeNgrok) -> None:
    """close() takes the agent down for good, and a second close() is harmless."""
    tunnel = open_fake(agent)
    pid = agent.pid()
    assert tunnel.alive() and pid_alive(pid)
    tunnel.close()
    tunnel.close()
    assert not tunnel.alive()
    wait_until(lambda: not pid_alive(pid), what="the ngrok agent to end")


def test_an_exception_in_the_with_block_still_ends_the_agent(agent: FakeNgrok) -> None:
    """Leaving the with block by an exception kills the agent all the same."""
    with pytest.raises(RuntimeError), open_fake(agent):
        pid = agent.pid()
        raise RuntimeError("the listener failed")
    wait_until(lambda: not pid_alive(pid), what="the ngrok agent to end")


def test_the_authtoken_given_reaches_the_agent(agent: FakeNgrok) -> None:
    """NGROK_AUTHTOKEN handed to open_tunnel is what the agent authenticates with."""
    with open_fake(agent):
        assert agent.state()["authtoken"] == TOKEN


def test_the_authtoken_in_the_environment_is_used_when_none_is_given(
    agent: FakeNgrok, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an explicit token, pyngrok's own NGROK_AUTHTOKEN lookup still applies."""
    monkeypatch.setenv("NGROK_AUTHTOKEN", "from-the-environment-123")
    with open_fake(agent, token=None):
        assert agent.state()["authtoken"] == "from-the-environment-123"


def test_a_listener_on_every_interface_is_tunnelled_through_loopback(agent: FakeNgrok) -> None:
    """A 0.0.0.0 listener is given to ngrok as 127.0.0.1, which every system can connect to."""
    with open_fake(agent, 8080, host="0.0.0.0"):
        assert agent.state()["tunnels"][0]["upstream"]["url"] == "http://127.0.0.1:8080"


def test_pyngrok_ngrok_path_variable_is_honoured(
    agent: FakeNgrok, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no ngrok_path, pyngrok's PYNGROK_NGROK_PATH picks the executable."""
    monkeypatch.setenv("PYNGROK_NGROK_PATH", agent.path)
    tunnel = open_tunnel(
        local_host="127.0.0.1",
        local_port=9,
        ngrok_authtoken=Secret(TOKEN),
        config_path=agent.config_path,
    )
    with tunnel:
        assert tunnel.kind == "ngrok"
        assert agent.started()


def test_alive_turns_false_when_the_agent_dies(agent: FakeNgrok) -> None:
    """A killed agent shows as a dead tunnel, and closing it afterwards is quiet."""
    tunnel = open_fake(agent)
    agent.kill()
    wait_until(lambda: not tunnel.alive(), what="the tunnel to notice the dead agent")
    tunnel.close()


def test_a_bad_authtoken_is_one_line_without_the_token(
    agent: FakeNgrok,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """ngrok's ERR_NGROK_105 becomes a TunnelError, and the token shows up nowhere."""
    monkeypatch.setenv("FAKE_NGROK_FAIL", "authtoken")
    caplog.set_level(logging.DEBUG, logger="pyngrok")
    message = fail_to_open(agent)
    assert message.startswith("ngrok could not start: authentication failed")
    assert "ERR_NGROK_105" in message and "NGROK_AUTHTOKEN" in message
    # pyngrok logs the agent's lines only while it still reads them: when the agent exits
    # first, verifycli reads the error itself and pyngrok never logs it. Either way, masked.
    if "Your authtoken" in caplog.text:
        assert "Your authtoken: ********" in caplog.text
    assert TOKEN not in caplog.text
    out, err = capfd.readouterr()
    assert TOKEN not in out + err
    wait_until(lambda: not pid_alive(agent.pid()), what="the ngrok agent to end")


def test_no_authtoken_at_all_says_to_set_one(agent: FakeNgrok) -> None:
    """An agent with no authtoken (ERR_NGROK_4018) leads the user to NGROK_AUTHTOKEN."""
    message = fail_to_open(agent, token=None)
    assert "ERR_NGROK_4018" in message and "set NGROK_AUTHTOKEN" in message


def test_pyngrok_logs_stay_off_an_unconfigured_terminal(
    agent: FakeNgrok, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """With no logging set up, neither pyngrok's error records nor the agent's stderr print."""
    # Cuts pyngrok off from pytest's handlers, as in a program that configured no logging.
    monkeypatch.setattr(logging.getLogger("pyngrok"), "propagate", False)
    monkeypatch.setenv("FAKE_NGROK_FAIL", "authtoken")
    fail_to_open(agent)
    assert capfd.readouterr().err == ""


def test_a_crash_during_startup_is_a_tunnel_error(
    agent: FakeNgrok, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """An agent that dies before it is up gives its exit code, not its panic output."""
    monkeypatch.setenv("FAKE_NGROK_FAIL", "crash")
    message = fail_to_open(agent)
    assert message.startswith("ngrok exited during startup (exit code 2)")
    assert "panic" not in capfd.readouterr().err


def test_an_agent_that_never_connects_is_stopped_at_the_timeout(
    agent: FakeNgrok, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent that goes quiet before its session is up is killed when the timeout passes."""
    monkeypatch.setenv("FAKE_NGROK_FAIL", "hang")
    message = fail_to_open(agent, timeout=0.5)
    assert message.startswith("ngrok did not start within 0.5s")
    wait_until(lambda: not pid_alive(agent.pid()), what="the ngrok agent to end")


def test_an_agent_refusing_the_tunnel_is_ended(
    agent: FakeNgrok, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the agent starts but refuses the tunnel, open_tunnel kills the agent it started."""
    monkeypatch.setenv("FAKE_NGROK_FAIL", "tunnel")
    message = fail_to_open(agent)
    assert message.startswith("the ngrok agent refused the tunnel: failed to start tunnel")
    assert "ERR_NGROK_324" in message
    wait_until(lambda: not pid_alive(agent.pid()), what="the ngrok agent to end")


def test_a_missing_ngrok_path_is_reported_not_downloaded_to(tmp_path: Path) -> None:
    """An ngrok_path that does not exist is an error; nothing is installed there."""
    missing = tmp_path / "nowhere" / "ngrok"
    with pytest.raises(TunnelError) as caught:
        open_tunnel(local_host="127.0.0.1", local_port=9, ngrok_path=str(missing))
    assert str(caught.value) == f"ngrok was not found at {missing}: install it there, or {WAY_OUT}"
    assert not missing.parent.exists()


def test_a_default_ngrok_that_cannot_be_downloaded_is_a_tunnel_error(
    agent: FakeNgrok, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline, pyngrok's attempt to install a missing default ngrok ends in a TunnelError."""
    from pyngrok import installer

    closed_port = free_port()
    # The installer's real download code, pointed at a port nothing listens on.
    monkeypatch.setattr(
        installer,
        "PLATFORMS",
        {
            k: f"http://127.0.0.1:{closed_port}/{v.rsplit('/', 1)[1]}"
            for k, v in installer.PLATFORMS.items()
        },
    )
    target = tmp_path / "pyngrok-bin" / "ngrok"
    monkeypatch.setenv("PYNGROK_NGROK_PATH", str(target))
    with pytest.raises(TunnelError) as caught:
        open_tunnel(local_host="127.0.0.1", local_port=9, config_path=agent.config_path)
    message = str(caught.value)
    assert message.startswith(f"ngrok is not installed at {target} and could not be downloaded (")
    assert "Connection refused" in message and "PYNGROK_NGROK_PATH" in message
    assert message.endswith(WAY_OUT) and "\n" not in message
    assert not target.exists()


def test_a_public_url_starts_no_agent(agent: FakeNgrok) -> None:
    """--public-url is used as given, less its trailing slash, and ngrok is never run."""
    tunnel = open_tunnel(
        local_host="127.0.0.1",
        local_port=9,
        public_url="https://calm-river.trycloudflare.com/",
        ngrok_path=agent.path,
    )
    assert (tunnel.kind, tunnel.public_url) == (
        "public-url",
        "https://calm-river.trycloudflare.com",
    )
    assert tunnel.alive()
    tunnel.close()
    assert not tunnel.alive()
    assert not agent.started()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080"),
        ("localhost", "http://localhost:8080"),
        ("::1", "http://[::1]:8080"),
    ],
)
def test_no_tunnel_points_at_the_listener(host: str, expected: str) -> None:
    """--no-tunnel publishes the listener's own address, IPv6 in brackets."""
    tunnel = open_tunnel(local_host=host, local_port=8080, no_tunnel=True)
    assert (tunnel.kind, tunnel.public_url) == ("none", expected)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://abcd.ngrok-free.app/", "https://abcd.ngrok-free.app"),
        (" HTTP://Host.example:8443/hooks// ", "http://Host.example:8443/hooks"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_check_public_url_normalises(given: str, expected: str) -> None:
    """A usable --public-url comes back with a lowercase scheme and no trailing slash."""
    assert check_public_url(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "",
        "abcd.ngrok-free.app",
        "ftp://files.example.com",
        "https://",
        "https://example.com/cb?token=1",
        "https://example.com/?",
        "https://example.com/#top",
        "https://example.com:99999",
        "https://exa mple.com",
    ],
)
def test_check_public_url_rejects(given: str) -> None:
    """An unusable --public-url is a one-line usage error naming the option."""
    with pytest.raises(ConfigError) as caught:
        check_public_url(given)
    assert caught.value.exit_code == ExitCode.USAGE
    assert str(caught.value).startswith("--public-url ")
    assert "\n" not in str(caught.value)
