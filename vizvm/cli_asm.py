"""``vizvm asm FILE.s``: assemble a file and print its listing (headless: no textual or rich)."""

from __future__ import annotations

import sys
from typing import TextIO

from engine.asm import AsmErrors, assemble_file, format_listing


def run_asm(path: str, out: TextIO) -> int:
    """Print the listing of ``path`` to ``out`` and return 0, or print the errors to stderr and return 1."""
    try:
        program = assemble_file(path)
    except AsmErrors as failure:
        count = len(failure.errors)
        print(failure, file=sys.stderr)
        print(f"{count} error{'s' if count != 1 else ''} generated.", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"vizvm asm: error: cannot read '{path}': {exc.strerror or exc}", file=sys.stderr)
        return 1
    out.write(format_listing(program))
    return 0
