"""The text form of programs: one instruction per line.

    r2 = 0.6931472          # a literal: the shortest decimal that parses back to it
    r3 = mul(r0, r2)
    r1 = fma(r3, r3, r0)
    return r1

``parse_program(format_program(p)) == p`` for every valid program, literal bits included.
The parser is hand-written (no eval): it accepts blank lines, ``#`` comments, any spacing,
decimal and hex float literals (``0x1.62e43p-1``), and reports errors as ``ParseError``
with the line, the column and what it expected there.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from fractions import Fraction
from typing import NamedTuple, NoReturn

import numpy as np

from evolve.ops import CONST, OPCODE, OPS, opcode
from evolve.program import Instruction, Program, ProgramError, f32_bits, validate


class ParseError(ValueError):
    """Text that is not a program: where (1-based ``line``, ``column``) and what was expected."""

    def __init__(self, line: int, column: int, expected: str, detail: str, source: str = "",
                 found: str = ""):
        self.line, self.column, self.expected = line, column, expected
        self.detail, self.source, self.found = detail, source, found
        caret = "".join(c if c == "\t" else " " for c in source[: column - 1]) + "^"
        super().__init__(f"line {line}, column {column}: {detail}\n    {source}\n    {caret}")

    def __reduce__(self):
        return ParseError, (self.line, self.column, self.expected, self.detail, self.source,
                            self.found)


# ---------------------------------------------------------------------------- literals

_DEC = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?", re.ASCII)
_HEX = re.compile(r"([+-]?)0[xX]([0-9a-fA-F]*)\.?([0-9a-fA-F]*)(?:[pP]([+-]?[0-9]+))?", re.ASCII)
_NONFINITE = {"inf", "infinity", "nan"}


def _exact(token: str) -> Fraction:
    """The exact value of a literal that ``_DEC`` or ``_HEX`` matches."""
    if m := _HEX.fullmatch(token):
        sign, whole, frac, exp = m.groups()
        q = int(whole + frac, 16) * Fraction(2) ** (int(exp or 0) - 4 * len(frac))
        return -q if sign == "-" else q
    return Fraction(token)


def _to_float32(token: str) -> np.float32:
    """The float32 nearest the literal ``token`` (ties to even), inf if it overflows.

    Raises ValueError if ``token`` is not a decimal or hex float literal. The value goes
    through float64 rounded to odd, so there is no double-rounding error.
    """
    if m := _DEC.fullmatch(token):
        d, exp = float(token), m.group(1)
    elif (m := _HEX.fullmatch(token)) and (m.group(2) or m.group(3)):
        exp = m.group(4)
        try:
            d = float.fromhex(token)
        except OverflowError:
            d = -math.inf if token.startswith("-") else math.inf
    else:
        raise ValueError(f"not a float literal: {token!r}")
    small = len(token) <= 400 and len((exp or "").lstrip("+-")) <= 4  # keeps _exact cheap
    if small and math.isfinite(d) and d != 0:
        q = _exact(token)
        if Fraction(d) != q and not int(np.float64(d).view(np.uint64)) & 1:
            d = math.nextafter(d, math.inf if q > d else -math.inf)  # round to odd
    with np.errstate(over="ignore"):
        return np.float32(d)


def format_literal(value: float) -> str:
    """The shortest decimal that parses back to the float32 ``value`` (``-0.0`` kept).

    Also a valid C / Python float literal. Raises ValueError for inf and nan.
    """
    v = np.float32(value)
    if not np.isfinite(v):
        raise ValueError(f"literal {value} is not a finite float32")
    if v == 0 or 1e-4 <= abs(v) < 1e16:
        s = np.format_float_positional(v, unique=True, trim="0")
    else:
        s = np.format_float_scientific(v, unique=True, trim="0")
    if f32_bits(_to_float32(s)) != f32_bits(v):
        s = repr(float(v))  # the exact float64 value of the float32: always parses back
    return s


# ---------------------------------------------------------------------------- format

def format_program(program: Program) -> str:
    """The text of ``program``: ``rD = op(rA, rB)`` / ``rD = LITERAL`` lines, ``return rK``."""
    lines = []
    for ins in program.instructions:
        if ins.op == CONST:
            rhs = format_literal(ins.value)
        else:
            rhs = f"{ins.name}({', '.join(f'r{a}' for a in ins.args)})"
        lines.append(f"r{ins.dst} = {rhs}")
    lines.append(f"return r{program.output}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- parse

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\f\v]+)
  | (?P<comment>\#.*)
  | (?P<num>[+-]?(?i:infinity|inf|nan)(?![\w.])|[+-]?\.?[0-9](?:[\w.]|(?<=[eEpP])[+-])*)
  | (?P<name>[A-Za-z_]\w*)
  | (?P<punct>[=(),])
  | (?P<other>.)
""", re.VERBOSE | re.ASCII | re.DOTALL)


class _Token(NamedTuple):
    kind: str  # num, name, punct, other, eol
    text: str
    column: int


