"""The paravirtual hypercall table (docs/vmm.md): what a PV guest kernel calls instead of privileged
instructions, each argument validated so a guest can never name memory outside its allocation."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.isa import CR, CR0_PG, OPCODE_BY_NAME, PAGE_SIZE, PTE_FRAME_MASK, PTE_P, WORD_MASK, OpSpec
from engine.vmm_emulate import emulate, guest_iret, port_read, port_write

if TYPE_CHECKING:
    from engine.vmm import VM, Hypervisor

BAD_ARGUMENT, NOT_PERMITTED, UNKNOWN = -1, -2, -3
ALL = 0xFFFF_FFFF
Result = tuple[str, int, str, int]  # name, result, detail, batch items


def _set_trap_table(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    vm.vcpu.idtr = a[0]
    return "set_trap_table", 0, f"virtual trap-table base = {a[0]:#x}", 0


def _set_cr3(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    root = a[0] & PTE_FRAME_MASK
    if a[0] & 0xFFF & ~0xFFF or root + PAGE_SIZE > vm.size:
        return "set_cr3", BAD_ARGUMENT, f"refused: page-table root {a[0]:#x} is outside the VM's memory", 0
    _apply("MOVCR", hv, vm, b_value=a[0], imm=CR.CR3)
    return "set_cr3", 0, f"address space switched to root {a[0]:#x}", 0


def _set_cr0(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    _apply("MOVCR", hv, vm, b_value=a[0], imm=CR.CR0)
    return "set_cr0", 0, f"paging {'on' if a[0] & CR0_PG else 'off'}", 0


def _stack_switch(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    vm.vcpu.ksp = a[0]
    return "stack_switch", 0, f"kernel stack for traps = {a[0]:#x}", 0


def _iret(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    return "iret", 0, guest_iret(hv, vm), 0


def _set_interrupts(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    vm.vcpu.vif = bool(a[0])
    return "set_interrupts", 0, f"virtual IF = {int(bool(a[0]))}", 0


def _io_out(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    hv._charge(vm, hv.costs.virtual_device)
    return "io_out", 0, port_write(vm, hv, a[0], a[1]), 0


def _io_in(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    hv._charge(vm, hv.costs.virtual_device)
    value = port_read(vm, hv, a[0])
    return "io_in", value, f"port {a[0]:#x} -> {value:#x}", 0


def _block(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    vm.vcpu.vif = True  # like Xen's SCHEDOP_block: sleep with events enabled
    hv.idle_until_interrupt(vm)
    return "block", 0, "sleep until the next virtual interrupt", 0


def _read_cr2(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    return "read_cr2", vm.vcpu.cr2, f"cr2 = {vm.vcpu.cr2:#x}", 0


def _read_cr3(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    return "read_cr3", vm.vcpu.cr3, f"cr3 = {vm.vcpu.cr3:#x}", 0


def _mmu_update(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    pairs, count = a[0], a[1]
    if count > 512:
        return "mmu_update", BAD_ARGUMENT, f"refused: batch of {count} entries (at most 512)", 0
    done = 0
    mmu = hv.machine.mmu
    for index in range(count):
        entry_gpa = hv.guest_load((pairs + 8 * index) & WORD_MASK)
        value = hv.guest_load((pairs + 8 * index + 4) & WORD_MASK)
        if entry_gpa & 3 or entry_gpa + 4 > vm.size:
            return "mmu_update", done, f"stopped at entry {index}: {entry_gpa:#x} is outside the VM", done
        if value & PTE_P and (value & PTE_FRAME_MASK) + PAGE_SIZE > vm.size:
            return ("mmu_update", done, f"stopped at entry {index}: frame {value & PTE_FRAME_MASK:#x} "
                    "is not the guest's", done)
        target = mmu.relocate(entry_gpa)
        hv.machine.write_memory(target, value.to_bytes(4, "little"))
        if vm.shadow is not None:
            vm.shadow.guest_entry_written(target)
        done += 1
    return "mmu_update", done, f"{done} page-table entries written", done


def _tlb_flush(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    if a[0] == ALL:
        hv.machine.mmu.flush_all("all")
        if hv.soft_tlb is not None:
            hv.soft_tlb.forget(vm, None)
        return "tlb_flush", 0, "whole TLB flushed", 0
    hv.machine.mmu.flush_page(a[0])
    if hv.soft_tlb is not None:
        hv.soft_tlb.forget(vm, a[0])
    return "tlb_flush", 0, f"TLB entry for {a[0]:#x} invalidated", 0


def _tlb_write(hv: Hypervisor, vm: VM, a: tuple[int, ...]) -> Result:
    if hv.soft_tlb is None:
        return "tlb_write", NOT_PERMITTED, "refused: this machine's TLB is filled by hardware", 0
    return "tlb_write", 0, hv.soft_tlb.write(vm, a[0], a[1]), 0


def _apply(name: str, hv: Hypervisor, vm: VM, *, b_value: int, imm: int) -> None:
    cpu = hv.machine.cpu
    spec: OpSpec = OPCODE_BY_NAME[name]
    saved_pc, saved = cpu.pc, cpu.regs[1]
    cpu.regs[1] = b_value
    emulate(hv, vm, spec, 0, 1, imm, cpu.pc - 8)
    cpu.regs[1] = saved
    cpu.pc = saved_pc


HYPERCALLS: dict[int, Callable[[Hypervisor, VM, tuple[int, ...]], Result]] = {
    1: _set_trap_table, 2: _set_cr3, 3: _set_cr0, 4: _stack_switch, 5: _iret, 6: _set_interrupts,
    7: _io_out, 8: _io_in, 9: _block, 10: _read_cr2, 11: _mmu_update, 12: _tlb_flush, 13: _read_cr3,
    20: _tlb_write,
}
HYPERCALL_NAMES = {number: function.__name__.lstrip("_") for number, function in HYPERCALLS.items()}


def dispatch(hv: Hypervisor, vm: VM, number: int, args: tuple[int, ...]) -> Result:
    """Run hypercall `number`; returns (name, result, detail, batched items)."""
    function = HYPERCALLS.get(number)
    if function is None:
        return f"unknown({number})", UNKNOWN, f"no hypercall {number}", 0
    return function(hv, vm, args)
