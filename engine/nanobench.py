"""Adams-Agesen-style nanobenchmarks: the cycle cost of one operation natively and under each VMM mode.

Each benchmark is a small bare-metal guest that repeats one operation N times in a loop; the cost of
the operation is (cycles with N repetitions - cycles with 0) / N, measured with the cost model
(engine/costs.py). The guest runs its loop in the ring where the paper measured it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.asm import assemble
from engine.costs import CostModel
from engine.machine import MachineConfig
from engine.systems import build_system

PAGE_DIRECTORY, PAGE_TABLE, UNMAPPED_PAGE = 0x10000, 0x11000, 0x50


@dataclass(frozen=True)
class Nanobenchmark:
    """One operation to measure."""

    name: str
    operation: str  # assembly lines repeated in the loop
    user: bool  # run the loop in ring 3 (else ring 0)
    paging: bool = False
    note: str = ""


BENCHMARKS: tuple[Nanobenchmark, ...] = (
    Nanobenchmark("syscall", "syscall", user=True, note="system call and return"),
    Nanobenchmark("in", "in r1, 0x11", user=False, note="port I/O from the kernel"),
    Nanobenchmark("call/ret", "call function", user=False, note="call and return in kernel code"),
    Nanobenchmark("divzero", "div r1, r0", user=True, note="divide-by-zero fault handled by the kernel"),
    Nanobenchmark("pgfault", "ld r1, [0x50000]", user=True, paging=True, note="a true page fault"),
    Nanobenchmark("ptemod", "st [0x11180], r0", user=False, paging=True, note="a store to a live page-table entry"),
)

_TEMPLATE = """
.org 0x1000
_start:
    mov sp, 0x9000
    mov r0, 0
    mov r1, trap_table
    lidt r1
    mov r1, 0xa000
    movcr ksp, r1
{paging}
{enter}
loop_start:
    mov r5, {count}
    cmp r5, 0
    jz done
loop:
    {operation}
    sub r5, 1
    jnz loop
done:
    mov r0, 99
    syscall
function:
    ret
handle_syscall:            ; r0 == 99 ends the benchmark; any other system call just returns
    cmp r0, 99
    jz power_off
    iret
power_off:
    mov r0, 0
    out 0xf4, r0
skip_fault:                ; resume after the faulting instruction
    ld r7, [sp+8]
    add r7, 8
    st [sp+8], r7
    iret
.org 0x3000
trap_table:
{table}
.org 0x{pd:x}
{directory}
.org 0x{pt:x}
{page_table}
"""

# Drop to ring 3 with a crafted trap frame: sp, flags | ring << 12, pc, vector, error code.
_ENTER_USER = """    push 0x8000
    push 0x3000
    push loop_start
    push 0
    push 0
    iret"""
_PAGING = """    mov r1, 0x{pd:x}
    movcr cr3, r1
    mov r1, 1
    movcr cr0, r1"""


def source_for(bench: Nanobenchmark, count: int) -> str:
    """The benchmark guest's assembly source."""
    table = "\n".join("    .word handle_syscall" if v == 128 else "    .word skip_fault" for v in range(256))
    entries = [0 if i == UNMAPPED_PAGE else (i << 12) | 0x7 for i in range(1024)]
    return _TEMPLATE.format(
        paging=_PAGING.format(pd=PAGE_DIRECTORY) if bench.paging else "",
        enter=_ENTER_USER if bench.user else "", count=count, operation=bench.operation, table=table,
        pd=PAGE_DIRECTORY, pt=PAGE_TABLE, directory=f"    .word 0x{PAGE_TABLE | 0x7:x}",
        page_table="\n".join(f"    .word 0x{e:x}" for e in entries))


def cycles(mode: str, bench: Nanobenchmark, count: int, costs: CostModel | None = None,
           memory_mode: str = "shadow") -> int:
    """Total cycles of the benchmark guest with `count` repetitions in `mode`.

    The VMMs use shadow paging by default, as in Adams and Agesen's paper (no nested paging yet).
    """
    program = assemble(source_for(bench, count), f"{bench.name.replace('/', '-')}.s")
    system = build_system(mode, bare=program, config=MachineConfig(memory_size=1 << 20), costs=costs,
                          memory_mode=memory_mode if mode != "native" else "relocation")
    system.run(1_000_000)
    if not system.halted:
        raise RuntimeError(f"nanobenchmark {bench.name} did not finish in {mode}")
    return int(system.counters()["cycles"])


def cost_per_operation(mode: str, bench: Nanobenchmark, repetitions: int = 50,
                       costs: CostModel | None = None) -> float:
    """Cycles one operation costs in `mode`."""
    return (cycles(mode, bench, repetitions, costs) - cycles(mode, bench, 0, costs)) / repetitions


def table(modes: Sequence[str] = ("native", "trap", "bt", "hw"), repetitions: int = 50,
          costs: CostModel | None = None) -> dict[str, dict[str, float]]:
    """benchmark name -> mode -> cycles per operation."""
    return {bench.name: {mode: cost_per_operation(mode, bench, repetitions, costs) for mode in modes}
            for bench in BENCHMARKS}
