"""The software-managed TLB: tlbwr and TLB_MISS natively, the kernel's miss handler, OSTEP Table B.5 under
the VMM (3 VMM entries, VPN -> MFN), Disco's VMM software TLB (1 entry, 0 OS), snapshots and equivalence."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.asm import assemble
from engine.costs import CostModel
from engine.events import (
    InstructionExecuted,
    MemoryAccess,
    Reflected,
    SoftwareTlbRefill,
    TlbEvict,
    TlbFill,
    TlbLookup,
    TlbWriteEmulated,
    TrapTaken,
    VmExit,
)
from engine.isa import OPCODE_BY_NAME, PF_FETCH, PF_PRESENT, PF_USER, PF_WRITE, PTE_P, PTE_U, PTE_W, SP, Vector
from engine.machine import ConfigError, Machine, MachineConfig
from engine.program import Program
from engine.programs import boot_kernel_machine, kernel_for, sample_names
from engine.systems import build_system, guest_view
from engine.vmm import Hypervisor
from engine.vmm_emulate import emulate
from tests.engine.helpers import HANDLER, ins, install_trap_table, machine_with

SOFT = MachineConfig(tlb_managed="software")
USER = 0x0040_0000
DATA = 0x0040_1000
KSTACK = 0x9000
STACK = 0x8000


# ---------------------------------------------------------------------------------- bare metal
def soft_machine(code: bytes, *, entries: int = 16, policy: str = "lru", ring: int = 0) -> Machine:
    """Paging on, software-managed TLB, code at 0x1000, every vector -> HANDLER, kernel stack at KSTACK."""
    config = MachineConfig(memory_size=1 << 16, tlb_managed="software", tlb_entries=entries, tlb_policy=policy)
    machine = machine_with(code, config=config)
    install_trap_table(machine, {v: HANDLER for v in range(256)})
    cpu = machine.cpu
    cpu.cr0, cpu.paging, cpu.ring, cpu.ksp = 1, True, ring, KSTACK
    cpu.regs[SP] = STACK
    if ring == 3:  # ring 3 fetches go through the TLB: give the code page an entry
        machine.mmu.install(0x1000, 0x1000 | PTE_P | PTE_U)
    return machine


def traps(events: tuple[Any, ...]) -> list[TrapTaken]:
    return [e for e in events if isinstance(e, TrapTaken)]


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="tlb_managed must be one of hardware, software"):
        MachineConfig(tlb_managed="mips").validate()
    assert MachineConfig().tlb_managed == "hardware"
    with pytest.raises(ConfigError, match="tlb_entries >= 2"):
        MachineConfig(tlb_managed="software", tlb_entries=1).validate()


def test_tlbwr_is_privileged_in_ring_3() -> None:
    machine = soft_machine(ins("TLBWR", 1, 2), ring=3)
    result = machine.step()
    assert [t.vector for t in traps(result.events)] == [Vector.PRIVILEGED]
    assert machine.mmu.counters["tlb_writes"] == 1  # only the test's own install


def test_tlbwr_fills_and_the_access_hits_the_installed_frame() -> None:
    machine = soft_machine(ins("TLBWR", 1, 2) + ins("LD", 3, 1, 4))
    machine.cpu.regs[1], machine.cpu.regs[2] = DATA, 0x5000 | PTE_P | PTE_W | PTE_U
    machine.write_memory(0x5004, (42).to_bytes(4, "little"))
    fill = [e for e in machine.step().events if isinstance(e, TlbFill)]
    assert [(f.vpn, f.frame) for f in fill] == [(DATA >> 12, 5)]
    events = machine.step().events
    assert [(e.hit, e.frame) for e in events if isinstance(e, TlbLookup)] == [(True, 5)]
    assert [e.pa for e in events if isinstance(e, MemoryAccess)] == [0x5004]
    assert machine.cpu.regs[3] == 42
    entry = machine.mmu.entries()[0]
    assert (entry.vpn, entry.frame, entry.writable, entry.user, entry.dirty) == (DATA >> 12, 5, True, True, True)


@pytest.mark.parametrize("policy", ["lru", "fifo"])
def test_tlbwr_respects_capacity_and_replacement(policy: str) -> None:
    code = b"".join(ins("TLBWR", r, 4) for r in (1, 2, 1, 3))
    machine = soft_machine(code, entries=2, policy=policy)
    regs = machine.cpu.regs
    regs[1], regs[2], regs[3], regs[4] = 0x500000, 0x501000, 0x502000, 0x6000 | PTE_P
    for _ in range(3):  # rewriting page 0x500 replaces its entry: no eviction
        assert not [e for e in machine.step().events if isinstance(e, TlbEvict)]
    evicted = [e for e in machine.step().events if isinstance(e, TlbEvict)]
    # lru: 0x500 was rewritten last (most recent), so 0x501 goes; fifo: the re-insert also renews it
    assert [(e.vpn, e.policy) for e in evicted] == [(0x501, policy)]
    assert sorted(e.vpn for e in machine.mmu.entries()) == [0x500, 0x502]


def test_tlbwr_without_present_drops_the_entry() -> None:
    machine = soft_machine(ins("TLBWR", 1, 2) + ins("TLBWR", 1, 3))
    machine.cpu.regs[1], machine.cpu.regs[2], machine.cpu.regs[3] = DATA, 0x5000 | PTE_P, 0
    machine.step()
    machine.step()
    assert machine.mmu.entries() == []


@pytest.mark.parametrize(("ring", "instr", "access_bits"), [
    (0, ins("LD", 3, 1, 8), 0),
    (3, ins("LD", 3, 1, 8), PF_USER),
    (3, ins("ST", 1, 3, 8), PF_USER | PF_WRITE),
    (3, ins("JMPR", 1), None),  # the jump itself is fine; the fetch at the target misses
])
def test_a_miss_traps_with_the_page_in_the_error_code(ring: int, instr: bytes, access_bits: int | None) -> None:
    machine = soft_machine(instr, ring=ring)
    machine.cpu.regs[1] = DATA
    result = machine.step()
    if access_bits is None:
        result = machine.step()
        access_bits = PF_USER | PF_FETCH
        expected_pc, address = DATA, DATA
    else:
        expected_pc, address = 0x1000, DATA + 8
    (trap,) = traps(result.events)
    assert (trap.vector, trap.pc, trap.fault_address) == (Vector.TLB_MISS, expected_pc, address)
    assert trap.error_code == DATA | access_bits
    assert machine.cpu.cr2 == address
    assert machine.read_word(machine.cpu.regs[SP]) == DATA | access_bits  # the frame's error code
    assert machine.mmu.counters["tlb_miss_traps"] == 1
    assert machine.mmu.counters["walks"] == 0  # the MMU never walks in software mode


def test_protection_is_still_checked_on_hits() -> None:
    machine = soft_machine(ins("ST", 1, 3, 0), ring=3)
    machine.mmu.install(DATA, 0x5000 | PTE_P | PTE_U)  # read-only
    machine.cpu.regs[1] = DATA
    (trap,) = traps(machine.step().events)
    assert (trap.vector, trap.error_code) == (Vector.PAGE_FAULT, PF_PRESENT | PF_WRITE | PF_USER)
    machine = soft_machine(ins("LD", 3, 1, 0), ring=3)
    machine.mmu.install(DATA, 0x5000 | PTE_P | PTE_W)  # supervisor only
    machine.cpu.regs[1] = DATA
    (trap,) = traps(machine.step().events)
    assert (trap.vector, trap.error_code) == (Vector.PAGE_FAULT, PF_PRESENT | PF_USER)


def test_supervisor_window_below_4_mib_bypasses_the_tlb() -> None:
    machine = soft_machine(ins("LD", 3, 1, 0) + ins("LD", 3, 1, 0))
    machine.cpu.regs[1] = 0x2000
    machine.write_memory(0x2000, (7).to_bytes(4, "little"))
    events = machine.step().events
    assert not [e for e in events if isinstance(e, (TlbLookup, TlbFill, TrapTaken))]
    assert machine.cpu.regs[3] == 7 and machine.mmu.counters["tlb_misses"] == 0
    user = soft_machine(ins("LD", 3, 1, 0), ring=3)  # ring 3 never gets the window
    user.cpu.regs[1] = 0x2000
    assert [t.vector for t in traps(user.step().events)] == [Vector.TLB_MISS]


def test_tlbwr_on_a_hardware_walked_tlb_is_an_invalid_opcode() -> None:
    machine = machine_with(ins("TLBWR", 1, 2))
    install_trap_table(machine, {v: HANDLER for v in range(256)})
    machine.cpu.regs[SP] = STACK
    assert [t.vector for t in traps(machine.step().events)] == [Vector.INVALID_OPCODE]


# ---------------------------------------------------------------------------------- the kernel
def test_the_kernel_build_follows_the_machine() -> None:
    assert "trap_tlb_miss" in kernel_for(SOFT).symbols
    assert "trap_tlb_miss" not in kernel_for(MachineConfig()).symbols
    assert "trap_tlb_miss" in kernel_for(SOFT, paravirtual=True).symbols


@pytest.mark.parametrize("name", sample_names())
def test_every_shipped_program_runs_the_same_with_a_software_tlb(name: str) -> None:
    reference = boot_kernel_machine([name])
    reference.run(3_000_000)
    assert reference.halted
    native = boot_kernel_machine([name], SOFT)
    native.run(3_000_000)
    assert native.mmu.counters["walks"] == 0 and native.mmu.counters["tlb_miss_traps"] > 0
    for system in (native, build_system("trap", user_programs=[name], config=SOFT)):
        system.run(3_000_000)
        assert (system.console_output, system.exit_code, system.halted) == (
            reference.console_output, reference.exit_code, True), name
    trapped = build_system("trap", user_programs=[name], config=SOFT)
    trapped.run(3_000_000)
    assert guest_view(native).first_difference(guest_view(trapped)) is None


@pytest.mark.parametrize("levels", [2, 3, 4])
def test_the_miss_handler_walks_as_many_levels_as_the_mmu_would(levels: int) -> None:
    hardware = boot_kernel_machine(["pagefault", "hello"], MachineConfig(page_levels=levels))
    hardware.run(3_000_000)
    software = boot_kernel_machine(["pagefault", "hello"], MachineConfig(page_levels=levels, tlb_managed="software"))
    software.run(3_000_000)
    assert software.halted and software.exit_code == hardware.exit_code == 0
    for line in hardware.console_output.splitlines():  # (two processes may interleave differently)
        assert line in software.console_output.splitlines()
    trapped = build_system("trap", user_programs=["pagefault", "hello"],
                           config=MachineConfig(page_levels=levels, tlb_managed="software"))
    trapped.run(3_000_000)
    assert guest_view(software).first_difference(guest_view(trapped)) is None


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


LESSON = '''
title = "Software TLB"
summary = "A miss traps to the kernel."

[machine]
kernel = true
programs = ["hello"]
{machine}

[[steps]]
title = "Run"
narration = "Run it."
action = {{ do = "run", count = 1000 }}
'''


@pytest.mark.parametrize(("machine", "message"), [
    ('tlb_managed = "mips"', "machine.tlb_managed"),
    ('tlb_managed = "software"\nmode = "hw"', "cannot run under hardware assist"),
    ('tlb_managed = "software"\nmode = "trap"\nmemory_mode = "nested"', "needs memory_mode 'relocation'"),
    ('mode = "trap"\nsoftware_tlb = 8', "machine.software_tlb"),
])
def test_lessons_validate_the_tlb_fields(tmp_path: Any, machine: str, message: str) -> None:
    from engine.lesson import LessonError, load_lesson

    path = tmp_path / "01-soft.toml"
    path.write_text(LESSON.format(machine=machine))
    with pytest.raises(LessonError, match=message):
        load_lesson(path)
    path.write_text(LESSON.format(machine='tlb_managed = "software"\nmode = "trap"\nsoftware_tlb = 8'))
    lesson = load_lesson(path)
    assert lesson.machine.config.tlb_managed == "software" and lesson.machine.software_tlb == 8
