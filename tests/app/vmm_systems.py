"""Test-owned guests for the virtualization views: the demo under a VMM mode, and the POPF fragment.

The POPF fragment is a copy of lessons/05-popf-problem.toml's `source`, so editing the lesson does
not change these baselines.
"""

from __future__ import annotations

from functools import lru_cache

from engine.machine import Machine, MachineConfig
from engine.program import Program
from engine.systems import System, build_system
from tests.app.demo_machine import demo_program

POPF_SOURCE = """
; A guest kernel fragment: save the flags, disable interrupts with popf, look at itself.
.org 0x1000
_start:
    mov sp, 0x8000
    sti                  ; privileged: traps, the VMM sets the virtual IF
    pushf
    pop r1
    and r1, ~0x200       ; the same flags with IF cleared
    push r1
    popf                 ; on real hardware in ring 0 this disables interrupts
    pushf
    pop r4               ; what the kernel now believes its flags are
    smsw r2              ; which ring it believes it runs in
    sidt r3              ; where it believes its trap table is
    out 0xf4, r0
"""
DEMO_SYSCALL_STEP = 17
"""The demo's first system call (its user loop's first `syscall`)."""
DEMO_OUT_STEP = 20
"""The demo kernel's first `out` (printing 'h')."""


def demo_system(mode: str) -> System:
    """The hand-encoded demo (a mini kernel and a user loop) as a bare guest in `mode`."""
    return build_system(mode, bare=demo_program(), config=MachineConfig(memory_size=1 << 20))


@lru_cache(maxsize=1)
def popf_program() -> Program:
    """The POPF fragment, assembled."""
    from engine.asm import assemble

    return assemble(POPF_SOURCE, "popf.s")


def popf_machine() -> Machine:
    """The POPF fragment natively (the compare screen runs it in every mode)."""
    machine = Machine(MachineConfig(memory_size=1 << 16))
    machine.load_bare(popf_program())
    return machine
