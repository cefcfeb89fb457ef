"""Shadow paging: hidden vs true faults, traced page-table writes, equivalence with native runs,
agreement with nested paging, and the shadow/nested trade-off."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import ShadowUpdate
from engine.mmu import READ, WRITE, Fault
from engine.programs import assemble_shipped
from engine.systems import build_system, guest_view, paravirtual_kernel
from engine.vmm import GuestSpec, Hypervisor
from tests.engine.test_nested import paged_guest


@pytest.mark.parametrize("programs", [("hello", "count"), ("pagefault", "privileged")])
@pytest.mark.parametrize("mode", ["trap", "bt", "hw", "pv"])
def test_kernel_under_shadow_paging_equals_native(programs: tuple[str, ...], mode: str) -> None:
    native = build_system("native", user_programs=programs)
    native.run(3_000_000)
    kernel = paravirtual_kernel() if mode == "pv" else assemble_shipped("kernel")
    hv = Hypervisor(mode, [GuestSpec(kernel, tuple(assemble_shipped(p) for p in programs))], memory_mode="shadow")
    hv.run(3_000_000)
    assert guest_view(native).first_difference(guest_view(hv), observable_only=mode == "pv") is None
    counters = hv.counters()
    assert counters["hidden_faults"] > 0
    if "pagefault" in programs:
        assert counters["pt_writes_traced"] > 0  # demand-zero faults write guest page tables after paging is on
        assert counters["true_faults"] > 0  # demand-zero faults are the guest's: reflected, not hidden


def resolve(hv: Hypervisor, va: int, access: int = READ) -> int | tuple[str, int, int]:
    """Translate like the system would: hidden shadow faults are filled by the VMM and retried."""
    for _ in range(4):
        try:
            return hv.machine.mmu.translate(va, access, False)
        except Fault as fault:
            shadow = hv.vms[0].shadow
            if shadow is None:
                return ("fault", fault.vector, fault.address)
            hidden, error = shadow.handle_fault(va, fault.error_code)
            if not hidden:
                return ("fault", fault.vector, fault.address)
    raise AssertionError("shadow fault did not resolve")


@settings(max_examples=40, deadline=None)
@given(levels=st.integers(2, 4), pages=st.lists(st.integers(0x400, 0xFFFF), min_size=1, max_size=6, unique=True),
       probe=st.integers(0x00400000, 0x0FFFFFFF), write=st.booleans())
def test_shadow_and_nested_give_the_same_host_address_and_the_same_faults(
        levels: int, pages: list[int], probe: int, write: bool) -> None:
    results = []
    for memory_mode in ("shadow", "nested"):
        hv, tables = paged_guest(levels, 4, memory_mode)
        if memory_mode == "shadow":
            hv.vms[0].vcpu.cr3, hv.vms[0].vcpu.cr0 = 0x10000, 1
            hv.load_guest_cr3(hv.vms[0], 0x10000)
        for i, vpn in enumerate(pages):
            tables.map(vpn << 12, 0x80 + i)
        access = WRITE if write else READ
        results.append([resolve(hv, va, access) for va in ((pages[0] << 12) | 0x24, probe)])
    assert results[0] == results[1]


def test_guest_page_table_write_resyncs_the_shadow() -> None:
    hv = build_system("trap", user_programs=("pagefault",), memory_mode="shadow")
    assert isinstance(hv, Hypervisor)
    events = []
    while not hv.halted:
        events += [e for e in hv.step().events if isinstance(e, ShadowUpdate)]
    actions = {e.action for e in events}
    assert {"fill", "switch"} <= actions
    assert hv.counters()["pt_writes_traced"] > 0


def test_shadow_costs_exits_on_page_table_writes_nested_costs_references_on_misses() -> None:
    programs = ("heap",)  # 96 demand-zero page-table writes, then a TLB-miss-heavy pass
    figures = {}
    for memory_mode in ("shadow", "nested"):
        hv = build_system("hw", user_programs=programs, memory_mode=memory_mode)
        hv.run(5_000_000)
        c = hv.counters()
        figures[memory_mode] = (c.get("vmm_entries", 0), c.get("pte_reads", 0) + c.get("host_pte_reads", 0),
                                max(c.get("walks", 0), 1))
    shadow_exits, shadow_refs, shadow_walks = figures["shadow"]
    nested_exits, nested_refs, nested_walks = figures["nested"]
    assert shadow_exits > 2 * nested_exits
    assert nested_refs / nested_walks > 3 * shadow_refs / shadow_walks
