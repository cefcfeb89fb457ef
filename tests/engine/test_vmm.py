"""The VMM: equivalence with native runs, OSTEP's system-call sequence, the POPF problem, safety."""

from __future__ import annotations

import pytest

from engine.asm import assemble
from engine.events import FidelityViolation, Reflected, TrapTaken, VmEntry, VmExit
from engine.machine import MachineConfig
from engine.systems import build_system, guest_view
from engine.vmm import VMM_RESERVED, VMM_TRAP_TABLE, Hypervisor

SOFTWARE_MODES = ("trap", "bt")
ALL_VMM = ("trap", "bt", "hw")


@pytest.mark.parametrize("programs", [("hello", "count"), ("pagefault",), ("privileged", "hello"), ("yielder",) * 2])
@pytest.mark.parametrize("mode", ALL_VMM)
def test_kernel_runs_identically_under_every_mode(programs: tuple[str, ...], mode: str) -> None:
    native = build_system("native", user_programs=programs)
    native.run(3_000_000)
    virtual = build_system(mode, user_programs=programs)
    virtual.run(3_000_000)
    assert native.halted and virtual.halted
    expected, actual = guest_view(native), guest_view(virtual)
    assert expected.first_difference(actual) is None
    assert expected == actual
    counters = virtual.counters()
    assert counters["instructions"] + counters.get("trapped_instructions", 0) == native.counters()["instructions"]


def _events_of_first_syscall(system: Hypervisor | object) -> list[object]:
    events: list[object] = []
    recording = False
    for _ in range(200_000):
        for event in system.step().events:  # type: ignore[attr-defined]
            if isinstance(event, (VmExit, TrapTaken)) and "system call" in getattr(event, "reason", "") + \
                    getattr(event, "cause", ""):
                recording = True
            if recording:
                events.append(event)
        if recording and system.cpu.ring == 3:  # type: ignore[attr-defined]
            return events
    raise AssertionError("no system call returned to user mode")


def test_native_system_call_is_two_transitions() -> None:
    events = _events_of_first_syscall(build_system("native", user_programs=("hello",)))
    transitions = [(e.from_ring, e.to_ring) for e in events if isinstance(e, TrapTaken)] + \
                  [(e.from_ring, e.to_ring) for e in events if e.kind == "iret"]  # type: ignore[attr-defined]
    assert transitions == [(3, 0), (0, 3)]


def test_trap_and_emulate_system_call_follows_ostep_b3() -> None:
    events = _events_of_first_syscall(build_system("trap", user_programs=("hello",)))
    vmm = [e for e in events if isinstance(e, (VmExit, VmEntry, Reflected)) or e.kind == "emulate"]  # type: ignore[attr-defined]
    kinds = [e.kind for e in vmm]  # type: ignore[attr-defined]
    # (1) the process traps into the VMM, (2) the VMM calls the guest handler at reduced privilege,
    # (3) the guest handles it and its IRET (4) traps again so the VMM does the real return, (5) resume.
    assert kinds[:3] == ["vm-exit", "reflect", "vm-entry"]
    assert kinds[-3:] == ["vm-exit", "emulate", "vm-entry"]
    assert "iret" in vmm[-2].text  # type: ignore[attr-defined]
    exits = [e for e in vmm if isinstance(e, VmExit)]
    assert len(exits) >= 2 and exits[0].guest_ring == 3 and exits[-1].guest_ring == 0
    ring_changes = sum(1 for e in vmm if isinstance(e, (VmExit, VmEntry)))
    assert ring_changes >= 4  # four privilege transitions instead of two


POPF_PROGRAM = """
.org 0x1000
_start:
    mov sp, 0x8000
    sti
    pushf
    pop r1
    and r1, ~0x200       ; clear IF in the saved flags
    push r1
    popf                 ; a real ring 0 clears IF; deprivileged, the change is silently lost
    pushf
    pop r4               ; what the kernel now believes its flags are
    smsw r2              ; the ring it believes it runs in
    sidt r3              ; where it believes its trap table is
    out 0xf4, r0
"""


