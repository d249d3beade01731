"""Errors raised by verifycli's core, and the exit codes the CLI turns them into.

VerifyCliError                 every error a user can meet; carries an exit code
├── ConfigError                usage or configuration (exit 2)
│   ├── StoreError             the store file cannot be used as a verifycli store
│   └── EventNotFound          no stored event has that id
├── FlowFailed                 the OTP flow ended badly (exit 1)
├── PlivoApiError              the Plivo API refused or failed (exit 3)
└── TunnelError                no public tunnel (exit 4)
StoreWriteError                a callback could not be put on disk (answered 503)
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; the README lists them."""

    OK = 0
    FLOW_FAILED = 1
    USAGE = 2
    PLIVO_API = 3
    TUNNEL = 4
    INTERRUPTED = 130


class VerifyCliError(Exception):
    """An error with a one-line message a person can act on."""

    exit_code: ExitCode = ExitCode.USAGE


class ConfigError(VerifyCliError):
    """Bad flags, environment or files."""

    exit_code = ExitCode.USAGE


class StoreError(ConfigError):
    """The store file is foreign, too new, or cannot be opened for writing."""


class EventNotFound(ConfigError):
    """No stored event has the asked-for id."""


class FlowFailed(VerifyCliError):
    """The verification did not succeed: failed, undelivered, expired, wrong code, timeout."""

    exit_code = ExitCode.FLOW_FAILED


class PlivoApiError(VerifyCliError):
    """The Plivo API answered with an error, or could not be reached."""

    exit_code = ExitCode.PLIVO_API


class TunnelError(VerifyCliError):
    """The public tunnel could not be opened, or died."""

    exit_code = ExitCode.TUNNEL


class StoreWriteError(Exception):
    """A write to the store failed; the callback was not stored and must not be acknowledged."""
