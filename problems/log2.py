"""log2(x) on [sqrt(2)/2, sqrt(2)] in float32, error in ULPs of the exact value.

Range reduction: x = 2^e * m with m in [sqrt(2)/2, sqrt(2)] (take the float32 exponent
and mantissa, and move one factor 2 from m to e when m > sqrt(2): both exact), then
log2(x) = e + log2(m). For e = 0 the result is log2(m) itself, so the approximation of
log2(m) must be accurate in ULPs of its own (relative) value, also as m -> 1 and
log2(m) -> 0: that is the error measured here. For e != 0, |log2(m)| <= 1/2 <= |e + log2(m)|,
so the final add has no cancellation and adds at most half an ULP.

Why not the tempting [1, 2): with m in [1, 2), inputs x just below 1 have e = -1 and m
near 2, and -1 + log2(m) cancels catastrophically, so no approximation of log2 on [1, 2)
gives a full-range log2 with a small ULP error near x = 1. And an absolute error measure
(in ULPs of 1) would hide exactly the hard part, log2(m) near m = 1.

What makes the relative measure attainable: t = m - 1 is exact in float32 (Sterbenz, m in
[1/2, 2]) and log2(1 + t) = t * q(t) with q(1/ln2 at t = 0) smooth, so programs can be
accurate relative to tiny values near m = 1. The domain's ends are float32(sqrt(2)) and
half of it (0x1.6a09e6p+0 and 0x1.6a09e6p-1); log2 is negative left of 1.
Cost model: the weighted op count of input-dependent instructions (ops table weights:
add/sub/mul/fma 1, div 4).

Two problems: ``log2`` (ops + - x / and a single-rounding fma) and ``log2_nofma``
(+ - x / only). Baselines (problems/baselines/log2*.json): Sollya fpminimax polynomials
in t = x - 1 with float32 coefficients, as t*q(t) with q in Horner form ("minimax-d"), and
as C*t + t*q(t) with C = float32(1/ln2) ("minimax-d-hilo"), which carries the leading
coefficient to more bits: t*q(t) stays at 1.47 to 1.5 ULP from degree 10 to 14 (the
float32 rounding of q near t = 0.41, where log2 is just below 1/2, costs up to an ULP).
"""

import jax.numpy as jnp
import numpy as np
from evolve.problems._common import FMA_OPS, fma_pair

from evolve.problem import Problem

SQRT2 = float.fromhex("0x1.6a09e6p+0")  # float32(sqrt(2)), just below sqrt(2)

PROBLEMS = fma_pair(Problem(
    name="log2",
    description="log2(x) on [sqrt2/2, sqrt2], float32, max error in ULPs, FMA allowed",
    reference=lambda x: np.log2(x[:, 0]),
    jax_reference=lambda x: jnp.log2(x[:, 0]),
    domain=((SQRT2 / 2, SQRT2),),
    ops=FMA_OPS,
    error="max_ulp",
    target=1.0,
    notes=__doc__,
))
