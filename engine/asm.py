"""Two-pass assembler for the vizvm teaching ISA (syntax reference: ``docs/assembler.md``).

Public API::

    assemble(source, filename="<input>", *, origin=None, defines=None) -> Program
    assemble_file(path, *, defines=None) -> Program
    format_listing(program, *, defines=None) -> str

Errors: ``assemble`` reports every problem in the file at once. It raises `AsmErrors`, whose
``errors`` list holds one `AsmError` per problem (sorted by line and column); `AsmError` itself is
only ever an item of that list. Both subclass `AssemblyFailed`, so ``except AssemblyFailed`` catches
either. `assemble_file` raises `OSError` for a file it cannot read.

``defines`` names constants given from outside (like a C compiler's ``-D``): they select the
branches of ``.ifdef``/``.ifndef``/``.else``/``.endif`` blocks and can be used in expressions.

Pass 1 parses every line (skipping the lines of conditional branches not taken), chooses the
opcode row from ``OPS_BY_MNEMONIC`` by operand shape, and assigns addresses (instructions are 8
bytes, so sizes never depend on symbol values). Pass 2 evaluates every expression with the
complete symbol table and emits the bytes.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.asm_expr import (
    FORMS,
    Expr,
    LineError,
    Num,
    Operand,
    Sym,
    Token,
    TokenStream,
    evaluate,
    fit,
    is_identifier,
    is_reserved,
    match_form,
    parse_expr,
    parse_operands,
    raise_if_error,
    suggest,
    tokenize,
    unexpected,
    uses_symbols,
)
from engine.disasm import format_instruction
from engine.isa import (
    INSTRUCTION_SIZE,
    OPCODE_BY_NUMBER,
    OPS_BY_MNEMONIC,
    WORD_MASK,
    OpSpec,
    decode,
)
from engine.program import Program

ADDRESS_LIMIT = 1 << 32
MAX_IMAGE = 16 << 20
MAX_ALIGN = 1 << 16
CONDITIONALS = (".ifdef", ".ifndef", ".else", ".endif")
DIRECTIVES = (".org", ".entry", ".equ", ".word", ".byte", ".ascii", ".asciz", ".space", ".align", *CONDITIONALS)
_DIRECTIVE_HINTS = {".long": ".word", ".int": ".word", ".dw": ".word", ".db": ".byte", ".string": ".asciz",
                    ".skip": ".space", ".zero": ".space", ".set": ".equ", ".balign": ".align",
                    ".if": ".ifdef", ".elif": ".else", ".elseif": ".else", ".fi": ".endif", ".endc": ".endif"}



class AssemblyFailed(Exception):
    """Base of the assembler's exceptions."""


class AsmError(AssemblyFailed):
    """One diagnostic at a 1-based ``line`` and ``col``; ``span`` characters are underlined."""

    def __init__(self, filename: str, line: int, col: int, message: str, source_line: str, span: int = 1) -> None:
        super().__init__(filename, line, col, message, source_line, span)
        self.filename = filename
        self.line = line
        self.col = col
        self.message = message
        self.source_line = source_line
        self.span = max(1, span)

    def __str__(self) -> str:
        """Compiler style: ``file:line:col: error: message``, the source line and a caret line."""
        width = max(5, len(str(self.line)))
        prefix = "".join(ch if ch == "\t" else " " for ch in self.source_line[:self.col - 1])
        span = max(1, min(self.span, len(self.source_line) - self.col + 1))
        return (f"{self.filename}:{self.line}:{self.col}: error: {self.message}\n"
                f"{self.line:>{width}} | {self.source_line}\n"
                f"{'':>{width}} | {prefix}^{'~' * (span - 1)}")


class AsmErrors(AssemblyFailed):
    """Raised by `assemble` with every error found in the file (at least one)."""

    def __init__(self, errors: list[AsmError]) -> None:
        super().__init__(errors)
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


