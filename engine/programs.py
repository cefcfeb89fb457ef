"""Shipped assembly sources (the teaching kernel and sample user programs) and ready-made machines."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from engine.machine import Machine, MachineConfig
from engine.program import Program

PROGRAMS_DIR = Path(__file__).with_name("programs")
KERNEL_NAME = "kernel"
DEFAULT_USER_PROGRAMS = ("hello", "count")
KERNEL_TIMER_INTERVAL = 0  # the kernel programs the timer itself


def shipped_names() -> list[str]:
    """Names of the shipped sources (kernel and samples), without the .s suffix."""
    return sorted(path.stem for path in PROGRAMS_DIR.glob("*.s"))


def sample_names() -> list[str]:
    """Names of the shipped user programs (everything but the kernel)."""
    return [name for name in shipped_names() if name != KERNEL_NAME]


def shipped_path(name: str) -> Path:
    """Path of a shipped source by name; raises FileNotFoundError listing what exists."""
    path = PROGRAMS_DIR / f"{name.removesuffix('.s')}.s"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped program named {name!r}; choose one of: {', '.join(shipped_names())}")
    return path


@lru_cache(maxsize=32)
def assemble_shipped(name: str) -> Program:
    """Assemble a shipped source (cached: sources are package data and never change at run time)."""
    from engine.asm import assemble_file

    return assemble_file(shipped_path(name))


@lru_cache(maxsize=8)
def kernel_build(*, paravirtual: bool = False, software_tlb: bool = False) -> Program:
    """The shipped kernel assembled with PARAVIRT (hypercalls) and/or SOFT_TLB (its own TLB-miss handler)."""
    if not paravirtual and not software_tlb:
        return assemble_shipped(KERNEL_NAME)
    from engine.asm import assemble_file

    defines = {name: 1 for name, wanted in (("PARAVIRT", paravirtual), ("SOFT_TLB", software_tlb)) if wanted}
    return assemble_file(shipped_path(KERNEL_NAME), defines=defines)


def kernel_for(config: MachineConfig, *, paravirtual: bool = False) -> Program:
    """The kernel build a machine with `config` needs (SOFT_TLB when its TLB is software-managed)."""
    return kernel_build(paravirtual=paravirtual, software_tlb=config.tlb_managed == "software")


def boot_kernel_machine(user_programs: Sequence[str | Program] = DEFAULT_USER_PROGRAMS,
                        config: MachineConfig | None = None) -> Machine:
    """A machine with the shipped kernel loaded and `user_programs` as its processes, at step 0."""
    machine = Machine(config or MachineConfig())
    modules = [assemble_shipped(p) if isinstance(p, str) else p for p in user_programs]
    machine.boot_kernel(kernel_for(machine.config), modules)
    return machine


def bare_machine(program: Program, config: MachineConfig | None = None) -> Machine:
    """A machine with `program` loaded bare-metal (ring 0, paging off), at step 0."""
    machine = Machine(config or MachineConfig())
    machine.load_bare(program)
    return machine
