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

Starts (``Problem.starts``, ``search.starts=starts``): t + t*q(t) with t = x - 1 (exact;
1/ln2 = 1 + 0.4427...: the 1 is exact, q(0) carries the rest), q in Horner form with 6 to
11 coefficients; coefficients from a float64 fit of the relative error (least squares
reweighted toward the max, Lawson), each rounded to float32 (a start, not a minimax
answer; the search refits every structure it derives from them).

``log2_nofma`` starts first from a compensated program (``COMPENSATED_NOFMA``, 0.554 ULP
over every float32 of the domain), written by hand because no polynomial gets there:
without FMA, t + t*q(t) floors at about 1.3 ULP (the correction t*q(t) is up to a fifth
of the result, and its own roundings count), and Sollya's best is 1.6. The program uses
log2(1 + t) = K*atanh(s), s = t/(2 + t), K = 2/ln 2, with |s| <= 0.1716, so the terms
after K*s are under 1 % of the result and their roundings hardly count; K*s is carried
in two parts, so that the final add is the only rounding of full weight:
  - 2 + t = u + e exactly, u = 1 + x' with x' the input rounded to a multiple of 2^-10
    ((x + 12288) - 12288: u has 12 bits) and e = x - x';
  - s_hi: t/u rounded to 12 bits (Veltkamp's split, 4097 = 2^12 + 1); s_hi*u is exact,
    so rho = (t - s_hi*u) - s_hi*e is t - s_hi*(2 + t) up to a rounding of the tiny
    s_hi*e, and s_lo = rho/(x + 1) is s - s_hi to about 2^-24 of itself;
  - K = K_hi + K_lo with K_hi of 12 bits, so K_hi*s_hi is exact; the rest,
    K_hi*s_lo + s*(K_lo + z*(b0 + z*(b1 + z*b2))) with s = s_hi + s_lo and z = s^2, is
    about 1 % of the result; the b are a float64 fit of (atanh(s)/s - 1)/z * K, rounded
    to float32.
It is 36 instructions (28 ops, two of them divisions: cost 34), so ``log2_nofma`` allows
programs of 40 (``log2`` keeps 24). Its magic constants (12288, 4097, K_hi) are exact:
their derivatives vanish in exact arithmetic, or K_hi and K_lo trade off, so constant
fitting moves the coefficients, not the splits.
"""

import jax.numpy as jnp
import numpy as np
from evolve.problems._common import FMA_OPS, fma_pair, with_first_start

from evolve.problem import Problem

SQRT2 = float.fromhex("0x1.6a09e6p+0")  # float32(sqrt(2)), just below sqrt(2)

STARTS = (  # t + t*q(t), t = x - 1: q with 6 to 11 coefficients (degrees 6 to 11)
    ("0.4427016", "-0.7212064", "0.47981203", "-0.36649138", "0.31819764", "-0.20618983"),
    ("0.44269645", "-0.72136354", "0.4806268", "-0.35937175", "0.29569936", "-0.26931924",
     "0.17162405"),
    ("0.44269496", "-0.7213528", "0.48092324", "-0.36023965", "0.28709874", "-0.24887684",
     "0.23404221", "-0.14581162"),
    ("0.442695", "-0.72134733", "0.48091063", "-0.36070368", "0.28791624", "-0.23894478",
     "0.21571569", "-0.20727009", "0.12583724"),
    ("0.44269505", "-0.72134733", "0.48089823", "-0.36069664", "0.28856742", "-0.23961738",
     "0.20460054", "-0.19106296", "0.18617558", "-0.10994986"),
    ("0.44269505", "-0.7213475", "0.4808979", "-0.36067414", "0.2885762", "-0.2404672",
     "0.20504345", "-0.17890862", "0.1720571", "-0.16906415", "0.097034246"),
)

COMPENSATED_NOFMA = """\
r1 = 1.0
r2 = sub(r0, r1)
r3 = 12288.0
r4 = add(r0, r3)
r4 = sub(r4, r3)
r3 = sub(r0, r4)
r4 = add(r1, r4)
r5 = div(r2, r4)
r6 = 4097.0
r6 = mul(r5, r6)
r7 = sub(r6, r5)
r6 = sub(r6, r7)
r7 = mul(r6, r4)
r7 = sub(r2, r7)
r3 = mul(r6, r3)
r3 = sub(r7, r3)
r1 = add(r0, r1)
r3 = div(r3, r1)
r1 = 2.8857422
r2 = mul(r1, r6)
r4 = mul(r1, r3)
r6 = add(r6, r3)
r3 = mul(r6, r6)
r5 = 0.4311467
r5 = mul(r5, r3)
r7 = 0.5767475
r5 = add(r5, r7)
r5 = mul(r5, r3)
r7 = 0.9617983
r5 = add(r5, r7)
r5 = mul(r5, r3)
r7 = -0.0003521057
r5 = add(r5, r7)
r5 = mul(r6, r5)
r4 = add(r4, r5)
r1 = add(r2, r4)
return r1
"""  # t = x - 1; u, e; s_hi, rho, s_lo; H = K_hi*s_hi; L; H + L (see the docstring)

PROBLEMS = with_first_start(fma_pair(Problem(
    name="log2",
    description="log2(x) on [sqrt2/2, sqrt2], float32, max error in ULPs, FMA allowed",
    reference=lambda x: np.log2(x[:, 0]),
    jax_reference=lambda x: jnp.log2(x[:, 0]),
    domain=((SQRT2 / 2, SQRT2),),
    ops=FMA_OPS,
    error="max_ulp",
    target=1.0,
    notes=__doc__,
)), STARTS, "minus_one", COMPENSATED_NOFMA, max_length=40)

