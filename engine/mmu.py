"""The MMU: multi-level page tables walked from memory, a TLB, accessed/dirty write-back, page faults."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from engine.events import PageWalkRead, PteUpdate, TlbEvict, TlbFill, TlbFlush, TlbLookup
from engine.isa import (
    PAGE_SHIFT,
    PF_FETCH,
    PF_PRESENT,
    PF_USER,
    PF_WRITE,
    PTE_A,
    PTE_D,
    PTE_FRAME_MASK,
    PTE_P,
    PTE_U,
    PTE_W,
    Vector,
)

READ, WRITE, FETCH = 0, 1, 2
ACCESS_NAMES = ("read", "write", "fetch")
TLB_POLICIES = ("lru", "fifo", "random")
VPN_BITS = 20
PHYSICAL_TAG = 1 << 40  # TLB key bit for guest-physical (paging off) translations under nested paging
VPID_SHIFT = 44  # TLB key bits from here up: the VM a translation belongs to (VPID), when tagging is on
ASID_FIELD = (1 << (VPID_SHIFT - VPN_BITS)) - 1  # key >> VPN_BITS masked: asid (and the physical tag)


class Sink:
    """Where components append events while something records; `events` is None otherwise."""

    __slots__ = ("events", "step")

    def __init__(self) -> None:
        self.events: list[Any] | None = None
        self.step = 0


class Fault(Exception):
    """An architectural fault raised mid-instruction; the CPU turns it into trap delivery."""

    def __init__(self, vector: int, error_code: int = 0, address: int = 0) -> None:
        super().__init__(vector, error_code, address)
        self.vector = vector
        self.error_code = error_code
        self.address = address


class BusError(Exception):
    """A physical access outside installed memory: the machine cannot continue."""


def split_levels(levels: int) -> tuple[int, ...]:
    """Index bits per level, root first: the 20-bit VPN split as evenly as possible (upper levels wider)."""
    if not 1 <= levels <= 4:
        raise ValueError(f"page_levels must be 1..4, got {levels}")
    base, extra = divmod(VPN_BITS, levels)
    return tuple(base + 1 if i < extra else base for i in range(levels))


@dataclass(frozen=True, slots=True)
class TlbEntry:
    """A TLB entry as the app shows it."""

    vpn: int
    asid: int
    frame: int
    writable: bool
    user: bool
    dirty: bool
    vpid: int = 0
    """The VM the entry belongs to when the TLB is tagged by VM (VPID), else 0."""
    physical: bool = False
    """A guest-physical translation (guest paging off) rather than a guest-virtual one."""


class MMU:
    """Translates virtual to physical addresses for the CPU.

    The TLB is a dict from tag (vpn, plus asid << 20 when tagged) to ``frame_base | W | U | D`` so a hit
    costs one dict lookup and no allocation. Dict order is the replacement order (oldest first).
    """

    def __init__(self, mem32: memoryview, mem_size: int, sink: Sink, *, levels: int, tlb_entries: int,
                 tlb_policy: str, tlb_tagged: bool, seed: int) -> None:
        if tlb_policy not in TLB_POLICIES:
            raise ValueError(f"tlb_policy must be one of {', '.join(TLB_POLICIES)}, got {tlb_policy!r}")
        if tlb_entries < 1:
            raise ValueError("tlb_entries must be at least 1")
        self.mem32 = mem32
        self.mem_size = mem_size
        self.sink = sink
        self.levels = levels
        self.level_bits = split_levels(levels)
        self.tlb: dict[int, int] = {}
        self.tlb_capacity = tlb_entries
        self.tlb_policy = tlb_policy
        self.tlb_lru = tlb_policy == "lru"
        self.tlb_tagged = tlb_tagged
        self.rng = random.Random(seed)
        self.root = 0  # page-table root (cr3 without the asid bits)
        self.asid = 0
        self.asid_key = 0  # asid << 20 when tagged, else 0; plus vpid << VPID_SHIFT
        self.vpid = 0
        self.vpid_tagging = False  # entries carry the VM they belong to, so a VM switch needs no flush
        self.last_key = -1  # most recently used TLB key (already in MRU position)
        self.last_entry = 0  # its entry, so the CPU can reuse it for consecutive fetches from one page
        # Guest-physical relocation and bound (Popek-Goldberg's relocation-bounds register); 0 = off.
        self.phys_base = 0
        self.phys_limit = 0
        self.nested: Any = None  # engine.nested.NestedPaging while a VM runs with nested paging
        self.walk_dimension = "native"  # how this MMU's own walks are labelled (guest, shadow)
        self.walk_relocates = True  # False while walking shadow tables, which already hold host addresses
        self.counters = {"tlb_hits": 0, "tlb_misses": 0, "walks": 0, "pte_reads": 0, "page_faults": 0}

    # ----------------------------------------------------------------- cr3 and flushes
    def load_cr3(self, value: int) -> None:
        """Switch address space; without tagging this flushes the whole TLB (as x86 does)."""
        self.root = value & PTE_FRAME_MASK
        self.asid = value & 0xFFF
        if self.tlb_tagged:
            self.asid_key = self.asid << VPN_BITS | self.vpid << VPID_SHIFT
            self.last_key = -1
        else:
            self.flush_all("cr3")

    def set_vpid(self, vpid: int, tagging: bool = True) -> None:
        """Tag TLB entries with the running VM (VPID): later lookups see only that VM's entries."""
        self.vpid, self.vpid_tagging = vpid, tagging
        self.asid_key = (self.asid << VPN_BITS if self.tlb_tagged else 0) | vpid << VPID_SHIFT
        self.last_key = -1

    def flush_all(self, scope: str = "all") -> None:
        """Drop every TLB entry (with VM tagging: every entry of the running VM)."""
        if self.vpid_tagging:
            mine = [key for key in self.tlb if key >> VPID_SHIFT == self.vpid]
            for key in mine:
                del self.tlb[key]
            dropped = len(mine)
        else:
            dropped = len(self.tlb)
            self.tlb.clear()
        self.last_key = -1
        events = self.sink.events
        if events is not None:
            events.append(TlbFlush(self.sink.step, scope, -1, dropped))

    def flush_page(self, va: int) -> None:
        """Drop the entry for the page holding `va` in the current address space (INVLPG)."""
        vpn = va >> PAGE_SHIFT
        dropped = 1 if self.tlb.pop(vpn | self.asid_key, None) is not None else 0
        self.last_key = -1
        events = self.sink.events
        if events is not None:
            events.append(TlbFlush(self.sink.step, "page", vpn, dropped))

    def relocate(self, gpa: int, write: bool = False) -> int:
        """Host-physical address of guest-physical `gpa`; a machine-check fault beyond the VM's bound.

        With nested paging the host's own page tables translate it (a second walk dimension).
        """
        if gpa >= self.phys_limit:
            raise Fault(Vector.MACHINE_CHECK, 0, gpa)
        if self.nested is not None:
            return int(self.nested.translate(gpa, write))
        return gpa + self.phys_base

    def guest_physical(self, gpa: int, access: int = READ) -> int:
        """Host-physical address for a guest access made with guest paging off.

        Under nested paging the TLB caches these gPA -> hPA translations too (tagged apart from gVA
        entries), as EPT hardware does; otherwise this is just relocation.
        """
        if self.nested is None:
            return self.relocate(gpa)
        key = (gpa >> PAGE_SHIFT) | PHYSICAL_TAG | self.vpid << VPID_SHIFT
        entry = self.tlb.get(key)
        if entry is not None and (access != WRITE or entry & PTE_D):
            self.counters["tlb_hits"] += 1
            if self.tlb_lru and key != self.last_key:
                del self.tlb[key]
                self.tlb[key] = entry
            self.last_key, self.last_entry = key, entry
            return (entry & PTE_FRAME_MASK) | (gpa & 0xFFF)
        if entry is not None:  # a store through a read-only host mapping: the walk decides (copy-on-write)
            del self.tlb[key]
        self.counters["tlb_misses"] += 1
        hpa = self.relocate(gpa, access == WRITE)
        self._fill(key, (hpa & PTE_FRAME_MASK) | PTE_W | PTE_U | (PTE_D if self.nested.last_writable else 0))
        return hpa

    # ----------------------------------------------------------------- translation
    def translate(self, va: int, access: int, user: bool) -> int:
        """Physical address for `va`, or raise Fault(PAGE_FAULT) with cr2-ready address and error code."""
        key = (va >> PAGE_SHIFT) | self.asid_key
        entry = self.tlb.get(key)
        if entry is not None:
            if (user and not entry & PTE_U) or (access == WRITE and not entry & PTE_W):
                self.counters["page_faults"] += 1
                raise Fault(Vector.PAGE_FAULT, page_fault_code(access, user, True), va)
            if access != WRITE or entry & PTE_D:
                self.counters["tlb_hits"] += 1
                if self.tlb_lru and key != self.last_key:
                    del self.tlb[key]
                    self.tlb[key] = entry
                self.last_key = key
                self.last_entry = entry
                events = self.sink.events
                if events is not None:
                    events.append(TlbLookup(self.sink.step, va, va >> PAGE_SHIFT, self.asid, True,
                                            entry >> PAGE_SHIFT, ACCESS_NAMES[access]))
                return (entry & PTE_FRAME_MASK) | (va & 0xFFF)
            # First write through a clean entry: re-walk so the MMU can set D in memory, like x86.
            del self.tlb[key]
        else:
            self.counters["tlb_misses"] += 1
            events = self.sink.events
            if events is not None:
                events.append(TlbLookup(self.sink.step, va, va >> PAGE_SHIFT, self.asid, False, -1,
                                        ACCESS_NAMES[access]))
        entry = self.walk(va, access, user)
        self._fill(key, entry)
        return (entry & PTE_FRAME_MASK) | (va & 0xFFF)

    def walk(self, va: int, access: int, user: bool) -> int:
        """Walk the page tables for `va`; returns ``frame_base | W | U | D`` or raises a page fault.

        Emits one PageWalkRead per entry read, then PteUpdate for each accessed/dirty write-back.
        """
        self.counters["walks"] += 1
        events = self.sink.events
        mem32 = self.mem32
        relocating = self.phys_limit != 0 and self.walk_relocates
        nested = self.nested if relocating else None
        table_gpa = self.root
        table = self.relocate(self.root) if relocating else self.root
        shift = VPN_BITS + PAGE_SHIFT
        writable = user_ok = True
        touched: list[tuple[int, int]] = []
        last = self.levels
        for level, bits in enumerate(self.level_bits, 1):
            shift -= bits
            index = (va >> shift) & ((1 << bits) - 1)
            entry_address = table + index * 4
            if entry_address + 4 > self.mem_size:
                raise BusError(f"page table entry at {entry_address:#x} is outside physical memory")
            entry = mem32[entry_address >> 2]
            self.counters["pte_reads"] += 1
            outcome = "leaf" if level == last else "next"
            fault_code = -1
            if not entry & PTE_P:
                outcome = "not-present"
                fault_code = page_fault_code(access, user, False)
            else:
                writable = writable and bool(entry & PTE_W)
                user_ok = user_ok and bool(entry & PTE_U)
                if level == last and ((user and not user_ok) or (access == WRITE and not writable)):
                    outcome = "protection"
                    fault_code = page_fault_code(access, user, True)
            if events is not None:
                events.append(PageWalkRead(self.sink.step, va, level, self.levels, table, index,
                                           entry_address, entry, outcome, ACCESS_NAMES[access],
                                           self.walk_dimension))
            if fault_code >= 0:
                self.counters["page_faults"] += 1
                raise Fault(Vector.PAGE_FAULT, fault_code, va)
            touched.append((entry_address, entry, table_gpa + index * 4))
            table_gpa = table = entry & PTE_FRAME_MASK
            if relocating:
                table = self.relocate(table, level == last and access == WRITE)
        host_writable = nested is None or nested.last_writable
        dirty = False
        for position, (entry_address, entry, entry_gpa) in enumerate(touched):
            is_leaf = position == len(touched) - 1
            new = entry | PTE_A
            if is_leaf and access == WRITE:
                new |= PTE_D
            if is_leaf:
                dirty = bool(new & PTE_D)
            if new != entry:
                if nested is not None and entry_gpa >> PAGE_SHIFT in nested.readonly:
                    # The guest table sits in a copy-on-write shared frame: the VMM gives this VM its own copy
                    # first, and the hardware walks again (the frames it read may have moved).
                    nested.ensure_writable(entry_gpa)
                    return self.walk(va, access, user)
                mem32[entry_address >> 2] = new
                if events is not None:
                    events.append(PteUpdate(self.sink.step, entry_address, entry, new))
        # A read-only host mapping (a shared frame) is cached clean, so the first store walks again and the
        # VMM sees it.
        dirty = dirty and host_writable
        return table | (PTE_W if writable else 0) | (PTE_U if user_ok else 0) | (PTE_D if dirty else 0)

    def _fill(self, key: int, entry: int) -> None:
        tlb = self.tlb
        events = self.sink.events
        if len(tlb) >= self.tlb_capacity:
            # lru and fifo both evict the oldest in dict order (lru reorders on hits); random is seeded
            victim = list(tlb)[self.rng.randrange(len(tlb))] if self.tlb_policy == "random" else next(iter(tlb))
            old = tlb.pop(victim)
            if events is not None:
                events.append(TlbEvict(self.sink.step, victim & 0xFFFFF, victim >> VPN_BITS & ASID_FIELD,
                                       old >> PAGE_SHIFT, self.tlb_policy))
        tlb[key] = entry
        self.last_key = key
        self.last_entry = entry
        if events is not None:
            events.append(TlbFill(self.sink.step, key & 0xFFFFF, key >> VPN_BITS & ASID_FIELD, entry >> PAGE_SHIFT,
                                  entry & 0xFFF, len(tlb) - 1))

    def probe(self, va: int) -> int | None:
        """Physical address `va` translates to right now, or None: no TLB fill, no A/D bits, no events.

        For display only (the memory mapper's "where does this address go" view).
        """
        entry = self.tlb.get((va >> PAGE_SHIFT) | self.asid_key)
        if entry is not None:
            return (entry & PTE_FRAME_MASK) | (va & 0xFFF)
        table = self.root
        shift = VPN_BITS + PAGE_SHIFT
        relocating = self.phys_limit != 0 and self.walk_relocates
        try:
            if relocating:
                table = self.relocate_quietly(table)
            for bits in self.level_bits:
                shift -= bits
                address = table + 4 * ((va >> shift) & ((1 << bits) - 1))
                if address + 4 > self.mem_size:
                    return None
                entry = self.mem32[address >> 2]
                if not entry & PTE_P:
                    return None
                table = entry & PTE_FRAME_MASK
                if relocating:
                    table = self.relocate_quietly(table)
        except Fault:
            return None
        return table | (va & 0xFFF)

    def relocate_quietly(self, gpa: int) -> int:
        """`relocate` without events or counters (nested walks are replayed silently)."""
        if self.nested is None:
            return self.relocate(gpa)
        saved, self.sink.events = self.sink.events, None
        counters = dict(self.nested.counters)
        try:
            return int(self.nested.translate(gpa))
        finally:
            self.sink.events = saved
            self.nested.counters = counters

    def entries(self) -> list[TlbEntry]:
        """The TLB contents, oldest (next victim under lru/fifo) first."""
        return [TlbEntry(key & 0xFFFFF, key >> VPN_BITS & 0xFFF, value >> PAGE_SHIFT, bool(value & PTE_W),
                         bool(value & PTE_U), bool(value & PTE_D), key >> VPID_SHIFT, bool(key & PHYSICAL_TAG))
                for key, value in self.tlb.items()]


def page_fault_code(access: int, user: bool, present: bool) -> int:
    """The x86-style page-fault error code for an access."""
    return ((PF_PRESENT if present else 0) | (PF_WRITE if access == WRITE else 0)
            | (PF_USER if user else 0) | (PF_FETCH if access == FETCH else 0))
