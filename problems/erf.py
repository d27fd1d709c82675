"""erf(x) on [0, 1] in float32.

Range reduction: erf(-x) = -erf(x) exactly, and erf(x) rounds to 1 in float32 for
x >= 3.92, so a full-range erf needs this piece and one more for [1, 3.92] (e.g.
erf(x) = 1 - exp(-x^2) * R(x), as libms do); [0, 1] is the piece where the result must
be accurate relative to values that go to 0 with x (erf(x) ~ 2x/sqrt(pi)), the part
where most float32 inputs lie. It is one piece of a piecewise full-range erf, not the
whole function by an exact reduction.
Cost model: the weighted op count of input-dependent instructions (ops table weights:
add/sub/mul/fma 1, div 4).

Two problems: ``erf`` (ops + - x / and a single-rounding fma) and ``erf_nofma``
(+ - x / only). Baselines (problems/baselines/erf*.json): Sollya fpminimax odd polynomials
with float32 coefficients, as x*q(x^2) with q in Horner form ("minimax-d") and as
x + x*q(x^2) ("minimax-d-x+xq"). The first never gets below 2 ULP: 2/sqrt(pi) in float32
is 0.49 of its ULP off, and q's rounding near 1.128 adds as much again near x = 0. The
reference is float64 ``math.erf``.
"""

import math

import jax.scipy.special
import numpy as np
from evolve.problems._common import FMA_OPS, fma_pair

from evolve.problem import Problem

_erf = np.frompyfunc(math.erf, 1, 1)


def erf64(x: np.ndarray) -> np.ndarray:
    """erf in float64, elementwise (math.erf; about 0.3 s per million points)."""
    return np.asarray(_erf(np.asarray(x, np.float64)), np.float64)


PROBLEMS = fma_pair(Problem(
    name="erf",
    description="erf(x) on [0,1], float32, max error in ULPs, FMA allowed",
    reference=lambda x: erf64(x[:, 0]),
    jax_reference=lambda x: jax.scipy.special.erf(x[:, 0]),
    domain=((0.0, 1.0),),
    ops=FMA_OPS,
    error="max_ulp",
    target=1.0,
    notes=__doc__,
))
