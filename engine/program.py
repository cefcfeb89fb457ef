"""The assembler's output: a loadable image with its symbols and source map."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Program:
    """An assembled program: one contiguous image starting at `origin`."""

    name: str
    """File name (or a label such as ``<input>``) used in listings and error messages."""
    origin: int
    """Address of the first byte of `image`."""
    image: bytes
    """The bytes to load at `origin`."""
    entry: int
    """Where execution starts: the ``_start`` label if defined, else the first instruction."""
    symbols: dict[str, int] = field(default_factory=dict)
    """Every label and ``.equ`` constant, by name."""
    labels: dict[int, str] = field(default_factory=dict)
    """Address -> the first label defined there (for disassembly and the code panel)."""
    source_lines: dict[int, int] = field(default_factory=dict)
    """Address of each instruction or data item -> its 1-based source line."""
    source: str = ""
    """The full source text."""
    code: frozenset[int] = frozenset()
    """Addresses of the instructions (everything else in `source_lines` is data)."""

    @property
    def end(self) -> int:
        """First address after the image."""
        return self.origin + len(self.image)

    def source_line_text(self, address: int) -> str:
        """The source line that produced the item at `address`, or ``""``."""
        line = self.source_lines.get(address)
        if line is None:
            return ""
        lines = self.source.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""
