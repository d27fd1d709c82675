"""Problems: what to discover, declared as data.

A problem names a target function (a float64 or mpmath reference), its input domain and
dtype, the points to train on, the ops and registers programs may use, the error
measure, the cost model and an optional error target. Problems live in ``problems/``, one
module each exposing ``PROBLEM``; a user's own file is accepted by path.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from evolve.errors import UserError
from evolve.ops import OPCODE, OPS
from evolve.program import Program, input_dependent, used

ERRORS = ("max_ulp", "max_abs", "rmse")


def ulp32(y: np.ndarray) -> np.ndarray:
    """The float32 ULP of the exact values ``y``: 2^(floor(log2|y|) - 23), float64.

    This is the convention of every ULP figure we report (see the README, Numerics).
    Values below the smallest normal float32 use the subnormal spacing 2^-149.
    """
    y = np.abs(np.asarray(y, np.float64))
    _, ex = np.frexp(y)  # y = m * 2^ex with m in [0.5, 1), so floor(log2 y) = ex - 1
    e = np.where(y > 0, ex - 1, -126).astype(np.float64)
    return np.exp2(np.maximum(e - 23, -149))


@dataclass(frozen=True)
class Problem:
    """A discovery problem. Everything the engine needs to know, as data.

    reference: maps float64 points [N, n_inputs] to float64 targets [N].
    jax_reference: the same in jax.numpy (float64), optional: lets certification compute
        the targets on the device (checked against ``reference`` on samples).
    domain: one (low, high) pair per input.
    error: "max_ulp" (max error in float32 ULPs of the exact value), "max_abs" or "rmse".
    target: the error to reach (e.g. 1.0 for "max ULP < 1"), or None.
    n_train: training points, evenly spaced representable values of the domain.
    n_probe: probe points for functional-equivalence hashing.
    baselines: known programs to compare with, e.g. minimax polynomials:
        dicts with "name", "error", "cost" and optionally "program" (text form).
    """

    name: str
    description: str
    reference: Callable[[np.ndarray], np.ndarray]
    domain: tuple[tuple[float, float], ...]
    ops: tuple[str, ...]
    dtype: str = "float32"
    error: str = "max_ulp"
    target: float | None = None
    n_registers: int = 8
    max_length: int = 24
    n_train: int = 16384
    n_probe: int = 64
    n_verify: int = 1_000_000
    baselines: tuple[dict, ...] = ()
    notes: str = ""
    jax_reference: Callable | None = None
    opcodes: tuple[int, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "domain", tuple(tuple(map(float, d)) for d in self.domain))
        bad = [o for o in self.ops if o not in OPCODE]
        if bad:
            raise UserError(f"problem {self.name!r}: unknown ops {bad}; known: {', '.join(OPCODE)}")
        if "const" not in self.ops:
            object.__setattr__(self, "ops", (*self.ops, "const"))
        object.__setattr__(self, "opcodes", tuple(OPCODE[o] for o in self.ops))
        if self.error not in ERRORS:
            raise UserError(f"problem {self.name!r}: error must be one of {ERRORS}, "
                            f"got {self.error!r}")
        if self.n_inputs >= self.n_registers:
            raise UserError(f"problem {self.name!r}: needs more registers than inputs")

    @property
    def n_inputs(self) -> int:
        return len(self.domain)

    @property
    def output(self) -> int:
        """The register programs return: the first one after the inputs."""
        return self.n_inputs

    @property
    def np_dtype(self):
        return np.dtype(self.dtype).type

    def grid(self, n: int) -> np.ndarray:
        """``n`` evenly spaced points of the domain (per input; a product grid for >1
        inputs is not built: inputs are spaced independently), rounded to the dtype,
        endpoints included: [n, n_inputs]."""
        cols = [np.linspace(lo, hi, n).astype(self.np_dtype) for lo, hi in self.domain]
        return np.stack(cols, axis=1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniform random points of the domain: [n, n_inputs] in the dtype."""
        lo = np.array([d[0] for d in self.domain])
        hi = np.array([d[1] for d in self.domain])
        return (lo + (hi - lo) * rng.random((n, self.n_inputs))).astype(self.np_dtype)

    def targets(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reference values (float64) at points ``x`` and the per-point error scale.

        The scale turns |out - y| into the problem's error unit (1/ulp for max_ulp).
        """
        y = np.asarray(self.reference(np.asarray(x, np.float64)), np.float64).reshape(-1)
        scale = 1.0 / ulp32(y) if self.error == "max_ulp" else np.ones_like(y)
        return y, scale

    def error_value(self, stats: dict[str, np.ndarray]) -> np.ndarray:
        """The problem's error from the evaluator's reduced statistics (per program)."""
        if self.error == "max_ulp":
            e = stats["max_scaled"]
        elif self.error == "max_abs":
            e = stats["max_abs"]
        else:
            e = np.sqrt(stats["mse"])
        return np.where(np.isfinite(e), e, np.inf)

    def cost(self, program: Program) -> float:
        """Weighted op count of the instructions that use an input and reach the output."""
        live = used(program)
        dep = input_dependent(program, self.n_inputs)
        return float(sum(OPS[ins.op].cost for ins, u, d in zip(program.instructions, live, dep)
                         if u and d))

    def meets_target(self, error: float) -> bool:
        return self.target is not None and error < self.target


def _problem_modules() -> list[str]:
    import problems

    return sorted(m.name for m in pkgutil.iter_modules(problems.__path__) if not m.name.startswith("_"))


def list_problems() -> list[Problem]:
    """Every problem in ``problems/``, sorted by name."""
    out = []
    for name in _problem_modules():
        out.extend(_problems_in(importlib.import_module(f"problems.{name}")))
    return sorted(out, key=lambda p: p.name)


def _problems_in(module) -> Sequence[Problem]:
    if hasattr(module, "PROBLEMS"):
        return list(module.PROBLEMS)
    if hasattr(module, "PROBLEM"):
        return [module.PROBLEM]
    return []


def load_problem(name_or_path: str) -> Problem:
    """A problem by name (from ``problems/``) or from a user's Python file by path.

    The file must define ``PROBLEM = Problem(...)`` (or ``PROBLEMS = [...]`` with one).
    """
    path = Path(name_or_path)
    if name_or_path.endswith(".py") or path.is_file():
        if not path.is_file():
            raise UserError(f"problem file {name_or_path!r} does not exist")
        spec = importlib.util.spec_from_file_location(f"evolve_user_problem_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        found = _problems_in(module)
        if len(found) != 1:
            raise UserError(f"{name_or_path} must define PROBLEM = Problem(...) "
                            f"(found {len(found)} problems)")
        return found[0]
    by_name = {p.name: p for p in list_problems()}
    if name_or_path in by_name:
        return by_name[name_or_path]
    close = difflib.get_close_matches(name_or_path, list(by_name), n=3)
    hint = f" did you mean {' or '.join(close)}?" if close else ""
    raise UserError(f"unknown problem {name_or_path!r};{hint} `evolve problems` lists them, "
                    "or pass the path of a .py file that defines PROBLEM")
