"""What the symbolic-regression problems share: the op set, the data design, the builder.

A symbolic-regression problem is a formula to recover from data: training points (a grid,
or a seeded uniform design), held-out test points, optional noise, the normalised mean
squared error (1 - R^2) as error and the expression's node count as cost. The formula is
written once, as a function of a list of inputs and a math module, so the same text gives
the numpy reference and the sympy expression that recovery is checked against.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from evolve.problem import Problem

# One op set for every SR problem and every engine of the benchmark: Koza's arithmetic,
# sin, cos, exp, log (Nguyen's set) and sqrt (for Feynman). IEEE semantics: no protection.
SR_OPS = ("add", "sub", "mul", "div", "sin", "cos", "exp", "log", "sqrt")

# NMSE at which a float32 evaluation cannot tell a model from the truth: the target. In
# accuracy-first mode errors below it are equal, so exact fits compete on size alone.
EXACT_FIT = 1e-12

SR_NOTES = ("Error: normalised mean squared error on the training points, MSE / Var(y) "
            "(1 - R^2), of the program after linear scaling (a f + b with a, b the least-"
            "squares fit: the model exported); target 1e-12, float32's level of an exact fit. "
            "Cost: the node count of the expression (inputs, literals and ops; the exported "
            "model adds 2 nodes for a != 1 and 2 for b != 0, as Operon counts them). Op set: + - x / sin cos exp log "
            "sqrt, IEEE float32 (no protected division or log: a NaN or infinity is the "
            "worst error).")


def sr_problem(name: str, description: str, formula: Callable[[Sequence, object], object],
               domain: Sequence[tuple[float, float]], *, n_train: int = 20,
               n_test: int = 1000, sampling: str = "uniform",
               test_domain: Sequence[tuple[float, float]] | None = None,
               test_sampling: str = "uniform", reference: Callable | None = None,
               notes: str = "", data_seed: int = 0, max_length: int = 31,
               linear_scaling: bool = True) -> Problem:
    """A symbolic-regression ``Problem`` for ``formula(x, m)`` over ``domain``.

    ``formula`` takes the inputs as a list (numpy arrays or sympy symbols) and a module
    (``numpy`` or ``sympy``) for sin, cos, exp, log, sqrt and pi. ``reference`` (float64
    points [N, n] -> [N]) defaults to the formula under numpy. Programs get 8 scratch
    registers past the inputs, enough for any tree of up to 255 nodes. The error is
    scored after linear scaling unless ``linear_scaling`` is False (``Problem``). Runs
    evolve trees unless their config asks for linear programs (``representation``).
    """
    n_inputs = len(domain)
    if reference is None:
        def reference(x: np.ndarray) -> np.ndarray:
            with np.errstate(all="ignore"):
                return np.asarray(formula(list(x.T), np), np.float64) * np.ones(x.shape[0])
    return Problem(
        name=name, description=description, reference=reference, domain=tuple(domain),
        ops=SR_OPS, dtype="float32", error="nmse", target=EXACT_FIT,
        n_registers=n_inputs + 8, max_length=max_length, n_train=n_train, n_probe=64,
        n_verify=n_train, sampling=sampling, n_test=n_test,
        test_domain=None if test_domain is None else tuple(test_domain),
        test_sampling=test_sampling, data_seed=data_seed, cost_model="size",
        formula=formula, linear_scaling=linear_scaling, representation="tree",
        notes=f"{notes.strip()}\n\n{SR_NOTES}\n")
