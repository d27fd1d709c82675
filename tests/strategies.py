"""Hypothesis strategies for programs, shared by the tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import strategies as st

from evolve.ops import CONST, OPS, opcode
from evolve.program import Instruction, Program

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.float32(1e-45))  # the smallest subnormal
SPECIAL_F32 = (0.0, -0.0, 1.0, -1.0, F32_MAX, -F32_MAX, F32_TINY, -F32_TINY,
               float(np.finfo(np.float32).tiny), 0.1, 1e-5, 1e16, 1e-4)


def _from_bits(bits: int) -> float:
    return float(np.array(bits, np.uint32).view(np.float32))


def f32_literals() -> st.SearchStrategy[float]:
    """Finite float32 values (as Python floats): any bit pattern, plus edge cases."""
    any_bits = st.integers(0, 2**32 - 1).map(_from_bits).filter(np.isfinite)
    return st.one_of(st.sampled_from(SPECIAL_F32), any_bits,
                     st.floats(width=32, allow_nan=False, allow_infinity=False))


@st.composite
def programs(draw: st.DrawFn, n_registers: int = 8, max_length: int = 12,
             ops: Sequence[int | str] | None = None, min_length: int = 0) -> Program:
    """Valid programs over ``n_registers`` registers, at most ``max_length`` instructions.

    ``ops`` (opcodes or names, ``const`` for literals) defaults to the whole ops table.
    """
    codes = [opcode(o) if isinstance(o, str) else o for o in ops] if ops else range(len(OPS))
    register = st.integers(0, n_registers - 1)
    instructions = []
    for _ in range(draw(st.integers(min_length, max_length))):
        op = draw(st.sampled_from(codes))
        dst = draw(register)
        if op == CONST:
            instructions.append(Instruction(op, dst, (), draw(f32_literals())))
        else:
            args = tuple(draw(register) for _ in range(OPS[op].arity))
            instructions.append(Instruction(op, dst, args))
    return Program(tuple(instructions), draw(register))
