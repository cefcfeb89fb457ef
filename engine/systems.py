"""Build the same guest natively or under any VMM mode, read back what the guest can see, and compare.

A "system" is a Machine (native) or a Hypervisor (a VMM mode): both have step, run, steps, halted,
snapshot and restore, so time travel, traces, lessons and the app drive either the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.costs import CostModel
from engine.hostmem import OvercommitConfig
from engine.isa import ARITH_FLAGS, SP, Flag
from engine.machine import Machine, MachineConfig
from engine.program import Program
from engine.programs import (
    DEFAULT_USER_PROGRAMS,
    assemble_shipped,
    bare_machine,
    boot_kernel_machine,
    kernel_build,
    kernel_for,
)
from engine.soft_tlb import SOFT_TLB_MODES
from engine.vmm import MODES, GuestSpec, Hypervisor

System = Machine | Hypervisor
IF = int(Flag.IF)


def paravirtual_kernel() -> Program:
    """The shipped kernel assembled with PARAVIRT defined: hypercalls instead of privileged instructions."""
    return kernel_build(paravirtual=True)


def supported_modes(tlb_managed: str) -> tuple[str, ...]:
    """The modes a machine whose TLB is managed by `tlb_managed` can run in (no hw with a software TLB)."""
    return MODES if tlb_managed == "hardware" else ("native", *SOFT_TLB_MODES)


def _programs(user_programs: Sequence[str | Program]) -> tuple[Program, ...]:
    return tuple(assemble_shipped(p) if isinstance(p, str) else p for p in user_programs)


def build_system(mode: str, *, user_programs: Sequence[str | Program] = DEFAULT_USER_PROGRAMS,
                 bare: Program | None = None, config: MachineConfig | None = None,
                 costs: CostModel | None = None, memory_mode: str = "relocation", host_levels: int = 4,
                 software_tlb: int = 0, vms: Sequence[Sequence[str | Program]] | None = None,
                 overcommit: OvercommitConfig | None = None, nested_cache: int = 0) -> System:
    """The shipped kernel with `user_programs` (or one bare-metal program) in `mode`, at step 0.

    The kernel build follows the machine: SOFT_TLB for `config.tlb_managed == "software"`, PARAVIRT for
    pv. `software_tlb` sizes Disco's VMM software TLB (VMM modes with a software-managed TLB only).
    `vms` runs several VMs on one host, each the kernel with its own user programs (instead of one
    VM with `user_programs`); `overcommit` gives them a shared, smaller frame pool (nested paging).
    `nested_cache` sizes the nested TLB (page-walk cache) under nested paging.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    config = config or MachineConfig()
    if mode == "native":
        if vms is not None or overcommit is not None:
            raise ValueError("several VMs and overcommit need a VMM mode (trap, bt, pv or hw), not native")
        return bare_machine(bare, config) if bare is not None else boot_kernel_machine(user_programs, config)
    if bare is not None:
        guests = [GuestSpec(bare, (), bare.name, bare=True)]
    else:
        kernel = kernel_for(config, paravirtual=mode == "pv")
        per_vm = [user_programs] if vms is None else list(vms)
        if not per_vm:
            raise ValueError("vms must list at least one VM's programs")
        guests = [GuestSpec(kernel, _programs(programs), f"vm{i}" if len(per_vm) > 1 else "guest")
                  for i, programs in enumerate(per_vm)]
    return Hypervisor(mode, guests, guest_memory=config.memory_size, config=config, costs=costs,
                      memory_mode=memory_mode, host_levels=host_levels, software_tlb=software_tlb,
                      overcommit=overcommit, nested_cache=nested_cache)


