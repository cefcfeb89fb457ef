"""The VMM's interpreter routines: each privileged or sensitive instruction emulated on the virtual CPU.

Popek and Goldberg's VMM has a dispatcher, an allocator and one interpreter routine per privileged
instruction; these are the interpreter routines, shared by trap-and-emulate (reached through a
privileged-instruction fault), binary translation (reached through a callout) and hardware assist
(reached through a VM exit, for the instructions that exit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.devices import (
    PORT_CONSOLE_DATA,
    PORT_CONSOLE_STATUS,
    PORT_POWER,
    PORT_TIMER_COUNTDOWN,
    PORT_TIMER_INTERVAL,
    UNMAPPED_READ,
)
from engine.hostmem import BALLOON_PORTS
from engine.isa import (
    ARITH_FLAGS,
    CR,
    CR0_PG,
    FRAME_RING_SHIFT,
    MSW_IF,
    MSW_PG,
    SP,
    TRAP_FRAME_WORDS,
    WORD_MASK,
    Flag,
    OpSpec,
    Vector,
)
from engine.mmu import Fault

if TYPE_CHECKING:
    from engine.vmm import VM, Hypervisor

IF = int(Flag.IF)
GUEST_KERNEL_RING = 1  # trap-and-emulate, BT and PV run the guest kernel deprivileged in ring 1 (as Xen did)



@dataclass
class VCpu:
    """What the guest believes the CPU's system state is (kept apart from the real CPU)."""

    ring: int = 0
    vif: bool = False
    cr0: int = 0
    cr2: int = 0
    cr3: int = 0
    ksp: int = 0
    idtr: int = 0
    pending: set[int] = field(default_factory=set)

    def control_register(self, number: int) -> int:
        """A virtual control register by number."""
        return {CR.CR0: self.cr0, CR.CR2: self.cr2, CR.CR3: self.cr3, CR.KSP: self.ksp}[CR(number)]

    def status_word(self) -> int:
        """What SMSW returns on a real machine in this virtual state."""
        return self.ring | (MSW_PG if self.cr0 & CR0_PG else 0) | (MSW_IF if self.vif else 0)


def real_ring_for(mode: str, guest_ring: int) -> int:
    """The real ring the guest runs in: ring compression for software VMMs, the guest's own with hardware."""
    if mode == "hw" or guest_ring == 3:
        return guest_ring
    return GUEST_KERNEL_RING


def port_read(vm: VM, hv: Hypervisor, port: int) -> int:
    """A guest IN from one of the VM's virtual devices."""
    timer = hv.machine.timer
    if port in (PORT_CONSOLE_STATUS, PORT_CONSOLE_DATA):
        return 0
    if port == PORT_TIMER_INTERVAL:
        return timer.interval
    if port == PORT_TIMER_COUNTDOWN:
        return timer.countdown
    if hv.hostmem is not None and port in BALLOON_PORTS:
        return hv.hostmem.port_read(vm, port)
    return UNMAPPED_READ


def port_write(vm: VM, hv: Hypervisor, port: int, value: int) -> str:
    """A guest OUT to one of the VM's virtual devices; returns a description of the effect."""
    if port == PORT_CONSOLE_DATA:
        vm.console.append(value & 0xFF)
        return f"virtual console prints {chr(value & 0xFF)!r}"
    if port == PORT_TIMER_INTERVAL:
        hv.machine.timer.interval = value
        hv.machine.timer.countdown = value
        return f"virtual timer interval = {value}"
    if port == PORT_POWER:
        hv.stop_vm(vm, "power off", value)
        return f"VM powers off with exit code {value}"
    if hv.hostmem is not None and port in BALLOON_PORTS:
        return hv.hostmem.port_write(vm, port, value)
    return f"write to unmapped port {port:#x} ignored"


