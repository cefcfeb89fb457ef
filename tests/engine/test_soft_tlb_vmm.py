"""The software-managed TLB under the VMM: OSTEP Table B.5 (3 VMM entries, VPN -> MFN), Disco's VMM
software TLB (1 entry, 0 OS), invalidation, snapshots, and native/virtualized equivalence."""


from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.asm import assemble
from engine.costs import CostModel
from engine.events import (
    InstructionExecuted,
    Reflected,
    SoftwareTlbRefill,
    TlbFill,
    TlbLookup,
    TlbWriteEmulated,
    VmExit,
)
from engine.isa import OPCODE_BY_NAME, PTE_P, Vector
from engine.machine import MachineConfig
from engine.program import Program
from engine.programs import boot_kernel_machine, kernel_for
from engine.systems import build_system, guest_view
from engine.vmm import Hypervisor
from engine.vmm_emulate import emulate

SOFT = MachineConfig(tlb_managed="software")
USER = 0x0040_0000
DATA = 0x0040_1000


# ---------------------------------------------------------------------------------- OSTEP B.5 under the VMM
TOUCH = """
        .org 0x00400000
_start:
        mov r1, data
        ld r2, [r1]                 ; a guest-user load on a page not yet in the TLB
touched:
        ld r3, [r1 + 0x1000]
        ld r3, [r1 + 0x2000]
again:
        ld r4, [r1]                 ; evicted from a 2-entry TLB by now
        add r2, r4
        mov r0, 4                   ; exit(r2 + r4 = 84)
        mov r1, r2
        syscall
        .align 4096
data:   .word 42
        .align 4096
        .word 1
        .align 4096
        .word 2
"""
LOAD_PC = USER + 8
AGAIN_PC = USER + 32


def touch_program() -> Program:
    return assemble(TOUCH, "touch.s")


def hypervisor(mode: str = "trap", *, entries: int = 16, software_tlb: int = 0, tagged: bool = False) -> Hypervisor:
    config = MachineConfig(tlb_managed="software", tlb_entries=entries, tlb_tagged=tagged)
    system = build_system(mode, user_programs=[touch_program()], config=config, software_tlb=software_tlb)
    assert isinstance(system, Hypervisor)
    return system


def run_to(hv: Hypervisor, pc: int) -> None:
    hv.machine.cpu.set_breakpoints(frozenset({pc}))
    hv.machine.run(1_000_000)
    hv.machine.cpu.set_breakpoints(frozenset())
    assert hv.machine.cpu.pc == pc and hv.machine.cpu.ring == 3
    timer = hv.machine.timer
    timer.countdown = timer.interval  # a fresh time slice: no timer interrupt lands inside the flow


def steps_until_retired(hv: Hypervisor, pc: int) -> list[Any]:
    """Record steps from the instruction at `pc` until it retires (pc moves past it in ring 3)."""
    events: list[Any] = []
    for _ in range(500):
        events.extend(hv.step().events)
        cpu = hv.machine.cpu
        if cpu.ring == 3 and cpu.pc == pc + 8:
            return events
    raise AssertionError("the instruction never retired")


def test_one_guest_user_miss_is_exactly_three_vmm_entries() -> None:
    hv = hypervisor()
    run_to(hv, LOAD_PC)
    before = hv.counters()
    events = steps_until_retired(hv, LOAD_PC)
    exits = [e for e in events if isinstance(e, VmExit)]
    assert [e.reason for e in exits] == ["TLB miss", "privileged instruction tlbwr", "privileged instruction iret"]
    assert [e.guest_ring for e in exits] == [3, 0, 0]
    (reflected,) = [e for e in events if isinstance(e, Reflected)]
    assert reflected.vector == Vector.TLB_MISS
    # (2) the guest's miss handler runs deprivileged: real ring 1
    kernel = [e for e in events if isinstance(e, InstructionExecuted) and e.pc < 0x400000]
    assert kernel and {e.ring for e in kernel} == {1}
    # (7) the retried load hits
    lookups = [e for e in events if isinstance(e, TlbLookup) and e.va == DATA]
    assert [e.hit for e in lookups] == [False, True]
    assert hv.machine.cpu.regs[2] == 42
    after = hv.counters()
    delta = {k: after[k] - before.get(k, 0) for k in ("vmm_entries", "tlb_miss_traps", "tlbwr_emulated", "vmm_cycles")}
    costs = CostModel()
    assert delta == {"vmm_entries": 3, "tlb_miss_traps": 1, "tlbwr_emulated": 1,
                     "vmm_cycles": 3 * costs.vmm_trap + costs.reflect + 2 * costs.emulate}