class _Line:
    """The tokens of one source line and a cursor over them."""

    def __init__(self, source: str, number: int):
        self.source, self.number, self.pos = source, number, 0
        self.tokens: list[_Token] = []
        end = 0
        for m in _TOKEN.finditer(source):
            if m.lastgroup == "comment":
                break
            if m.lastgroup != "ws":
                self.tokens.append(_Token(m.lastgroup, m.group(), m.start() + 1))
                end = m.end()
        self.tokens.append(_Token("eol", "", end + 1))

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def next(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return tok

    def fail(self, tok: _Token, expected: str, detail: str | None = None) -> NoReturn:
        found = "end of line" if tok.kind == "eol" else repr(tok.text)
        raise ParseError(self.number, tok.column, expected,
                         detail or f"expected {expected}, found {found}", self.source, found)

    def expect(self, text: str, expected: str) -> None:
        tok = self.next()
        if tok.text != text or tok.kind == "eol":
            self.fail(tok, expected)

    def end(self, expected: str) -> None:
        tok = self.next()
        if tok.kind != "eol":
            self.fail(tok, expected)

    def register(self, n_registers: int | None, expected: str) -> int:
        tok = self.next()
        m = re.fullmatch(r"r([0-9]{1,9})", tok.text, re.ASCII) if tok.kind == "name" else None
        if not m:
            self.fail(tok, expected)
        r = int(m.group(1))
        if n_registers is not None and r >= n_registers:
            span = f"r0..r{n_registers - 1}"
            self.fail(tok, f"a register {span}", f"register {tok.text} out of range {span}")
        return r

    def literal(self, tok: _Token) -> float:
        if tok.text.lstrip("+-").lower() in _NONFINITE:
            self.fail(tok, "a finite float32 literal",
                      f"literal {tok.text!r} is not a finite float32")
        try:
            value = _to_float32(tok.text)
        except ValueError:
            self.fail(tok, "a float literal", f"bad literal {tok.text!r}")
        if not np.isfinite(value):
            self.fail(tok, "a finite float32 literal", f"literal {tok.text!r} overflows "
                      f"float32 (largest is {format_literal(np.finfo(np.float32).max)})")
        return float(value)

    def instruction(self, n_registers: int | None,
                    known: list[str] | None = None) -> tuple[Instruction, _Token]:
        """``rD = LITERAL`` or ``rD = op(rA, ...)``; also the token naming the op.
        ``known``: the op names to suggest for an unknown one (default: every op)."""
        dst = self.register(n_registers, "a destination register (r0, r1, ...) or 'return'")
        self.expect("=", "'=' after the destination register")
        tok = self.next()
        if tok.kind == "num":
            value = self.literal(tok)
            self.end("end of line after the literal")
            return Instruction(CONST, dst, (), value), tok
        if tok.kind != "name" or tok.text == "const":
            self.fail(tok, "a literal or an op call")
        op = OPCODE.get(tok.text)
        if op is None:
            names = [n for n in (known or OPCODE) if n != "const"]
            close = difflib.get_close_matches(tok.text, names, 1)
            if not close and self.peek().text != "(":
                self.fail(tok, "a literal or an op call")
            hint = f"did you mean {close[0]!r}?" if close else (
                "known ops: " if known is None else "allowed ops: ") + ", ".join(names)
            self.fail(tok, "an op name", f"unknown op {tok.text!r}; {hint}")
        self.expect("(", f"'(' after {tok.text!r}")
        args: list[int] = []
        if self.peek().text == ")":
            self.next()
        else:
            while True:
                args.append(self.register(n_registers, "a register (r0, r1, ...)"))
                sep = self.next()
                if sep.text == ")":
                    break
                if sep.text != ",":
                    self.fail(sep, "',' or ')' after argument")
        self.end("end of line after ')'")
        arity = OPS[op].arity
        if len(args) != arity:
            self.fail(tok, f"{arity} argument{'s' * (arity != 1)}",
                      f"{tok.text} takes {arity} argument{'s' * (arity != 1)}, got {len(args)}")
        return Instruction(op, dst, tuple(args)), tok


def parse_program(text: str, n_registers: int | None = None,
                  allowed_ops: Iterable[int | str] | None = None,
                  max_length: int | None = None) -> Program:
    """The program written in ``text`` (see ``format_program``); ParseError if malformed.

    With ``n_registers``, registers must lie in ``r0..r{n_registers-1}`` and the program is
    also checked with ``evolve.program.validate``. ``allowed_ops`` (opcodes or op names;
    ``const`` allows literals) and ``max_length`` are checked when given.
    """
    allowed = None if allowed_ops is None else {
        opcode(o) if isinstance(o, str) else int(o) for o in allowed_ops}
    sources = text.split("\n")
    instructions: list[Instruction] = []
    where: list[int] = []  # the line of each instruction
    output = ret_line = None
    for number, source in enumerate(sources, 1):
        line = _Line(source, number)
        first = line.peek()
        if first.kind == "eol":
            continue
        if output is not None:
            line.fail(first, "end of program after 'return'")
        if first.kind == "name" and first.text == "return":
            line.next()
            output = line.register(n_registers, "a register after 'return'")
            line.end("end of line after 'return rK'")
            ret_line = number
            continue
        if max_length is not None and len(instructions) >= max_length:
            line.fail(first, f"at most {max_length} instructions before 'return'",
                      f"program is longer than max_length={max_length}")
        ins, tok = line.instruction(
            n_registers, None if allowed is None else [OPS[o].name for o in sorted(allowed)])
        if allowed is not None and ins.op not in allowed:
            names = ", ".join(OPS[o].name for o in sorted(allowed))
            line.fail(tok, "an allowed op",
                      f"op {ins.name!r} is not allowed here; allowed: {names}")
        instructions.append(ins)
        where.append(number)
    if output is None:
        expected = "'return rK' as the last statement"
        raise ParseError(len(sources), len(sources[-1]) + 1, expected,
                         f"expected {expected}, found end of input", sources[-1], "end of input")
    program = Program(tuple(instructions), output)
    if n_registers is not None:
        try:
            validate(program, n_registers, max_length, None if allowed is None else sorted(allowed))
        except ProgramError as e:  # the checks above should catch everything first
            m = re.match(r"instruction (\d+)", str(e))
            number = where[int(m.group(1)) - 1] if m else ret_line
            raise ParseError(number, 1, "a valid program", str(e), sources[number - 1]) from e
    return program