class _Poisoned(Exception):
    """Skip this item silently: the real error was (or will be) reported elsewhere."""


class _Undefined(Exception):
    """Pass 1 needed a symbol that is not defined yet."""

    def __init__(self, sym: Sym, line: int) -> None:
        super().__init__(sym.name)
        self.sym = sym
        self.line = line


@dataclass(slots=True)
class _Def:
    """A label or constant."""

    name: str
    line: int
    is_label: bool
    value: int | None = None
    expr: Expr | None = None  # constants only
    here: int = 0
    state: str = "new"  # constants: new, active, done, failed


@dataclass(slots=True)
class _Conditional:
    """An open ``.ifdef``/``.ifndef`` block."""

    directive: str  # .ifdef or .ifndef, lower case
    line: int
    col: int
    outer_active: bool  # were the lines around the block being assembled?
    condition: bool  # was the tested name defined (.ifdef) or not (.ifndef)?
    else_line: int | None = None

    @property
    def active(self) -> bool:
        """Whether the lines at this point of the block are assembled."""
        return self.outer_active and (self.condition if self.else_line is None else not self.condition)


@dataclass(slots=True)
class _Item:
    """An instruction or data directive placed at ``address``."""

    kind: str  # instr, word, byte, bytes, space
    address: int
    size: int
    line: int
    text: str  # the statement as written, for the listing
    spec: OpSpec | None = None
    operands: tuple[Operand, ...] = ()
    exprs: tuple[Expr, ...] = ()
    data: bytes = b""


