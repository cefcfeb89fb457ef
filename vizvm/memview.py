"""Read-only views of memory for the panels: side-effect-free translation, symbols, the frame map.

Nothing here changes the machine: no TLB fills, no accessed bits, no events, no counters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.isa import PAGE_SHIFT, PAGE_SIZE, PTE_FRAME_MASK, PTE_P, PTE_U
from engine.machine import MODULE_BASE, MODULE_STRIDE, Machine
from engine.mmu import Fault
from engine.program import Program

FRAME_OWNERS: dict[str, str] = {
    "free": "free",
    "boot": "boot info",
    "kernel": "kernel image",
    "module": "program image (boot)",
    "table": "page table",
    "user": "user page (mapped)",
    "trap": "trap table",
}
"""Frame owner codes and the legend text for each."""

MAX_TABLE_ENTRIES_SCANNED = 1 << 16


def probe(machine: Machine, va: int) -> int | None:
    """Physical address of `va` as the CPU would see it now (TLB first, then tables), or None if unmapped.

    Under a VMM the answer is host-physical: the guest's addresses are relocated into its VM's memory.
    """
    cpu, mmu = machine.cpu, machine.mmu
    size = len(machine.memory)
    if not cpu.paging:
        if not mmu.phys_limit:
            return va if 0 <= va < size else None
        try:  # a guest with paging off: guest-physical, relocated (or translated by nested paging)
            pa = mmu.relocate_quietly(va) if 0 <= va < mmu.phys_limit else None
        except Fault:
            return None
        return pa if pa is not None and pa < size else None
    pa = mmu.probe(va)
    return pa if pa is not None and pa < size else None


def guest_base(machine: Machine) -> int:
    """Where the running guest's physical memory starts in host memory (0 natively)."""
    current = getattr(machine, "current", None)
    return int(current.base) if current is not None else 0


def load_address(machine: Machine, index: int) -> int:
    """Physical address where program `index` of `machine.programs` was loaded."""
    program = machine.programs[index]
    offset = program.origin if index == 0 else MODULE_BASE + MODULE_STRIDE * (index - 1)
    return guest_base(machine) + offset


@dataclass(frozen=True, slots=True)
class Symbol:
    """Where an address comes from in the source."""

    program: str
    label: str | None
    """The label defined exactly at this address, if any."""
    source: str
    """The source line text, stripped ('' if unknown)."""
    labels: Mapping[int, str] | None = None
    """Address -> label, for disassembling operands by name (None if addresses are shifted)."""


def page_owner(machine: Machine, va: int, pa: int) -> tuple[int, int] | None:
    """Which program the page holding `va` (physical `pa`) comes from, as (index, address delta).

    The delta turns a virtual address in the page into an address in the program's symbol space.
    Matched by physical load range first (the kernel runs where it was loaded), else by the
    program's virtual range and the bytes in the page (the kernel copies user programs, and every
    user program starts at the same virtual address, so the bytes decide which one this is).
    """
    page_va, page_pa = va & ~0xFFF, pa & ~0xFFF
    best: tuple[int, int] | None = None
    best_score = 0
    memory = machine.memory
    for index, program in enumerate(machine.programs):
        load = load_address(machine, index)
        if load <= pa < load + len(program.image):
            return index, program.origin - load + (pa - va)
        lo, hi = max(page_va, program.origin), min(page_va + PAGE_SIZE, program.end)
        if lo >= hi:
            continue
        here = memory[page_pa + lo - page_va:page_pa + hi - page_va]
        image = program.image[lo - program.origin:hi - program.origin]
        score = sum(1 for i in range(0, len(image), 8) if here[i:i + 8] == image[i:i + 8])
        if score > best_score:
            best, best_score = (index, 0), score
    return best


def symbolize(machine: Machine, va: int, owner: tuple[int, int] | None) -> Symbol | None:
    """The program, label and source line of the item at `va`, given its page's `page_owner`."""
    if owner is None:
        return None
    index, delta = owner
    program = machine.programs[index]
    address = va + delta
    if not program.origin <= address < program.end:
        return None
    line = program.source_lines.get(address)
    lines = source_lines(program)
    text = lines[line - 1].strip() if line is not None and 0 < line <= len(lines) else ""
    return Symbol(program.name.rsplit("/", 1)[-1].removesuffix(".s"), program.labels.get(address), text,
                  program.labels if delta == 0 else None)


_SOURCE_CACHE: dict[int, tuple[Program, list[str]]] = {}


