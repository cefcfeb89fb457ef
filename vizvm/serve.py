"""`vizvm serve`: the app in a web browser on this machine, through textual-serve.

Each browser tab gets its own `vizvm` process (textual-serve runs the command per connection), so a
classroom can open the same lessons without a terminal. Only localhost is served.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

HOST = "localhost"


def serve_command(projector: bool = False) -> str:
    """The shell command textual-serve runs for each browser session."""
    command = f"{shlex.quote(sys.executable)} -m vizvm"
    return command + " --projector" if projector else command


def build_server(port: int = 8000, *, projector: bool = False) -> Any:
    """A textual-serve Server for vizvm on localhost:`port` (not started)."""
    from textual_serve.server import Server

    return Server(serve_command(projector), host=HOST, port=port, title="vizvm")


def run_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit status."""
    try:
        server = build_server(args.port, projector=bool(getattr(args, "projector", False)))
    except ImportError:
        sys.stderr.write("vizvm serve needs textual-serve: python3 -m pip install textual-serve\n")
        return 1
    sys.stderr.write(f"Serving vizvm on http://{HOST}:{args.port} (Ctrl+C stops)\n")
    server.serve()
    return 0
