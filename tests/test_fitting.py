"""Constant fitting recovers the coefficients of programs whose structure is right."""

import numpy as np

from evolve.fitting import ConstantFitter
from evolve.problem import load_problem
from evolve.program import to_arrays
from evolve.text import parse_program

HORNER3 = """
r2 = 0.1
r3 = 0.5
r2 = fma(r2, r0, r3)
r3 = 0.5
r2 = fma(r2, r0, r3)
r4 = 1.0
r1 = fma(r2, r0, r4)
return r1
"""


def test_fit_reaches_the_least_squares_polynomial():
    p = load_problem("exp2")
    x = p.grid(256)
    y, scale = p.targets(x)
    prog = parse_program(HORNER3)
    no_literal = parse_program("r1 = mul(r0, r0)\nreturn r1\n")
    batch = to_arrays([prog, no_literal], length=8)
    const, err = ConstantFitter(p.n_registers).fit(batch, x, y, scale)
    # A cubic for 2^x on [0, 1] is good to about 1e-4 relative: ~1000 ULP, not 1e6.
    assert err[0] < 3000
    coeffs = np.polyfit(x[:, 0].astype(np.float64), y, 3)
    fitted = const[0, [0, 1, 3, 5]]
    np.testing.assert_allclose(fitted, coeffs, rtol=0.05, atol=2e-3)
    np.testing.assert_array_equal(const[1], batch.const[1])  # nothing to fit
    assert const.dtype == np.float32
