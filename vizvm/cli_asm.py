"""``vizvm asm FILE.s``: assemble a file and print its listing (headless: no textual or rich)."""

from __future__ import annotations

import sys
from typing import TextIO

from engine.asm import AsmErrors, assemble_file, format_listing


def parse_defines(items: list[str]) -> dict[str, int]:
    """``NAME`` or ``NAME=VALUE`` (decimal or 0x hex) from the command line, as assembler defines."""
    defines = {}
    for item in items:
        name, _, value = item.partition("=")
        defines[name] = int(value, 0) if value else 1
    return defines


def run_asm(path: str, out: TextIO, defines: list[str] | None = None) -> int:
    """Print the listing of ``path`` to ``out`` and return 0, or print the errors to stderr and return 1."""
    try:
        program = assemble_file(path, defines=parse_defines(defines or []))
    except AsmErrors as failure:
        count = len(failure.errors)
        print(failure, file=sys.stderr)
        print(f"{count} error{'s' if count != 1 else ''} generated.", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"vizvm asm: error: cannot read '{path}': {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"vizvm asm: error: bad -D definition: {exc}", file=sys.stderr)
        return 1
    out.write(format_listing(program, defines=parse_defines(defines or [])))
    return 0
