"""Every command path of the real CLI with its long options, read from the typer app."""

from __future__ import annotations

import typer.main

from verifycli.cli import app


def commands() -> dict[str, list[str]]:
    """Each command path (`events show`) with its long option names."""
    root = typer.main.get_command(app)
    found: dict[str, list[str]] = {}

    def walk(cmd: object, path: str) -> None:
        subs = getattr(cmd, "commands", None)
        params = [o for p in getattr(cmd, "params", []) for o in p.opts if o.startswith("--")]
        if path:
            found[path] = [o for o in params if o != "--help"]
        for name, sub in (subs or {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(root, "")
    return found