@dataclass(frozen=True)
class GuestView:
    """Everything the guest can observe about itself at the end of a run."""

    registers: tuple[int, ...]
    pc: int
    flags: int
    ring: int
    memory: bytes
    console: str
    stopped: bool
    exit_code: int

    def first_difference(self, other: GuestView, *, observable_only: bool = False) -> str | None:
        """A readable description of the first way `other` differs, or None if identical.

        `observable_only` compares just the console and how the guest stopped: for a different kernel
        image (the paravirtual build), registers and memory legitimately differ.
        """
        if self.console != other.console:
            common = next((i for i, (x, y) in enumerate(zip(self.console, other.console, strict=False)) if x != y),
                          min(len(self.console), len(other.console)))
            return f"console output differs at character {common}"
        if self.stopped != other.stopped or self.exit_code != other.exit_code:
            return (f"stop state differs (stopped {self.stopped}/{other.stopped}, "
                    f"exit {self.exit_code}/{other.exit_code})")
        if observable_only:
            return None
        names = [f"r{i}" for i in range(8)] + ["sp"]
        for name, mine, theirs in zip(names, self.registers, other.registers, strict=True):
            if mine != theirs:
                return f"register {name} differs ({mine:#x} vs {theirs:#x})"
        for label, mine, theirs in (("pc", self.pc, other.pc), ("flags", self.flags, other.flags),
                                    ("ring", self.ring, other.ring)):
            if mine != theirs:
                return f"{label} differs ({mine:#x} vs {theirs:#x})"
        if self.memory != other.memory:
            address = next(i for i, (x, y) in enumerate(zip(self.memory, other.memory, strict=True)) if x != y)
            return f"guest memory differs first at guest-physical {address:#x}"
        return None


def guest_view(system: System) -> GuestView:
    """What the guest sees: registers, its flags and ring (virtual under a VMM), its memory and console."""
    if isinstance(system, Machine):
        cpu = system.cpu
        return GuestView(tuple(cpu.regs[:SP + 1]), cpu.pc, cpu.flags, cpu.ring, bytes(system.memory),
                         system.console_output, system.halted, system.exit_code)
    vm = system.current
    cpu = system.machine.cpu
    if system.mode == "hw":
        flags, ring = cpu.flags, cpu.ring
    else:
        flags, ring = (cpu.flags & ARITH_FLAGS) | (IF if vm.vcpu.vif else 0), vm.vcpu.ring
    memory = system.guest_memory(vm)
    return GuestView(tuple(cpu.regs[:SP + 1]), cpu.pc, flags, ring, memory, vm.console_text,
                     vm.stop_reason is not None, vm.exit_code)


@dataclass(frozen=True)
class ModeResult:
    """One column of `vizvm compare`."""

    mode: str
    view: GuestView
    steps: int
    counters: dict[str, int] = field(default_factory=dict)
    divergence: str | None = None

    @property
    def equivalent(self) -> bool:
        """True when the guest saw exactly what it sees natively."""
        return self.divergence is None

    def figure(self, name: str) -> int:
        """Derived figures shown by `vizvm compare`."""
        c = self.counters
        if name == "guest instructions":
            return c.get("instructions", 0) + c.get("trapped_instructions", 0)
        if name == "exits to the VMM":
            return c.get("vmm_entries", 0)
        return int(c.get(name, 0))


def run_modes(modes: Sequence[str], make: Any, max_steps: int) -> list[ModeResult]:
    """Run `make(mode)` for each mode to completion (or `max_steps`) and compare each with native."""
    results: list[ModeResult] = []
    reference: GuestView | None = None
    for mode in ("native", *[m for m in modes if m != "native"]):
        system = make(mode)
        system.run(max_steps)
        view = guest_view(system)
        counters = system.counters()
        if reference is None:
            reference = view
        # The PV guest is a different kernel build: only what it prints and how it stops can be compared.
        divergence = reference.first_difference(view, observable_only=mode == "pv") if mode != "native" else None
        if mode in modes or mode == "native":
            results.append(ModeResult(mode, view, system.steps, counters, divergence))
    return [r for r in results if r.mode in modes]
