"""Constant fitting recovers the coefficients of programs whose structure is right."""

import numpy as np

from evolve.catalog import load_problem
from evolve.eval.evaluator import run_numpy_batch
from evolve.program import to_arrays
from evolve.scaling import scaled_mse
from evolve.search.fitting import ConstantFitter, FitParams
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


def _poly_program(n_literals: int):
    """sum_k c_k x^k (Horner), with ``n_literals`` literals."""
    lines = ["r2 = 0.5"]
    for _ in range(n_literals - 1):
        lines += ["r3 = 0.25", "r2 = fma(r2, r0, r3)"]
    return parse_program("\n".join(lines) + "\nreturn r2\n")


def test_programs_are_fitted_with_their_own_slot_bucket():
    """A program with 9 literals (16 slots) in the batch leaves the fit of the others as
    it is alone, and the ops-restricted fitter gives the same bits as the full one."""
    p = load_problem("exp2")
    x = p.grid(64)
    y, scale = p.targets(x)
    small = [_poly_program(k) for k in (1, 3, 4)]
    large = _poly_program(9)
    full = ConstantFitter(p.n_registers)
    alone, err_alone = full.fit(to_arrays(small, length=32), x, y, scale)
    mixed, err_mixed = full.fit(to_arrays(small + [large], length=32), x, y, scale)
    np.testing.assert_array_equal(mixed[:3], alone)
    np.testing.assert_array_equal(err_mixed[:3], err_alone)
    assert err_mixed[3] <= err_mixed[2] * 1.01  # more terms: at least as good
    restricted = ConstantFitter(p.n_registers, ops=("fma", "const"))
    again, err_again = restricted.fit(to_arrays(small + [large], length=32), x, y, scale)
    np.testing.assert_array_equal(again, mixed)
    np.testing.assert_array_equal(err_again, err_mixed)


def test_empty_batch():
    p = load_problem("exp2")
    x = p.grid(16)
    y, scale = p.targets(x)
    batch = to_arrays([], length=8)
    const, err = ConstantFitter(p.n_registers).fit(batch, x, y, scale)
    assert const.shape == (0, 8) and err.shape == (0,)


def test_ops_outside_the_fitter_ops_are_refused():
    import pytest

    p = load_problem("exp2")
    x = p.grid(16)
    y, scale = p.targets(x)
    with pytest.raises(ValueError, match="fma"):
        ConstantFitter(p.n_registers, ops=("add", "const")).fit(
            to_arrays([_poly_program(2)], length=8), x, y, scale)


def test_linear_scaling_fits_the_constants_the_scaled_error_needs():
    # sin(c x) against 3 sin(2 x) + 5: the unscaled fit bends c to reach the offset; the
    # variable-projection fit (a, b re-fitted at every step) finds c = 2.
    x = np.linspace(-1.5, 1.5, 64)[:, None].astype(np.float32)
    y = 3 * np.sin(2 * x[:, 0].astype(np.float64)) + 5
    prog = parse_program("r2 = 1.4\nr3 = mul(r0, r2)\nr1 = sin(r3)\nreturn r1\n")
    batch = to_arrays([prog], length=8)
    errors = {}
    for scaling in (False, True):
        fitter = ConstantFitter(4, params=FitParams(iterations=20, lawson=False,
                                                    linear_scaling=scaling))
        const, _ = fitter.fit(batch, x, y, np.ones(len(y)))
        fitted = to_arrays([prog], length=8)._replace(const=const)
        errors[scaling] = scaled_mse(run_numpy_batch(fitted, x, 4), y)[0] / np.var(y)
        if scaling:
            assert abs(const[0, 0] - 2.0) < 1e-4
    assert errors[True] < 1e-10 < errors[False]
