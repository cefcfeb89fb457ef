"""Assembler tests: every opcode-table row round-trips through the disassembler, plus expressions,
directives, padding, entry selection, one test per error class and a hypothesis round-trip."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.asm import AsmError, AsmErrors, AssemblyFailed, assemble, assemble_file, format_listing
from engine.disasm import NO_BASE, disassemble_bytes, format_instruction
from engine.isa import CR_NAMES, INSTRUCTION_SIZE, NUM_REGS, OPCODES, WORD_MASK, Form, OpSpec, encode
from engine.program import Program
from engine.programs import PROGRAMS_DIR
from vizvm.cli_asm import run_asm

# Encoding fields (a, b, imm) of one example per operand form.
EXAMPLE_FIELDS: dict[Form, tuple[int, int, int]] = {
    Form.NONE: (0, 0, 0),
    Form.R: (3, 0, 0),
    Form.RR: (1, 8, 0),
    Form.RI: (1, 0, 42),
    Form.I: (0, 0, 0x1000),
    Form.MEM_LOAD: (1, 2, 8),
    Form.MEM_STORE: (2, 1, -4 & WORD_MASK),
    Form.MEM: (1, 0, 0),
    Form.CR_WRITE: (0, 1, CR_NAMES["cr3"]),
    Form.CR_READ: (1, 0, CR_NAMES["cr2"]),
    Form.PORT_IN: (1, 0, 0x10),
    Form.PORT_OUT: (0, 5, 0xF4),
}


def words(program: Program) -> list[int]:
    image = program.image
    return [int.from_bytes(image[i:i + 4], "little") for i in range(0, len(image) - len(image) % 4, 4)]


def errors_of(source: str) -> list[AsmError]:
    with pytest.raises(AsmErrors) as info:
        assemble(source, "t.s")
    return info.value.errors


def only_error(source: str) -> AsmError:
    errors = errors_of(source)
    assert len(errors) == 1, "\n".join(map(str, errors))
    return errors[0]


# Round trips ------------------------------------------------------------------------------------

def test_every_form_has_an_example() -> None:
    assert set(EXAMPLE_FIELDS) == set(Form)


@pytest.mark.parametrize("spec", OPCODES, ids=lambda spec: spec.name)
def test_every_opcode_round_trips_through_the_disassembler(spec: OpSpec) -> None:
    a, b, imm = EXAMPLE_FIELDS[spec.form]
    text = format_instruction(spec, a, b, imm)
    program = assemble(f"    {text}\n")
    assert program.image == encode(spec.opcode, a, b, imm)
    assert disassemble_bytes(program.image) == text
    assert assemble(text.upper()).image == program.image  # mnemonics and registers are case-insensitive


def test_operand_shape_selects_the_opcode_row() -> None:
    cases = {"add r1, r2": "ADD", "add r1, 5": "ADDI", "jmp 0x40": "JMP", "jmp r1": "JMPR",
             "push 5": "PUSHI", "push r3": "PUSH", "call r2": "CALLR", "call 8": "CALL", "mov r1, sp": "MOV"}
    by_name = {spec.name: spec.opcode for spec in OPCODES}
    for text, name in cases.items():
        assert assemble(text).image[0] == by_name[name], text


def test_memory_operand_spellings() -> None:
    program = assemble("""
        ld r1, [r2]
        ld r1, [r2+8]
        ld r1, [r2-4]
        ld r1, [r2+table]
        ld r1, [table]
        ld r1, [table+4]
        st [sp+4*2], r3
        lea r1, [r2+16]
        invlpg [r1]
        table: .word 0
    """)
    fields = [(program.image[i + 1] & 0xF, program.image[i + 1] >> 4,
               int.from_bytes(program.image[i + 4:i + 8], "little")) for i in range(0, 72, 8)]
    table = program.symbols["table"]
    assert fields == [(1, 2, 0), (1, 2, 8), (1, 2, -4 & WORD_MASK), (1, 2, table), (1, NO_BASE, table),
                      (1, NO_BASE, table + 4), (8, 3, 8), (1, 2, 16), (1, 0, 0)]


def test_ports_and_control_registers() -> None:
    program = assemble("CONSOLE = 0x10\n in r1, CONSOLE\n out 0x10, r1\n movcr cr3, r1\n movrc r1, CR2\n"
                       " movcr KSP, r2")
    texts = [disassemble_bytes(program.image[i:i + 8]) for i in range(0, len(program.image), 8)]
    assert texts == ["in r1, 0x10", "out 0x10, r1", "movcr cr3, r1", "movrc r1, cr2", "movcr ksp, r2"]


def _instruction(spec: OpSpec, data: st.DataObject) -> tuple[bytes, str]:
    reg = st.integers(0, NUM_REGS - 1)
    base = st.one_of(reg, st.just(NO_BASE))
    imm = st.integers(0, WORD_MASK)
    a = b = value = 0
    form = spec.form
    if form in (Form.R, Form.RR, Form.RI, Form.MEM_LOAD, Form.CR_READ, Form.PORT_IN):
        a = data.draw(reg)
    if form in (Form.RR, Form.MEM_STORE, Form.CR_WRITE, Form.PORT_OUT):
        b = data.draw(reg)
    if form is Form.MEM_LOAD:
        b = data.draw(base)
    if form in (Form.MEM_STORE, Form.MEM):
        a = data.draw(base)
    if form in (Form.RI, Form.I, Form.MEM_LOAD, Form.MEM_STORE, Form.MEM, Form.PORT_IN, Form.PORT_OUT):
        value = data.draw(imm)
    if form in (Form.CR_READ, Form.CR_WRITE):
        value = data.draw(st.sampled_from(sorted(CR_NAMES.values())))
    return encode(spec.opcode, a, b, value), format_instruction(spec, a, b, value)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_sequences_round_trip(data: st.DataObject) -> None:
    specs = data.draw(st.lists(st.sampled_from(OPCODES), min_size=1, max_size=12))
    encoded, texts = zip(*(_instruction(spec, data) for spec in specs), strict=True)
    first = assemble("\n".join(f"  {text}  ; #{i}" for i, text in enumerate(texts)))
    assert first.image == b"".join(encoded)
    listing = [disassemble_bytes(first.image[i:i + 8]) for i in range(0, len(first.image), INSTRUCTION_SIZE)]
    assert assemble("\n".join(listing)).image == first.image



_FRAGMENTS = st.sampled_from([
    "mov", "ld", "st", "jmp", "out", "movcr", "r1", "r9", "sp", "cr3", "cr7", ",", "[", "]", "+", "-", "*", "/", "(",
    ")", "<<", "~", "0x", "12", "0b2", "1000000000000", "'a'", "'", '"s"', '"', "\\", ".", "x", "x:", "=", ";", "#",
    ".org", ".word", ".byte", ".space", ".align", ".equ", ".entry", ".asciz", "\t", "\n",
    ".ifdef", ".ifndef", ".else", ".endif", "PV",
])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(_FRAGMENTS, max_size=24).map(" ".join), st.text(max_size=40)))
def test_any_input_assembles_or_reports_errors(source: str) -> None:
    for defines in (None, {"PV": 1}):
        try:
            format_listing(assemble(source, defines=defines))
        except AsmErrors as failure:
            assert failure.errors and all(str(error) for error in failure.errors)

# Expressions ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("expr", "value"), [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("10 - 2 - 3", 5), ("1 + 2 << 1", 6), ("6 & 3 ^ 1", 3),
    ("1 | 2 ^ 3 & 1", 3), ("1 << 4 | 1", 17), ("0x10 >> 2", 4), ("0b1010", 10), ("0xFFFF_0000", 0xFFFF0000),
    ("-1", WORD_MASK), ("~0", WORD_MASK), ("-0x80000000", 0x80000000), ("--5", 5), ("-7 / 2", -3 & WORD_MASK),
    ("-7 % 2", WORD_MASK), ("7 % 3", 1), ("'A'", 65), (r"'\n'", 10), (r"'\0'", 0), (r"'\\'", 92), (r"'\''", 39),
    ("';'", 59), ("K * 2", 0x20), ("later - .", 8), ("~K & 0xff", 0xEF),
])
def test_expressions(expr: str, value: int) -> None:
    program = assemble(f"K = 0x10\n.org 0x100\n.word {expr}\n.word 0\nlater:")
    assert words(program)[0] == value


def test_constants_may_refer_forward_and_to_each_other() -> None:
    program = assemble(".equ SIZE, end - start\nTWICE = SIZE * 2\nstart: nop\nnop\nend:\n.word TWICE")
    assert program.symbols["SIZE"] == 16 and program.symbols["TWICE"] == 32
    assert words(program)[-1] == 32


def test_here_is_the_address_of_the_statement() -> None:
    program = assemble(".org 0x200\n.byte 1\njmp .\n.word ., .")
    assert program.image[8:16] == encode(0x30, imm=0x208)
    assert words(program)[4:6] == [0x210, 0x210]


# Directives -------------------------------------------------------------------------------------

def test_data_directives() -> None:
    program = assemble('.byte 1, -1, 0xff, \'a\'\n.ascii "hi", "\\t"\n.asciz "ok\\n"\n'
                       '.space 3\n.space 2, 0x7f\n.word 0x11223344')
    assert program.image == b"\x01\xff\xff" + b"ahi\tok\n\0" + b"\0\0\0\x7f\x7f" + bytes.fromhex("44332211")


def test_word_does_not_auto_align() -> None:
    program = assemble(".byte 1\nvalue: .word 0x11223344")
    assert program.symbols["value"] == 1
    assert program.image == b"\x01\x44\x33\x22\x11"


def test_align_pads_with_zeros() -> None:
    program = assemble(".byte 1\n.align 4\nhere: .byte 2\n.align 1\n.byte 3")
    assert program.image == b"\x01\0\0\0\x02\x03"
    assert program.symbols["here"] == 4


def test_org_sets_origin_then_moves_forward() -> None:
    program = assemble("_start:\n.org 0x1000\nnop\n.org 0x1010\ntail: .byte 9")
    assert program.origin == 0x1000 and program.symbols["_start"] == 0x1000
    assert program.image == bytes(16) + b"\x09"
    assert program.labels == {0x1000: "_start", 0x1010: "tail"}
    assert program.end == 0x1011


def test_origin_argument() -> None:
    program = assemble("nop\n.org 0x400010\nnop", origin=0x400000)
    assert program.origin == 0x400000 and len(program.image) == 24
    assert only_error_with_origin(".org 0x1000\nnop", 0x400000).message.startswith(".org 0x1000 would move backwards")


def only_error_with_origin(source: str, origin: int) -> AsmError:
    with pytest.raises(AsmErrors) as info:
        assemble(source, "t.s", origin=origin)
    assert len(info.value.errors) == 1
    return info.value.errors[0]


def test_symbols_labels_and_source_lines() -> None:
    program = assemble("; comment\nA = 5\n# hash comment\nfirst: second: mov r1, A\n\n  .word -1\nend:")
    assert program.symbols == {"A": 5, "first": 0, "second": 0, "end": 12}
    assert program.labels == {0: "first", 12: "end"}
    assert program.source_lines == {0: 4, 8: 6}
    assert program.source_line_text(8) == "  .word -1"


def test_negative_constant_keeps_its_sign_in_expressions() -> None:
    program = assemble("NEG = -1\n.word NEG + 2")
    assert program.symbols["NEG"] == WORD_MASK and words(program) == [1]


# Padding before instructions --------------------------------------------------------------------

def test_instruction_after_unaligned_data_is_padded() -> None:
    program = assemble(".org 0x100\nmsg: .ascii \"abc\"\nloop:\n    nop\nafter: jmp loop")
    assert program.symbols["loop"] == 0x108 and program.symbols["after"] == 0x110
    assert program.image[:8] == b"abc" + bytes(5)
    assert program.source_lines == {0x100: 2, 0x108: 4, 0x110: 5}


# Entry point ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "entry"), [
    (".org 0x100\n.entry main\n_start: nop\nmain: nop", 0x108),
    (".org 0x100\nnop\n_start: nop", 0x108),
    (".org 0x100\n.byte 1, 2\ncode: nop", 0x108),
    (".org 0x100\n.word 1", 0x100),
    ("", 0),
])
def test_entry_selection(source: str, entry: int) -> None:
    assert assemble(source).entry == entry


# Errors -----------------------------------------------------------------------------------------

ERROR_CASES = [
    ("unknown mnemonic", "start:\n    mvo r1, r2", 2, 5, "unknown mnemonic 'mvo' (did you mean 'mov'?)"),
    ("directive without dot", "org 0x100", 1, 1, "unknown mnemonic 'org' (did you mean '.org'?)"),
    ("operand count", "add r1, r2, r3", 1, 13, "wrong number of operands for 'add': got 3 "
                                               "(add takes 'r, r' or 'r, imm')"),
    ("too few operands", "  push", 1, 3, "wrong number of operands for 'push': got 0 (push takes 'r' or 'imm')"),
    ("operand shape", "add r1, [r2]", 1, 9, "operand 2 of 'add' must be a register or an immediate, "
                                            "not a memory operand (add takes 'r, r' or 'r, imm')"),
    ("swapped store", "st r1, [r2]", 1, 4, "operand 1 of 'st' must be a memory operand such as [r2+8]"),
    ("no operands", "nop r1", 1, 5, "nop takes no operands"),
    ("unknown register", "mov r1, r9", 1, 9, "unknown register 'r9' (registers are r0..r7 and sp)"),
    ("unknown memory base", "ld r1, [r12+4]", 1, 9, "unknown register 'r12'"),
    ("register in expression", "mov r1, 4+r2", 1, 11, "register 'r2' cannot be used in an expression"),
    ("undefined symbol", "loop: nop\njmp lopo", 2, 5, "undefined symbol 'lopo' (did you mean 'loop'?)"),
    ("duplicate label", "x: nop\n\nx: nop", 3, 1, "duplicate label 'x' (first defined as a label at line 1)"),
    ("label named like a register", "sp: nop", 1, 1, "'sp' is a register name and cannot be a symbol"),
    ("bad number", "mov r1, 0x1g", 1, 9, "bad number literal '0x1g'"),
    ("bad binary", ".word 0b102", 1, 7, "bad number literal '0b102'"),
    ("unterminated string", '.ascii "abc', 1, 8, "unterminated string"),
    ("unterminated char", "mov r1, 'a", 1, 9, "unterminated character literal"),
    ("bad escape", r'.ascii "a\q"', 1, 10, r"unknown escape sequence '\q'"),
    ("out of range", "mov r1, 0x100000000", 1, 9, "value out of range: 4294967296 (0x100000000) "
                                                   "does not fit in 32 bits"),
    ("negative out of range", ".word -0x80000001", 1, 7, "value out of range"),
    ("byte out of range", ".byte 1, 256", 1, 10, "does not fit in a byte (-128..255)"),
    ("org backwards", ".org 0x100\nnop\n.org 0x104", 3, 6, ".org 0x104 would move backwards from 0x108"),
    ("unknown directive", ".wrod 1", 1, 1, "unknown directive '.wrod' (did you mean '.word'?)"),
    ("gnu directive", ".long 1", 1, 1, "unknown directive '.long' (did you mean '.word'?)"),
    ("garbage after operands", "add r1, 5 7", 1, 11, "unexpected '7' after the operands of 'add'"),
    ("garbage after directive", ".org 4 4", 1, 8, "unexpected '4' after the address"),
    ("bad control register", "movcr cr5, r1", 1, 7, "unknown control register 'cr5' "
                                                    "(control registers are cr0, cr2, cr3, ksp)"),
    ("register for control register", "movrc r1, r2", 1, 11, "operand 2 of 'movrc' must be a control register"),
    ("control register in mov", "mov r1, cr3", 1, 9, "control registers are accessed with movcr and movrc"),
    ("missing comma", "mov r1 r2", 1, 8, "missing ',' before 'r2'"),
    ("missing comma in data", ".word 1 2", 1, 9, "missing ',' before '2'"),
    ("missing bracket", "ld r1, [r2+4", 1, 13, "expected ']', got end of line"),
    ("dangling comma", "mov r1,", 1, 7, "expected an operand after ','"),
    ("division by zero", "X = 4 / (2 - 2)", 1, 7, "division by zero"),
    ("circular constants", "A = B\nB = A + 1", 2, 5, "circular definition: 'A' depends on itself"),
    ("size defined later", ".space N\nN = 4", 1, 8, "the value of .space must be known here, but 'N' is "
                                                  "defined later (line 2)"),
    ("bad alignment", ".align 3", 1, 8, ".align needs a power of two, not 3"),
    ("label without colon", "loop", 1, 1, "unknown mnemonic 'loop' (a label needs a ':' after its name)"),
    ("stray character", "mov r1, @", 1, 9, "unexpected character '@'"),
    ("duplicate entry", ".entry a\n.entry b\na:\nb:", 2, 1, "duplicate .entry (first given at line 1)"),
]


@pytest.mark.parametrize(("source", "line", "col", "message"), [case[1:] for case in ERROR_CASES],
                         ids=[case[0] for case in ERROR_CASES])
def test_error_position_message_and_caret(source: str, line: int, col: int, message: str) -> None:
    error = only_error(source)
    assert (error.filename, error.line, error.col) == ("t.s", line, col)
    assert message in error.message
    assert error.source_line == source.splitlines()[line - 1]
    header, quoted, caret = str(error).splitlines()
    assert header == f"t.s:{line}:{col}: error: {error.message}"
    assert quoted.split(" | ", 1) == [f"{line:>5}", error.source_line]
    marker = caret.split(" | ", 1)[1]
    assert marker.index("^") == col - 1
    assert set(marker[col:]) <= {"~"}


def test_caret_underlines_the_whole_token() -> None:
    error = only_error("    mvo r1, r2")
    assert str(error).splitlines()[2] == "      |     ^~~"


def test_caret_keeps_tabs_aligned() -> None:
    error = only_error("\tmov\tr1,\tr9")
    assert str(error).splitlines()[2].split(" | ", 1)[1] == "\t   \t   \t^~"


def test_all_errors_are_reported_in_order() -> None:
    source = "jmp nowhere\nmvo r1, r2\n.byte 300\nok: nop\nadd r1 r2"
    with pytest.raises(AsmErrors) as info:
        assemble(source, "many.s")
    failure = info.value
    assert [(e.line, e.col) for e in failure.errors] == [(1, 5), (2, 1), (3, 7), (5, 8)]
    assert isinstance(failure, AssemblyFailed) and isinstance(failure.errors[0], AssemblyFailed)
    assert str(failure).count("many.s:") == 4
    assert str(failure).splitlines()[0] == "many.s:1:5: error: undefined symbol 'nowhere'"


def test_labels_on_a_bad_line_are_still_defined() -> None:
    errors = errors_of("loop: mov r1, 0x\njmp loop")
    assert [e.message for e in errors] == ["bad number literal '0x'"]


def test_undefined_symbol_inside_a_constant_is_reported_once() -> None:
    errors = errors_of("A = missing + 1\nmov r1, A\n.word A")
    assert [(e.line, e.message) for e in errors] == [(1, "undefined symbol 'missing'")]



def test_a_broken_constant_is_not_reported_again_where_it_is_used() -> None:
    errors = errors_of("X = 1 +\nmov r1, X\n.equ Y\n.word Y\n.space Y")
    assert [(e.line, e.message) for e in errors] == [(1, "expected an expression, got end of line"),
                                                     (3, "expected ',' after the constant's name, got end of line")]

def test_assemble_file(tmp_path: Path) -> None:
    path = tmp_path / "prog.s"
    path.write_text("_start: hlt\n")
    assert assemble_file(path).name == str(path)
    bad = tmp_path / "bad.s"
    bad.write_bytes(b"nop\nmov r1, \xff\n")
    with pytest.raises(AsmErrors) as info:
        assemble_file(bad)
    assert (info.value.errors[0].line, info.value.errors[0].col) == (2, 9)
    with pytest.raises(OSError):
        assemble_file(tmp_path / "missing.s")


# Listing ----------------------------------------------------------------------------------------

def test_listing() -> None:
    program = assemble(".org 0x1000\n_start: mov r1, msg\n  cli\n  pushf\nmsg: .asciz \"hi\"\nnext: jmp _start\n",
                       "demo.s")
    lines = format_listing(program).splitlines()
    assert lines[0] == "; demo.s: origin 0x00001000, entry 0x00001000, 40 bytes"
    assert lines[1] == "_start:"
    assert lines[2].startswith("00001000  02 01 00 00 18 10 00 00  inn  mov r1, msg")
    assert lines[2].endswith("2 | _start: mov r1, msg")
    assert "PRV  cli" in lines[3] and "SEN  pushf" in lines[4]
    assert lines[5] == "msg:"
    assert lines[6].startswith("00001018  68 69 00            ") and '.asciz "hi"' in lines[6]
    assert lines[7].startswith("0000101b  00 00 00 00 00") and "(padding)" in lines[7]
    assert lines[8:] == ["next:", lines[9]] and "jmp _start" in lines[9]


def test_listing_shows_numbers_where_the_source_did() -> None:
    listing = format_listing(assemble("_start: mov r1, 0\njmp _start"))
    assert "mov r1, 0 " in listing and "jmp _start" in listing


def test_listing_without_source_disassembles_the_image() -> None:
    program = Program("raw", 0x100, encode(0x30, imm=0x100) + b"\x01\x02", 0x100, labels={0x100: "top"})
    lines = format_listing(program).splitlines()
    assert lines[1:3] == ["top:", lines[2]] and "jmp top" in lines[2]
    assert lines[3].startswith("00000108  01 02")


@pytest.mark.parametrize("path", sorted(PROGRAMS_DIR.glob("*.s")), ids=lambda p: p.name)
def test_shipped_programs_assemble_and_list(path: Path) -> None:
    program = assemble_file(path)
    listing = format_listing(program)
    assert listing.count("\n") >= len(program.source_lines)


# Conditional assembly -----------------------------------------------------------------------------

CONDITIONAL_SOURCE = """\
        .org 0x100