def source_lines(program: Program) -> list[str]:
    """The program's source split into lines (cached: sources are large and never change)."""
    cached = _SOURCE_CACHE.get(id(program))
    if cached is None or cached[0] is not program:
        if len(_SOURCE_CACHE) > 64:
            _SOURCE_CACHE.clear()
        cached = _SOURCE_CACHE[id(program)] = (program, program.source.splitlines())
    return cached[1]


@dataclass(frozen=True)
class FrameMap:
    """Who owns each 4 KiB physical frame."""

    owners: tuple[str, ...]
    """One code of FRAME_OWNERS per frame."""
    root: int
    """Page-table root the map was drawn for (0 when paging is off)."""
    paging: bool


def frame_map(machine: Machine) -> FrameMap:
    """Classify every physical frame: images, page tables reachable from cr3, user-mapped pages."""
    frames = len(machine.memory) // PAGE_SIZE
    owners = ["free"] * frames

    def mark(start: int, end: int, owner: str) -> None:
        for frame in range(start >> PAGE_SHIFT, min((end + PAGE_SIZE - 1) >> PAGE_SHIFT, frames)):
            owners[frame] = owner

    for index, program in enumerate(machine.programs):
        load = load_address(machine, index)
        mark(load, load + len(program.image), "kernel" if index == 0 else "module")
    base = guest_base(machine)
    if len(machine.programs) > 1:
        mark(base, base + 1, "boot")
    cpu = machine.cpu
    root = machine.mmu.root
    if (cpu.paging or root) and machine.mmu.nested is None:  # (nested paging: the guest's tables are elsewhere)
        tables, user_pages = _scan_tables(machine, root, base)
        for frame in user_pages:
            if frame < frames and owners[frame] == "free":
                owners[frame] = "user"
        for frame in tables:
            if frame < frames:
                owners[frame] = "table"
    vcpu = getattr(getattr(machine, "current", None), "vcpu", None)  # a software VMM: the guest's own table
    idtr = vcpu.idtr if vcpu is not None and getattr(machine, "mode", "") != "hw" else cpu.idtr
    trap = probe(machine, idtr) if idtr else None
    if trap is not None and trap < len(machine.memory):
        owners[trap >> PAGE_SHIFT] = "trap"
    return FrameMap(tuple(owners), root, cpu.paging)


