"""Disassembler: turns decoded instructions back into assembler syntax, from the opcode table."""

from __future__ import annotations

from collections.abc import Mapping

from engine.isa import (
    CR_NAME_OF,
    INSTRUCTION_SIZE,
    OPCODE_BY_NUMBER,
    REGISTER_NAMES,
    Form,
    OpSpec,
    decode,
    to_signed,
)

NO_BASE = 0xF


def _reg(number: int) -> str:
    return REGISTER_NAMES[number] if number < len(REGISTER_NAMES) else f"?{number}"


def _imm(value: int, symbols: Mapping[int, str] | None) -> str:
    if symbols and value in symbols:
        return symbols[value]
    signed = to_signed(value)
    if -256 < signed < 256:
        return str(signed)
    return f"{value:#x}"


def _mem(base: int, disp: int, symbols: Mapping[int, str] | None) -> str:
    if base == NO_BASE:
        return f"[{_imm(disp, symbols)}]"
    signed = to_signed(disp)
    if signed == 0:
        return f"[{_reg(base)}]"
    sign = "+" if signed > 0 else "-"
    return f"[{_reg(base)}{sign}{abs(signed):#x}]" if abs(signed) > 9 else f"[{_reg(base)}{sign}{abs(signed)}]"


def format_operands(spec: OpSpec, a: int, b: int, imm: int, symbols: Mapping[int, str] | None = None) -> str:
    """The operand text of one instruction, e.g. ``r1, [r2+8]``."""
    form = spec.form
    if form is Form.NONE:
        return ""
    if form is Form.R:
        return _reg(a)
    if form is Form.RR:
        return f"{_reg(a)}, {_reg(b)}"
    if form is Form.RI:
        return f"{_reg(a)}, {_imm(imm, symbols)}"
    if form is Form.I:
        return _imm(imm, symbols)
    if form is Form.MEM_LOAD:
        return f"{_reg(a)}, {_mem(b, imm, symbols)}"
    if form is Form.MEM_STORE:
        return f"{_mem(a, imm, symbols)}, {_reg(b)}"
    if form is Form.MEM:
        return _mem(a, imm, symbols)
    if form is Form.CR_WRITE:
        return f"{CR_NAME_OF.get(imm, f'cr{imm}')}, {_reg(b)}"
    if form is Form.CR_READ:
        return f"{_reg(a)}, {CR_NAME_OF.get(imm, f'cr{imm}')}"
    if form is Form.PORT_IN:
        return f"{_reg(a)}, {imm:#x}"
    if form is Form.PORT_OUT:
        return f"{imm:#x}, {_reg(b)}"
    raise AssertionError(f"unhandled operand form {form}")


def format_instruction(spec: OpSpec, a: int, b: int, imm: int, symbols: Mapping[int, str] | None = None) -> str:
    """Assembler text of one decoded instruction."""
    operands = format_operands(spec, a, b, imm, symbols)
    return f"{spec.mnemonic} {operands}" if operands else spec.mnemonic


def disassemble_bytes(raw: bytes | bytearray | memoryview, symbols: Mapping[int, str] | None = None) -> str:
    """Disassemble exactly one 8-byte instruction; unknown encodings read as ``.invalid``."""
    if len(raw) < INSTRUCTION_SIZE:
        return "(truncated)"
    opcode, a, b, reserved, imm = decode(raw)
    spec = OPCODE_BY_NUMBER.get(opcode)
    if spec is None or reserved:
        return f".invalid {bytes(raw[:INSTRUCTION_SIZE]).hex()}"
    return format_instruction(spec, a, b, imm, symbols)
