"""The teaching ISA: one opcode table read by the CPU, the assembler and the disassembler.

Every instruction is 8 bytes, little-endian::

    byte 0      opcode
    byte 1      low nibble: register A (destination), high nibble: register B (source)
    bytes 2-3   reserved, must be zero (a non-zero value is an invalid-opcode fault)
    bytes 4-7   32-bit immediate (address, constant, port or control-register number)

Each opcode carries its Popek-Goldberg class: innocuous, privileged (faults outside ring 0) or
sensitive-but-unprivileged (behaves differently by ring but never traps: the x86 problem).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

INSTRUCTION_SIZE = 8
WORD_MASK = 0xFFFF_FFFF
PAGE_SIZE = 4096
PAGE_SHIFT = 12


class InstrClass(Enum):
    """Popek-Goldberg classification of an instruction."""

    INNOCUOUS = "innocuous"
    PRIVILEGED = "privileged"
    SENSITIVE = "sensitive-unprivileged"

    @property
    def badge(self) -> str:
        """A three-letter badge used in listings and the code panel."""
        return {"innocuous": "inn", "privileged": "PRV", "sensitive-unprivileged": "SEN"}[self.value]


class Form(Enum):
    """Operand form: how the assembler parses operands and the disassembler prints them."""

    NONE = ""  # nop
    R = "r"  # push r1
    RR = "r,r"  # add r1, r2
    RI = "r,i"  # add r1, 5
    I = "i"  # jmp label / push 5 / hypercall 3  # noqa: E741
    MEM_LOAD = "r,[r+i]"  # ld r1, [r2+8]
    MEM_STORE = "[r+i],r"  # st [r2+8], r1
    CR_WRITE = "c,r"  # movcr cr3, r1
    CR_READ = "r,c"  # movrc r1, cr3
    PORT_IN = "r,p"  # in r1, 0x10
    PORT_OUT = "p,r"  # out 0x10, r1
    MEM = "[r+i]"  # invlpg [r1]


# Register file layout: r0..r7 general purpose, sp is register 8.
NUM_GPRS = 8
SP = 8
NUM_REGS = 9
REGISTER_NAMES: tuple[str, ...] = tuple(f"r{i}" for i in range(NUM_GPRS)) + ("sp",)
REGISTER_NUMBERS: dict[str, int] = {name: i for i, name in enumerate(REGISTER_NAMES)}


class Flag(IntEnum):
    """Bits of the FLAGS register (x86 positions for IF)."""

    Z = 0x001
    N = 0x002
    C = 0x004
    V = 0x008
    IF = 0x200


ARITH_FLAGS = Flag.Z | Flag.N | Flag.C | Flag.V
FLAGS_WRITABLE = ARITH_FLAGS | Flag.IF


class CR(IntEnum):
    """Control registers (x86-flavoured numbering)."""

    CR0 = 0  # bit 0: PG (paging enable)
    CR2 = 2  # faulting virtual address of the last page fault
    CR3 = 3  # page-table root (physical, page aligned); low 12 bits are the address-space id
    KSP = 4  # kernel stack pointer loaded when a trap arrives from ring > 0 (like TSS.esp0)


CR0_PG = 0x1
CR_NAMES: dict[str, int] = {"cr0": CR.CR0, "cr2": CR.CR2, "cr3": CR.CR3, "ksp": CR.KSP}
CR_NAME_OF: dict[int, str] = {v: k for k, v in CR_NAMES.items()}

# Machine status word returned by SMSW (sensitive: reveals the real ring and paging state).
MSW_RING_MASK = 0x3
MSW_PG = 0x4
MSW_IF = 0x8


class Vector(IntEnum):
    """Trap-table vectors (x86 numbering where x86 has one)."""

    DIVIDE = 0
    BREAKPOINT = 3
    INVALID_OPCODE = 6
    PRIVILEGED = 13  # general-protection fault: privileged instruction outside ring 0
    PAGE_FAULT = 14
    TLB_MISS = 15  # software-managed TLB only: no entry for the page (x86 leaves 15 reserved)
    ALIGNMENT = 17
    MACHINE_CHECK = 18  # guest-physical address outside the VM's allocation (only under a VMM)
    TIMER = 32
    DEVICE = 33
    SYSCALL = 128


TRAP_TABLE_ENTRIES = 256
TRAP_FRAME_WORDS = 5  # error code, vector, pc, flags|ring<<12, sp (lowest address first)
FRAME_RING_SHIFT = 12

VECTOR_DESCRIPTIONS: dict[int, str] = {
    Vector.DIVIDE: "divide by zero",
    Vector.BREAKPOINT: "breakpoint",
    Vector.INVALID_OPCODE: "invalid opcode",
    Vector.PRIVILEGED: "privileged instruction outside ring 0",
    Vector.PAGE_FAULT: "page fault",
    Vector.TLB_MISS: "TLB miss (software-managed TLB)",
    Vector.ALIGNMENT: "misaligned word access",
    Vector.MACHINE_CHECK: "guest-physical address outside the VM's memory",
    Vector.TIMER: "timer interrupt",
    Vector.DEVICE: "device interrupt",
    Vector.SYSCALL: "system call",
}

# Page-fault error-code bits (x86 layout).
PF_PRESENT = 0x1  # 1: protection violation on a present page, 0: page not present
PF_WRITE = 0x2
PF_USER = 0x4
PF_FETCH = 0x10

# Page-table entry bits (x86 layout).
PTE_P = 0x001
PTE_W = 0x002
PTE_U = 0x004
PTE_A = 0x020
PTE_D = 0x040
PTE_FRAME_MASK = 0xFFFF_F000

# Software-managed TLB (MachineConfig.tlb_managed = "software"): supervisor accesses (rings 0-2) below
# this address bypass the TLB, physical = virtual, like the unmapped kernel segment kseg0 of MIPS.
# Without it the TLB-miss handler's own fetches would miss forever.
KSEG_LIMIT = 0x0040_0000
TLB_MANAGEMENT = ("hardware", "software")


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One row of the opcode table."""

    opcode: int
    name: str  # unique name, e.g. ADDI
    mnemonic: str  # assembler mnemonic, e.g. add
    form: Form
    klass: InstrClass
    cycles: int
    summary: str


