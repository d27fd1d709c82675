"""tanh(x) on [0, ln(3)/2] in float32 (the logistic sigmoid is 1/2 + tanh(x/2)/2).

Range reduction: tanh(-x) = -tanh(x) exactly; for x > ln(3)/2 = 0.5493,
tanh(x) = 1 - 2/(e^(2x) + 1), where the result lies in (1/2, 1] and the subtracted term
is below 1/2, so there is no cancellation (and tanh rounds to 1 for x > 9.011). The
piece left for a polynomial-like program is [0, ln(3)/2], where tanh(x) ~ x goes to 0 and
the error must be small relative to tiny values (musl's tanhf splits at ln(3)/2 too). The
domain's upper end is ln(3)/2 rounded up to float32 (0x1.193ea8p-1).
Cost model: the weighted op count of input-dependent instructions (ops table weights:
add/sub/mul/fma 1, div 4).

Two problems: ``tanh`` (ops + - x / and a single-rounding fma) and ``tanh_nofma``
(+ - x / only). Baselines (problems/baselines/tanh*.json): Sollya fpminimax odd polynomials
with float32 coefficients, as x*q(x^2) with q in Horner form ("minimax-d") and as
x + x*q(x^2) ("minimax-d-x+xq").
"""

import jax.numpy as jnp
import numpy as np
from evolve.problems._common import FMA_OPS, fma_pair

from evolve.problem import Problem

HALF_LN3 = float.fromhex("0x1.193ea8p-1")  # ln(3)/2 rounded up to float32

PROBLEMS = fma_pair(Problem(
    name="tanh",
    description="tanh(x) on [0, ln(3)/2], float32, max error in ULPs, FMA allowed",
    reference=lambda x: np.tanh(x[:, 0]),
    jax_reference=lambda x: jnp.tanh(x[:, 0]),
    domain=((0.0, HALF_LN3),),
    ops=FMA_OPS,
    error="max_ulp",
    target=1.0,
    notes=__doc__,
))
