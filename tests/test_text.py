"""The text form of programs: formatting, parsing, round trips and error reports."""

from __future__ import annotations

import pickle
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evolve.ops import CONST, OPCODE
from evolve.program import Instruction, Program, f32_bits, validate
from evolve.text import ParseError, format_literal, format_program, parse_program
from strategies import F32_MAX, SPECIAL_F32, f32_literals, programs

EXAMPLE = """\
r2 = 0.693147182        # a literal, printed so that it parses back to the same float32
r3 = mul(r0, r2)
r1 = fma(r3, r3, r0)
return r1
"""

EXAMPLE_PROGRAM = Program((
    Instruction(CONST, 2, (), float(np.float32(0.693147182))),
    Instruction(OPCODE["mul"], 3, (0, 2)),
    Instruction(OPCODE["fma"], 1, (3, 3, 0)),
), 1)


def bits(program: Program) -> list[int]:
    return [f32_bits(i.value) for i in program.instructions]


# ---------------------------------------------------------------------------- round trips
# Example counts come from the hypothesis profile in conftest.py ("ci" runs more).

@given(st.integers(4, 12).flatmap(lambda n: st.tuples(st.just(n), programs(n_registers=n))))
def test_round_trip(case):
    n, program = case
    text = format_program(program)
    parsed = parse_program(text)
    assert parsed == program
    assert bits(parsed) == bits(program)
    assert parse_program(text, n_registers=n, max_length=len(program)) == program
    validate(parsed, n)
    assert format_program(parsed) == text


@given(f32_literals())
def test_literal_round_trip(value):
    s = format_literal(value)
    assert f32_bits(parse_program(f"r0 = {s}\nreturn r0").instructions[0].value) == f32_bits(value)
    assert f32_bits(np.float32(float(s))) == f32_bits(value)  # Python and C read it the same


def test_literal_round_trip_sweep():
    # hypothesis runs few examples by default; sweep a few thousand random bit patterns too
    values = np.random.default_rng(0).integers(0, 2**32, 3000, dtype=np.uint32).view(np.float32)
    for v in values[np.isfinite(values)]:
        s = format_literal(v)
        assert f32_bits(parse_program(f"r0 = {s}\nreturn r0").instructions[0].value) == f32_bits(v)


@pytest.mark.parametrize("value", SPECIAL_F32)
def test_special_literals(value):
    s = format_literal(value)
    assert f32_bits(parse_program(f"r0 = {s}\nreturn r0").instructions[0].value) == f32_bits(value)


def test_literal_spelling():
    assert format_literal(-0.0) == "-0.0"
    assert format_literal(1.0) == "1.0"
    assert format_literal(0.1) == "0.1"
    assert format_literal(np.log(2)) == "0.6931472"
    assert format_literal(F32_MAX) == "3.4028235e+38"
    assert format_literal(1e-45) == "1.0e-45"
    p = parse_program("r0 = -0.0\nr1 = -0\nreturn r0")
    assert [f32_bits(i.value) for i in p.instructions] == [0x80000000, 0x80000000]
    with pytest.raises(ValueError):
        format_literal(float("inf"))


def test_example():
    assert parse_program(EXAMPLE) == EXAMPLE_PROGRAM
    assert parse_program(EXAMPLE, n_registers=4) == EXAMPLE_PROGRAM
    assert format_program(EXAMPLE_PROGRAM) == (
        "r2 = 0.6931472\nr3 = mul(r0, r2)\nr1 = fma(r3, r3, r0)\nreturn r1\n")


def test_flexible_syntax():
    text = ("\n# a comment line\n\n  r2=0x1.62e43p-1   # hex literal\n\tr4 = -0X1.8P1\n"
            "r5 = +.5e+1\r\nr3 = neg( r4 )#\n\nreturn  r2 \n\n")
    p = parse_program(text)
    assert [i.value for i in p.instructions] == [float(np.float32(np.log(2))), -3.0, 5.0, 0.0]
    assert p.instructions[3] == Instruction(OPCODE["neg"], 3, (4,))
    assert parse_program("return r0") == Program((), 0)
    assert parse_program("r01 = 1.\nreturn r1") == Program((Instruction(CONST, 1, (), 1.0),), 1)