def _op(
    opcode: int, name: str, mnemonic: str, form: Form, summary: str, *,
    klass: InstrClass = InstrClass.INNOCUOUS, cycles: int = 1,
) -> OpSpec:
    return OpSpec(opcode, name, mnemonic, form, klass, cycles, summary)


P = InstrClass.PRIVILEGED
S = InstrClass.SENSITIVE

OPCODES: tuple[OpSpec, ...] = (
    _op(0x00, "NOP", "nop", Form.NONE, "do nothing"),
    # data movement
    _op(0x01, "MOV", "mov", Form.RR, "a = b"),
    _op(0x02, "MOVI", "mov", Form.RI, "a = imm"),
    _op(0x03, "LD", "ld", Form.MEM_LOAD, "a = word at [b+imm] (4-byte aligned)", cycles=2),
    _op(0x04, "ST", "st", Form.MEM_STORE, "word at [a+imm] = b (4-byte aligned)", cycles=2),
    _op(0x05, "LDB", "ldb", Form.MEM_LOAD, "a = zero-extended byte at [b+imm]", cycles=2),
    _op(0x06, "STB", "stb", Form.MEM_STORE, "byte at [a+imm] = low byte of b", cycles=2),
    _op(0x07, "PUSH", "push", Form.R, "sp -= 4; [sp] = a", cycles=2),
    _op(0x08, "PUSHI", "push", Form.I, "sp -= 4; [sp] = imm", cycles=2),
    _op(0x09, "POP", "pop", Form.R, "a = [sp]; sp += 4", cycles=2),
    _op(0x0A, "LEA", "lea", Form.MEM_LOAD, "a = b + imm (no memory access)"),
    # arithmetic and logic (set Z N C V)
    _op(0x10, "ADD", "add", Form.RR, "a += b"),
    _op(0x11, "ADDI", "add", Form.RI, "a += imm"),
    _op(0x12, "SUB", "sub", Form.RR, "a -= b"),
    _op(0x13, "SUBI", "sub", Form.RI, "a -= imm"),
    _op(0x14, "AND", "and", Form.RR, "a &= b"),
    _op(0x15, "ANDI", "and", Form.RI, "a &= imm"),
    _op(0x16, "OR", "or", Form.RR, "a |= b"),
    _op(0x17, "ORI", "or", Form.RI, "a |= imm"),
    _op(0x18, "XOR", "xor", Form.RR, "a ^= b"),
    _op(0x19, "XORI", "xor", Form.RI, "a ^= imm"),
    _op(0x1A, "SHL", "shl", Form.RR, "a <<= b & 31"),
    _op(0x1B, "SHLI", "shl", Form.RI, "a <<= imm & 31"),
    _op(0x1C, "SHR", "shr", Form.RR, "a >>= b & 31 (logical)"),
    _op(0x1D, "SHRI", "shr", Form.RI, "a >>= imm & 31 (logical)"),
    _op(0x1E, "SAR", "sar", Form.RR, "a >>= b & 31 (arithmetic)"),
    _op(0x1F, "SARI", "sar", Form.RI, "a >>= imm & 31 (arithmetic)"),
    _op(0x20, "MUL", "mul", Form.RR, "a *= b (low 32 bits)", cycles=3),
    _op(0x21, "MULI", "mul", Form.RI, "a *= imm (low 32 bits)", cycles=3),
    _op(0x22, "DIV", "div", Form.RR, "a //= b (unsigned); b == 0 traps", cycles=10),
    _op(0x23, "DIVI", "div", Form.RI, "a //= imm (unsigned); imm == 0 traps", cycles=10),
    _op(0x24, "MOD", "mod", Form.RR, "a %= b (unsigned); b == 0 traps", cycles=10),
    _op(0x25, "MODI", "mod", Form.RI, "a %= imm (unsigned); imm == 0 traps", cycles=10),
    _op(0x26, "NOT", "not", Form.R, "a = ~a"),
    _op(0x27, "NEG", "neg", Form.R, "a = -a"),
    _op(0x28, "CMP", "cmp", Form.RR, "flags from a - b"),
    _op(0x29, "CMPI", "cmp", Form.RI, "flags from a - imm"),
    _op(0x2A, "TEST", "test", Form.RR, "flags from a & b"),
    _op(0x2B, "TESTI", "test", Form.RI, "flags from a & imm"),
    # control flow
    _op(0x30, "JMP", "jmp", Form.I, "pc = imm"),
    _op(0x31, "JMPR", "jmp", Form.R, "pc = a"),
    _op(0x32, "JZ", "jz", Form.I, "jump if Z (equal)"),
    _op(0x33, "JNZ", "jnz", Form.I, "jump if not Z (not equal)"),
    _op(0x34, "JL", "jl", Form.I, "jump if signed less (N != V)"),
    _op(0x35, "JGE", "jge", Form.I, "jump if signed greater or equal (N == V)"),
    _op(0x36, "JLE", "jle", Form.I, "jump if signed less or equal (Z or N != V)"),
    _op(0x37, "JG", "jg", Form.I, "jump if signed greater (not Z and N == V)"),
    _op(0x38, "JB", "jb", Form.I, "jump if unsigned below (C)"),
    _op(0x39, "JAE", "jae", Form.I, "jump if unsigned above or equal (not C)"),
    _op(0x3A, "CALL", "call", Form.I, "push return address; pc = imm", cycles=2),
    _op(0x3B, "CALLR", "call", Form.R, "push return address; pc = a", cycles=2),
    _op(0x3C, "RET", "ret", Form.NONE, "pc = pop()", cycles=2),
    # traps into the kernel or the hypervisor
    _op(0x40, "SYSCALL", "syscall", Form.NONE, "trap to the kernel (vector 128)", cycles=2),
    _op(0x41, "BRK", "brk", Form.NONE, "breakpoint trap (vector 3)"),
    _op(0x42, "HYPERCALL", "hypercall", Form.I, "call the hypervisor; invalid opcode on bare metal", cycles=2),
    # sensitive but unprivileged: the x86 virtualization hole
    _op(0x48, "PUSHF", "pushf", Form.NONE, "push FLAGS (reveals the real IF)", klass=S, cycles=2),
    _op(0x49, "POPF", "popf", Form.NONE, "FLAGS = pop(); IF changes only in ring 0, silently", klass=S, cycles=2),
    _op(0x4A, "SMSW", "smsw", Form.R, "a = machine status word (real ring, PG, IF)", klass=S),
    _op(0x4B, "SIDT", "sidt", Form.R, "a = trap-table base", klass=S),
    # privileged: fault outside ring 0
    _op(0x50, "CLI", "cli", Form.NONE, "clear IF (disable interrupts)", klass=P),
    _op(0x51, "STI", "sti", Form.NONE, "set IF (enable interrupts)", klass=P),
    _op(0x52, "HLT", "hlt", Form.NONE, "wait for an interrupt; with IF clear, stop the machine", klass=P),
    _op(0x53, "IN", "in", Form.PORT_IN, "a = read port imm", klass=P, cycles=4),
    _op(0x54, "OUT", "out", Form.PORT_OUT, "write b to port imm", klass=P, cycles=4),
    _op(0x55, "MOVCR", "movcr", Form.CR_WRITE, "control register imm = b", klass=P, cycles=3),
    _op(0x56, "MOVRC", "movrc", Form.CR_READ, "a = control register imm", klass=P),
    _op(0x57, "TLBFLUSH", "tlbflush", Form.NONE, "flush the whole TLB", klass=P, cycles=3),
    _op(0x58, "INVLPG", "invlpg", Form.MEM, "invalidate the TLB entry for page of [a+imm]", klass=P, cycles=2),
    _op(0x59, "IRET", "iret", Form.NONE, "return from trap: pop error, vector, pc, flags|ring, sp",
        klass=P, cycles=4),
    _op(0x5A, "LIDT", "lidt", Form.R, "trap-table base = a", klass=P, cycles=2),
    _op(0x5B, "TLBWR", "tlbwr", Form.RR, "TLB entry for the page of a = b (frame | W | U); software TLB only",
        klass=P, cycles=3),
)

