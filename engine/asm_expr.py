"""Lexer, expression language and operand syntax of the assembler (see ``engine/asm.py`` and ``docs/assembler.md``).

One source line becomes a list of `Token`; a lexing problem becomes an ``error`` token so that the
labels in front of it still get defined. Expressions parse into a small tree that is evaluated later
(forward references are resolved in the assembler's second pass) with C operator precedence.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from engine.disasm import NO_BASE
from engine.isa import CR_NAMES, REGISTER_NUMBERS, WORD_MASK, Form, OpSpec


class LineError(Exception):
    """A problem at ``col`` (1-based) spanning ``span`` characters of the line being assembled."""

    def __init__(self, message: str, col: int, span: int = 1, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.col = col
        self.span = max(1, span)
        self.line = line  # None: the line being processed when the error is caught


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token. ``kind`` is ident, dir, num, char, str, op, error or eol."""

    kind: str
    text: str
    col: int
    value: int | bytes | None = None

    @property
    def end(self) -> int:
        """Column just after the token."""
        return self.col + max(1, len(self.text))


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIRECTIVE = re.compile(r"\.[A-Za-z_][A-Za-z0-9_]*")
_WORDISH = re.compile(r"[0-9A-Za-z_]+")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F](_?[0-9a-fA-F])*|0[bB][01](_?[01])*|[0-9](_?[0-9])*")
_OPERATORS = ("<<", ">>", ",", "[", "]", "(", ")", "+", "-", "*", "/", "%", "&", "|", "^", "~", ":", "=", ".")
_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, "'": 39, '"': 34, "a": 7, "b": 8, "f": 12, "v": 11}
_REG_LIKE = re.compile(r"[rR][0-9]+")
_CR_LIKE = re.compile(r"[cC][rR][0-9]+")
CR_LIST = ", ".join(CR_NAMES)


def _escape(text: str, i: int) -> tuple[int, int]:
    """Decode the escape starting at ``text[i] == '\\'``: (code point, index after it)."""
    if i + 1 >= len(text):
        raise LineError("backslash at end of line", i + 1)
    ch = text[i + 1]
    if ch in _ESCAPES:
        return _ESCAPES[ch], i + 2
    if ch == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2:i + 4]):
        return int(text[i + 2:i + 4], 16), i + 4
    raise LineError(f"unknown escape sequence '\\{ch}'", i + 1, 2)


def _quoted(text: str, start: int) -> tuple[list[int], int]:
    """Code points of the quoted literal opening at ``text[start]`` and the index after its closing quote."""
    quote = text[start]
    what = "string" if quote == '"' else "character literal"
    values: list[int] = []
    i = start + 1
    while i < len(text) and text[i] != quote:
        if text[i] == "\\":
            value, i = _escape(text, i)
        else:
            value, i = ord(text[i]), i + 1
        values.append(value)
    if i >= len(text):
        raise LineError(f"unterminated {what}", start + 1, len(text.rstrip()) - start)
    return values, i + 1


@dataclass(frozen=True, slots=True)
class _ErrorToken(Token):
    """A lexing error, raised when the parser reaches it."""

    error: LineError | None = None


def tokenize(text: str) -> list[Token]:
    """Tokens of one source line, always ending with an ``eol`` token (comments are dropped)."""
    tokens: list[Token] = []
    i = 0
    try:
        while i < len(text):
            ch = text[i]
            col = i + 1
            if ch.isspace():
                i += 1
            elif ch == ";" or (ch == "#" and (i == 0 or text[i - 1].isspace())):
                break
            elif "0" <= ch <= "9":
                word = _WORDISH.match(text, i)
                assert word is not None
                literal = word.group()
                if not _NUMBER.fullmatch(literal):
                    raise LineError(f"bad number literal '{literal}'", col, len(literal))
                tokens.append(Token("num", literal, col, int(literal, 0) if literal[:2].lower() in ("0x", "0b")
                                    else int(literal, 10)))
                i = word.end()
            elif ch in "'\"":
                values, end = _quoted(text, i)
                if ch == '"':
                    data = "".join(map(chr, values)).encode("utf-8", "surrogatepass")
                    tokens.append(Token("str", text[i:end], col, data))
                elif len(values) != 1:
                    raise LineError("a character literal holds exactly one character", col, end - i)
                else:
                    tokens.append(Token("char", text[i:end], col, values[0]))
                i = end
            elif (m := _IDENT.match(text, i)) is not None:
                tokens.append(Token("ident", m.group(), col))
                i = m.end()
            elif (m := _DIRECTIVE.match(text, i)) is not None:
                tokens.append(Token("dir", m.group(), col))
                i = m.end()
            else:
                op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
                if op is None:
                    raise LineError(f"unexpected character '{ch}'", col)
                tokens.append(Token("op", op, col))
                i += len(op)
    except LineError as err:
        tokens.append(_ErrorToken("error", text[err.col - 1:err.col - 1 + err.span], err.col, None, err))
    tokens.append(Token("eol", "", len(text) + 1))
    return tokens


