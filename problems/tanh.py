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

Starts (``Problem.starts``, ``search.starts=starts``): x + x*s*q(s) with s = x*x (tanh(x)
= x - x^3/3 + ...: the linear coefficient is exactly 1), q in Horner form with 4 to 6
coefficients; coefficients from a float64 fit of the relative error (least squares
reweighted toward the max, Lawson), each rounded to float32 (a start, not a minimax
answer; the search refits every structure it derives from them). Starts longer than
``max_length`` (the no-FMA forms of the higher degrees) are left out.
"""

import jax.numpy as jnp
import numpy as np
from evolve.problems._common import FMA_OPS, fma_pair, with_starts

from evolve.problem import Problem

HALF_LN3 = float.fromhex("0x1.193ea8p-1")  # ln(3)/2 rounded up to float32

STARTS = (  # x + x*s*q(s), s = x*x: q with 4, 5, 6 coefficients (degrees 9, 11, 13)
    ("-0.3333295", "0.13320813", "-0.05267761", "0.016448967"),
    ("-0.33333316", "0.13332593", "-0.053853095", "0.021075154", "-0.0062794727"),
    ("-0.3333333", "0.13333294", "-0.053959727", "0.021783402", "-0.008415869", "0.0023981596"),
)

PROBLEMS = with_starts(fma_pair(Problem(
    name="tanh",
    description="tanh(x) on [0, ln(3)/2], float32, max error in ULPs, FMA allowed",
    reference=lambda x: np.tanh(x[:, 0]),
    jax_reference=lambda x: jnp.tanh(x[:, 0]),
    domain=((0.0, HALF_LN3),),
    ops=FMA_OPS,
    error="max_ulp",
    target=1.0,
    notes=__doc__,
)), STARTS, "square", times_variable=True)