def emulate(hv: Hypervisor, vm: VM, spec: OpSpec, a: int, b: int, imm: int, pc: int) -> str:
    """Emulate one instruction at `pc` on `vm`'s virtual CPU; sets the real pc. Returns the effect."""
    cpu = hv.machine.cpu
    vcpu = vm.vcpu
    regs = cpu.regs
    name = spec.name
    cpu.pc = (pc + 8) & WORD_MASK
    if name == "CLI":
        vcpu.vif = False
        return "virtual IF = 0"
    if name == "STI":
        vcpu.vif = True
        return "virtual IF = 1"
    if name == "HLT":
        if not vcpu.vif:
            hv.stop_vm(vm, "hlt with interrupts disabled", 0)
            return "VM halts (virtual IF is 0)"
        hv.idle_until_interrupt(vm)
        return "VM idles until its virtual timer fires"
    if name == "IN":
        regs[a] = port_read(vm, hv, imm)
        return f"virtual device port {imm:#x} -> {regs[a]:#x}"
    if name == "OUT":
        return port_write(vm, hv, imm, regs[b])
    if name == "MOVCR":
        return _write_cr(hv, vm, imm, regs[b])
    if name == "MOVRC":
        if vm.mode == "hw":  # in guest mode the real registers hold the guest's state (cr3 is shadowed)
            vcpu.cr0, vcpu.cr2, vcpu.ksp = cpu.cr0, cpu.cr2, cpu.ksp
        regs[a] = vcpu.control_register(imm)
        return f"read virtual {CR(imm).name.lower()} = {regs[a]:#x}"
    if name == "TLBFLUSH":
        hv.machine.mmu.flush_all("all")
        if hv.soft_tlb is not None:
            hv.soft_tlb.forget(vm, None)
        return "TLB flushed"
    if name == "INVLPG":
        hv.machine.mmu.flush_page((regs[a] + imm) & WORD_MASK)
        if hv.soft_tlb is not None:
            hv.soft_tlb.forget(vm, (regs[a] + imm) & WORD_MASK)
        return f"TLB entry for {(regs[a] + imm) & WORD_MASK:#x} invalidated"
    if name == "TLBWR":
        if hv.soft_tlb is None:  # as on the real machine: a hardware-walked TLB has no write port
            raise Fault(Vector.INVALID_OPCODE, 0, pc)
        return hv.soft_tlb.write(vm, regs[a], regs[b])
    if name == "LIDT":
        vcpu.idtr = regs[a]
        return f"virtual trap-table base = {regs[a]:#x} (the real one stays the VMM's)"
    if name == "IRET":
        return guest_iret(hv, vm)
    if name == "PUSHF":
        _push(hv, (cpu.flags & ARITH_FLAGS) | (IF if vcpu.vif else 0))
        return "pushed flags with the virtual IF"
    if name == "POPF":
        value = _pop(hv)
        cpu.flags = (cpu.flags & ~ARITH_FLAGS) | (value & ARITH_FLAGS)
        if vcpu.ring == 0:
            vcpu.vif = bool(value & IF)
        return f"flags restored, virtual IF = {int(vcpu.vif)}"
    if name == "SMSW":
        regs[a] = vcpu.status_word()
        return f"virtual status word {regs[a]:#x}"
    if name == "SIDT":
        regs[a] = vcpu.idtr
        return f"virtual trap-table base {regs[a]:#x}"
    raise AssertionError(f"no interpreter routine for {name}")


