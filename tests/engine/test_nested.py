"""Nested paging: the two-dimensional walk count, equivalence, the nested TLB, and agreement with
plain relocation on random guest mappings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import NestedCacheHit, PageWalkRead
from engine.isa import PTE_P, PTE_U, PTE_W
from engine.machine import MachineConfig
from engine.mmu import READ, Fault
from engine.program import Program
from engine.programs import assemble_shipped
from engine.systems import build_system, guest_view
from engine.vmm import GuestSpec, Hypervisor
from tests.engine.test_paging import ROOT, _reference_bits

IDLE = Program("idle", 0x1000, bytes(8), 0x1000)


class GuestTables:
    """Guest page tables written into a VM's memory (guest-physical addresses)."""

    def __init__(self, hv: Hypervisor, levels: int) -> None:
        self.hv, self.vm, self.levels = hv, hv.vms[0], levels
        self.bits = _reference_bits(levels)
        self.next_free = ROOT + 0x1000 + (4 << self.bits[0])
        self._zero(ROOT, 4 << self.bits[0])

    def _zero(self, gpa: int, size: int) -> None:
        self.hv.machine.write_memory(self.vm.base + gpa, bytes(size))

    def _word(self, gpa: int) -> int:
        return self.hv.machine.read_word(self.vm.base + gpa)

    def map(self, va: int, frame: int) -> None:
        table, shift = ROOT, 32
        for depth, bits in enumerate(self.bits):
            shift -= bits
            slot = table + 4 * ((va >> shift) & ((1 << bits) - 1))
            if depth == self.levels - 1:
                self.hv.machine.write_memory(self.vm.base + slot,
                                             ((frame << 12) | PTE_P | PTE_W | PTE_U).to_bytes(4, "little"))
                return
            entry = self._word(slot)
            if not entry & PTE_P:
                size = max(0x1000, 4 << self.bits[depth + 1])
                entry = self.next_free | PTE_P | PTE_W | PTE_U
                self._zero(self.next_free, size)
                self.next_free += size
                self.hv.machine.write_memory(self.vm.base + slot, entry.to_bytes(4, "little"))
            table = entry & ~0xFFF


def paged_guest(guest_levels: int, host_levels: int, memory_mode: str = "nested",
                cache: int = 0) -> tuple[Hypervisor, GuestTables]:
    memory = 16 << 20 if guest_levels == 1 else 1 << 20
    hv = Hypervisor("hw", [GuestSpec(IDLE, bare=True)], guest_memory=memory,
                    config=MachineConfig(page_levels=guest_levels), memory_mode=memory_mode,
                    host_levels=host_levels, nested_cache=cache)
    tables = GuestTables(hv, guest_levels)
    hv.machine.cpu.write_cr(3, ROOT)
    hv.machine.cpu.write_cr(0, 1)
    return hv, tables


def walk_reads(hv: Hypervisor, va: int) -> list[PageWalkRead]:
    hv.machine.sink.events = events = []
    try:
        hv.machine.mmu.translate(va, READ, False)
    finally:
        hv.machine.sink.events = None
    return [e for e in events if isinstance(e, PageWalkRead)]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_cold_two_dimensional_walk_reads_n_plus_1_times_m_plus_1_minus_1_entries(n: int, m: int) -> None:
    hv, tables = paged_guest(n, m)
    tables.map(0x00400000, 0x90)
    reads = walk_reads(hv, 0x00400123)
    assert len(reads) == (n + 1) * (m + 1) - 1
    assert sum(r.dimension == "guest" for r in reads) == n
    assert sum(r.dimension == "host" for r in reads) == (n + 1) * m
    assert walk_reads(hv, 0x00400456) == []  # the TLB now holds gVA -> hPA


def test_four_on_four_is_twenty_four_references() -> None:
    hv, tables = paged_guest(4, 4)
    tables.map(0x00800000, 0x42)
    assert len(walk_reads(hv, 0x00800000)) == 24


def test_nested_tlb_cuts_repeated_walks() -> None:
    hv, tables = paged_guest(2, 4, cache=16)
    for page in range(4):
        tables.map(0x00400000 + page * 0x1000, 0x90 + page)
    cold = len(walk_reads(hv, 0x00400000))
    events_before = hv.machine.mmu.nested.counters["nested_cache_hits"]
    warm = len(walk_reads(hv, 0x00401000))  # same guest tables: their gPA -> hPA are cached
    assert cold == 14 and warm < cold
    assert hv.machine.mmu.nested.counters["nested_cache_hits"] > events_before
    hv.machine.sink.events = events = []
    hv.machine.mmu.translate(0x00402000, READ, False)
    hv.machine.sink.events = None
    assert any(isinstance(e, NestedCacheHit) for e in events)


@settings(max_examples=40, deadline=None)
@given(levels=st.integers(2, 4), host=st.integers(1, 4),
       pages=st.lists(st.integers(0x400, 0xFFFF), min_size=1, max_size=6, unique=True),
       probe=st.integers(0x00400000, 0x0FFFFFFF))
def test_nested_and_relocation_agree_on_every_guest_address(levels: int, host: int, pages: list[int],
                                                             probe: int) -> None:
    results = []
    for memory_mode in ("nested", "relocation"):
        hv, tables = paged_guest(levels, host, memory_mode)
        for i, vpn in enumerate(pages):
            tables.map(vpn << 12, 0x80 + i)
        outcome = []
        for va in [(pages[0] << 12) | 0x10, probe]:
            try:
                outcome.append(hv.machine.mmu.translate(va, READ, False))
            except Fault as fault:
                outcome.append(("fault", fault.vector, fault.error_code, fault.address))
        results.append(outcome)
    assert results[0] == results[1]


@pytest.mark.parametrize("mode", ["trap", "bt", "hw"])
def test_kernel_under_nested_paging_equals_native(mode: str) -> None:
    native = build_system("native")
    native.run(3_000_000)
    spec = GuestSpec(assemble_shipped("kernel"), (assemble_shipped("hello"), assemble_shipped("count")))
    hv = Hypervisor(mode, [spec], memory_mode="nested", host_levels=4)
    hv.run(3_000_000)
    assert guest_view(native).first_difference(guest_view(hv)) is None
    assert hv.counters()["host_pte_reads"] > 0