OPCODE_BY_NUMBER: dict[int, OpSpec] = {spec.opcode: spec for spec in OPCODES}
OPCODE_BY_NAME: dict[str, OpSpec] = {spec.name: spec for spec in OPCODES}
OPS_BY_MNEMONIC: dict[str, tuple[OpSpec, ...]] = {}
for _spec in OPCODES:
    OPS_BY_MNEMONIC[_spec.mnemonic] = OPS_BY_MNEMONIC.get(_spec.mnemonic, ()) + (_spec,)
del _spec

if len(OPCODE_BY_NUMBER) != len(OPCODES) or len(OPCODE_BY_NAME) != len(OPCODES):
    raise AssertionError("duplicate opcode number or name in the opcode table")


def encode(opcode: int, a: int = 0, b: int = 0, imm: int = 0) -> bytes:
    """Encode one instruction into its 8 bytes."""
    return bytes((opcode, (a & 0xF) | ((b & 0xF) << 4), 0, 0)) + (imm & WORD_MASK).to_bytes(4, "little")


def decode(raw: bytes | bytearray | memoryview) -> tuple[int, int, int, int, int]:
    """Split 8 bytes into (opcode, a, b, reserved, imm)."""
    return (
        raw[0],
        raw[1] & 0xF,
        raw[1] >> 4,
        raw[2] | (raw[3] << 8),
        int.from_bytes(bytes(raw[4:8]), "little"),
    )


def to_signed(value: int) -> int:
    """Interpret a 32-bit word as two's complement."""
    return value - 0x1_0000_0000 if value & 0x8000_0000 else value


def sensitive_unprivileged() -> tuple[OpSpec, ...]:
    """The witnesses that make this ISA fail Popek-Goldberg Theorem 1."""
    return tuple(spec for spec in OPCODES if spec.klass is InstrClass.SENSITIVE)
