"""A tiny hand-encoded bare-metal machine for app tests that must not depend on the assembler.

A mini kernel at 0x1000 installs a trap table, turns paging on (identity map for the kernel, user
code at VA 0x400000) and drops to ring 3. The user loop prints 'h' by syscall, touches an unmapped
page (a page fault the handler serves by mapping it), runs a privileged `cli` (a #GP the handler
skips), and after three rounds asks the kernel to power off.
"""

from __future__ import annotations

from engine.isa import OPCODE_BY_NAME, encode
from engine.machine import Machine, MachineConfig
from engine.program import Program

NO_BASE = 0xF
KERNEL = 0x1000
TRAPS = 0x3000
HANDLERS = 0x2000
ROOT, KTABLE, UTABLE = 0x8000, 0x9000, 0xA000
USER_PA, DATA_PA = 0x40000, 0x41000
USER_VA, DATA_VA = 0x400000, 0x401000
KSTACK = 0x7000


def ins(name: str, a: int = 0, b: int = 0, imm: int = 0) -> bytes:
    """One instruction by opcode-table name."""
    return encode(OPCODE_BY_NAME[name].opcode, a, b, imm)


def _kernel() -> bytes:
    return b"".join([
        ins("MOVI", 8, 0, KSTACK),
        ins("MOVI", 1, 0, TRAPS), ins("LIDT", 1),
        ins("MOVI", 1, 0, ROOT), ins("MOVCR", 0, 1, 3),
        ins("MOVI", 1, 0, KSTACK), ins("MOVCR", 0, 1, 4),
        ins("MOVI", 1, 0, 1), ins("MOVCR", 0, 1, 0),
        ins("PUSHI", 0, 0, USER_VA + 0x800), ins("PUSHI", 0, 0, 0x3000),
        ins("PUSHI", 0, 0, USER_VA), ins("PUSHI"), ins("PUSHI"),
        ins("IRET"),
    ])


def _handlers() -> dict[int, bytes]:
    syscall = b"".join([
        ins("CMPI", 0, 0, 0), ins("JZ", 0, 0, HANDLERS + 0x40 + 4 * 8),
        ins("OUT", 0, 0, 0x10), ins("IRET"),
        ins("OUT", 0, 5, 0xF4),
    ])
    page_fault = b"".join([
        ins("MOVI", 3, 0, DATA_PA | 0x7), ins("ST", NO_BASE, 3, UTABLE + 4),
        ins("IRET"),
    ])
    gp = b"".join([
        ins("LD", 3, 8, 8), ins("ADDI", 3, 0, 8), ins("ST", 8, 3, 8), ins("IRET"),
    ])
    return {0x40: syscall, 0x100: page_fault, 0x200: gp}


def _user() -> bytes:
    loop = USER_VA + 8
    return b"".join([
        ins("MOVI", 5, 0, 3),
        ins("MOVI", 0, 0, ord("h")), ins("SYSCALL"),  # loop:
        ins("LD", 2, NO_BASE, DATA_VA), ins("ADDI", 2, 0, 1), ins("ST", NO_BASE, 2, DATA_VA),
        ins("CLI"),
        ins("SUBI", 5, 0, 1), ins("JNZ", 0, 0, loop),
        ins("MOVI", 0, 0, 0), ins("SYSCALL"),
    ])


def demo_program() -> Program:
    """The whole image (kernel, handlers, trap table, page tables, user code) as one program."""
    image = bytearray(USER_PA + 0x1000 - KERNEL)

    def put(address: int, data: bytes) -> None:
        image[address - KERNEL:address - KERNEL + len(data)] = data

    def word(address: int, value: int) -> None:
        put(address, value.to_bytes(4, "little"))

    put(KERNEL, _kernel())
    handlers = _handlers()
    for offset, code in handlers.items():
        put(HANDLERS + offset, code)
    word(TRAPS + 4 * 128, HANDLERS + 0x40)
    word(TRAPS + 4 * 14, HANDLERS + 0x100)
    word(TRAPS + 4 * 13, HANDLERS + 0x200)
    word(ROOT, KTABLE | 0x3)
    word(ROOT + 4, UTABLE | 0x7)
    for page in range(1, 64):
        word(KTABLE + 4 * page, (page << 12) | 0x3)
    word(UTABLE, USER_PA | 0x7)
    put(USER_PA, _user())
    labels = {KERNEL: "_start", HANDLERS + 0x40: "trap_syscall", HANDLERS + 0x100: "trap_page_fault",
              HANDLERS + 0x200: "trap_privileged", USER_PA: "user_start", USER_PA + 8: "user_loop"}
    return Program("demo.s", KERNEL, bytes(image), KERNEL, {v: k for k, v in labels.items()}, labels)


def demo_machine() -> Machine:
    """A fresh demo machine at step 0."""
    machine = Machine(MachineConfig(memory_size=1 << 20))
    machine.load_bare(demo_program())
    return machine


def loop_machine() -> Machine:
    """A guest that loops forever (`jmp` to itself after one `nop`): run must never block the app."""
    machine = Machine(MachineConfig(memory_size=1 << 16))
    code = ins("NOP") + ins("JMP", 0, 0, KERNEL)
    machine.load_bare(Program("loop.s", KERNEL, code, KERNEL, {"forever": KERNEL}, {KERNEL: "forever"}))
    return machine
