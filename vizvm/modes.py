"""Run the loaded guest in another mode: natively or under the VMM (trap, bt, pv, hw).

The system is rebuilt from scratch with engine.systems.build_system, so a mode switch starts at step
0 with the same programs and machine configuration. No Textual import here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from engine.machine import MachineConfig
from engine.program import Program
from engine.programs import KERNEL_NAME
from engine.systems import System, build_system
from engine.vmm import MODE_TITLES, MODES

MODE_HELP: dict[str, str] = {
    "native": "the kernel runs in real ring 0; there is no VMM",
    "trap": "kernel deprivileged to ring 1; each privileged instruction traps and is emulated",
    "bt": "kernel code translated block by block; sensitive instructions become VMM calls",
    "pv": "a paravirtual kernel build calls the hypervisor (hypercalls) instead",
    "hw": "kernel in ring 0 of guest mode; the VM-control structure picks what exits",
}
"""One line per mode for the mode selector."""


@dataclass(frozen=True)
class GuestSetup:
    """What a system runs, independent of the mode: enough to build it again in another mode."""

    bare: Program | None
    """The one bare-metal program, or None when the shipped kernel boots `user_programs`."""
    user_programs: tuple[Program, ...]
    config: MachineConfig


def _is_kernel(program: Program) -> bool:
    """True for the shipped kernel (or its paravirtual build), which boots the other programs."""
    return program.name.replace("\\", "/").rsplit("/", 1)[-1] in (KERNEL_NAME, f"{KERNEL_NAME}.s")


def guest_setup(system: Any) -> GuestSetup:
    """The programs and configuration `system` was built from."""
    programs: tuple[Program, ...] = tuple(system.programs)
    config: MachineConfig = system.config
    vms = getattr(system, "vms", None)
    if vms:  # the host's memory holds the VMM's and every VM's; the guest's own size is the VM's
        config = replace(config, memory_size=vms[0].size)
    if programs and _is_kernel(programs[0]):
        return GuestSetup(None, programs[1:], config)
    return GuestSetup(programs[0] if programs else None, (), config)


def rebuild(system: Any, mode: str) -> System:
    """The same guest as `system`, at step 0, in `mode` (raises ValueError for an unknown mode)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    setup = guest_setup(system)
    memory: dict[str, Any] = {}
    vms = getattr(system, "vms", None)
    if mode != "native" and vms:  # a VMM keeps how it virtualizes memory across a mode switch
        nested = vms[0].nested
        memory = {"memory_mode": system.memory_mode, "host_levels": nested.levels if nested is not None else 4}
    if setup.bare is not None:
        return build_system(mode, bare=setup.bare, config=setup.config, **memory)
    return build_system(mode, user_programs=setup.user_programs, config=setup.config, **memory)


def mode_label(mode: str) -> str:
    """``trap (trap-and-emulate)``."""
    return mode if MODE_TITLES[mode] == mode else f"{mode} ({MODE_TITLES[mode]})"
