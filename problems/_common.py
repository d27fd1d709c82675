"""What the function-approximation problems share: op sets, cost model text, baselines.

Each function comes as a pair of problems: ``<name>`` with a single-rounding FMA and
``<name>_nofma`` with AutoNumerics-Zero's float32 set {+, -, x, /}. Their baselines
(Sollya minimax polynomials in Horner form, measured by our own float32 check) are data
in ``problems/baselines/<problem>.json``, written by ``scripts/sollya_baselines.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from evolve.problem import Problem

FMA_OPS = ("add", "sub", "mul", "fma", "div")
NOFMA_OPS = ("add", "sub", "mul", "div")

BASELINES_DIR = Path(__file__).resolve().parent / "baselines"

COST_MODEL = ("Cost model: the weighted op count of the instructions that depend on the input "
              "and reach the output (ops table weights: add, sub, mul, fma 1; div 4; literals "
              "and constant folding free).")

ULP_CONVENTION = ("Error: max over the domain of |out - f(x)| / 2^(floor(log2|f(x)|) - 23), in "
                  "float32 ULPs of the exact value's binade (f from float64).")

NOFMA_NOTE = ("Op set: {+, -, x, /} without FMA, every op rounded to float32 (AutoNumerics-Zero's "
              "float32 setting).")
FMA_NOTE = ("Op set: {+, -, x, /, fma}, fma(a, b, c) = a*b + c rounded once to float32.")


def load_baselines(name: str) -> tuple[dict, ...]:
    """The baselines recorded for problem ``name`` (each a dict with at least name, error,
    cost, program), or () when ``problems/baselines/<name>.json`` does not exist."""
    path = BASELINES_DIR / f"{name}.json"
    if not path.is_file():
        return ()
    return tuple(json.loads(path.read_text())["baselines"])


def fma_pair(problem: Problem) -> list[Problem]:
    """``problem`` (which must use FMA_OPS) and its ``<name>_nofma`` twin, each with its
    own baselines and its op set stated in the notes."""
    if tuple(o for o in problem.ops if o != "const") != FMA_OPS:
        raise ValueError(f"problem {problem.name!r}: expected ops {FMA_OPS}")
    name = f"{problem.name}_nofma"
    with_fma = replace(problem, notes=f"{problem.notes.rstrip()}\n\n{FMA_NOTE}\n",
                       baselines=load_baselines(problem.name))
    without = replace(problem, name=name, ops=NOFMA_OPS,
                      description=problem.description.replace("FMA allowed", "no FMA"),
                      notes=f"{problem.notes.rstrip()}\n\n{NOFMA_NOTE}\n",
                      baselines=load_baselines(name))
    return [with_fma, without]


def polynomial_start(coefficients: Sequence[str], variable: str, fma: bool,
                     times_variable: bool = False) -> str:
    """A start program (``Problem.starts``, text form) ``w + w*[v*]q(v)``, q in Horner form
    with ``coefficients`` (float32 literals as text, constant term first).

    ``variable`` "square": v = x*x and w = x (odd functions: x + x*q(x^2)); "minus_one":
    v = w = x - 1 (exact in float32 on [1/2, 2]: t + t*q(t)). ``times_variable`` multiplies
    q by v once more (x + x^3*q(x^2)). With ``fma`` each Horner step and the last step are
    one fma; without, a mul and an add.
    """
    if variable == "square":
        lines, w = ["r2 = mul(r0, r0)"], "r0"
    elif variable == "minus_one":
        lines, w = ["r3 = 1.0", "r2 = sub(r0, r3)"], "r2"
    else:
        raise ValueError(f"variable {variable!r}: expected 'square' or 'minus_one'")
    if not coefficients:
        raise ValueError("polynomial_start needs at least one coefficient")
    lines.append(f"r1 = {coefficients[-1]}")
    for c in reversed(coefficients[:-1]):
        lines.append(f"r3 = {c}")
        lines += (["r1 = fma(r1, r2, r3)"] if fma else ["r1 = mul(r1, r2)", "r1 = add(r1, r3)"])
    if times_variable:
        lines.append("r1 = mul(r1, r2)")
    lines += ([f"r1 = fma(r1, {w}, {w})"] if fma else [f"r1 = mul(r1, {w})", f"r1 = add(r1, {w})"])
    return "\n".join([*lines, "return r1", ""])


def with_starts(problems: list[Problem], fits: Sequence[Sequence[str]], variable: str,
                times_variable: bool = False) -> list[Problem]:
    """``problems`` (an ``fma_pair``) with ``starts``: a ``polynomial_start`` for each list of
    coefficients in ``fits``, in each problem's op set (fma or mul and add), leaving out
    those longer than the problem's ``max_length``."""
    out = []
    for p in problems:
        fma = "fma" in p.ops
        texts = [polynomial_start(c, variable, fma, times_variable) for c in fits]
        starts = tuple(t for t in texts if t.count("\n") - 1 <= p.max_length)
        out.append(replace(p, starts=starts))
    return out


def with_first_start(problems: list[Problem], fits: Sequence[Sequence[str]], variable: str,
                     start: str, max_length: int) -> list[Problem]:
    """``with_starts`` of ``problems`` (an ``fma_pair``), where the no-FMA one begins with
    ``start`` (text form: a program the polynomial forms cannot match) and allows programs
    of ``max_length`` instructions, so that ``start`` and longer polynomial forms fit."""
    fma, nofma = problems
    fma, nofma = with_starts([fma, replace(nofma, max_length=max_length)], fits, variable)
    return [fma, replace(nofma, starts=(start, *nofma.starts))]