def test_the_real_tlb_gets_the_machine_frame_never_the_guest_frame() -> None:
    hv = hypervisor()
    run_to(hv, LOAD_PC)
    events = steps_until_retired(hv, LOAD_PC)
    (write,) = [e for e in events if isinstance(e, TlbWriteEmulated)]
    assert write.vpn == DATA >> 12
    assert write.host_frame == hv.machine.mmu.relocate(write.guest_frame << 12) >> 12 != write.guest_frame
    (fill,) = [e for e in events if isinstance(e, TlbFill)]
    assert fill.frame == write.host_frame
    real = {entry.vpn: entry.frame for entry in hv.machine.mmu.entries()}
    assert real[DATA >> 12] == write.host_frame
    # every frame in the real TLB is one of the VM's host frames, none is a bare guest frame
    owners = hv.frame_owners()
    assert all(owners[frame] == "vm0" for frame in real.values())


def test_paravirtual_kernel_takes_the_same_three_entries_through_hypercalls() -> None:
    hv = hypervisor("pv")
    run_to(hv, LOAD_PC)
    exits = [e for e in steps_until_retired(hv, LOAD_PC) if isinstance(e, VmExit)]
    assert [(e.via, e.reason) for e in exits] == [("trap", "TLB miss"), ("hypercall", "hypercall 20"),
                                                 ("hypercall", "hypercall 5")]


def test_disco_refills_a_repeated_miss_with_one_vmm_entry_and_no_os() -> None:
    for software_tlb, expected_exits in ((0, 3), (64, 1)):
        hv = hypervisor(entries=2, software_tlb=software_tlb)
        run_to(hv, AGAIN_PC)
        assert DATA >> 12 not in {entry.vpn for entry in hv.machine.mmu.entries()}  # evicted
        events = steps_until_retired(hv, AGAIN_PC)
        exits = [e for e in events if isinstance(e, VmExit)]
        assert len(exits) == expected_exits
        os_ran = [e for e in events if isinstance(e, InstructionExecuted) and e.pc < 0x400000]
        if software_tlb:
            assert not os_ran and not [e for e in events if isinstance(e, Reflected)]
            (refill,) = [e for e in events if isinstance(e, SoftwareTlbRefill)]
            assert refill.vpn == DATA >> 12
            assert refill.host_frame == {e.vpn: e.frame for e in hv.machine.mmu.entries()}[DATA >> 12]
            assert hv.counters()["software_tlb_hits"] == 1
        else:
            assert os_ran
        hv.run(1_000_000)
        assert hv.halted and "pid 1 exited with code 84" in hv.console_output


def test_disco_forgets_what_the_guest_invalidates() -> None:
    hv = hypervisor(entries=2, software_tlb=64)
    run_to(hv, AGAIN_PC)
    soft = hv.soft_tlb
    assert soft is not None
    vm, cpu = hv.vms[0], hv.machine.cpu
    held = {vpn for _asid, vpn, _frame in soft.entries(0)}
    assert {DATA >> 12, (DATA >> 12) + 1, USER >> 12} <= held
    saved = hv.snapshot()
    cpu.regs[1] = DATA
    emulate(hv, vm, OPCODE_BY_NAME["INVLPG"], 1, 0, 0, cpu.pc)
    assert DATA >> 12 not in {vpn for _a, vpn, _f in soft.entries(0)}
    emulate(hv, vm, OPCODE_BY_NAME["TLBFLUSH"], 0, 0, 0, cpu.pc)
    assert soft.entries(0) == []
    hv.restore(saved)  # time travel brings the software TLB back exactly
    assert {vpn for _a, vpn, _f in soft.entries(0)} == held
    cpu.regs[1] = vm.vcpu.cr3
    emulate(hv, vm, OPCODE_BY_NAME["MOVCR"], 0, 1, 3, cpu.pc)  # untagged: a cr3 load flushes
    assert soft.entries(0) == []
    tagged = hypervisor(entries=2, software_tlb=64, tagged=True)
    run_to(tagged, AGAIN_PC)
    assert tagged.soft_tlb is not None
    before = tagged.soft_tlb.entries(0)
    tagged.machine.cpu.regs[1] = tagged.vms[0].vcpu.cr3
    emulate(tagged, tagged.vms[0], OPCODE_BY_NAME["MOVCR"], 0, 1, 3, tagged.machine.cpu.pc)
    assert tagged.soft_tlb.entries(0) == before  # tagged entries survive cr3 loads


def test_disco_keeps_vms_apart() -> None:
    from engine.vmm import GuestSpec

    config = MachineConfig(tlb_managed="software", tlb_entries=2)
    guests = [GuestSpec(kernel_for(config), (touch_program(),), name=f"g{i}") for i in range(2)]
    hv = Hypervisor("trap", guests, config=config, software_tlb=8, quantum=3000)
    assert hv.soft_tlb is not None
    held = 0
    while not hv.halted:
        hv.run(500)
        owners = hv.frame_owners()
        for vm in hv.vms:  # a VM's software TLB only ever holds that VM's host frames
            frames = {frame for _a, _v, frame in hv.soft_tlb.entries(vm.vm_id)}
            held += len(frames)
            assert all(owners[frame] == f"vm{vm.vm_id}" for frame in frames)
    assert held and all("pid 1 exited with code 84" in vm.console_text for vm in hv.vms)
    counters = hv.counters()
    assert counters["vm0.software_tlb_hits"] >= 1 and counters["vm1.software_tlb_hits"] >= 1