.ifdef PV
        hypercall 6             ; set_interrupts(0)
.else
        cli
.endif
.ifndef PV
        hlt
.endif
        .word PV_FLAG
.ifdef PV
PV_FLAG = PV * 2
.else
PV_FLAG = 0
.endif
"""


def test_ifdef_else_endif_select_lines_by_defines() -> None:
    native = assemble(CONDITIONAL_SOURCE, "c.s")
    paravirt = assemble(CONDITIONAL_SOURCE, "c.s", defines={"PV": 1})
    assert [disassemble_bytes(native.image[i:i + 8]) for i in (0, 8)] == ["cli", "hlt"]
    assert disassemble_bytes(paravirt.image[:8]) == "hypercall 6"
    assert words(native)[-1] == 0 and words(paravirt)[-1] == 2
    assert paravirt.symbols["PV"] == 1 and "PV" not in native.symbols
    assert native.source_lines == {0x100: 5, 0x108: 8, 0x110: 10}
    assert paravirt.source_lines == {0x100: 3, 0x108: 10}


def test_defines_are_constants_in_expressions() -> None:
    program = assemble("mov r1, BASE + 4\n.word NEG", defines={"BASE": 0x1000, "NEG": -1})
    assert words(program)[1] == 0x1004 and words(program)[2] == WORD_MASK
    assert program.symbols["NEG"] == WORD_MASK


def test_conditionals_nest_and_skipped_lines_are_not_parsed() -> None:
    source = """\
