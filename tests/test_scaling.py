"""Linear scaling (evolve/scaling.py): the least-squares a, b, the scaled error, the
scaled program; the evaluator's ``scaled_mse`` statistic and the problems' option."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve.catalog import load_problem
from evolve.errors import UserError
from evolve.eval.evaluator import Evaluator, run_numpy
from evolve.program import to_arrays
from evolve.scaling import linear_fit, scaled, scaled_mse
from evolve.text import parse_program

SIN_X2 = "r2 = mul(r0, r0)\nr1 = sin(r2)\nreturn r1\n"
finite = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=3, max_size=40), finite, finite, st.integers(0, 2**31))
def test_affine_images_of_the_truth_score_zero_and_their_fit_is_found(ys, a, b, seed):
    y = np.asarray(ys)
    if np.ptp(y) < 1e-3 or abs(a) < 1e-3:
        return
    f = (y - b) / a  # y = a f + b exactly (up to float64 rounding)
    got_a, got_b = linear_fit(f, y)
    np.testing.assert_allclose(got_a * f + got_b, y, atol=1e-9 * max(1, np.max(np.abs(y))))
    assert scaled_mse(f[None], y)[0] <= 1e-18 * max(1, np.var(y)) * 1e6
    noise = np.random.default_rng(seed).normal(size=len(y))
    other = scaled_mse(np.stack([noise, 3 * noise - 7]), y)
    np.testing.assert_allclose(other[0], other[1], rtol=1e-9, atol=1e-12)
    assert other[0] <= np.mean((noise - y) ** 2) + 1e-9  # never worse than unscaled


def test_constant_and_non_finite_outputs():
    y = np.array([1.0, 2.0, 4.0])
    a, b = linear_fit(np.full(3, 5.0), y)
    assert a == 0 and b == pytest.approx(7 / 3)
    mse = scaled_mse(np.array([[5.0, 5.0, 5.0], [1.0, np.nan, 2.0], [1.0, np.inf, 2.0]]), y)
    assert mse[0] == pytest.approx(np.var(y)) and np.isinf(mse[1:]).all()


def test_the_scaled_program_computes_a_f_plus_b_and_counts_as_operon_does():
    p = load_problem("nguyen-8")
    prog = parse_program(SIN_X2, n_registers=p.n_registers)
    x = p.points(20)
    f = run_numpy(prog, x, p.n_registers)
    both = scaled(prog, 2.5, -1.25, p.n_registers)
    want = (np.float32(2.5) * f + np.float32(-1.25)).astype(np.float32)
    np.testing.assert_array_equal(run_numpy(both, x, p.n_registers), want)
    # Operon's count: 2 nodes (literal, op) for a != 1, 2 for b != 0
    assert p.cost(both) == p.cost(prog) + 4
    assert p.cost(scaled(prog, 1.0, -1.25, p.n_registers)) == p.cost(prog) + 2
    assert p.cost(scaled(prog, 2.5, 0.0, p.n_registers)) == p.cost(prog) + 2
    assert scaled(prog, 1.0, 0.0, p.n_registers) == prog
    const = scaled(prog, 0.0, 3.0, p.n_registers)
    np.testing.assert_array_equal(run_numpy(const, x, p.n_registers), np.float32(3.0))


def test_the_evaluator_statistic_matches_the_reference():
    p = load_problem("nguyen-5")
    x = p.points(p.n_train)
    y, _ = p.targets(x)
    texts = [SIN_X2, "r2 = cos(r0)\nr1 = mul(r2, r2)\nreturn r1\n", "r1 = 2.0\nreturn r1\n",
             "r2 = 0.0\nr1 = div(r0, r2)\nreturn r1\n"]
    progs = [parse_program(t, n_registers=p.n_registers) for t in texts]
    ev = Evaluator(p.n_registers, p.n_inputs, backend="lax")
    stats = ev.errors(to_arrays(progs, length=8), x, y)
    want = scaled_mse(np.stack([run_numpy(q, x, p.n_registers) for q in progs]), y)
    np.testing.assert_allclose(stats["scaled_mse"], want, rtol=1e-5)  # XLA sin, cos: ULPs off
    assert set(stats) == {"max_scaled", "max_abs", "mse", "scaled_mse"}
    assert np.all(want[:3] <= stats["mse"][:3]) and np.isinf(want[3])


def test_problems_score_the_scaled_error_and_refuse_it_off_nmse():
    p = load_problem("nguyen-5")
    assert p.linear_scaling  # on by default for SR problems
    stats = {"mse": np.array([4.0]), "scaled_mse": np.array([1.0]),
             "max_abs": np.array([0.0]), "max_scaled": np.array([0.0])}
    assert p.error_value(stats)[0] == pytest.approx(1.0 / p.target_variance)
    off = replace(p, linear_scaling=False)
    assert off.error_value(stats)[0] == pytest.approx(4.0 / p.target_variance)
    with pytest.raises(UserError, match="linear_scaling applies to error='nmse'"):
        replace(load_problem("exp2"), linear_scaling=True)


def test_standardized_outputs_merge_affine_images_and_keep_functions_apart():
    from evolve.scaling import standardized

    x = np.linspace(-1, 1, 64).astype(np.float32)
    f = x * x + x
    rows = np.stack([f, np.float32(2) * f + np.float32(1), -f, np.float32(-0.5) * f,
                     np.full_like(x, 3.0), np.zeros_like(x), x * x * x, np.sin(x),
                     np.where(x > 0, np.nan, x)])
    z = standardized(rows)
    assert z.dtype == np.float32
    for k in (1, 2, 3):  # 2f + 1, -f, -f/2: the model f once scaled
        np.testing.assert_array_equal(z[k], z[0])
    np.testing.assert_array_equal(z[4], 0.0)
    np.testing.assert_array_equal(z[5], 0.0)
    assert not np.array_equal(z[6], z[0]) and not np.array_equal(z[7], z[6])
    np.testing.assert_array_equal(np.isnan(z[8]), np.isnan(rows[8]))  # left as it was
    assert not np.any(np.signbit(z[4]))  # no -0: one fingerprint for every constant
