"""The local web inspector: a browser view of captured callbacks, live, on its own port."""

from verifycli.inspector.app import (
    DEFAULT_PORT,
    InspectorOptions,
    RunningInspector,
    serve_inspector,
)

__all__ = ["DEFAULT_PORT", "InspectorOptions", "RunningInspector", "serve_inspector"]
