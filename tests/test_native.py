"""The C++ CPU kernel (evolve.native) against the numpy reference interpreter: the error
statistics of programs of exactly rounded ops equal numpy's bit for bit, subnormal
inputs included (unlike XLA on the CPU, the kernel does not flush them); the others
within a few ULP."""

import numpy as np
import pytest

from evolve import native
from evolve.interpreter import Evaluator, run_numpy_batch
from evolve.program import to_arrays
from test_interpreter import EXACT, INEXACT, random_program

pytestmark = pytest.mark.skipif(not native.available(), reason="no C++ compiler here")
R = 6


def reference(batch, x, y, scale):
    out = run_numpy_batch(batch, x, R).astype(np.float64)
    with np.errstate(all="ignore"):
        err = np.abs(out - y)
        err[np.isnan(err)] = np.inf
        return {"max_abs": err.max(1), "max_scaled": (err * scale).max(1),
                "mse": (err ** 2).mean(1)}


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(8)
    x = rng.uniform(-3, 3, (700, 2)).astype(np.float32)
    x[:10] = [[0.0, -0.0], [-0.0, 0.0], [np.inf, 1.0], [np.nan, 2.0], [1e38, 1e-30],
              [-np.inf, 3e38], [1e-40, 3.0], [-1e-42, 1e-41], [1.2e-38, 0.5], [2.0, -np.inf]]
    return x


def test_exact_ops_bit_for_bit(points):
    rng = np.random.default_rng(1)
    batch = to_arrays([random_program(rng, EXACT, int(rng.integers(0, 17)), R)
                       for _ in range(40)], length=16)
    y = rng.normal(size=len(points))
    scale = rng.uniform(0.5, 2.0, len(points))
    ev = Evaluator(n_registers=R, n_inputs=2, backend="native")
    got = ev.errors(batch, points, y, scale)
    want = reference(batch, points, y, scale)
    for k in ("max_abs", "max_scaled"):
        np.testing.assert_array_equal(got[k], want[k])
    np.testing.assert_allclose(got["mse"], want["mse"], rtol=1e-12)


def test_transcendental_ops_close(points):
    rng = np.random.default_rng(2)
    batch = to_arrays([random_program(rng, EXACT + INEXACT, 6, R) for _ in range(40)],
                      length=8)
    y = np.zeros(len(points))
    got = Evaluator(n_registers=R, n_inputs=2, backend="native").errors(batch, points, y)
    want = reference(batch, points, y, np.ones(len(points)))
    np.testing.assert_allclose(got["max_abs"], want["max_abs"], rtol=1e-5, atol=1e-30)


def test_auto_takes_the_native_kernel_on_cpus(monkeypatch):
    assert Evaluator(n_registers=R)._native
    assert not Evaluator(n_registers=R, backend="lax")._native
    assert not Evaluator(n_registers=R, dtype="float64")._native
    with pytest.raises(ValueError, match="CPU devices and float32"):
        Evaluator(n_registers=R, dtype="float64", backend="native")


def test_outputs_bit_for_bit_subnormals_included(points):
    rng = np.random.default_rng(3)
    batch = to_arrays([random_program(rng, EXACT, int(rng.integers(0, 17)), R)
                       for _ in range(30)], length=16)
    got = Evaluator(n_registers=R, n_inputs=2, backend="native").outputs(batch, points)
    want = run_numpy_batch(batch, points, R)
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    assert same.all()