def test_decimal_literals_round_correctly():
    # 1 + 2**-24 + 2**-60: just above the midpoint of 1 and 1 + 2**-23. Through float64 it
    # lands on the midpoint and rounds to even (1.0); correctly rounded it is 1 + 2**-23.
    exact = 1 + Fraction(1, 2**24) + Fraction(1, 2**60)
    digits = str(exact.numerator * 5**60)
    s = digits[:-60] + "." + digits[-60:]
    assert Fraction(s) == exact
    assert f32_bits(np.float32(float(s))) == 0x3F800000  # double rounding
    assert f32_bits(parse_program(f"r0 = {s}\nreturn r0").instructions[0].value) == 0x3F800001
    hex_s = "0x1.000001000000001p0"  # the same trap, in hex
    assert f32_bits(parse_program(f"r0 = {hex_s}\nreturn r0").instructions[0].value) == 0x3F800001


def test_checks_with_registers_ops_and_length():
    text = "r1 = sin(r0)\nr2 = 1.5\nreturn r2\n"
    assert len(parse_program(text, n_registers=3, allowed_ops=["sin", "const"], max_length=2)) == 2
    with pytest.raises(ParseError) as e:
        parse_program(text, allowed_ops=[OPCODE["sin"]])
    assert (e.value.line, e.value.column, e.value.expected) == (2, 6, "an allowed op")
    with pytest.raises(ParseError) as e:
        parse_program(text, n_registers=3, max_length=1)
    assert (e.value.line, e.value.column) == (2, 1)
    with pytest.raises(ParseError) as e:
        parse_program(text, n_registers=2)
    assert (e.value.line, e.value.column, e.value.expected) == (2, 1, "a register r0..r1")
    assert "register r2 out of range r0..r1" in str(e.value)


# ---------------------------------------------------------------------------- errors

