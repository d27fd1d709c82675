"""2^x on [0, 1] in float32: the AutoNumerics-Zero flagship.

Range reduction: 2^x = 2^n * 2^f with n = floor(x), f = x - n in [0, 1); the scaling by
2^n is exact (an exponent add), so an approximation of 2^f on [0, 1] with max error e
ULP gives a full-range 2^x with the same e (outside overflow and subnormal results).
Cost model: the weighted op count of input-dependent instructions (ops table weights:
add/sub/mul/fma 1, div 4).

Two problems: ``exp2`` (ops + - x / and a single-rounding fma) and ``exp2_nofma``
(AutoNumerics-Zero's float32 set + - x /). Baselines: Sollya fpminimax polynomials with
float32 coefficients in Horner form (problems/baselines/exp2*.json).
"""

import jax.numpy as jnp
import numpy as np
from evolve.problems._common import fma_pair

from evolve.problem import Problem

PROBLEMS = fma_pair(Problem(
    name="exp2",
    description="2^x on [0,1], float32, max error in ULPs, FMA allowed",
    reference=lambda x: np.exp2(x[:, 0]),
    jax_reference=lambda x: jnp.exp2(x[:, 0]),
    domain=((0.0, 1.0),),
    ops=("add", "sub", "mul", "fma", "div"),
    error="max_ulp",
    target=1.0,
    n_registers=4,
    n_train=65536,
    max_length=24,
    notes=__doc__,
))
PROBLEM = PROBLEMS[0]