def _write_cr(hv: Hypervisor, vm: VM, number: int, value: int) -> str:
    cpu, vcpu, mmu = hv.machine.cpu, vm.vcpu, hv.machine.mmu
    register = CR(number)
    if register is CR.CR0:
        was = vcpu.cr0 & CR0_PG
        vcpu.cr0 = value
        cpu.cr0 = value
        cpu.paging = bool(value & CR0_PG)
        if was != value & CR0_PG:
            mmu.flush_all("cr0")
        return f"virtual cr0 = {value:#x} (paging {'on' if cpu.paging else 'off'})"
    if register is CR.CR2:
        vcpu.cr2 = value
        if vm.mode == "hw":
            cpu.cr2 = value
        return f"virtual cr2 = {value:#x}"
    if register is CR.CR3:
        vcpu.cr3 = value
        cpu.cr3 = value
        hv.load_guest_cr3(vm, value)  # relocated, nested, or switched to this root's shadow tables
        if hv.soft_tlb is not None:
            hv.soft_tlb.cr3_loaded(vm)
        return f"virtual cr3 = {value:#x}: address space switched"
    vcpu.ksp = value
    if vm.mode == "hw":
        cpu.ksp = value
    return f"virtual kernel stack pointer = {value:#x}"


def _push(hv: Hypervisor, value: int) -> None:
    cpu = hv.machine.cpu
    sp = (cpu.regs[SP] - 4) & WORD_MASK
    hv.guest_store(sp, value)
    cpu.regs[SP] = sp


def _pop(hv: Hypervisor) -> int:
    cpu = hv.machine.cpu
    value = hv.guest_load(cpu.regs[SP])
    cpu.regs[SP] = (cpu.regs[SP] + 4) & WORD_MASK
    return value


def guest_iret(hv: Hypervisor, vm: VM) -> str:
    """Emulate IRET: pop the guest's trap frame and return to the ring it names (virtual, then real)."""
    cpu, vcpu = hv.machine.cpu, vm.vcpu
    sp = cpu.regs[SP]
    words = [hv.guest_load((sp + 4 * i) & WORD_MASK) for i in range(TRAP_FRAME_WORDS)]
    _error, _vector, pc, flags_ring, old_sp = words
    vcpu.ring = (flags_ring >> FRAME_RING_SHIFT) & 3
    vcpu.vif = bool(flags_ring & IF)
    cpu.flags = (flags_ring & ARITH_FLAGS) | IF  # the real IF stays on so the VMM keeps control
    cpu.ring = real_ring_for(vm.mode, vcpu.ring)
    cpu.regs[SP] = old_sp
    cpu.pc = pc
    cpu.irets += 1
    hv.guest_ring_changed(vm)
    return f"return from trap to guest ring {vcpu.ring} at {pc:#x} (virtual IF = {int(vcpu.vif)})"


def reflect(hv: Hypervisor, vm: VM, vector: int, error: int, return_pc: int) -> int:
    """Deliver `vector` into the guest kernel's handler, as the real CPU would have; returns the handler.

    Raises GuestTripleFault when the guest has no handler or its stack cannot take the frame.
    """
    cpu, vcpu = hv.machine.cpu, vm.vcpu
    handler = hv.guest_load((vcpu.idtr + 4 * vector) & WORD_MASK)
    if handler == 0:
        raise GuestTripleFault(f"the guest has no handler for vector {vector} in its trap table at {vcpu.idtr:#x}")
    from_ring = vcpu.ring
    old_sp = cpu.regs[SP]
    sp = old_sp if from_ring == 0 else vcpu.ksp
    flags = (cpu.flags & ARITH_FLAGS) | (IF if vcpu.vif else 0) | (from_ring << FRAME_RING_SHIFT)
    frame = (error, vector, return_pc, flags, old_sp)
    base = (sp - 4 * TRAP_FRAME_WORDS) & WORD_MASK
    for i, word in enumerate(frame):
        hv.guest_store((base + 4 * i) & WORD_MASK, word)
    cpu.regs[SP] = base
    vcpu.ring = 0
    vcpu.vif = False
    cpu.ring = real_ring_for(vm.mode, 0)
    cpu.flags |= IF
    cpu.pc = handler
    hv.guest_ring_changed(vm)
    return handler


class GuestTripleFault(Exception):
    """The guest cannot take a trap: on real hardware it would reset; the VMM stops the VM."""
