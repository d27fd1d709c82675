"""What the function-approximation problems share: op sets, cost model text, baselines.

Each function comes as a pair of problems: ``<name>`` with a single-rounding FMA and
``<name>_nofma`` with AutoNumerics-Zero's float32 set {+, -, x, /}. Their baselines
(Sollya minimax polynomials in Horner form, measured by our own float32 check) are data
in ``problems/baselines/<problem>.json``, written by ``scripts/sollya_baselines.py``.
"""

from __future__ import annotations

import json
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
