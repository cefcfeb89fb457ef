"""Page walks checked against a reference walk computed independently from memory contents."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import PageWalkRead, PteUpdate, TlbEvict, TlbFlush, TlbLookup
from engine.isa import PF_PRESENT, PF_USER, PF_WRITE, PTE_A, PTE_D, PTE_P, PTE_U, PTE_W, SP, Vector
from engine.machine import Machine, MachineConfig
from engine.mmu import READ, WRITE, Fault
from tests.engine.helpers import HANDLER, ins, install_trap_table, machine_with

ROOT = 0x10000


class Tables:
    """Builds page tables directly in a machine's memory (test-side allocator, not the engine's)."""

    def __init__(self, machine: Machine, levels: int) -> None:
        self.machine = machine
        self.levels = levels
        self.bits = _reference_bits(levels)
        self.next_free = ROOT + 0x1000
        machine.write_memory(ROOT, bytes(4 << self.bits[0]))

    def _alloc(self, entries: int) -> int:
        address = self.next_free
        self.next_free += max(0x1000, entries * 4)
        self.machine.write_memory(address, bytes(entries * 4))
        return address

    def map(self, va: int, frame: int, flags: int) -> None:
        table = ROOT
        shift = 32
        for level, bits in enumerate(self.bits):
            shift -= bits
            index = (va >> shift) & ((1 << bits) - 1)
            slot = table + 4 * index
            entry = self.machine.read_word(slot)
            if level == self.levels - 1:
                self.machine.write_memory(slot, ((frame << 12) | flags).to_bytes(4, "little"))
                return
            if not entry & PTE_P:
                entry = self._alloc(1 << self.bits[level + 1]) | PTE_P | PTE_W | PTE_U
                self.machine.write_memory(slot, entry.to_bytes(4, "little"))
            table = entry & ~0xFFF


def _reference_bits(levels: int) -> list[int]:
    # Written independently of engine.mmu.split_levels: hand-listed splits of the 20-bit VPN.
    return {1: [20], 2: [10, 10], 3: [7, 7, 6], 4: [5, 5, 5, 5]}[levels]


def reference_walk(memory: bytes, root: int, va: int, levels: int) -> list[tuple[int, int, int]]:
    """(table, index, entry) for each level, stopping at the first non-present entry."""
    reads = []
    table, shift = root, 32
    for bits in _reference_bits(levels):
        shift -= bits
        index = (va >> shift) & ((1 << bits) - 1)
        entry = int.from_bytes(memory[table + 4 * index:table + 4 * index + 4], "little")
        reads.append((table, index, entry))
        if not entry & PTE_P:
            break
        table = entry & 0xFFFFF000
    return reads


def paged_machine(levels: int = 2, **config: object) -> tuple[Machine, Tables]:
    memory = 8 << 20 if levels == 1 else 1 << 20
    machine = Machine(MachineConfig(memory_size=memory, page_levels=levels, **config))  # type: ignore[arg-type]
    tables = Tables(machine, levels)
    machine.cpu.write_cr(3, ROOT)
    machine.cpu.write_cr(0, 1)
    return machine, tables


def record(machine: Machine, va: int, access: int = READ, user: bool = False) -> list[object]:
    machine.sink.events = events = []
    try:
        machine.mmu.translate(va, access, user)
    finally:
        machine.sink.events = None
    return events


@settings(max_examples=60, deadline=None)
@given(levels=st.integers(1, 4), pages=st.lists(st.integers(0, 0xFFFFF), min_size=1, max_size=6, unique=True),
       probe=st.integers(0, 0xFFFFFFFF), offset=st.integers(0, 0xFFF))
def test_walk_matches_reference(levels: int, pages: list[int], probe: int, offset: int) -> None:
    machine, tables = paged_machine(levels)
    for i, vpn in enumerate(pages):
        tables.map(vpn << 12, 0x80 + i, PTE_P | PTE_W | PTE_U)
    for va in [(pages[0] << 12) | offset, probe]:
        expected = reference_walk(bytes(machine.memory), ROOT, va, levels)
        machine.mmu.flush_all()
        try:
            events = record(machine, va)
            pa = None
        except Fault as fault:
            assert fault.vector == Vector.PAGE_FAULT and fault.address == va
            events = []
        walk = [e for e in (events or []) if isinstance(e, PageWalkRead)]
        if walk:  # successful translation: every level read, in order, matching the reference
            assert [(w.table, w.index, w.entry & ~(PTE_A | PTE_D)) for w in walk] == \
                   [(t, i, e & ~(PTE_A | PTE_D)) for t, i, e in expected]
            assert len(walk) == levels and walk[-1].outcome == "leaf"
            pa = machine.mmu.translate(va, READ, False)
            assert pa == ((expected[-1][2] & 0xFFFFF000) | (va & 0xFFF))
        else:
            assert not expected[-1][2] & PTE_P


def test_fault_walk_stops_at_the_missing_level() -> None:
    machine, tables = paged_machine(2)
    tables.map(0x00400000, 0x90, PTE_P | PTE_W | PTE_U)
    machine.sink.events = events = []
    try:
        machine.mmu.translate(0x00401000, READ, True)  # same page table, entry not present
    except Fault as fault:
        assert fault.error_code == PF_USER and fault.address == 0x00401000
    machine.sink.events = None
    walk = [e for e in events if isinstance(e, PageWalkRead)]
    assert [w.outcome for w in walk] == ["next", "not-present"]


def test_tlb_miss_then_hit_and_accessed_dirty_write_back() -> None:
    machine, tables = paged_machine(2)
    tables.map(0x5000, 0x77, PTE_P | PTE_W)
    first = record(machine, 0x5004)
    assert [type(e).__name__ for e in first][:3] == ["TlbLookup", "PageWalkRead", "PageWalkRead"]
    assert isinstance(first[0], TlbLookup) and not first[0].hit
    leaf_address = [e for e in first if isinstance(e, PageWalkRead)][-1].entry_address
    assert machine.read_word(leaf_address) & (PTE_A | PTE_D) == PTE_A
    second = record(machine, 0x5008)
    assert len(second) == 1 and isinstance(second[0], TlbLookup) and second[0].hit and second[0].frame == 0x77
    third = record(machine, 0x5008, WRITE)  # first write through a clean entry re-walks to set D
    assert any(isinstance(e, PteUpdate) and e.new & PTE_D for e in third)
    assert machine.read_word(leaf_address) & PTE_D


def test_protection_faults_have_x86_error_codes() -> None:
    machine, tables = paged_machine(2)
    tables.map(0x6000, 0x60, PTE_P)  # supervisor, read-only
    for access, user, code in [(WRITE, False, PF_PRESENT | PF_WRITE), (READ, True, PF_PRESENT | PF_USER),
                               (WRITE, True, PF_PRESENT | PF_WRITE | PF_USER)]:
        machine.mmu.flush_all()
        try:
            machine.mmu.translate(0x6000, access, user)
            raise AssertionError("expected a page fault")
        except Fault as fault:
            assert fault.error_code == code


def test_lru_and_fifo_evict_different_entries() -> None:
    victims = {}
    for policy in ("lru", "fifo"):
        machine, tables = paged_machine(2, tlb_entries=2, tlb_policy=policy)
        for vpn in (1, 2, 3):
            tables.map(vpn << 12, 0x100 + vpn, PTE_P | PTE_W)
        record(machine, 0x1000)
        record(machine, 0x2000)
        record(machine, 0x1000)  # touch page 1 again: LRU now evicts page 2, FIFO still page 1
        evicts = [e for e in record(machine, 0x3000) if isinstance(e, TlbEvict)]
        victims[policy] = evicts[0].vpn
    assert victims == {"lru": 2, "fifo": 1}


def test_cr3_load_flushes_unless_tagged() -> None:
    for tagged, survives in ((False, 0), (True, 1)):
        machine, tables = paged_machine(2, tlb_tagged=tagged)
        tables.map(0x1000, 0x99, PTE_P)
        record(machine, 0x1000)
        machine.sink.events = events = []
        machine.cpu.write_cr(3, ROOT | 5)  # same tables, another address-space id
        machine.sink.events = None
        assert any(isinstance(e, TlbFlush) for e in events) is not tagged
        assert len(machine.mmu.tlb) == survives


def test_load_through_paging_emits_walk_then_memory_access_and_page_fault_sets_cr2() -> None:
    code = ins("LD", 1, 0xF, 0x7000) + ins("LD", 2, 0xF, 0x9000)
    machine = machine_with(code, origin=0x1000, config=MachineConfig(memory_size=1 << 20))
    install_trap_table(machine, {14: HANDLER})
    tables = Tables(machine, 2)
    for page in (0x1000, 0x3000, 0x8000):  # code, trap table, stack
        tables.map(page, page >> 12, PTE_P | PTE_W)
    tables.map(0x7000, 0x55, PTE_P)
    machine.write_memory(0x55000, (1234).to_bytes(4, "little"))
    machine.cpu.regs[SP] = 0x9000
    machine.cpu.write_cr(3, ROOT)
    machine.cpu.write_cr(0, 1)
    result = machine.step()
    kinds = [e.kind for e in result.events]
    assert kinds.index("walk") < kinds.index("mem") and machine.cpu.regs[1] == 1234
    result = machine.step()
    trap = [e for e in result.events if e.kind == "trap"][0]
    assert trap.vector == Vector.PAGE_FAULT and trap.fault_address == 0x9000
    assert machine.cpu.cr2 == 0x9000 and machine.cpu.pc == HANDLER
