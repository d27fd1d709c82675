"""A program as C source: the straight-line code ``evolve export --format c`` writes.

The C and the header comment every format shares live here, below the search and results
layers, so that the search can build what it times (``search.cost: c``,
``evolve.search.latency.CLatencyCost``) and ``evolve.results.export`` can write it.
"""

from __future__ import annotations

import numpy as np

from evolve.ops import C_HELPERS, CONST, OPS
from evolve.problem import Problem
from evolve.program import Program, pruned
from evolve.program import live as _live
from evolve.text import format_literal, format_program


def input_names(n_inputs: int) -> list[str]:
    """The exported function's parameter names: x, or x0, x1, ..."""
    return ["x"] if n_inputs == 1 else [f"x{i}" for i in range(n_inputs)]


def initial_registers(program: Program, n_inputs: int) -> list[int]:
    """Registers read before they are written (the output included): inputs or zeros."""
    written, needed = set(), set()
    for ins in _live(program):
        needed |= set(ins.args) - written
        written.add(ins.dst)
    if program.output not in written:
        needed.add(program.output)
    return sorted(needed)


def c_literal(value: float) -> str:
    """A C hex float literal of the float32 ``value``: exact (``0x1.62e43p-1f``)."""
    h = float(np.float32(value)).hex()  # e.g. 0x1.62e4300000000p-1
    sign, rest = ("-", h[1:]) if h.startswith("-") else ("", h)
    mant, exp = rest[2:].split("p")
    mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
    return f"{sign}0x{mant}p{int(exp)}f"


def header(program: Program, problem: Problem, info: str) -> list[str]:
    """The header comment's lines: the problem, ``info``, the program without dead code."""
    lines = [f"Exported by evolve from problem {problem.name!r}: {problem.description}."]
    lines += info.splitlines()
    lines += ["", "The program (without its dead instructions):", ""]
    lines += ["    " + line for line in format_program(pruned(program)).splitlines()]
    return lines


def c_source(program: Program, problem: Problem, name: str, info: str = "") -> str:
    """C99 source of ``float name(float x...)`` computing ``program`` (its live
    instructions, literals as exact hex floats), with the header comment and ``info``."""
    live = _live(program)
    inputs = input_names(problem.n_inputs)
    doc = header(program, problem, info)
    doc += ["", "C99. Compile with -ffp-contract=off and without -ffast-math; link with -lm."]
    out = ["/* " + doc[0]] + [(" * " + line).rstrip() for line in doc[1:]] + [" */", "",
                                                                              "#include <math.h>"]
    spellings = " ".join(OPS[ins.op].c for ins in live)
    for helper, source in C_HELPERS.items():
        if helper + "(" in spellings:
            out += ["", source.strip("\n")]
    regs = sorted({ins.dst for ins in live} | set(initial_registers(program, problem.n_inputs)))
    out += ["", f"float {name}({', '.join(f'float {v}' for v in inputs)})", "{"]
    for i, v in enumerate(inputs):
        if i not in regs:
            out.append(f"    (void) {v};  /* not used */")
    initial = initial_registers(program, problem.n_inputs)
    for r in initial:
        out.append(f"    float r{r} = {inputs[r] if r < problem.n_inputs else '0.0f'};")
    rest = [r for r in regs if r not in initial]
    if rest:
        out.append(f"    float {', '.join(f'r{r}' for r in rest)};")
    for ins in live:
        if ins.op == CONST:
            out.append(f"    r{ins.dst} = {c_literal(ins.value)};  /* {format_literal(ins.value)} */")
        else:
            expr = OPS[ins.op].c.format(*(f"r{a}" for a in ins.args))
            out.append(f"    r{ins.dst} = {expr};")
    out += [f"    return r{program.output};", "}"]
    return "\n".join(out) + "\n"
