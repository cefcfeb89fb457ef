"""The software-managed TLB natively: tlbwr and TLB_MISS, the unmapped kernel window, the kernel's miss
handler on every shipped program, lesson fields. Under the VMM: tests/engine/test_soft_tlb_vmm.py."""

from __future__ import annotations

from typing import Any

import pytest

from engine.events import (
    MemoryAccess,
    TlbEvict,
    TlbFill,
    TlbLookup,
    TrapTaken,
)
from engine.isa import PF_FETCH, PF_PRESENT, PF_USER, PF_WRITE, PTE_P, PTE_U, PTE_W, SP, Vector
from engine.machine import ConfigError, Machine, MachineConfig
from engine.programs import boot_kernel_machine, kernel_for, sample_names
from engine.systems import build_system, guest_view
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
