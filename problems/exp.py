"""e^x on [-ln2/2, ln2/2] in float32.

Range reduction: n = round(x / ln2), r = x - n*ln2 with ln2 split in two float32 parts
(Cody-Waite) so that n*ln2_hi is exact; then r lies in [-ln2/2, ln2/2] and
e^x = 2^n * e^r, where the scaling by 2^n is exact (an exponent add). An approximation of
e^r with max error e ULP gives a full-range e^x with about the same error, plus what the
reduction's own rounding of r adds (outside overflow and subnormal results). The domain's
ends are ln2/2 rounded outwards to float32 (0x1.62e43p-2 = 0.34657359...), and the values
f(x) span two binades, [0.707, 1) and [1, 1.415], so ULPs halve at x = 0.
Cost model: the weighted op count of input-dependent instructions (ops table weights:
add/sub/mul/fma 1, div 4).

Two problems: ``exp`` (ops + - x / and a single-rounding fma) and ``exp_nofma``
(+ - x / only). Baselines: Sollya fpminimax polynomials with float32 coefficients in
Horner form (problems/baselines/exp*.json).
"""

import jax.numpy as jnp
import numpy as np
from evolve.problems._common import FMA_OPS, fma_pair

from evolve.problem import Problem

HALF_LN2 = float.fromhex("0x1.62e43p-2")  # ln(2)/2 rounded up to float32

PROBLEMS = fma_pair(Problem(
    name="exp",
    description="e^x on [-ln2/2, ln2/2], float32, max error in ULPs, FMA allowed",
    reference=lambda x: np.exp(x[:, 0]),
    jax_reference=lambda x: jnp.exp(x[:, 0]),
    domain=((-HALF_LN2, HALF_LN2),),
    ops=FMA_OPS,
    error="max_ulp",
    target=1.0,
    notes=__doc__,
))