class _Assembler:
    def __init__(self, source: str, filename: str, origin: int | None,
                 defines: Mapping[str, int] | None = None) -> None:
        self.source = source
        self.lines = source.splitlines()
        self.filename = filename
        self.errors: list[AsmError] = []
        self.defs: dict[str, _Def] = {}
        self.items: list[_Item] = []
        self.floating: list[_Def] = []  # labels not yet followed by any item or location-counter move
        self.origin = 0 if origin is None else origin
        self.lc = self.origin
        self.origin_fixed = origin is not None
        self.entry: tuple[Expr, int, int] | None = None  # expression, line, location counter
        self.deferred: list[tuple[int, str, Expr, _Undefined]] = []
        self.line_no = 0
        self.statement = ""
        self.statement_col = 1
        self.conditionals: list[_Conditional] = []
        self.skipped_lines: list[int] = []  # lines inside conditional branches not taken
        self.defines = dict(defines or {})
        for name, value in self.defines.items():  # constants from outside, defined before line 1
            self.defs[name] = _Def(name, 0, is_label=False, expr=Num(value, 1, 1))

    # diagnostics ------------------------------------------------------------------------------

    def record(self, err: LineError, line: int | None = None) -> None:
        number = err.line or line or self.line_no
        text = self.lines[number - 1] if 0 < number <= len(self.lines) else ""
        self.errors.append(AsmError(self.filename, number, err.col, err.message, text, err.span))

    # pass 1 -----------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether the current line is assembled (it is not inside a conditional branch not taken)."""
        return not self.conditionals or self.conditionals[-1].active

    def run(self) -> Program:
        for number, text in enumerate(self.lines, 1):
            self.line_no = number
            ts = TokenStream(tokenize(text))
            try:
                if self.conditional(ts):
                    continue
                if self.active:
                    self.parse_line(ts, text)
                else:
                    self.skipped_lines.append(number)
            except LineError as err:
                self.record(err)
            except _Poisoned:
                pass
        for block in self.conditionals:
            self.record(LineError(f"'{block.directive}' has no matching .endif before the end of the file",
                                  block.col, len(block.directive), line=block.line))
        self.report_deferred()
        return self.emit()

    # conditional assembly ---------------------------------------------------------------------

    def conditional(self, ts: TokenStream) -> bool:
        """Handle a ``.ifdef``/``.ifndef``/``.else``/``.endif`` line (even in a skipped branch); False if not one."""
        skip = 0
        while ts.peek(skip).kind == "ident" and ts.peek(skip + 1).kind == "op" and ts.peek(skip + 1).text == ":":
            skip += 2
        token = ts.peek(skip)
        name = token.text.lower()
        if token.kind != "dir" or name not in CONDITIONALS:
            return False
        outer = self.active if name in (".ifdef", ".ifndef") else (
            self.conditionals[-1].outer_active if self.conditionals else True)
        ts.pos = skip + 1
        problem: LineError | None = None
        if name in (".ifdef", ".ifndef"):
            defined = False
            if outer:
                try:
                    defined = self.tested_name(ts)
                except LineError as err:
                    problem = err
            self.conditionals.append(_Conditional(name, self.line_no, token.col, outer,
                                                  defined == (name == ".ifdef") and problem is None))
        elif not self.conditionals:
            problem = LineError(f"'{token.text}' without a matching .ifdef or .ifndef", token.col, len(token.text))
        elif name == ".else":
            block = self.conditionals[-1]
            if block.else_line is not None:
                problem = LineError(f"duplicate .else (this '{block.directive}' at line {block.line} already has "
                                    f"one at line {block.else_line})", token.col, len(token.text))
            else:
                block.else_line = self.line_no
        else:
            self.conditionals.pop()
        if problem is None and outer:
            try:
                self.end_of_statement(ts, f"'{name}'")
            except LineError as err:
                problem = err
        if problem is None and outer and skip:
            label = ts.tokens[0]
            problem = LineError(f"a label cannot share a line with '{name}' (put it on the next line)",
                                label.col, len(label.text))
        if problem is not None:
            raise problem
        return True

    def tested_name(self, ts: TokenStream) -> bool:
        """Parse the name after ``.ifdef``/``.ifndef``: is it defined (by ``defines`` or an earlier line)?"""
        symbol = ts.peek()
        if symbol.kind != "ident":
            raise unexpected(symbol, "a symbol name")
        ts.next()
        if is_reserved(symbol.text):
            raise LineError(f"'{symbol.text}' is a register name and cannot be a symbol", symbol.col, len(symbol.text))
        return symbol.text in self.defs

    def parse_line(self, ts: TokenStream, text: str) -> None:
        while ts.peek().kind == "ident" and ts.peek(1).kind == "op" and ts.peek(1).text == ":":
            self.define(ts.next(), is_label=True)
            ts.next()
        first = ts.peek()
        if first.kind == "eol":
            return
        last = ts.tokens[-2]
        self.statement, self.statement_col = text[first.col - 1:last.end - 1], first.col
        if first.kind == "ident" and ts.peek(1).kind == "op" and ts.peek(1).text == "=":
            name = ts.next()
            ts.next()
            self.define_constant(name, ts, comma=False)
            self.end_of_statement(ts, "the value")
        elif first.kind == "dir":
            self.directive(ts)
        elif first.kind == "ident":
            self.instruction(ts)
        else:
            raise unexpected(first, "a label, instruction or directive")

    def define(self, token: Token, *, is_label: bool) -> _Def:
        name = token.text
        if is_reserved(name):
            raise LineError(f"'{name}' is a register name and cannot be a symbol", token.col, len(name))
        previous = self.defs.get(name)
        if previous is not None and name in self.defines and previous.line == 0:
            raise LineError(f"duplicate symbol '{name}' (already defined by the assembler's defines)",
                            token.col, len(name))
        if previous is not None:
            what = "label" if previous.is_label else "constant"
            raise LineError(f"duplicate {'label' if is_label else 'symbol'} '{name}' "
                            f"(first defined as a {what} at line {previous.line})", token.col, len(name))
        definition = _Def(name, self.line_no, is_label, self.lc if is_label else None, here=self.lc)
        self.defs[name] = definition
        if is_label:
            self.floating.append(definition)
        return definition

    def define_constant(self, name: Token, ts: TokenStream, *, comma: bool) -> None:
        definition = self.define(name, is_label=False)
        try:  # a constant with a broken definition stays defined, so its uses raise no second error
            if comma:
                ts.expect(",", "',' after the constant's name")
            definition.expr = parse_expr(ts)
        except LineError:
            definition.state = "failed"
            raise

    def end_of_statement(self, ts: TokenStream, after: str) -> None:
        token = ts.peek()
        if token.kind != "eol":
            raise_if_error(token)
            raise LineError(f"unexpected '{token.text}' after {after}", token.col, len(token.text))

    def place(self, size: int, *, instruction: bool) -> int:
        """Allocate ``size`` bytes (8-aligned for instructions) and return their address."""
        if instruction and self.lc % INSTRUCTION_SIZE:
            self.lc += -self.lc % INSTRUCTION_SIZE
            for label in self.floating:  # a label just before the padding names the instruction
                label.value = self.lc
        self.floating.clear()
        self.origin_fixed = True
        address = self.lc
        self.move_to(self.lc + size)
        return address

    def move_to(self, address: int) -> None:
        if address > ADDRESS_LIMIT:
            raise LineError("location counter passes the end of the 32-bit address space",
                            self.statement_col, len(self.statement))
        if address - self.origin > MAX_IMAGE:
            raise LineError(f"program image would exceed {MAX_IMAGE >> 20} MiB",
                            self.statement_col, len(self.statement))
        self.lc = address

    def now(self, expr: Expr, what: str) -> int:
        """Evaluate a pass-1 expression (one that moves the location counter)."""
        try:
            return evaluate(expr, lambda sym: self.resolve_early(sym, self.line_no, frozenset()), self.lc)
        except _Undefined as missing:
            self.deferred.append((self.line_no, what, expr, missing))
            raise _Poisoned from None

    def resolve_early(self, sym: Sym, line: int, active: frozenset[str]) -> int:
        definition = self.defs.get(sym.name)
        if definition is None:
            raise _Undefined(sym, line)
        if definition.is_label:
            assert definition.value is not None
            return definition.value
        if sym.name in active or definition.expr is None:
            raise _Poisoned  # a cycle: reported in pass 2
        expr, inner = definition.expr, active | {sym.name}
        try:
            return evaluate(expr, lambda s: self.resolve_early(s, definition.line, inner), definition.here)
        except LineError:
            raise _Poisoned from None  # reported at the constant's own line in pass 2

    def report_deferred(self) -> None:
        for line, what, expr, missing in self.deferred:
            name = missing.sym.name
            if name in self.defs:
                self.record(LineError(f"the value of {what} must be known here, but '{name}' is defined later "
                                      f"(line {self.defs[name].line})", expr.col, expr.end - expr.col), line)
            elif missing.line == line:
                self.record(self.undefined(missing.sym), line)

    def undefined(self, sym: Sym) -> LineError:
        hint = suggest(sym.name, list(self.defs))
        return LineError(f"undefined symbol '{sym.name}'{hint}", sym.col, sym.end - sym.col)

    # instructions -----------------------------------------------------------------------------

    def instruction(self, ts: TokenStream) -> None:
        token = ts.next()
        mnemonic = token.text.lower()
        address = self.place(INSTRUCTION_SIZE, instruction=True)  # even if wrong: keeps later addresses right
        specs = OPS_BY_MNEMONIC.get(mnemonic)
        if specs is None:
            bare = {d[1:]: d for d in DIRECTIVES}
            close = difflib.get_close_matches(mnemonic, list(OPS_BY_MNEMONIC) + list(bare), n=1, cutoff=0.6)
            hint = f" (did you mean '{bare.get(close[0], close[0])}'?)" if close else ""
            if not hint and ts.peek().kind == "eol":
                hint = " (a label needs a ':' after its name)"
            raise LineError(f"unknown mnemonic '{token.text}'{hint}", token.col, len(token.text))
        operands = parse_operands(ts, mnemonic, max(len(FORMS[spec.form]) for spec in specs))
        spec = match_form(token, mnemonic, specs, operands)
        self.items.append(_Item("instr", address, INSTRUCTION_SIZE, self.line_no, self.statement, spec, operands))

    # directives -------------------------------------------------------------------------------

    def directive(self, ts: TokenStream) -> None:
        token = ts.next()
        name = token.text.lower()
        if name not in DIRECTIVES:
            hint = (f" (did you mean '{_DIRECTIVE_HINTS[name]}'?)" if name in _DIRECTIVE_HINTS
                    else suggest(name, list(DIRECTIVES)))
            raise LineError(f"unknown directive '{token.text}'{hint}", token.col, len(token.text))
        if name == ".equ":
            symbol = ts.peek()
            if symbol.kind != "ident":
                raise unexpected(symbol, "a symbol name")
            ts.next()
            self.define_constant(symbol, ts, comma=True)
        elif name in (".word", ".byte"):
            exprs = self.expression_list(ts)
            size = 4 if name == ".word" else 1
            address = self.place(size * len(exprs), instruction=False)
            self.items.append(_Item(name[1:], address, size * len(exprs), self.line_no, self.statement, exprs=exprs))
        elif name in (".ascii", ".asciz"):
            data = b""
            while True:
                string = ts.peek()
                if string.kind != "str":
                    raise unexpected(string, "a string in double quotes")
                ts.next()
                assert isinstance(string.value, bytes)
                data += string.value + (b"\0" if name == ".asciz" else b"")
                if not ts.at(","):
                    break
                ts.next()
            address = self.place(len(data), instruction=False)
            self.items.append(_Item("bytes", address, len(data), self.line_no, self.statement, data=data))
        elif name == ".space":
            count_expr = parse_expr(ts)
            fill = None
            if ts.at(","):
                ts.next()
                fill = parse_expr(ts)
            count = fit(self.now(count_expr, ".space"), count_expr, 0, MAX_IMAGE, f"0..{MAX_IMAGE}")
            address = self.place(count, instruction=False)
            self.items.append(_Item("space", address, count, self.line_no, self.statement,
                                    exprs=(fill,) if fill is not None else ()))
        elif name == ".align":
            expr = parse_expr(ts)
            align = fit(self.now(expr, ".align"), expr, 1, MAX_ALIGN, f"1..{MAX_ALIGN}")
            if align & (align - 1):
                raise LineError(f".align needs a power of two, not {align}", expr.col, expr.end - expr.col)
            self.end_of_statement(ts, "the alignment")
            if self.lc % align:
                self.floating.clear()
                self.origin_fixed = True
                self.move_to(self.lc + -self.lc % align)
        elif name == ".org":
            expr = parse_expr(ts)
            address = fit(self.now(expr, ".org"), expr, 0, WORD_MASK, "an address (0..0xffffffff)")
            self.end_of_statement(ts, "the address")
            if not self.origin_fixed:
                self.origin = self.lc = address
                for label in self.floating:
                    label.value = address
            elif address < self.lc:
                raise LineError(f".org {address:#x} would move backwards from {self.lc:#x}",
                                expr.col, expr.end - expr.col)
            self.origin_fixed = True
            self.floating.clear()
            self.move_to(address)
        elif name == ".entry":
            if self.entry is not None:
                raise LineError(f"duplicate .entry (first given at line {self.entry[1]})", token.col, len(token.text))
            self.entry = (parse_expr(ts), self.line_no, self.lc)
        self.end_of_statement(ts, f"the operands of '{name}'")

    def expression_list(self, ts: TokenStream) -> tuple[Expr, ...]:
        exprs = [parse_expr(ts)]
        while ts.peek().kind != "eol":
            token = ts.peek()
            if not ts.at(","):
                raise_if_error(token)
                raise LineError(f"missing ',' before '{token.text}'", token.col, len(token.text))
            ts.next()
            exprs.append(parse_expr(ts))
        return tuple(exprs)

    # pass 2 -----------------------------------------------------------------------------------

    def resolve(self, sym: Sym) -> int:
        definition = self.defs.get(sym.name)
        if definition is None:
            raise self.undefined(sym)
        if definition.is_label:
            assert definition.value is not None
            return definition.value
        if definition.state == "done":
            assert definition.value is not None
            return definition.value
        if definition.state == "failed":
            raise _Poisoned
        if definition.state == "active":
            raise LineError(f"circular definition: '{sym.name}' depends on itself", sym.col, sym.end - sym.col)
        assert definition.expr is not None
        definition.state = "active"
        try:
            definition.value = fit(evaluate(definition.expr, self.resolve, definition.here), definition.expr)
        except LineError as err:
            definition.state = "failed"
            self.record(err, definition.line)
            raise _Poisoned from None
        except _Poisoned:
            definition.state = "failed"
            raise
        definition.state = "done"
        return definition.value

    def value(self, expr: Expr | None, here: int) -> int:
        """A 32-bit field value (negative numbers in two's complement)."""
        return 0 if expr is None else fit(evaluate(expr, self.resolve, here), expr) & WORD_MASK

    def encode(self, item: _Item) -> bytes:
        if item.kind == "instr":
            assert item.spec is not None
            fields = {"a": 0, "b": 0, "imm": 0}
            for (kind, field), op in zip(FORMS[item.spec.form], item.operands, strict=True):
                if kind in "ip":
                    fields[field] = self.value(op.expr, item.address)
                elif kind == "m":
                    fields[field], fields["imm"] = op.number, self.value(op.expr, item.address)
                else:
                    fields[field] = op.number
            return (bytes((item.spec.opcode, fields["a"] | fields["b"] << 4, 0, 0))
                    + fields["imm"].to_bytes(4, "little"))
        if item.kind == "word":
            return b"".join(self.value(expr, item.address).to_bytes(4, "little") for expr in item.exprs)
        if item.kind == "byte":
            return bytes(fit(evaluate(e, self.resolve, item.address), e, -128, 255, "a byte (-128..255)") & 0xFF
                         for e in item.exprs)
        if item.kind == "space" and item.exprs:
            fill = item.exprs[0]
            return bytes((fit(evaluate(fill, self.resolve, item.address), fill, -128, 255,
                               "a byte (-128..255)") & 0xFF,)) * item.size
        return item.data if item.kind == "bytes" else bytes(item.size)

    def emit(self) -> Program:
        for definition in list(self.defs.values()):
            if not definition.is_label:
                with contextlib.suppress(_Poisoned, LineError):
                    self.resolve(Sym(definition.name, 1, 1))
        image = bytearray(self.lc - self.origin)
        for item in self.items:
            try:
                data = self.encode(item)
            except LineError as err:
                self.record(err, item.line)
                continue
            except _Poisoned:
                continue
            image[item.address - self.origin:item.address - self.origin + len(data)] = data
        entry = self.entry_point()
        if self.errors:
            self.errors.sort(key=lambda e: (e.line, e.col))
            raise AsmErrors(self.errors)
        labels: dict[int, str] = {}
        for definition in self.defs.values():
            if definition.is_label and definition.value is not None:
                labels.setdefault(definition.value, definition.name)
        return Program(
            name=self.filename, origin=self.origin, image=bytes(image), entry=entry,
            symbols={d.name: d.value & WORD_MASK for d in self.defs.values() if d.value is not None},
            labels=labels,
            source_lines={item.address: item.line for item in reversed(self.items) if item.size},
            source=self.source,
            code=frozenset(item.address for item in self.items if item.kind == "instr"),
        )

    def entry_point(self) -> int:
        if self.entry is not None:
            expr, line, here = self.entry
            try:
                return self.value(expr, here)
            except LineError as err:
                self.record(err, line)
            except _Poisoned:
                pass
            return self.origin
        start = self.defs.get("_start")
        if start is not None and start.value is not None:
            return start.value & WORD_MASK
        return next((item.address for item in self.items if item.kind == "instr"), self.origin)