@pytest.mark.parametrize(("mode", "memory", "match"), [
    ("hw", "relocation", "hardware assist"),
    ("trap", "shadow", "memory_mode 'relocation'"),
    ("trap", "nested", "memory_mode 'relocation'"),
])
def test_unsupported_combinations_are_rejected(mode: str, memory: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_system(mode, config=SOFT, memory_mode=memory)
    with pytest.raises(ValueError, match="needs a software-managed TLB"):
        build_system("trap", software_tlb=8)


# ---------------------------------------------------------------------------------- snapshots and equivalence
@pytest.mark.parametrize("software_tlb", [0, 4])
def test_snapshot_restore_is_exact_with_a_software_tlb(software_tlb: int) -> None:
    def fingerprint(system: Any) -> tuple[Any, ...]:
        soft = getattr(system, "soft_tlb", None)
        return (guest_view(system), system.counters(), tuple(system.mmu.tlb.items()),
                soft.state() if soft is not None else None, system.steps)

    for make in (lambda: boot_kernel_machine(["heap"], MachineConfig(tlb_managed="software", tlb_entries=3)),
                 lambda: build_system("trap", user_programs=["heap"], software_tlb=software_tlb,
                                      config=MachineConfig(tlb_managed="software", tlb_entries=3))):
        system = make()
        system.run(60_000)
        saved = system.snapshot()
        system.run(40_000)
        expected = fingerprint(system)
        system.restore(saved)
        system.run(40_000)
        assert fingerprint(system) == expected


def access_program(accesses: list[tuple[int, int, bool]]) -> Program:
    """A user program doing loads and stores over 4 data pages, then exiting with a checksum."""
    body = []
    for page, word, store in accesses:
        address = f"data + {page * 4096 + 4 * word}"
        body.append(f"        st [{address}], r2" if store else f"        ld r3, [{address}]\n        add r2, r3")
        body.append("        add r2, 1")
    source = ("        .org 0x00400000\n_start:\n        mov r2, 5\n" + "\n".join(body)
              + "\n        mov r0, 4\n        mov r1, r2\n        and r1, 0xff\n        syscall\n"
              + "        .align 4096\ndata:\n        .space 16384\n")
    return assemble(source, "accesses.s")


@settings(max_examples=12, deadline=None)
@given(accesses=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 7), st.booleans()), min_size=1, max_size=24),
       entries=st.integers(2, 6), policy=st.sampled_from(["lru", "fifo", "random"]),
       disco=st.integers(0, 6), tagged=st.booleans())
def test_virtualized_runs_equal_native_with_a_software_tlb(accesses: list[tuple[int, int, bool]], entries: int,
                                                           policy: str, disco: int, tagged: bool) -> None:
    config = MachineConfig(tlb_managed="software", tlb_entries=entries, tlb_policy=policy, tlb_tagged=tagged)
    program = access_program(accesses)
    native = build_system("native", user_programs=[program], config=config)
    native.run(1_000_000)
    assert native.halted
    reference = guest_view(native)
    trapped = build_system("trap", user_programs=[program], config=config)
    trapped.run(1_000_000)
    assert reference.first_difference(guest_view(trapped)) is None
    # Disco skips the guest's handler (fewer guest instructions and stack writes): what it prints and
    # how it exits must still be native.
    disco_run = build_system("trap", user_programs=[program], config=config, software_tlb=disco)
    disco_run.run(1_000_000)
    assert reference.first_difference(guest_view(disco_run), observable_only=True) is None


def test_a_hardware_walked_vmm_refuses_tlbwr_like_the_real_machine() -> None:
    from engine.hypercalls import NOT_PERMITTED, dispatch
    from engine.mmu import Fault

    hv = build_system("trap", user_programs=["hello"])
    assert isinstance(hv, Hypervisor) and hv.soft_tlb is None
    hv.run(60_000)
    vm = hv.vms[0]
    with pytest.raises(Fault) as raised:  # emulate() turns into an invalid-opcode trap for the guest
        emulate(hv, vm, OPCODE_BY_NAME["TLBWR"], 1, 2, 0, hv.machine.cpu.pc)
    assert raised.value.vector == Vector.INVALID_OPCODE
    pv = build_system("pv", user_programs=["hello"])
    assert isinstance(pv, Hypervisor)
    name, result, _detail, _items = dispatch(pv, pv.vms[0], 20, (DATA, 0x5000 | PTE_P, 0))
    assert (name, result) == ("tlb_write", NOT_PERMITTED)


def test_a_guest_tlbwr_outside_its_memory_stops_the_vm() -> None:
    hv = hypervisor()
    run_to(hv, LOAD_PC)
    assert hv.soft_tlb is not None
    vm = hv.vms[0]
    effect = hv.soft_tlb.write(vm, DATA, (vm.size + 0x1000) | PTE_P)
    assert effect.startswith("refused") and vm.stop_reason is not None and vm.exit_code == 4
