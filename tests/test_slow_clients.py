"""Idle, half-sent and slow clients: the listener's idle and body timeouts close them, and a
real callback is answered meanwhile (`served` in conftest.py has half-second timeouts)."""

from __future__ import annotations

import http.client
import socket
import time

from helpers.listeners import ThreadedListener, ask, status_of

from verifycli.listener import IDLE_TIMEOUT, ListenOptions

LYING_LENGTH = b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort"


def test_a_lying_content_length_is_timed_out_with_408(served: ThreadedListener) -> None:
    """A body that never finishes arriving is answered 408 once the body timeout passes."""
    started = time.monotonic()
    answer = ask(served.port, LYING_LENGTH)
    assert status_of(answer) == 408
    assert 0.4 < time.monotonic() - started < 2.5


def test_200_idle_or_half_sent_connections_do_not_delay_a_real_callback(
    served: ThreadedListener,
) -> None:
    """With 200 connections idle or stuck mid-headers, a real callback is answered in < 2 s."""
    held: list[socket.socket] = []
    try:
        for i in range(200):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            if i % 2:
                sock.sendall(b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Len")
            held.append(sock)
        started = time.monotonic()
        assert served.valid_callback_status() == 200
        assert time.monotonic() - started < 2.0
        # The listener closes them all once the idle timeout (0.5 s here) has passed.
        deadline = time.monotonic() + 5
        for sock in held:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                assert sock.recv(1024) == b""
            except ConnectionResetError:
                pass
    finally:
        for sock in held:
            sock.close()
    assert served.valid_callback_status() == 200


def test_slow_body_clients_are_timed_out(served: ThreadedListener) -> None:
    """Clients that trickle a body get 408 after the body timeout and are disconnected."""
    socks = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            sock.sendall(
                b"POST /cb HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nSessionUUID="
            )
            socks.append(sock)
        started = time.monotonic()
        for sock in socks:
            sock.sendall(b"a")  # a trickle: not enough to finish, enough to look alive
        answers = []
        for sock in socks:
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            answers.append(data)
        assert all(status_of(a) == 408 for a in answers), answers[0][:100]
        assert time.monotonic() - started < 3.0
    finally:
        for sock in socks:
            sock.close()
    assert served.valid_callback_status() == 200


def test_the_default_timeouts_close_stalled_clients_within_a_minute() -> None:
    """Out of the box, idle connections and unfinished bodies are not kept for ever."""
    options = ListenOptions()
    assert 0 < options.idle_timeout <= 60 and options.idle_timeout == IDLE_TIMEOUT
    assert 0 < options.body_timeout <= 60


def test_the_idle_timeout_leaves_keep_alive_working(served: ThreadedListener) -> None:
    """A keep-alive client still gets two 200s on one connection, with the idle timeout on."""
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    try:
        for _ in range(2):
            conn.request("POST", "/cb", body=b"a=1", headers={"Content-Type": "text/plain"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
    finally:
        conn.close()