.ifdef A
.ifdef B
        .word 1
.else
        .word 2
.endif
.else
.ifdef NEVER
        this line is nonsense and never parsed ~~~
.endif
.ifdef B
        .word 3
.else
        .word 4
.endif
.endif
"""
    results = {tuple(sorted(d)): words(assemble(source, defines=d)) for d in ({}, {"A": 1}, {"B": 1}, {"A": 1, "B": 1})}
    assert results == {(): [4], ("A",): [2], ("B",): [3], ("A", "B"): [1]}


def test_ifdef_sees_symbols_defined_on_earlier_lines_only() -> None:
    program = assemble("FLAG = 1\n.ifdef FLAG\n.word 1\n.endif\n.ifdef later\n.word 2\n.endif\nlater:")
    assert words(program) == [1]


def test_labels_in_a_skipped_branch_are_not_defined() -> None:
    error = only_error(".ifdef X\nhere: nop\n.endif\njmp here")
    assert (error.line, error.message) == (4, "undefined symbol 'here'")


def test_assemble_file_with_defines(tmp_path: Path) -> None:
    path = tmp_path / "cond.s"
    path.write_text(CONDITIONAL_SOURCE)
    assert assemble_file(path, defines={"PV": 1}).image == assemble(CONDITIONAL_SOURCE, defines={"PV": 1}).image


@pytest.mark.parametrize("defines", [{"1X": 1}, {"r1": 1}, {"X": 1 << 32}, {"X": -(1 << 31) - 1}, {"X": "1"}])
def test_bad_defines_raise_value_error(defines: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="define"):
        assemble("nop", defines=defines)  # type: ignore[arg-type]


CONDITIONAL_ERROR_CASES = [
    ("else without if", "nop\n  .else", 2, 3, "'.else' without a matching .ifdef or .ifndef"),
    ("endif without if", ".endif", 1, 1, "'.endif' without a matching .ifdef or .ifndef"),
    ("endif case kept", ".ENDIF", 1, 1, "'.ENDIF' without a matching .ifdef or .ifndef"),
    ("missing endif", "nop\n.ifdef X\nnop\n", 2, 1, "'.ifdef' has no matching .endif before the end of the file"),
    ("missing inner endif", ".ifndef X\n  .ifdef Y\n.endif", 1, 1, "'.ifndef' has no matching .endif"),
    ("duplicate else", ".ifdef X\n.else\nnop\n .else\n.endif", 4, 2,
     "duplicate .else (this '.ifdef' at line 1 already has one at line 2)"),
    ("missing name", ".ifdef\n.endif", 1, 7, "expected a symbol name, got end of line"),
    ("register name", ".ifndef r1\n.endif", 1, 9, "'r1' is a register name"),
    ("extra after name", ".ifdef X 1\n.endif", 1, 10, "unexpected '1' after '.ifdef'"),
    ("extra after else", ".ifdef X\n.else X\n.endif", 2, 7, "unexpected 'X' after '.else'"),
    ("label on a conditional", "top: .ifdef X\n.endif", 1, 1, "a label cannot share a line with '.ifdef'"),
    ("gnu .if", ".if X", 1, 1, "unknown directive '.if' (did you mean '.ifdef'?)"),
    ("redefining a define", "PV = 2", 1, 1, "duplicate symbol 'PV' (already defined by the assembler's defines)"),
]


@pytest.mark.parametrize(("source", "line", "col", "message"), [case[1:] for case in CONDITIONAL_ERROR_CASES],
                         ids=[case[0] for case in CONDITIONAL_ERROR_CASES])
def test_conditional_errors_have_position_and_caret(source: str, line: int, col: int, message: str) -> None:
    errors = errors_of_with(source, {"PV": 1})
    assert len(errors) == 1, "\n".join(map(str, errors))
    error = errors[0]
    assert (error.line, error.col) == (line, col)
    assert message in error.message
    caret = str(error).splitlines()[2].split(" | ", 1)[1]
    assert caret.index("^") == col - 1


def errors_of_with(source: str, defines: dict[str, int]) -> list[AsmError]:
    with pytest.raises(AsmErrors) as info:
        assemble(source, "t.s", defines=defines)
    return info.value.errors


def test_skipped_branch_errors_are_not_reported_but_active_ones_are() -> None:
    errors = errors_of(".ifdef X\n  bogus r9\n.else\n  mvo r1, r2\n.endif")
    assert [(e.line, e.col) for e in errors] == [(4, 3)]


def test_listing_shows_only_assembled_lines() -> None:
    paravirt = assemble(CONDITIONAL_SOURCE, "c.s", defines={"PV": 1})
    listing = format_listing(paravirt)
    assert listing.splitlines()[0].endswith(", defines PV=1")
    assert "hypercall 6" in listing and "cli" not in listing and "hlt" not in listing
    assert "(padding" not in listing  # items were recovered from the source, not disassembled
    native_listing = format_listing(assemble(CONDITIONAL_SOURCE, "c.s"))
    assert "PRV  cli" in native_listing and "hypercall" not in native_listing and "defines" not in native_listing
    assert format_listing(paravirt, defines={"PV": 1}) == listing


def test_listing_of_a_source_that_defines_its_own_switch() -> None:
    source = "PV = 1\n" + CONDITIONAL_SOURCE
    listing = format_listing(assemble(source, "c.s"))
    assert "hypercall 6" in listing and "defines" not in listing


# Command line -----------------------------------------------------------------------------------

def test_run_asm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.s"
    good.write_text("_start: hlt\n")
    out = io.StringIO()
    assert run_asm(str(good), out) == 0
    assert "PRV  hlt" in out.getvalue()
    bad = tmp_path / "bad.s"
    bad.write_text("  hlt\n  mvo r1, r2\n")
    assert run_asm(str(bad), io.StringIO()) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:3: error: unknown mnemonic 'mvo'" in err and "  ^~~" in err and "1 error generated." in err
    assert run_asm(str(tmp_path / "missing.s"), io.StringIO()) == 1
    assert "cannot read" in capsys.readouterr().err
