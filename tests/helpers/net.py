"""Loopback ports for tests: one nothing listens on, and one held busy."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


def free_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def busy_port(listen: bool = True) -> Iterator[int]:
    """A loopback port held by this process for the block (listening unless told not to)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        if listen:
            sock.listen()
        yield sock.getsockname()[1]