def raise_if_error(token: Token) -> None:
    """Raise the lexing error carried by an ``error`` token."""
    if isinstance(token, _ErrorToken) and token.error is not None:
        raise token.error


def register_like(name: str) -> str | None:
    """An error message if ``name`` is reserved (a register or control-register name) but not valid there."""
    lower = name.lower()
    if lower in REGISTER_NUMBERS or lower in CR_NAMES:
        return None
    if _REG_LIKE.fullmatch(name):
        return f"unknown register '{name}' (registers are r0..r7 and sp)"
    if _CR_LIKE.fullmatch(name):
        return f"unknown control register '{name}' (control registers are {CR_LIST})"
    return None


def is_identifier(name: str) -> bool:
    """Whether ``name`` has the shape of a label or constant name."""
    return _IDENT.fullmatch(name) is not None


def is_reserved(name: str) -> bool:
    """Register and control-register names (and anything shaped like them) cannot be symbols."""
    lower = name.lower()
    return (lower in REGISTER_NUMBERS or lower in CR_NAMES or _REG_LIKE.fullmatch(name) is not None
            or _CR_LIKE.fullmatch(name) is not None)


# Expression trees ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Num:
    """A literal number or character."""

    value: int
    col: int
    end: int


@dataclass(frozen=True, slots=True)
class Sym:
    """A reference to a label or constant."""

    name: str
    col: int
    end: int


@dataclass(frozen=True, slots=True)
class Here:
    """``.``: the address of the current statement."""

    col: int
    end: int


@dataclass(frozen=True, slots=True)
class Unary:
    """``-x``, ``~x`` or ``+x``."""

    op: str
    operand: Expr
    col: int
    end: int


@dataclass(frozen=True, slots=True)
class Binary:
    """``left op right``; ``op_col`` locates the operator for errors such as division by zero."""

    op: str
    left: Expr
    right: Expr
    op_col: int
    col: int
    end: int


Expr = Num | Sym | Here | Unary | Binary

_PRECEDENCE = {"|": 1, "^": 2, "&": 3, "<<": 4, ">>": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}
MAX_SHIFT = 64


class TokenStream:
    """A cursor over one line's tokens."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self, ahead: int = 0) -> Token:
        """The token ``ahead`` places on (the ``eol`` token once past the end)."""
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        """Consume and return the next token (raising a pending lexing error)."""
        token = self.peek()
        raise_if_error(token)
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return token

    def at(self, *texts: str) -> bool:
        """Whether the next token is one of the operators ``texts``."""
        token = self.peek()
        return token.kind == "op" and token.text in texts

    def expect(self, text: str, what: str) -> Token:
        """Consume operator ``text`` or fail with 'expected <what>'."""
        if not self.at(text):
            raise unexpected(self.peek(), what)
        return self.next()


def unexpected(token: Token, what: str) -> LineError:
    """'expected X, got Y' at ``token`` (or the lexing error it carries)."""
    raise_if_error(token)
    got = "end of line" if token.kind == "eol" else f"'{token.text}'"
    return LineError(f"expected {what}, got {got}", token.col, len(token.text))


def parse_expr(ts: TokenStream, min_prec: int = 1) -> Expr:
    """Parse an expression by precedence climbing (C precedence, left associative)."""
    left = _parse_unary(ts)
    while True:
        token = ts.peek()
        prec = _PRECEDENCE.get(token.text, 0) if token.kind == "op" else 0
        if prec < min_prec:
            return left
        ts.next()
        right = parse_expr(ts, prec + 1)
        left = Binary(token.text, left, right, token.col, left.col, right.end)


def _parse_unary(ts: TokenStream) -> Expr:
    token = ts.peek()
    if ts.at("-", "~", "+"):
        ts.next()
        operand = _parse_unary(ts)
        return Unary(token.text, operand, token.col, operand.end)
    if ts.at("("):
        ts.next()
        inner = parse_expr(ts)
        close = ts.expect(")", "')'")
        return _with_span(inner, token.col, close.end)
    if ts.at("."):
        ts.next()
        return Here(token.col, token.end)
    if token.kind in ("num", "char"):
        ts.next()
        assert isinstance(token.value, int)
        return Num(token.value, token.col, token.end)
    if token.kind == "ident":
        lower = token.text.lower()
        if lower in REGISTER_NUMBERS or lower in CR_NAMES:
            raise LineError(f"register '{token.text}' cannot be used in an expression", token.col, len(token.text))
        if (message := register_like(token.text)) is not None:
            raise LineError(message, token.col, len(token.text))
        ts.next()
        return Sym(token.text, token.col, token.end)
    raise unexpected(token, "an expression")


def _with_span(node: Expr, col: int, end: int) -> Expr:
    """The same expression, with its reported extent widened to include parentheses."""
    if isinstance(node, Num):
        return Num(node.value, col, end)
    if isinstance(node, Sym):
        return Sym(node.name, col, end)
    if isinstance(node, Here):
        return Here(col, end)
    if isinstance(node, Unary):
        return Unary(node.op, node.operand, col, end)
    return Binary(node.op, node.left, node.right, node.op_col, col, end)


def evaluate(node: Expr, resolve: Callable[[Sym], int], here: int) -> int:
    """Value of ``node`` as an unbounded integer; ``/`` and ``%`` truncate toward zero as in C."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Sym):
        return resolve(node)
    if isinstance(node, Here):
        return here
    if isinstance(node, Unary):
        value = evaluate(node.operand, resolve, here)
        return -value if node.op == "-" else ~value if node.op == "~" else value
    left = evaluate(node.left, resolve, here)
    right = evaluate(node.right, resolve, here)
    op = node.op
    if op in ("/", "%"):
        if right == 0:
            raise LineError("division by zero", node.op_col, len(op))
        quotient = abs(left) // abs(right) * (1 if (left < 0) == (right < 0) else -1)
        return quotient if op == "/" else left - quotient * right
    if op in ("<<", ">>"):
        if not 0 <= right < MAX_SHIFT:
            raise LineError(f"shift count {right} out of range 0..{MAX_SHIFT - 1}", node.right.col,
                            node.right.end - node.right.col)
        return left << right if op == "<<" else left >> right
    table: dict[str, Callable[[int, int], int]] = {
        "+": int.__add__, "-": int.__sub__, "*": int.__mul__, "&": int.__and__, "|": int.__or__, "^": int.__xor__,
    }
    return table[op](left, right)