def _check_defines(defines: Mapping[str, int] | None) -> None:
    for name, value in (defines or {}).items():
        if not isinstance(name, str) or not is_identifier(name) or is_reserved(name):
            raise ValueError(f"define {name!r} is not a valid symbol name")
        if isinstance(value, bool) or not isinstance(value, int) or not -(1 << 31) <= value <= WORD_MASK:
            raise ValueError(f"define {name}={value!r} is not a 32-bit integer")


def assemble(source: str, filename: str = "<input>", *, origin: int | None = None,
             defines: Mapping[str, int] | None = None) -> Program:
    """Assemble ``source`` into a `Program`; raise `AsmErrors` listing every error.

    ``origin`` is the initial location counter (default 0). Without it, a ``.org`` that comes
    before any byte is placed sets the program's origin; with it, ``.org`` may only move forward.
    ``defines`` are constants defined before the first line (``{"PARAVIRT": 1}``): ``.ifdef NAME``
    tests them, expressions may use them, and they appear in `Program.symbols`. A bad origin or
    define (not a symbol name, not a 32-bit integer) raises `ValueError`.
    """
    if origin is not None and not 0 <= origin <= WORD_MASK:
        raise ValueError(f"origin {origin:#x} is outside the 32-bit address space")
    _check_defines(defines)
    return _Assembler(source, filename, origin, defines).run()


