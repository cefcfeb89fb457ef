"""The two-dimensional nested walk as a grid, and the references a sub-step reveals. No Textual import here.

Under nested paging an n-level guest walk on an m-level host reads (n+1)(m+1)-1 entries: before each
guest level's read, the guest table's gPA is translated by an m-level host walk, and after the guest
leaf the final gPA is too. The grid has one row per guest level plus the final gPA row, and one
column per host level plus the guest read (the resulting hPA). Its cells are filled from the real
`walk` events in the order the MMU made them, so the order numbers run row by row: cell (row i,
column j) is reference i*(m+1)+j+1 of a cold walk. A nested-TLB hit (`nested-hit`) replaces a row's
host walk: those cells are skipped, and later references are numbered one by one as they happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.events import Event, NestedCacheHit, PageWalkRead

WalkItem = PageWalkRead | NestedCacheHit
"""An event of a walk: an entry read (any dimension) or a nested-TLB hit that saved a host walk."""


def is_host(item: WalkItem) -> bool:
    """True for the host dimension of a nested walk (a host-table read, or the nested TLB answering)."""
    return isinstance(item, NestedCacheHit) or item.dimension == "host"


def walk_references(events: tuple[Event, ...] | list[Event]) -> tuple[PageWalkRead, ...]:
    """Every page-table entry an instruction read, in order (the references a sub-step reveals)."""
    return tuple(e for e in events if isinstance(e, PageWalkRead))


@dataclass(frozen=True, slots=True)
class GridCell:
    """One cell of the 2-D walk grid."""

    number: int
    """The reference's order number in its walk (1-based); 0 for a skipped or empty cell."""
    read: PageWalkRead | None
    """The entry read (None when not read, not yet revealed, or skipped)."""
    skipped: bool = False
    """The nested TLB supplied this row's gPA -> hPA: the host walk was not needed."""


@dataclass(frozen=True)
class WalkGrid:
    """The nested walk of one translation: rows = guest levels + final gPA, columns = host levels + hPA."""

    guest_levels: int
    host_levels: int
    cells: tuple[tuple[GridCell, ...], ...]
    """(guest_levels + 1) rows of (host_levels + 1) cells; the last column holds the guest reads."""
    gpas: tuple[int | None, ...]
    """The guest-physical address each row translates (a guest table's, then the final one)."""
    hpas: tuple[int | None, ...]
    """Where each row's host walk (or the nested TLB) put it."""
    references: int
    """How many entries the shown part of the walk read."""
    current: int
    """The order number of the newest shown reference (0 if none)."""

    @property
    def cold(self) -> int:
        """References of a walk with no nested-TLB hits: (n+1)(m+1)-1."""
        return (self.guest_levels + 1) * (self.host_levels + 1) - 1


def walk_grid(items: tuple[WalkItem, ...], guest_levels: int, host_levels: int) -> WalkGrid:
    """Place a nested translation's walk events in the grid, in the order they happened."""
    n, m = guest_levels, host_levels
    cells = [[GridCell(0, None) for _ in range(m + 1)] for _ in range(n + 1)]
    gpas: list[int | None] = [None] * (n + 1)
    hpas: list[int | None] = [None] * (n + 1)
    row = number = 0
    for item in items:
        if row > n:
            break
        if isinstance(item, NestedCacheHit):
            cells[row][:m] = [GridCell(0, None, skipped=True)] * m
            gpas[row] = gpas[row] if gpas[row] is not None else item.gpa
            hpas[row] = (item.hpa & 0xFFFFF000) | ((gpas[row] or 0) & 0xFFF)
            continue
        number += 1
        if item.dimension == "host":
            column = min(max(item.level, 1), m) - 1
            cells[row][column] = GridCell(number, item)
            if gpas[row] is None:
                gpas[row] = item.va
            if item.outcome == "leaf":
                hpas[row] = (item.entry & 0xFFFFF000) | ((gpas[row] or item.va) & 0xFFF)
        else:
            guest_row = min(max(item.level, 1), n) - 1
            cells[guest_row][m] = GridCell(number, item)
            row = guest_row + 1
            if item.outcome == "leaf" and row <= n:
                gpas[row] = (item.entry & 0xFFFFF000) | (item.va & 0xFFF)
    return WalkGrid(n, m, tuple(tuple(r) for r in cells), tuple(gpas), tuple(hpas), number, number)