def uses_symbols(node: Expr) -> bool:
    """Whether the expression mentions a symbol or ``.`` (the listing then shows labels for its value)."""
    if isinstance(node, Sym | Here):
        return True
    if isinstance(node, Unary):
        return uses_symbols(node.operand)
    if isinstance(node, Binary):
        return uses_symbols(node.left) or uses_symbols(node.right)
    return False


# Operands ----------------------------------------------------------------------------------------

# Operand shape of each form: (kind, encoding field) per operand. Kinds: r register, c control register,
# m memory operand [base+disp], i immediate, p port (an immediate). A memory operand's base goes into
# the named field and its displacement into imm.
FORMS: dict[Form, tuple[tuple[str, str], ...]] = {
    Form.NONE: (),
    Form.R: (("r", "a"),),
    Form.RR: (("r", "a"), ("r", "b")),
    Form.RI: (("r", "a"), ("i", "imm")),
    Form.I: (("i", "imm"),),
    Form.MEM_LOAD: (("r", "a"), ("m", "b")),
    Form.MEM_STORE: (("m", "a"), ("r", "b")),
    Form.MEM: (("m", "a"),),
    Form.CR_WRITE: (("c", "imm"), ("r", "b")),
    Form.CR_READ: (("r", "a"), ("c", "imm")),
    Form.PORT_IN: (("r", "a"), ("p", "imm")),
    Form.PORT_OUT: (("p", "imm"), ("r", "b")),
}
_BINARY_OPS = frozenset(("+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"))
_KIND_SYNTAX = {"r": "r", "i": "imm", "p": "port", "m": "[mem]", "c": "cr"}
_KIND_WANTED = {"r": "a register", "i": "an immediate", "p": "a port number",
                "m": "a memory operand such as [r2+8]", "c": f"a control register ({CR_LIST})"}


@dataclass(frozen=True, slots=True)
class Operand:
    """One parsed instruction operand."""

    kind: str  # r, c, m or i
    col: int
    end: int
    text: str
    number: int = 0  # register, control register or memory base
    expr: Expr | None = None  # immediate or memory displacement


def forms_text(mnemonic: str, specs: tuple[OpSpec, ...]) -> str:
    """E.g. "add takes 'r, r' or 'r, imm'", from the opcode-table rows of a mnemonic."""
    shapes = [", ".join(_KIND_SYNTAX[kind] for kind, _ in FORMS[spec.form]) for spec in specs]
    if shapes == [""]:
        return f"{mnemonic} takes no operands"
    quoted = [f"'{shape}'" if shape else "no operands" for shape in shapes]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f"{mnemonic} takes {listed}"


