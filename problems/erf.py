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

Starts (``Problem.starts``, ``search.starts=starts``): x + x*q(s) with s = x*x (erf's
linear coefficient 2/sqrt(pi) = 1 + 0.128...: the 1 is exact, q(0) carries the rest), q in
Horner form with 6 to 8 coefficients; coefficients from a float64 fit of the relative
error (least squares reweighted toward the max, Lawson), each rounded to float32 (a start,
not a minimax answer; the search refits every structure it derives from them).

``erf_nofma`` starts first from ``SPLIT_NOFMA``, under 1 ULP where no polynomial of
Sollya's is (its best: 1.25). Without FMA, x + x*q(s) floors above 1.2 ULP near x = 1:
there q(s) = -0.157 is the sum of q(0) = 0.128 and s*B(s) = -0.285, whose rounding alone
is an ULP of q, and q's share of the result is a fifth. ``SPLIT_NOFMA`` takes the largest
part of s*B(s) out exactly: q(s) = a + p(s) with a = q0 - s/4 (q0: float32(2/sqrt(pi) - 1);
s/4 is exact, and so is a for s >= 1/2, where both are multiples of 2^-26 and |a| < 1/8),
and p(s) = q(s) - a, which stays under 0.04, a degree-6 polynomial in s (a float64 fit of
the relative error, Lawson-reweighted, rounded to float32); the result is
x + (x*a + x*p). Certified at 0.9324 ULP over all 1,065,353,217 float32 of [0, 1]
(worst x = 0.99836). 28 instructions, 19 ops, so ``erf_nofma`` allows programs of 32
(``erf`` keeps 24: the same padded size).
"""

import math

import jax.scipy.special
import numpy as np
from evolve.problems._common import FMA_OPS, fma_pair, with_first_start

from evolve.problem import Problem

_erf = np.frompyfunc(math.erf, 1, 1)


def erf64(x: np.ndarray) -> np.ndarray:
    """erf in float64, elementwise (math.erf; about 0.3 s per million points)."""
    return np.asarray(_erf(np.asarray(x, np.float64)), np.float64)


STARTS = (  # x + x*q(s), s = x*x: q with 6, 7, 8 coefficients (degrees 11, 13, 15)
    ("0.12837912", "-0.37612325", "0.1128018", "-0.026711311", "0.004917551", "-0.0005631419"),
    ("0.12837917", "-0.37612626", "0.112835854", "-0.026853811", "0.005188327",
     "-0.00080101873", "7.853838e-05"),
    ("0.12837917", "-0.37612638", "0.11283782", "-0.0268654", "0.0052209455", "-0.0008482827",
     "0.00011256937", "-9.6414815e-06"),
)

SPLIT_NOFMA = """\
r1 = mul(r0, r0)
r2 = -0.25
r2 = mul(r1, r2)
r3 = 0.12837917
r2 = add(r3, r2)
r3 = 7.8539924e-05
r3 = mul(r3, r1)
r4 = -0.00080102304
r3 = add(r3, r4)
r3 = mul(r3, r1)
r4 = 0.0051883315
r3 = add(r3, r4)
r3 = mul(r3, r1)
r4 = -0.026853815
r3 = add(r3, r4)
r3 = mul(r3, r1)
r4 = 0.112835854
r3 = add(r3, r4)
r3 = mul(r3, r1)
r4 = -0.12612626
r3 = add(r3, r4)
r3 = mul(r3, r1)
r4 = -3.991813e-10
r3 = add(r3, r4)
r2 = mul(r0, r2)
r3 = mul(r0, r3)
r2 = add(r2, r3)
r1 = add(r0, r2)
return r1
"""  # s = x*x; a = q0 - s/4; p(s) by Horner; x + (x*a + x*p)

PROBLEMS = with_first_start(fma_pair(Problem(
    name="erf",
    description="erf(x) on [0,1], float32, max error in ULPs, FMA allowed",
    reference=lambda x: erf64(x[:, 0]),
    jax_reference=lambda x: jax.scipy.special.erf(x[:, 0]),
    domain=((0.0, 1.0),),
    ops=FMA_OPS,
    error="max_ulp",
    target=1.0,
    notes=__doc__,
)), STARTS, "square", SPLIT_NOFMA, max_length=32)