ERRORS = [
    # text, line, column, expected, in message
    ("r1 = sin(r0)\nr2 mul(r0, r1)\nreturn r2", 2, 4, "'=' after the destination register",
     "found 'mul'"),
    ("r2 = mull(r0, r1)\nreturn r2", 1, 6, "an op name", "did you mean 'mul'?"),
    ("r2 = fma(r0, r1)\nreturn r2", 1, 6, "3 arguments", "fma takes 3 arguments, got 2"),
    ("r2 = neg()\nreturn r2", 1, 6, "1 argument", "neg takes 1 argument, got 0"),
    ("r2 = mul(r0, x1)\nreturn r2", 1, 14, "a register (r0, r1, ...)", "found 'x1'"),
    ("r2 = mul(r0, r9)\nreturn r2", 1, 14, "a register r0..r7", "register r9 out of range r0..r7"),
    ("return r8", 1, 8, "a register r0..r7", "register r8 out of range"),
    ("r2 = mul(r0, r1)\n", 2, 1, "'return rK' as the last statement", "found end of input"),
    ("", 1, 1, "'return rK' as the last statement", "found end of input"),
    ("return r1\nr2 = 1.0\n", 2, 1, "end of program after 'return'", "found 'r2'"),
    ("return r1\nreturn r1\n", 2, 1, "end of program after 'return'", "found 'return'"),
    ("r1 = 1.5e\nreturn r1", 1, 6, "a float literal", "bad literal '1.5e'"),
    ("r1 = 1.2.3\nreturn r1", 1, 6, "a float literal", "bad literal '1.2.3'"),
    ("r1 = inf\nreturn r1", 1, 6, "a finite float32 literal", "'inf' is not a finite float32"),
    ("r1 = -NaN\nreturn r1", 1, 6, "a finite float32 literal", "is not a finite float32"),
    ("r1 = 1e39\nreturn r1", 1, 6, "a finite float32 literal", "overflows float32"),
    ("r1 = 0x1p128\nreturn r1", 1, 6, "a finite float32 literal", "overflows float32"),
    ("r1 = 3.4028236e38\nreturn r1", 1, 6, "a finite float32 literal", "overflows float32"),
    ("r1 = mul(r0, r1\nreturn r1", 1, 16, "',' or ')' after argument", "found end of line"),
    ("r1 = mul(r0 r1)\nreturn r1", 1, 13, "',' or ')' after argument", "found 'r1'"),
    ("r1 = mul(r0, r1,)\nreturn r1", 1, 17, "a register (r0, r1, ...)", "found ')'"),
    ("r1 = mul(r0, r1) r2\nreturn r1", 1, 18, "end of line after ')'", "found 'r2'"),
    ("r1 = mul r0, r1\nreturn r1", 1, 10, "'(' after 'mul'", "found 'r0'"),
    ("r1 = r0\nreturn r1", 1, 6, "a literal or an op call", "found 'r0'"),
    ("r1 = const()\nreturn r1", 1, 6, "a literal or an op call", "found 'const'"),
    ("r1 = -r0\nreturn r1", 1, 6, "a literal or an op call", "found '-'"),
    ("r1 = 1.0 2.0\nreturn r1", 1, 10, "end of line after the literal", "found '2.0'"),
    ("x1 = sin(r0)\nreturn r1", 1, 1, "a destination register (r0, r1, ...) or 'return'",
     "found 'x1'"),
    ("return\n", 1, 7, "a register after 'return'", "found end of line"),
    ("return r1 # done\n  r2 = 1", 2, 3, "end of program after 'return'", "found 'r2'"),
    ("return r1 r2", 1, 11, "end of line after 'return rK'", "found 'r2'"),
    ("r1 = sin(r0) $\nreturn r1", 1, 14, "end of line after ')'", "found '$'"),
]


@pytest.mark.parametrize(("text", "line", "column", "expected", "message"), ERRORS)
def test_errors(text, line, column, expected, message):
    with pytest.raises(ParseError) as e:
        parse_program(text, n_registers=8)
    err = e.value
    assert (err.line, err.column, err.expected) == (line, column, expected), str(err)
    head = str(err).splitlines()[0]
    assert head.startswith(f"line {line}, column {column}: ")
    assert message in head


def test_error_shows_line_and_caret():
    with pytest.raises(ParseError) as e:
        parse_program("r1 = sin(r0)\n\tr3 = mul(r0 r2)\nreturn r3")
    assert str(e.value) == (
        "line 2, column 14: expected ',' or ')' after argument, found 'r2'\n"
        "    \tr3 = mul(r0 r2)\n"
        "    \t            ^")
    assert isinstance(e.value, ValueError)
    again = pickle.loads(pickle.dumps(e.value))
    assert (str(again), again.line, again.column) == (str(e.value), 2, 14)


def test_unknown_op_without_close_match_lists_ops():
    with pytest.raises(ParseError) as e:
        parse_program("r1 = zzzz(r0)\nreturn r1")
    assert "unknown op 'zzzz'; known ops: add, sub" in str(e.value)


# ---------------------------------------------------------------------------- fuzz

def _parse_or_error(text: str) -> None:
    try:
        program = parse_program(text, n_registers=8)
    except ParseError as e:
        assert e.line >= 1 and e.column >= 1 and e.expected
    else:
        validate(program, 8)
        assert parse_program(format_program(program)) == program


@given(st.text())
def test_fuzz_text(text):
    _parse_or_error(text)


@given(programs(), st.data())
def test_fuzz_mutated_programs(program, data):
    text = format_program(program)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 4)))
        text = text[:i] + data.draw(st.text("r0123456789.,()=-+ex#\n \tabcdfilmnpstu")) + text[j:]
    _parse_or_error(text)