def suggest(word: str, candidates: list[str]) -> str:
    """A " (did you mean 'x'?)" hint, or ""."""
    match = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def fit(value: int, expr: Expr, low: int = -(1 << 31), high: int = WORD_MASK, what: str = "32 bits") -> int:
    """``value`` if it lies in low..high, else a 'value out of range' error under ``expr``."""
    if not low <= value <= high:
        raise LineError(f"value out of range: {value} ({value:#x}) does not fit in {what}",
                        expr.col, expr.end - expr.col)
    return value


def parse_operands(ts: TokenStream, mnemonic: str, most: int) -> tuple[Operand, ...]:
    """The comma-separated operands up to the end of the line (``most``: the mnemonic's largest count)."""
    found: list[Operand] = []
    while ts.peek().kind != "eol":
        operand = parse_operand(ts)
        found.append(operand)
        token = ts.peek()
        if ts.at(","):
            ts.next()
            if ts.peek().kind == "eol":
                raise LineError("expected an operand after ','", token.col)
        elif token.kind != "eol":
            raise_if_error(token)
            if operand.kind == "r" and token.kind == "op" and token.text in _BINARY_OPS:
                raise LineError(f"a register cannot take an offset here; a memory operand is written "
                                f"[{operand.text}{token.text}...]", token.col, len(token.text))
            if len(found) < most:
                raise LineError(f"missing ',' before '{token.text}'", token.col, len(token.text))
            raise LineError(f"unexpected '{token.text}' after the operands of '{mnemonic}'",
                            token.col, len(token.text))
    return tuple(found)

def parse_operand(ts: TokenStream) -> Operand:
    """A register, control register, memory operand or immediate expression."""
    token = ts.peek()
    if token.kind == "ident":
        lower = token.text.lower()
        if lower in REGISTER_NUMBERS:
            ts.next()
            return Operand("r", token.col, token.end, token.text, REGISTER_NUMBERS[lower])
        if lower in CR_NAMES:
            ts.next()
            return Operand("c", token.col, token.end, token.text, CR_NAMES[lower])
        if (message := register_like(token.text)) is not None:
            raise LineError(message, token.col, len(token.text))
    if ts.at("["):
        return _parse_memory(ts)
    expr = parse_expr(ts)
    return Operand("i", expr.col, expr.end, token.text, expr=expr)

def _parse_memory(ts: TokenStream) -> Operand:
    opening = ts.next()
    token = ts.peek()
    base, disp = NO_BASE, None
    if ts.at("]"):
        raise LineError("empty memory operand", opening.col, 2)
    if token.kind == "ident" and token.text.lower() in CR_NAMES:
        raise LineError("a control register cannot be a memory base", token.col, len(token.text))
    if token.kind == "ident" and token.text.lower() in REGISTER_NUMBERS:
        ts.next()
        base = REGISTER_NUMBERS[token.text.lower()]
        if ts.at("+", "-"):
            disp = parse_expr(ts)  # the sign parses as a unary operator: [r2-4+1] is r2 + (-4+1)
        elif not ts.at("]"):
            raise unexpected(ts.peek(), "'+', '-' or ']'")
    else:
        disp = parse_expr(ts)
    closing = ts.expect("]", "']'")
    return Operand("m", opening.col, closing.end, "", base, disp)

def match_form(token: Token, mnemonic: str, specs: tuple[OpSpec, ...], operands: tuple[Operand, ...]) -> OpSpec:
    """The opcode-table row whose operand shape matches, or an error naming the mnemonic's forms."""
    kinds = [op.kind for op in operands]
    for spec in specs:
        shape = [kind.replace("p", "i") for kind, _ in FORMS[spec.form]]
        if shape == kinds:
            return spec
    forms = forms_text(mnemonic, specs)
    same = [spec for spec in specs if len(FORMS[spec.form]) == len(operands)]
    if not same:
        counts = sorted({len(FORMS[spec.form]) for spec in specs})
        col, end = token.col, token.end
        if len(operands) > counts[-1]:
            col, end = operands[counts[-1]].col, operands[-1].end
        raise LineError(f"wrong number of operands for '{mnemonic}': got {len(operands)} ({forms})", col, end - col)
    for index, op in enumerate(operands):
        wanted = list(dict.fromkeys(FORMS[spec.form][index][0] for spec in same))
        if op.kind not in [w.replace("p", "i") for w in wanted]:
            got = {"r": f"register '{op.text}'", "c": f"control register '{op.text}'", "m": "a memory operand",
                   "i": f"'{op.expr.name}'" if isinstance(op.expr, Sym) else "an immediate"}[op.kind]
            hint = "; control registers are accessed with movcr and movrc" if op.kind == "c" else ""
            raise LineError(f"operand {index + 1} of '{mnemonic}' must be "
                            f"{' or '.join(_KIND_WANTED[w] for w in wanted)}, not {got} ({forms}){hint}",
                            op.col, op.end - op.col)
    raise LineError(f"invalid operands for '{mnemonic}' ({forms})", token.col, len(token.text))
