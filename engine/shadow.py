"""Shadow paging: the VMM keeps gVA -> hPA tables that the real MMU walks.

The guest's own page tables (gVA -> gPA) are traced: every store to a guest page-table page reaches
the VMM (write protection, modelled by the CPU's store watch), which drops the shadow entries built
from the changed guest entry. A real page fault on the shadow is either *hidden* (the guest maps the
address: the VMM fills the shadow and retries, the guest never knows) or *true* (the guest does not
map it: reflected to the guest kernel with the guest's own error code). Accessed and dirty bits are
propagated to the guest's entries by hand: a shadow leaf is writable only once the guest entry is dirty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.events import ShadowUpdate
from engine.isa import (
    PAGE_SHIFT,
    PAGE_SIZE,
    PF_FETCH,
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
from engine.mmu import FETCH, WRITE, Fault, page_fault_code, split_levels

if TYPE_CHECKING:
    from engine.vmm import VM, Hypervisor

VPN_BITS = 20


class ShadowPaging:
    """One VM's shadow tables, the reverse map from guest entries to shadow entries, and the tracing."""

    def __init__(self, hv: Hypervisor, vm: VM, *, levels: int, table_base: int, table_limit: int) -> None:
        self.hv, self.vm = hv, vm
        self.levels = levels
        self.bits = split_levels(levels)
        self.table_base = table_base
        self.table_limit = table_limit
        self.next_table = table_base
        self.free_tables: list[int] = []
        self.roots: dict[int, int] = {}  # guest root gPA -> shadow root hPA
        self.rmap: dict[int, set[int]] = {}  # hPA of a guest entry -> hPA of shadow entries derived from it
        self.guest_pages: set[int] = set()  # host page numbers of guest page-table pages (write-traced)
        self.counters = {"hidden_faults": 0, "true_faults": 0, "pt_writes_traced": 0, "shadow_fills": 0,
                         "shadow_entries_dropped": 0}

    # ------------------------------------------------------------------ shadow tables
    def _table(self, bits: int) -> int:
        size = max(PAGE_SIZE, 4 << bits)
        if self.free_tables and size == PAGE_SIZE:
            address = self.free_tables.pop()
        else:
            address = self.next_table
            if address + size > self.table_limit:
                raise MemoryError("the VMM ran out of room for shadow page tables")
            self.next_table += size
        self.hv.machine.memory[address:address + size] = bytes(size)
        return address

    def root_for(self, guest_root: int) -> int:
        """The shadow root for a guest page-table root (created empty, filled by hidden faults)."""
        guest_root &= PTE_FRAME_MASK
        root = self.roots.get(guest_root)
        if root is None:
            root = self.roots[guest_root] = self._table(self.bits[0])
            self._record("switch", 0, guest_root, root, root)
        return root

    # ------------------------------------------------------------------ the guest's tables, in software
    def _gpa(self, gpa: int) -> int:
        if gpa + 4 > self.vm.size:
            raise Fault(Vector.MACHINE_CHECK, 0, gpa)
        return self.vm.base + gpa

    def guest_walk(self, va: int, access: int, user: bool) -> tuple[int, list[int], bool, bool]:
        """Walk the guest tables: (gPA of va, hPAs of the entries used, writable, user) or a guest fault."""
        memory = self.hv.machine
        table = self.vm.vcpu.cr3 & PTE_FRAME_MASK
        shift = VPN_BITS + PAGE_SHIFT
        writable = user_ok = True
        entries: list[int] = []
        for depth, bits in enumerate(self.bits):
            shift -= bits
            address = self._gpa(table + 4 * ((va >> shift) & ((1 << bits) - 1)))
            entry = memory.read_word(address)
            if not entry & PTE_P:
                raise Fault(Vector.PAGE_FAULT, page_fault_code(access, user, False), va)
            writable, user_ok = writable and bool(entry & PTE_W), user_ok and bool(entry & PTE_U)
            entries.append(address)
            table = entry & PTE_FRAME_MASK
            if depth == self.levels - 1 and ((user and not user_ok) or (access == WRITE and not writable)):
                raise Fault(Vector.PAGE_FAULT, page_fault_code(access, user, True), va)
        return table | (va & 0xFFF), entries, writable, user_ok

    def guest_translate(self, va: int, write: bool) -> int:
        """Host-physical address of guest virtual `va` for the VMM's own accesses (supervisor)."""
        if not self.vm.vcpu.cr0 & 1:
            return self._gpa(va)
        gpa, entries, _writable, _user = self.guest_walk(va, WRITE if write else 0, False)
        self._set_accessed(entries, write)
        return self._gpa(gpa)

    def _set_accessed(self, entries: list[int], write: bool) -> None:
        machine = self.hv.machine
        for position, address in enumerate(entries):
            entry = machine.read_word(address)
            new = entry | PTE_A | (PTE_D if write and position == len(entries) - 1 else 0)
            if new != entry:  # the MMU would have set these on the guest's entries: the VMM must
                machine.write_memory(address, new.to_bytes(4, "little"))

    # ------------------------------------------------------------------ faults
    def handle_fault(self, va: int, error: int) -> tuple[bool, int]:
        """A real page fault on the shadow: (True, 0) if hidden and now fixed, (False, guest error) if true."""
        access = WRITE if error & PF_WRITE else (FETCH if error & PF_FETCH else 0)
        user = bool(error & PF_USER)
        try:
            gpa, entries, writable, user_ok = self.guest_walk(va, access, user)
        except Fault as fault:
            if fault.vector != Vector.PAGE_FAULT:
                raise
            self.counters["true_faults"] += 1
            return False, fault.error_code
        self.counters["hidden_faults"] += 1
        self._set_accessed(entries, access == WRITE)
        dirty = bool(self.hv.machine.read_word(entries[-1]) & PTE_D)
        self._fill(va, gpa, entries, writable and dirty, user_ok)
        for address in entries:
            self.guest_pages.add(address >> PAGE_SHIFT)
        self.hv.update_watch()
        return True, 0

    def _fill(self, va: int, gpa: int, entries: list[int], writable: bool, user_ok: bool) -> None:
        machine = self.hv.machine
        table = self.root_for(self.vm.vcpu.cr3)
        shift = VPN_BITS + PAGE_SHIFT
        for depth, bits in enumerate(self.bits):
            shift -= bits
            slot = table + 4 * ((va >> shift) & ((1 << bits) - 1))
            self.rmap.setdefault(entries[depth], set()).add(slot)
            if depth == self.levels - 1:
                value = (self._gpa(gpa & PTE_FRAME_MASK) & PTE_FRAME_MASK) | PTE_P | (PTE_W if writable else 0) | (
                    PTE_U if user_ok else 0)
                machine.write_memory(slot, value.to_bytes(4, "little"))
                machine.mmu.flush_page(va)
                self.counters["shadow_fills"] += 1
                self._record("fill", va, machine.read_word(entries[depth]), value, slot)
                return
            entry = machine.read_word(slot)
            if not entry & PTE_P:
                entry = self._table(self.bits[depth + 1]) | PTE_P | PTE_W | PTE_U
                machine.write_memory(slot, entry.to_bytes(4, "little"))
            table = entry & PTE_FRAME_MASK

    # ------------------------------------------------------------------ tracing guest page-table writes
    def guest_entry_written(self, hpa: int) -> bool:
        """A store hit a traced guest page-table page; drop shadow entries derived from that entry."""
        if hpa >> PAGE_SHIFT not in self.guest_pages:
            return False
        self.counters["pt_writes_traced"] += 1
        dropped = self.rmap.pop(hpa & ~3, set())
        machine = self.hv.machine
        for slot in dropped:
            machine.write_memory(slot, bytes(4))
            self.counters["shadow_entries_dropped"] += 1
            self._record("resync", 0, machine.read_word(hpa & ~3), 0, slot)
        if dropped:
            machine.mmu.flush_all("shadow")
        return True

    def _record(self, action: str, va: int, guest_entry: int, shadow_entry: int, address: int) -> None:
        events = self.hv.machine.sink.events
        if events is not None:
            events.append(ShadowUpdate(self.hv.machine.sink.step, self.vm.vm_id, action, va, guest_entry,
                                       shadow_entry, address))

    # ------------------------------------------------------------------ snapshots
    def state(self) -> tuple[Any, ...]:
        """Everything outside host memory (the tables themselves are in memory)."""
        return (self.next_table, tuple(self.free_tables), tuple(sorted(self.roots.items())),
                tuple(sorted((k, tuple(sorted(v))) for k, v in self.rmap.items())), tuple(sorted(self.guest_pages)),
                tuple(sorted(self.counters.items())))

    def restore(self, state: tuple[Any, ...]) -> None:
        """Undo to a snapshot's state."""
        next_table, free, roots, rmap, pages, counters = state
        self.next_table, self.free_tables, self.roots = next_table, list(free), dict(roots)
        self.rmap = {k: set(v) for k, v in rmap}
        self.guest_pages, self.counters = set(pages), dict(counters)
