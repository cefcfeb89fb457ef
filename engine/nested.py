"""Nested (two-dimensional) paging: the host's page tables translate every guest-physical address.

With nested paging (AMD NPT, Intel EPT) the MMU walks the guest's tables in guest-physical space,
and each guest table address, and the final guest-physical address, is itself translated by a walk
of the host's tables. A cold n-level guest walk on an m-level host therefore reads
n*m + n + m = (n+1)(m+1) - 1 entries (24 for 4 on 4). Every host read is a `walk` event with
dimension "host". An optional nested TLB (page-walk cache) remembers gPA -> hPA page translations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.events import NestedCacheHit, PageWalkRead
from engine.isa import PAGE_SHIFT, PAGE_SIZE, PTE_FRAME_MASK, PTE_P, PTE_U, PTE_W, Vector
from engine.mmu import Fault, Sink, split_levels

VPN_BITS = 20


def table_bytes(bits: int) -> int:
    """Bytes a table with `bits` index bits occupies (page aligned)."""
    return max(PAGE_SIZE, 4 << bits)


def host_table_space(levels: int, pages: int) -> int:
    """Bytes of host page tables needed to map `pages` contiguous guest pages from gPA 0."""
    bits = split_levels(levels)
    total = 0
    covered_below = VPN_BITS
    for level_bits in bits:
        covered_below -= level_bits  # VPN bits below this level
        tables = max(1, -(-pages // (1 << (covered_below + level_bits))))
        total += tables * table_bytes(level_bits)
    return total


class NestedPaging:
    """One VM's host page tables (gPA -> hPA) and the walker the MMU calls for each gPA."""

    def __init__(self, memory: bytearray, sink: Sink, *, levels: int, table_base: int, table_limit: int,
                 cache_entries: int = 0) -> None:
        self.memory = memory
        self.mem32 = memoryview(memory).cast("I")
        self.sink = sink
        self.levels = levels
        self.bits = split_levels(levels)
        self.table_base = table_base
        self.next_table = table_base
        self.table_limit = table_limit
        self.root = self._new_table(self.bits[0])
        self.cache_entries = cache_entries
        self.cache: dict[int, int] = {}
        self.counters = {"host_pte_reads": 0, "host_walks": 0, "nested_cache_hits": 0}
        self.readonly: set[int] = set()  # gPA page numbers mapped read-only (copy-on-write shared frames)
        self.last_writable = True  # whether the last translation's host mapping allows stores
        self.violation_hook: Callable[[int, bool, bool], bool] | None = None  # (gpa, write, present) -> fixed

    def _new_table(self, bits: int) -> int:
        address = self.next_table
        size = table_bytes(bits)
        if address + size > self.table_limit:
            raise MemoryError("the VMM ran out of room for host page tables")
        self.memory[address:address + size] = bytes(size)
        self.next_table += size
        return address

    def map_page(self, gpa: int, hpa: int, writable: bool = True) -> None:
        """Install gPA page -> hPA frame in the host tables (the VMM's allocator calls this)."""
        slot = self._leaf_slot(gpa, create=True)
        self.mem32[slot >> 2] = (hpa & PTE_FRAME_MASK) | PTE_P | PTE_U | (PTE_W if writable else 0)
        page = gpa >> PAGE_SHIFT
        if writable:
            self.readonly.discard(page)
        else:
            self.readonly.add(page)
        self.cache.pop(page, None)

    def unmap_page(self, gpa: int) -> None:
        """Remove gPA's page from the host tables (ballooned out, or about to be remapped)."""
        slot = self._leaf_slot(gpa, create=False)
        if slot >= 0:
            self.mem32[slot >> 2] = 0
        page = gpa >> PAGE_SHIFT
        self.readonly.discard(page)
        self.cache.pop(page, None)

    def mapping(self, gpa: int) -> tuple[int, bool] | None:
        """(host frame, writable) for gPA's page, read quietly (no events, no counters), or None."""
        slot = self._leaf_slot(gpa, create=False)
        if slot < 0:
            return None
        entry = int(self.mem32[slot >> 2])
        return (entry & PTE_FRAME_MASK, bool(entry & PTE_W)) if entry & PTE_P else None

    def _leaf_slot(self, gpa: int, *, create: bool) -> int:
        table, shift = self.root, VPN_BITS + PAGE_SHIFT
        for depth, bits in enumerate(self.bits):
            shift -= bits
            slot = table + 4 * ((gpa >> shift) & ((1 << bits) - 1))
            if depth == self.levels - 1:
                return slot
            entry = self.mem32[slot >> 2]
            if not entry & PTE_P:
                if not create:
                    return -1
                entry = self._new_table(self.bits[depth + 1]) | PTE_P | PTE_W | PTE_U
                self.mem32[slot >> 2] = entry
            table = entry & PTE_FRAME_MASK
        return -1

    def ensure_writable(self, gpa: int) -> int:
        """Host-physical address the CPU may store to for `gpa`, breaking a copy-on-write share quietly.

        The MMU calls this before it writes accessed/dirty bits into a guest page table: the write
        must not land in a frame another VM shares.
        """
        if gpa >> PAGE_SHIFT in self.readonly and self.violation_hook is not None:
            self.violation_hook(gpa, True, True)
        mapped = self.mapping(gpa)
        if mapped is None or not mapped[1]:
            raise Fault(Vector.MACHINE_CHECK, PTE_W, gpa)
        return mapped[0] | (gpa & 0xFFF)

    def translate(self, gpa: int, write: bool = False) -> int:
        """Walk the host tables for `gpa` (one `walk` event per entry read).

        An unmapped page, or a store to a read-only one, is an EPT violation: the VMM's
        `violation_hook` may fix it (back the page, break a copy-on-write share) and the walk is
        retried; otherwise it is a machine-check fault that stops the VM.
        """
        page = gpa >> PAGE_SHIFT
        events = self.sink.events
        if self.cache_entries:
            cached = self.cache.get(page)
            if cached is not None and (cached & PTE_W or not write):
                self.counters["nested_cache_hits"] += 1
                self.last_writable = bool(cached & PTE_W)
                hpa = (cached & PTE_FRAME_MASK) | (gpa & 0xFFF)
                if events is not None:
                    events.append(NestedCacheHit(self.sink.step, gpa, hpa))
                return hpa
        self.counters["host_walks"] += 1
        table, shift = self.root, VPN_BITS + PAGE_SHIFT
        entry = 0
        for level, bits in enumerate(self.bits, 1):
            shift -= bits
            index = (gpa >> shift) & ((1 << bits) - 1)
            entry_address = table + 4 * index
            entry = self.mem32[entry_address >> 2]
            self.counters["host_pte_reads"] += 1
            present = bool(entry & PTE_P)
            outcome = ("leaf" if level == self.levels else "next") if present else "not-present"
            if present and write and level == self.levels and not entry & PTE_W:
                outcome = "protection"
            if events is not None:
                events.append(PageWalkRead(self.sink.step, gpa, level, self.levels, table, index, entry_address,
                                           entry, outcome, "write" if write else "read", "host"))
            if outcome in ("not-present", "protection"):
                hook = self.violation_hook
                if hook is not None and hook(gpa, write, present):
                    return self.translate(gpa, write)  # the VMM fixed the mapping: the hardware walks again
                raise Fault(Vector.MACHINE_CHECK, PTE_W if write else 0, gpa)  # an EPT violation nobody fixed
            table = entry & PTE_FRAME_MASK
        self.last_writable = bool(entry & PTE_W)
        if self.cache_entries:
            if len(self.cache) >= self.cache_entries:
                del self.cache[next(iter(self.cache))]
            self.cache[page] = table | (entry & PTE_W)
        return table | (gpa & 0xFFF)

    def state(self) -> tuple[Any, ...]:
        """What a snapshot needs beyond memory (the tables themselves live in host memory)."""
        return (self.next_table, tuple(self.cache.items()), tuple(sorted(self.counters.items())),
                tuple(sorted(self.readonly)))

    def restore(self, state: tuple[Any, ...]) -> None:
        """Undo to a snapshot's state."""
        self.next_table, cache, counters, readonly = state
        self.cache = dict(cache)
        self.readonly = set(readonly)
        self.counters = dict(counters)