@pytest.mark.parametrize("mode", ("trap", "bt", "hw"))
def test_popf_smsw_sidt_break_only_trap_and_emulate(mode: str) -> None:
    program = assemble(POPF_PROGRAM, "popf.s")
    native = build_system("native", bare=program)
    native.run(100)
    virtual = build_system(mode, bare=program)
    fidelity = []
    for _ in range(100):
        fidelity += [e for e in virtual.step().events if isinstance(e, FidelityViolation)]
        if virtual.halted:
            break
    expected, actual = guest_view(native), guest_view(virtual)
    assert expected.registers[4] & 0x200 == 0 and expected.registers[2] & 3 == 0
    if mode == "trap":
        assert actual.registers[4] & 0x200, "popf in ring 1 must not have cleared IF"
        assert actual.registers[2] & 3 == 1, "smsw reveals the real ring 1"
        assert actual.registers[3] == VMM_TRAP_TABLE, "sidt reveals the VMM's trap table"
        assert {e.text.split()[0] for e in fidelity} == {"popf", "smsw", "sidt"}  # pushf then agrees with the VMM
        assert expected.first_difference(actual) is not None
    else:
        assert fidelity == []
        assert expected.first_difference(actual) is None


OUT_OF_BOUNDS = """
.org 0x1000
_start:
    mov r1, 0x12345678
    st [0x{address:x}], r1
    out 0xf4, r0
"""


@pytest.mark.parametrize("mode", ALL_VMM)
def test_guest_cannot_touch_memory_outside_its_allocation(mode: str) -> None:
    size = 1 << 16
    program = assemble(OUT_OF_BOUNDS.format(address=size + 0x100), "oob.s")
    system = build_system(mode, bare=program, config=MachineConfig(memory_size=size))
    assert isinstance(system, Hypervisor)
    before = bytes(system.machine.memory[:VMM_RESERVED]) + bytes(system.machine.memory[VMM_RESERVED + size:])
    system.run(100)
    vm = system.vms[0]
    assert vm.stop_reason is not None and "outside" in vm.stop_reason
    after = bytes(system.machine.memory[:VMM_RESERVED]) + bytes(system.machine.memory[VMM_RESERVED + size:])
    assert before == after


def test_deprivileged_guest_never_owns_the_real_trap_table_or_ring() -> None:
    system = build_system("trap", user_programs=("hello", "count"))
    assert isinstance(system, Hypervisor)
    while not system.halted:
        system.run(997)
        assert system.machine.cpu.idtr == VMM_TRAP_TABLE
        assert system.machine.cpu.ring in (1, 3)


def test_popek_goldberg_theorem_1_names_the_witnesses() -> None:
    from engine.popek import theorem_1

    classic = theorem_1("trap")
    assert not classic.virtualizable
    assert {m for m, _ in classic.witnesses} == {"pushf", "popf", "smsw", "sidt"}
    assert not set(m for m, _ in classic.witnesses) <= set(classic.privileged)
    assert theorem_1("hw").virtualizable


@pytest.mark.parametrize("mode", ALL_VMM)
def test_two_vms_share_the_cpu_and_stay_apart(mode: str) -> None:
    from engine.events import VmSwitched
    from engine.programs import assemble_shipped
    from engine.vmm import GuestSpec

    kernel = assemble_shipped("kernel")
    pairs = (("a", "hello"), ("b", "count"))
    guests = [GuestSpec(kernel, (assemble_shipped(program),), name) for name, program in pairs]
    hv = Hypervisor(mode, guests, quantum=3000)
    switches = sum(isinstance(e, VmSwitched) for _ in range(7000) for e in hv.step().events)
    assert switches >= 2
    hv.run(5_000_000)
    assert hv.halted and [vm.exit_code for vm in hv.vms] == [0, 0]
    alone = [build_system("native", user_programs=(p,)) for p in ("hello", "count")]
    for machine in alone:
        machine.run(3_000_000)
    assert [vm.console_text for vm in hv.vms] == [m.console_output for m in alone]
    for vm, machine in zip(hv.vms, alone, strict=True):  # each VM's memory is exactly what it has alone
        assert bytes(hv.machine.memory[vm.base:vm.base + vm.size]) == bytes(machine.memory)


def test_host_frame_table_names_every_owner() -> None:
    from engine.programs import assemble_shipped
    from engine.vmm import GuestSpec

    kernel = assemble_shipped("kernel")
    guests = [GuestSpec(kernel, (assemble_shipped("hello"),), name) for name in ("a", "b")]
    for memory_mode, tables in (("nested", "vm1 host tables"), ("shadow", "vm1 shadow tables")):
        hv = Hypervisor("hw", guests, memory_mode=memory_mode)
        hv.run(200_000)
        owners = hv.frame_owners()
        assert owners[0] == "vmm" and {"vm0", "vm1", tables} <= set(owners)
        assert owners.count("vm0") == hv.vms[0].size // 4096
