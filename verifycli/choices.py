"""Closed sets of flag values, as Enums: typer shows them in --help and refuses the rest.

cli.py imports this when it starts, to declare its options, so it imports nothing else.
"""

from __future__ import annotations

from enum import Enum


class Channel(str, Enum):
    """A Verify channel."""

    SMS = "sms"
    VOICE = "voice"


class CheckMethod(str, Enum):
    """How check calls the handler: as a session created with method POST, GET, or each."""

    POST = "POST"
    GET = "GET"
    BOTH = "both"

    @property
    def methods(self) -> tuple[str, ...]:
        return ("POST", "GET") if self is CheckMethod.BOTH else (self.value,)
