"""Small builders for engine tests: hand-encoded programs, no assembler involved."""

from __future__ import annotations

from engine.isa import OPCODE_BY_NAME, encode
from engine.machine import Machine, MachineConfig
from engine.program import Program

FILLER = 0xAA  # untouched memory reads as 0xAAAAAAAA, so a read of the wrong address shows (py65 style)
CODE = 0x1000
TRAP_TABLE = 0x3000
HANDLER = 0x4000


def ins(name: str, a: int = 0, b: int = 0, imm: int = 0) -> bytes:
    """Encode one instruction by its opcode-table name."""
    return encode(OPCODE_BY_NAME[name].opcode, a, b, imm)


def machine_with(code: bytes, *, origin: int = CODE, config: MachineConfig | None = None,
                 filler: int = FILLER) -> Machine:
    """A bare-metal machine with memory pre-filled and `code` loaded at `origin`."""
    machine = Machine(config or MachineConfig(memory_size=1 << 16 if config is None else config.memory_size))
    machine.write_memory(0, bytes([filler]) * len(machine.memory))
    machine.load_bare(Program("test", origin, code, origin))
    return machine


def install_trap_table(machine: Machine, handlers: dict[int, int], base: int = TRAP_TABLE) -> None:
    """Write a trap table (vector -> handler address), zero elsewhere, and point IDTR at it."""
    table = bytearray(256 * 4)
    for vector, address in handlers.items():
        table[vector * 4:vector * 4 + 4] = address.to_bytes(4, "little")
    machine.write_memory(base, bytes(table))
    machine.cpu.idtr = base