def assemble_file(path: str | Path, *, defines: Mapping[str, int] | None = None) -> Program:
    """Assemble a UTF-8 source file; the program is named after ``path`` as given."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line = raw.count(b"\n", 0, exc.start) + 1
        source_line = raw[line_start:].split(b"\n", 1)[0].decode("utf-8", "replace")
        raise AsmErrors([AsmError(str(path), line, exc.start - line_start + 1,
                                  "file is not valid UTF-8 text", source_line)]) from None
    return assemble(text, str(path), defines=defines)


# listing ----------------------------------------------------------------------------------------

_LISTING_DATA_ROWS = 4


def _row(address: int, raw: bytes, badge: str = "", text: str = "", line: int = 0, source: str = "") -> str:
    hexes = " ".join(f"{byte:02x}" for byte in raw)
    row = f"{address:08x}  {hexes:<23}  {badge:<3}  {text:<30}"
    if line:
        row += f" {line:>5} | {source.strip()}"
    return row.rstrip()


def _fallback_items(program: Program) -> list[_Item]:
    """Items for a program without matching source: 8-byte instructions where they decode, else data."""
    items: list[_Item] = []
    for offset in range(0, len(program.image), INSTRUCTION_SIZE):
        raw = program.image[offset:offset + INSTRUCTION_SIZE]
        address = program.origin + offset
        spec = OPCODE_BY_NUMBER.get(raw[0]) if len(raw) == INSTRUCTION_SIZE and not raw[2] | raw[3] else None
        items.append(_Item("instr" if spec else "bytes", address, len(raw),
                           program.source_lines.get(address, 0), "", spec))
    return items


def _tested_names(source: str) -> set[str]:
    """Every name that a ``.ifdef`` or ``.ifndef`` line of ``source`` tests."""
    names: set[str] = set()
    for text in source.splitlines():
        tokens = tokenize(text)
        i = 0
        while tokens[i].kind == "ident" and tokens[i + 1].kind == "op" and tokens[i + 1].text == ":":
            i += 2
        directive, name = tokens[i], tokens[min(i + 1, len(tokens) - 1)]
        if directive.kind == "dir" and directive.text.lower() in (".ifdef", ".ifndef") and name.kind == "ident":
            names.add(name.text)
    return names


def _reassemble(program: Program, defines: Mapping[str, int] | None) -> _Assembler | None:
    """The assembler state that reproduces ``program`` from its source, or None if none does.

    Without ``defines`` the names tested by ``.ifdef``/``.ifndef`` that are among the program's
    symbols are tried as defines first (that is how a program assembled with defines is listed),
    then no defines at all.
    """
    if not program.source:
        return None
    if defines is not None:
        _check_defines(defines)
        attempts = [dict(defines)]
    else:
        tested = {name: program.symbols[name] for name in _tested_names(program.source) if name in program.symbols}
        attempts = [tested, {}] if tested else [{}]
    for attempt in attempts:
        assembler = _Assembler(program.source, program.name, program.origin, attempt)
        try:
            if assembler.run().image == program.image:
                return assembler
        except AssemblyFailed:
            pass
    return None


def format_listing(program: Program, *, defines: Mapping[str, int] | None = None) -> str:
    """A listing: address, bytes, class badge, disassembly and source line of every item, with labels.

    The source is assembled again to recover item boundaries, with ``defines`` (default: those the
    program was evidently assembled with, see `_reassemble`); only lines that were assembled are
    listed, never those of a conditional branch not taken. A program without (matching) source is
    listed as 8-byte instructions, with every immediate that equals a label shown by name.
    """
    assembler = _reassemble(program, defines)
    matches = assembler is not None
    if assembler is not None:
        items = assembler.items
        named = [(d.value, d.name) for d in assembler.defs.values() if d.is_label and d.value is not None]
    else:
        items = _fallback_items(program)
        named = list(program.labels.items())
    named.sort(key=lambda pair: pair[0])  # stable: source order among labels at one address
    lines = program.source.splitlines()
    image, origin = program.image, program.origin
    out = [f"; {program.name}: origin {origin:#010x}, entry {program.entry:#010x}, {len(image)} bytes"]
    if assembler is not None and assembler.defines:
        out[0] += ", defines " + ", ".join(f"{name}={value}" for name, value in sorted(assembler.defines.items()))
    label_index = 0

    def labels_up_to(address: int) -> None:
        nonlocal label_index
        while label_index < len(named) and named[label_index][0] <= address:
            out.append(f"{named[label_index][1]}:")
            label_index += 1

    cursor = origin
    for item in items:
        if item.address > cursor:  # alignment padding or a gap left by .org/.align
            labels_up_to(cursor)
            gap = item.address - cursor
            note = "(padding)" if gap <= INSTRUCTION_SIZE else f"(padding, {gap} bytes)"
            out.append(_row(cursor, image[cursor - origin:cursor - origin + min(gap, INSTRUCTION_SIZE)], text=note))
        labels_up_to(item.address)
        raw = image[item.address - origin:item.address - origin + item.size]
        source = lines[item.line - 1] if 0 < item.line <= len(lines) else ""
        if item.kind == "instr" and item.spec is not None:
            _, a, b, _, imm = decode(raw)
            symbolic = not matches or any(op.expr is not None and uses_symbols(op.expr) for op in item.operands)
            text = format_instruction(item.spec, a, b, imm, program.labels if symbolic else None)
            out.append(_row(item.address, raw, item.spec.klass.badge, text, item.line, source))
        else:
            for row in range(min(_LISTING_DATA_ROWS, (len(raw) + 7) // 8) or 1):
                chunk = raw[row * 8:row * 8 + 8]
                out.append(_row(item.address + row * 8, chunk, text=item.text if row == 0 else "",
                                line=item.line if row == 0 else 0, source=source))
            if len(raw) > _LISTING_DATA_ROWS * 8:
                out.append(f"{'':8}  ... {len(raw)} bytes in all")
        cursor = max(cursor, item.address + item.size)
    labels_up_to(WORD_MASK)
    return "\n".join(out) + "\n"