def _scan_tables(machine: Machine, root: int, base: int = 0) -> tuple[set[int], set[int]]:
    """Frames holding page tables reachable from `root`, and frames mapped as user pages.

    Under a VMM table and frame addresses are guest-physical: `base` relocates them into host memory.
    """
    mmu = machine.mmu
    size = len(machine.memory)
    mem32 = memoryview(machine.memory).cast("I")
    tables: set[int] = set()
    user_pages: set[int] = set()
    budget = MAX_TABLE_ENTRIES_SCANNED
    stack: list[tuple[int, int]] = [(root + base, 0)]
    last = len(mmu.level_bits) - 1
    while stack and budget > 0:
        table, level = stack.pop()
        if table + 4 > size:
            continue
        tables.add(table >> PAGE_SHIFT)
        count = min(1 << mmu.level_bits[level], (size - table) // 4, budget)
        budget -= count
        start = table >> 2
        for entry in mem32[start:start + count]:
            if not entry & PTE_P:
                continue
            target = (entry & PTE_FRAME_MASK) + base
            if level == last:
                if entry & PTE_U:
                    user_pages.add(target >> PAGE_SHIFT)
            elif target >> PAGE_SHIFT not in tables:
                stack.append((target, level + 1))
    return tables, user_pages


# ---------------------------------------------------------------------------------------------- under a VMM
def memory_mode(machine: object) -> str:
    """``native`` for a bare Machine, else the Hypervisor's ``relocation``, ``shadow`` or ``nested``."""
    if getattr(machine, "vms", None) is None:
        return "native"
    return str(getattr(machine, "memory_mode", "relocation"))


def space_names(mode: str) -> tuple[str, str, str]:
    """(virtual, physical, machine) address-space labels: ``VA PA PA`` natively, else ``gVA gPA hPA``."""
    return ("VA", "PA", "PA") if mode == "native" else ("gVA", "gPA", "hPA")


def host_translate_quietly(machine: Machine, gpa: int) -> int | None:
    """Host-physical address of the running VM's guest-physical `gpa`, or None if it has none.

    Reads the VM's host tables (nested paging) directly, or applies its relocation: no events, no
    counters, no nested-TLB fills (unlike the engine's own walker).
    """
    vm = getattr(machine, "current", None)
    if vm is None:
        return gpa
    if not 0 <= gpa < vm.size:
        return None
    nested = vm.nested
    if nested is None:
        return int(vm.base) + gpa
    mem32 = nested.mem32
    table, shift = int(nested.root), 32
    for bits in nested.bits:
        shift -= bits
        address = table + 4 * ((gpa >> shift) & ((1 << bits) - 1))
        if address + 4 > len(machine.memory):
            return None
        entry = int(mem32[address >> 2])
        if not entry & PTE_P:
            return None
        table = entry & PTE_FRAME_MASK
    return table | (gpa & 0xFFF)


def guest_walk_quietly(machine: Machine, va: int) -> tuple[int | None, tuple[tuple[int, int], ...]]:
    """The running guest's own translation of `va`: (gPA or None, ((entry gPA, entry), ...) per level read).

    Walks the guest's tables (gVA -> gPA) from its cr3 in software; each table is found through
    `host_translate_quietly`. For the shadow view: what the guest believes beside what the MMU uses.
    """
    if getattr(machine, "current", None) is None:
        return None, ()
    mmu = machine.mmu
    table = machine.cpu.cr3 & PTE_FRAME_MASK
    shift = 32
    read: list[tuple[int, int]] = []
    mem32 = memoryview(machine.memory).cast("I")
    for bits in mmu.level_bits:
        shift -= bits
        address = table + 4 * ((va >> shift) & ((1 << bits) - 1))
        host = host_translate_quietly(machine, address)
        if host is None or host + 4 > len(machine.memory):
            return None, tuple(read)
        entry = int(mem32[host >> 2])
        read.append((address, entry))
        if not entry & PTE_P:
            return None, tuple(read)
        table = entry & PTE_FRAME_MASK
    return table | (va & 0xFFF), tuple(read)


@dataclass(frozen=True)
class HostFrames:
    """The host's frames by owner, the shared ones with their refcount, and each VM's balloon."""

    owners: tuple[str, ...]
    """One of Hypervisor.frame_owners()'s codes per host frame."""
    refcounts: Mapping[int, int]
    """Host frame -> how many guest pages map it (only frames shared by more than one)."""
    vm_pages: tuple[int, ...]
    """Guest-physical pages of each VM, by VM id."""
    ballooned: tuple[frozenset[int], ...]
    """Guest-physical page numbers each VM's balloon driver holds, by VM id."""
    current: int
    """The running VM's id."""
    pool: tuple[int, int, int] | None = None
    """Under overcommit: the host's frame pool as (frames, free, frames page sharing saves)."""
    backed: tuple[frozenset[int], ...] = ()
    """Under overcommit: the guest-physical pages with a host frame behind them, by VM id."""


def host_frames(machine: object) -> HostFrames | None:
    """The host frame map of a Hypervisor (None for a bare Machine). Reads only."""
    vms = getattr(machine, "vms", None)
    if vms is None:
        return None
    owners = tuple(machine.frame_owners())  # type: ignore[attr-defined]
    refcounts = dict(machine.frame_refcounts())  # type: ignore[attr-defined]
    ballooned = tuple(frozenset(machine.ballooned_pages(vm.vm_id)) for vm in vms)  # type: ignore[attr-defined]
    current = getattr(machine, "current", None)
    hostmem = getattr(machine, "hostmem", None)
    pool: tuple[int, int, int] | None = None
    backed: tuple[frozenset[int], ...] = ()
    if hostmem is not None:
        pool = (hostmem.config.host_frames, hostmem.free_frames, hostmem.saved_frames())
        backed = tuple(frozenset(pages) for pages in hostmem.pmap)
    return HostFrames(owners, refcounts, tuple(vm.size // PAGE_SIZE for vm in vms), ballooned,
                      current.vm_id if current is not None else 0, pool, backed)


def shadow_walk_quietly(machine: Machine, va: int) -> tuple[tuple[int, int], ...]:
    """The shadow tables' entries for `va` as they are now: ((entry hPA, entry), ...), root first.

    Shadow tables hold host-physical addresses, so nothing is relocated. Reads only.
    """
    mmu = machine.mmu
    mem32 = memoryview(machine.memory).cast("I")
    table, shift = mmu.root, 32
    read: list[tuple[int, int]] = []
    for bits in mmu.level_bits:
        shift -= bits
        address = table + 4 * ((va >> shift) & ((1 << bits) - 1))
        if address + 4 > len(machine.memory):
            break
        entry = int(mem32[address >> 2])
        read.append((address, entry))
        if not entry & PTE_P:
            break
        table = entry & PTE_FRAME_MASK
    return tuple(read)
