"""One test per opcode (table-driven, py65 style): set registers, execute one instruction, check state."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from engine.events import TrapTaken
from engine.isa import OPCODES, SP, Flag, InstrClass, Vector, sensitive_unprivileged
from tests.engine.helpers import CODE, HANDLER, ins, install_trap_table, machine_with

Z, N, C, V, IF = Flag.Z, Flag.N, Flag.C, Flag.V, Flag.IF
NEXT = CODE + 8
DATA = 0x2000
STACK = 0x8000


@dataclass
class Case:
    name: str
    instr: tuple[str, int, int, int]
    regs: dict[int, int] = field(default_factory=dict)
    flags: int = 0
    ring: int = 0
    memory: dict[int, int] = field(default_factory=dict)
    expect_regs: dict[int, int] = field(default_factory=dict)
    expect_flags: int | None = None
    expect_pc: int = NEXT
    expect_memory: dict[int, int] = field(default_factory=dict)
    expect_trap: int | None = None
    expect_console: str = ""


CASES = [
    Case("nop", ("NOP", 0, 0, 0)),
    Case("mov", ("MOV", 1, 2, 0), regs={2: 7}, expect_regs={1: 7, 2: 7}),
    Case("movi", ("MOVI", 3, 0, 0xDEADBEEF), expect_regs={3: 0xDEADBEEF}),
    Case("ld", ("LD", 1, 2, 4), regs={2: DATA}, memory={DATA + 4: 0x12345678}, expect_regs={1: 0x12345678}),
    Case("ld absolute", ("LD", 1, 0xF, DATA), memory={DATA: 99}, expect_regs={1: 99}),
    Case("ld misaligned", ("LD", 1, 2, 2), regs={2: DATA}, expect_trap=Vector.ALIGNMENT),
    Case("st", ("ST", 2, 1, 8), regs={1: 0xCAFEF00D, 2: DATA}, expect_memory={DATA + 8: 0xCAFEF00D}),
    Case("ldb", ("LDB", 1, 2, 1), regs={2: DATA}, memory={DATA: 0x11223344}, expect_regs={1: 0x33}),
    Case("stb", ("STB", 2, 1, 0), regs={1: 0x1FF, 2: DATA}, memory={DATA: 0},
         expect_memory={DATA: 0xFF}),
    Case("push", ("PUSH", 1, 0, 0), regs={1: 5, SP: STACK}, expect_regs={SP: STACK - 4},
         expect_memory={STACK - 4: 5}),
    Case("push imm", ("PUSHI", 0, 0, 42), regs={SP: STACK}, expect_regs={SP: STACK - 4},
         expect_memory={STACK - 4: 42}),
    Case("pop", ("POP", 3, 0, 0), regs={SP: STACK - 4}, memory={STACK - 4: 77},
         expect_regs={3: 77, SP: STACK}),
    Case("lea", ("LEA", 1, 2, 0xFFFFFFFC), regs={2: 100}, expect_regs={1: 96}),
    Case("add", ("ADD", 1, 2, 0), regs={1: 2, 2: 3}, expect_regs={1: 5}, expect_flags=0),
    Case("add carry zero", ("ADD", 1, 2, 0), regs={1: 0xFFFFFFFF, 2: 1}, expect_regs={1: 0},
         expect_flags=Z | C),
    Case("add overflow", ("ADDI", 1, 0, 1), regs={1: 0x7FFFFFFF}, expect_regs={1: 0x80000000},
         expect_flags=N | V),
    Case("addi keeps IF", ("ADDI", 1, 0, 1), flags=IF, expect_regs={1: 1}, expect_flags=IF),
    Case("sub", ("SUB", 1, 2, 0), regs={1: 5, 2: 3}, expect_regs={1: 2}, expect_flags=0),
    Case("sub borrow", ("SUBI", 1, 0, 1), regs={1: 0}, expect_regs={1: 0xFFFFFFFF}, expect_flags=N | C),
    Case("sub overflow", ("SUBI", 1, 0, 1), regs={1: 0x80000000}, expect_regs={1: 0x7FFFFFFF},
         expect_flags=V),
    Case("and", ("AND", 1, 2, 0), regs={1: 0b1100, 2: 0b1010}, expect_regs={1: 0b1000}, expect_flags=0),
    Case("andi zero", ("ANDI", 1, 0, 0), regs={1: 5}, flags=C | V, expect_regs={1: 0}, expect_flags=Z),
    Case("or", ("OR", 1, 2, 0), regs={1: 0b1100, 2: 0b1010}, expect_regs={1: 0b1110}),
    Case("ori negative", ("ORI", 1, 0, 0x80000000), expect_regs={1: 0x80000000}, expect_flags=N),
    Case("xor", ("XOR", 1, 2, 0), regs={1: 0b1100, 2: 0b1010}, expect_regs={1: 0b0110}),
    Case("xori", ("XORI", 1, 0, 0xFF), regs={1: 0x0F}, expect_regs={1: 0xF0}),
    Case("shl", ("SHL", 1, 2, 0), regs={1: 3, 2: 4}, expect_regs={1: 48}),
    Case("shli wraps", ("SHLI", 1, 0, 31), regs={1: 3}, expect_regs={1: 0x80000000}, expect_flags=N),
    Case("shr", ("SHR", 1, 2, 0), regs={1: 0x80000000, 2: 31}, expect_regs={1: 1}),
    Case("shri", ("SHRI", 1, 0, 4), regs={1: 0xF0}, expect_regs={1: 0xF}),
    Case("sar", ("SAR", 1, 2, 0), regs={1: 0x80000000, 2: 4}, expect_regs={1: 0xF8000000}, expect_flags=N),
    Case("sari", ("SARI", 1, 0, 1), regs={1: 0x40}, expect_regs={1: 0x20}),
    Case("mul", ("MUL", 1, 2, 0), regs={1: 6, 2: 7}, expect_regs={1: 42}),
    Case("muli truncates", ("MULI", 1, 0, 0x10000), regs={1: 0x10000}, expect_regs={1: 0}, expect_flags=Z),
    Case("div", ("DIV", 1, 2, 0), regs={1: 43, 2: 5}, expect_regs={1: 8}),
    Case("div by zero", ("DIV", 1, 2, 0), regs={1: 43, 2: 0}, expect_regs={1: 43},
         expect_trap=Vector.DIVIDE),
    Case("divi", ("DIVI", 1, 0, 10), regs={1: 100}, expect_regs={1: 10}),
    Case("divi by zero", ("DIVI", 1, 0, 0), regs={1: 1}, expect_trap=Vector.DIVIDE),
    Case("mod", ("MOD", 1, 2, 0), regs={1: 43, 2: 5}, expect_regs={1: 3}),
    Case("modi", ("MODI", 1, 0, 7), regs={1: 50}, expect_regs={1: 1}),
    Case("mod by zero", ("MOD", 1, 2, 0), regs={1: 50, 2: 0}, expect_trap=Vector.DIVIDE),
    Case("not", ("NOT", 1, 0, 0), regs={1: 0}, expect_regs={1: 0xFFFFFFFF}, expect_flags=N),
    Case("neg", ("NEG", 1, 0, 0), regs={1: 1}, expect_regs={1: 0xFFFFFFFF}, expect_flags=N | C),
    Case("cmp equal", ("CMP", 1, 2, 0), regs={1: 9, 2: 9}, expect_regs={1: 9}, expect_flags=Z),
    Case("cmpi less", ("CMPI", 1, 0, 10), regs={1: 9}, expect_regs={1: 9}, expect_flags=N | C),
    Case("test", ("TEST", 1, 2, 0), regs={1: 0b01, 2: 0b10}, expect_regs={1: 1, 2: 2}, expect_flags=Z),
    Case("testi", ("TESTI", 1, 0, 0x80000000), regs={1: 0x80000001}, expect_regs={1: 0x80000001},
         expect_flags=N),
    Case("jmp", ("JMP", 0, 0, 0x1800), expect_pc=0x1800),
    Case("jmpr", ("JMPR", 2, 0, 0), regs={2: 0x1900}, expect_pc=0x1900),
    Case("jz taken", ("JZ", 0, 0, 0x1800), flags=Z, expect_pc=0x1800),
    Case("jz not taken", ("JZ", 0, 0, 0x1800), flags=0),
    Case("jnz taken", ("JNZ", 0, 0, 0x1800), flags=0, expect_pc=0x1800),
    Case("jnz not taken", ("JNZ", 0, 0, 0x1800), flags=Z),
    Case("jl taken", ("JL", 0, 0, 0x1800), flags=N, expect_pc=0x1800),
    Case("jl not taken", ("JL", 0, 0, 0x1800), flags=N | V),
    Case("jge taken", ("JGE", 0, 0, 0x1800), flags=N | V, expect_pc=0x1800),
    Case("jge not taken", ("JGE", 0, 0, 0x1800), flags=V),
    Case("jle taken on Z", ("JLE", 0, 0, 0x1800), flags=Z, expect_pc=0x1800),
    Case("jle not taken", ("JLE", 0, 0, 0x1800), flags=0),
    Case("jg taken", ("JG", 0, 0, 0x1800), flags=0, expect_pc=0x1800),
    Case("jg not taken", ("JG", 0, 0, 0x1800), flags=Z),
    Case("jb taken", ("JB", 0, 0, 0x1800), flags=C, expect_pc=0x1800),
    Case("jb not taken", ("JB", 0, 0, 0x1800), flags=0),
    Case("jae taken", ("JAE", 0, 0, 0x1800), flags=0, expect_pc=0x1800),
    Case("jae not taken", ("JAE", 0, 0, 0x1800), flags=C),
    Case("call", ("CALL", 0, 0, 0x1800), regs={SP: STACK}, expect_pc=0x1800, expect_regs={SP: STACK - 4},
         expect_memory={STACK - 4: NEXT}),
    Case("callr", ("CALLR", 3, 0, 0), regs={3: 0x1900, SP: STACK}, expect_pc=0x1900,
         expect_memory={STACK - 4: NEXT}),
    Case("ret", ("RET", 0, 0, 0), regs={SP: STACK - 4}, memory={STACK - 4: 0x1888}, expect_pc=0x1888,
         expect_regs={SP: STACK}),
    Case("syscall", ("SYSCALL", 0, 0, 0), regs={SP: STACK}, ring=3, expect_trap=Vector.SYSCALL),
    Case("brk", ("BRK", 0, 0, 0), regs={SP: STACK}, expect_trap=Vector.BREAKPOINT),
    Case("hypercall on bare metal", ("HYPERCALL", 0, 0, 1), regs={SP: STACK},
         expect_trap=Vector.INVALID_OPCODE),
    Case("pushf", ("PUSHF", 0, 0, 0), regs={SP: STACK}, flags=IF | C, expect_memory={STACK - 4: IF | C}),
    Case("popf ring 0 sets IF", ("POPF", 0, 0, 0), regs={SP: STACK - 4}, memory={STACK - 4: IF | Z},
         expect_flags=IF | Z),
    Case("popf ring 3 leaves IF silently", ("POPF", 0, 0, 0), ring=3, regs={SP: STACK - 4},
         memory={STACK - 4: Z}, flags=IF, expect_flags=IF | Z),
    Case("smsw reveals ring", ("SMSW", 1, 0, 0), ring=3, flags=IF, expect_regs={1: 3 | 8}),
    Case("sidt", ("SIDT", 1, 0, 0), ring=3, expect_regs={1: 0x3000}),
    Case("cli", ("CLI", 0, 0, 0), flags=IF | Z, expect_flags=Z),
    Case("cli in ring 3 faults", ("CLI", 0, 0, 0), ring=3, flags=IF, regs={SP: STACK},
         expect_trap=Vector.PRIVILEGED),
    Case("sti", ("STI", 0, 0, 0), expect_flags=IF),
    Case("hlt with IF clear halts", ("HLT", 0, 0, 0)),
    Case("in", ("IN", 1, 0, 0x20), expect_regs={1: 0}),
    Case("in unmapped", ("IN", 1, 0, 0x99), expect_regs={1: 0xFFFFFFFF}),
    Case("out console", ("OUT", 0, 1, 0x10), regs={1: ord("A")}, expect_console="A"),
    Case("movcr cr2", ("MOVCR", 0, 1, 2), regs={1: 0x1234}),
    Case("movrc cr2", ("MOVRC", 1, 0, 2), expect_regs={1: 0}),
    Case("tlbflush", ("TLBFLUSH", 0, 0, 0)),
    Case("invlpg", ("INVLPG", 1, 0, 0), regs={1: 0x5000}),
    Case("iret", ("IRET", 0, 0, 0), regs={SP: STACK - 20},
         memory={STACK - 20: 0, STACK - 16: 14, STACK - 12: 0x1880, STACK - 8: IF | (3 << 12), STACK - 4: 0x9000},
         expect_pc=0x1880, expect_regs={SP: 0x9000}, expect_flags=IF),
    Case("lidt", ("LIDT", 1, 0, 0), regs={1: 0x5000}),
    Case("tlbwr on a hardware-walked TLB", ("TLBWR", 1, 2, 0), regs={1: 0x5000, 2: 0x7007, SP: STACK},
         expect_trap=Vector.INVALID_OPCODE),  # software TLB: tests/engine/test_soft_tlb.py
]


def _run_case(case: Case):  # type: ignore[no-untyped-def]
    machine = machine_with(ins(*case.instr))
    install_trap_table(machine, {v: HANDLER for v in range(256)})
    cpu = machine.cpu
    for number, value in case.regs.items():
        cpu.regs[number] = value
    for address, value in case.memory.items():
        machine.write_memory(address, value.to_bytes(4, "little"))
    cpu.flags, cpu.ring = case.flags, case.ring
    cpu.ksp = STACK
    result = machine.step()
    return machine, result


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_instruction(case: Case) -> None:
    machine, result = _run_case(case)
    cpu = machine.cpu
    traps = [e for e in result.events if isinstance(e, TrapTaken)]
    if case.expect_trap is not None:
        assert [t.vector for t in traps] == [case.expect_trap]
        assert cpu.pc == HANDLER and cpu.ring == 0
        assert not cpu.flags & IF
        frame_vector = machine.read_word(cpu.regs[SP] + 4)
        assert frame_vector == case.expect_trap
    else:
        assert traps == []
        assert cpu.pc == case.expect_pc
    for number, value in case.expect_regs.items():
        assert cpu.regs[number] == value, f"r{number}"
    if case.expect_flags is not None:
        assert cpu.flags == case.expect_flags
    for address, value in case.expect_memory.items():
        assert machine.read_word(address) == value
    assert machine.console_output == case.expect_console


def test_every_opcode_has_a_case() -> None:
    covered = {case.instr[0] for case in CASES}
    missing = {spec.name for spec in OPCODES} - covered
    assert not missing, f"opcodes without an instruction test: {sorted(missing)}"


def test_specific_side_effects() -> None:
    machine, _ = _run_case(next(c for c in CASES if c.name == "hlt with IF clear halts"))
    assert machine.halted and "hlt" in (machine.halt_reason or "")
    machine, _ = _run_case(next(c for c in CASES if c.name == "movcr cr2"))
    assert machine.cpu.cr2 == 0x1234
    machine, _ = _run_case(next(c for c in CASES if c.name == "lidt"))
    assert machine.cpu.idtr == 0x5000


def test_privileged_class_faults_outside_ring_0_and_others_do_not() -> None:
    for spec in OPCODES:
        if spec.klass is not InstrClass.PRIVILEGED:
            continue
        machine = machine_with(ins(spec.name, 1, 1, 0x10 if "PORT" in spec.form.name else 0))
        install_trap_table(machine, {v: HANDLER for v in range(256)})
        machine.cpu.ring, machine.cpu.ksp = 3, STACK
        result = machine.step()
        assert [e.vector for e in result.events if isinstance(e, TrapTaken)] == [Vector.PRIVILEGED], spec.name


def test_sensitive_unprivileged_set_is_the_x86_hole() -> None:
    names = {spec.name for spec in sensitive_unprivileged()}
    assert names == {"PUSHF", "POPF", "SMSW", "SIDT"}
    # Theorem 1 fails: some sensitive instruction is not privileged.
    assert all(spec.klass is not InstrClass.PRIVILEGED for spec in sensitive_unprivileged())


@pytest.mark.parametrize("raw", [
    bytes([0xEE, 0, 0, 0, 0, 0, 0, 0]),  # unknown opcode
    bytes([0x01, 0x0C, 0, 0, 0, 0, 0, 0]),  # mov with register 12
    bytes([0x00, 0, 1, 0, 0, 0, 0, 0]),  # reserved byte set
    bytes([0x55, 0x10, 0, 0, 7, 0, 0, 0]),  # movcr to a control register that does not exist
])
def test_invalid_encodings_fault_visibly(raw: bytes) -> None:
    machine = machine_with(raw)
    install_trap_table(machine, {6: HANDLER})
    machine.cpu.regs[SP] = STACK
    result = machine.step()
    assert [e.vector for e in result.events if isinstance(e, TrapTaken)] == [Vector.INVALID_OPCODE]
    assert machine.read_word(STACK - 12) == CODE  # return pc: the faulting instruction, restartable
