"""The memory mapper's model under a VMM: the 2-D grid, translations in three spaces, side-effect-free views."""

from __future__ import annotations

from functools import lru_cache

import pytest

from engine.events import NestedCacheHit, PageWalkRead
from engine.machine import MachineConfig, StepResult
from engine.systems import System, build_system
from vizvm.memview import guest_walk_quietly, host_frames, host_translate_quietly, space_names
from vizvm.viewmodel import translations
from vizvm.walkview import walk_grid, walk_references

ONE_LEVEL = """
; Paging with one guest level (the shipped kernel needs two): map the code page, load cr3, turn paging on.
.org 0x1000
_start:
    mov r1, 0x400004
    mov r2, 0x1003
    st [r1], r2
    mov r0, 0x400000
    movcr cr3, r0
    mov r0, 1
    movcr cr0, r0
    mov r0, 2
    out 0xf4, r0
"""


@lru_cache(maxsize=32)
def first_paged_step(guest_levels: int, host_levels: int, nested_cache: int = 0) -> tuple[System, StepResult]:
    """A guest under hardware assist with nested paging, and its first step with guest paging on.

    The shipped kernel for 2-4 guest levels; a one-level guest is a small bare program (its single
    table is 4 MiB, so the VM gets 8 MiB).
    """
    if guest_levels == 1:
        from engine.asm import assemble

        system: System = build_system("hw", bare=assemble(ONE_LEVEL, "one-level.s"),
                                      config=MachineConfig(page_levels=1, memory_size=8 << 20),
                                      memory_mode="nested", host_levels=host_levels)
    else:
        from engine.programs import assemble_shipped
        from engine.vmm import GuestSpec, Hypervisor

        guest = GuestSpec(assemble_shipped("kernel"), (assemble_shipped("hello"),))
        system = Hypervisor("hw", [guest], config=MachineConfig(page_levels=guest_levels), memory_mode="nested",
                            host_levels=host_levels, nested_cache=nested_cache)
    for _ in range(200_000):
        if system.cpu.paging or system.halted:
            break
        system.run(1)
    assert system.cpu.paging, system.console_output
    return system, system.step()


@pytest.mark.parametrize("guest_levels", [1, 2, 3, 4])
@pytest.mark.parametrize("host_levels", [1, 2, 3, 4])
def test_grid_numbers_follow_the_event_order(guest_levels: int, host_levels: int) -> None:
    """A cold n-on-m walk: (n+1)(m+1)-1 references, cell (i, j) is reference i*(m+1)+j+1 and holds that event."""
    _system, result = first_paged_step(guest_levels, host_levels)
    translation = next(t for t in translations(result) if t.items)
    events = [e for e in translation.items if isinstance(e, PageWalkRead)]
    assert len(events) == (guest_levels + 1) * (host_levels + 1) - 1
    grid = walk_grid(translation.items, guest_levels, host_levels)
    assert grid.references == grid.cold == len(events)
    for i, row in enumerate(grid.cells):
        for j, cell in enumerate(row):
            if i == guest_levels and j == host_levels:
                assert cell.number == 0 and cell.read is None  # the data access itself, not a table read
                continue
            assert cell.number == i * (host_levels + 1) + j + 1
            assert cell.read is events[cell.number - 1]
            assert cell.read.dimension == ("guest" if j == host_levels else "host")
            assert cell.read.level == (i + 1 if j == host_levels else j + 1)
    assert translation.pa is not None and translation.gpa is not None
    assert grid.hpas[-1] == translation.pa


def test_a_partly_revealed_walk_fills_the_grid_up_to_that_reference() -> None:
    """The first 7 references of a 4-on-4 walk: row 1 and two host reads of row 2, nothing after."""
    _system, result = first_paged_step(4, 4)
    translation = next(t for t in translations(result) if t.items)
    grid = walk_grid(translation.items[:7], 4, 4)
    numbers = [c.number for row in grid.cells for c in row if c.read is not None]
    assert numbers == [1, 2, 3, 4, 5, 6, 7] and grid.current == 7
    assert grid.cells[1][2].read is None


def test_nested_tlb_hits_show_as_skipped_cells() -> None:
    """With a nested TLB the same walk later skips host walks: the row is marked skipped, not numbered."""
    system, _first = first_paged_step(2, 4, nested_cache=8)
    for _ in range(200):
        result = system.step()
        walked = [t for t in translations(result) if any(isinstance(i, NestedCacheHit) for i in t.items)]
        if walked:
            break
    else:
        pytest.fail("no nested-TLB hit in 200 steps")
    translation = walked[0]
    grid = walk_grid(translation.items, 2, 4)
    skipped = [row for row in grid.cells if row[0].skipped]
    reads = [e for e in translation.items if isinstance(e, PageWalkRead)]
    assert skipped and grid.references == len(reads) < grid.cold
    numbers = sorted(c.number for row in grid.cells for c in row if c.number)
    assert numbers == list(range(1, len(reads) + 1))


def test_views_have_no_side_effects() -> None:
    """The quiet walks read the tables only: TLB, counters, nested cache and memory stay as they were."""
    system, result = first_paged_step(4, 4)
    va = walk_references(result.events)[0].va if walk_references(result.events) else 0x11C0
    before = (dict(system.mmu.tlb), system.counters(), bytes(system.memory), dict(system.current.nested.cache))
    gpa, entries = guest_walk_quietly(system, va)
    assert gpa is not None and len(entries) == 4
    assert host_translate_quietly(system, gpa) is not None
    frames = host_frames(system)
    assert frames is not None and frames.owners[0] == "vmm" and "vm0 host tables" in frames.owners
    after = (dict(system.mmu.tlb), system.counters(), bytes(system.memory), dict(system.current.nested.cache))
    assert after == before


def test_space_names() -> None:
    """VA/PA natively, gVA/gPA/hPA under any VMM memory mode."""
    assert space_names("native") == ("VA", "PA", "PA")
    for mode in ("relocation", "shadow", "nested"):
        assert space_names(mode) == ("gVA", "gPA", "hPA")
