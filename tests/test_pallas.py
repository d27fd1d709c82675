"""The fused Pallas kernel (interpret mode off a GPU) against the numpy reference.

Every batch here pads to the same shape (``SIZE`` programs of 16 instructions, 300 points),
so each entry point compiles once: interpret mode takes seconds to compile.
"""

import numpy as np
import pytest

from evolve.eval import pallas as kernels
from evolve.eval.evaluator import Evaluator, run_numpy_batch
from evolve.ops import OPCODE, OPS
from evolve.program import Instruction, Program, to_arrays
from test_evaluator import EXACT, INEXACT, random_program

R = 6
N_PROGRAMS = 24
SIZE = 35  # programs in every batch: N_PROGRAMS and one per exact op


def bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


@pytest.fixture(scope="module")
def ev():
    return Evaluator(n_registers=R, n_inputs=2, tile=128, backend="pallas")


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(11)
    x = rng.uniform(-3, 3, (300, 2)).astype(np.float32)
    # signed zeros, inf, nan, huge and tiny (no subnormals: XLA on the CPU flushes them)
    x[:6] = [[0.0, -0.0], [-0.0, 0.0], [np.inf, 1.0], [np.nan, 2.0], [1e38, 1e-30],
             [-np.inf, 3e38]]
    return x


@pytest.fixture(scope="module")
def programs():
    rng = np.random.default_rng(3)
    progs = [random_program(rng, EXACT, int(rng.integers(0, 17)), R) for _ in range(N_PROGRAMS)]
    # every exact op once on the special values, and a program past its padding
    for op in EXACT:
        if op != OPCODE["const"]:
            progs.append(Program((Instruction(op, 3, (0, 1, 0)[: OPS[op].arity]),), 3))
    progs.append(Program((Instruction(OPCODE["const"], 5, (), -2.5),), 5))
    return to_arrays(progs, length=16, size=SIZE)


def test_backend_is_chosen(ev):
    assert ev._pallas
    assert not Evaluator(n_registers=R, backend="lax")._pallas
    with pytest.raises(ValueError, match="backend"):
        Evaluator(n_registers=R, backend="cuda")


def test_exact_ops_bit_for_bit(ev, points, programs):
    got = ev.outputs(programs, points)
    want = run_numpy_batch(programs, points, R)
    same = (bits(got) == bits(want)) | (np.isnan(got) & np.isnan(want))
    assert same.all(), np.argwhere(~same)[:10]


def test_errors_equal_reference(ev, points, programs):
    x = points
    with np.errstate(all="ignore"):
        y = np.cos(x[:, 0].astype(np.float64))
    scale = 1 / (1 + np.abs(y))
    err = ev.errors(programs, x, y, scale)
    with np.errstate(all="ignore"):
        diff = np.abs(run_numpy_batch(programs, x, R).astype(np.float64) - y)
    diff[np.isnan(diff)] = np.inf
    np.testing.assert_array_equal(err["max_abs"], diff.max(1))
    np.testing.assert_array_equal(err["max_scaled"], (diff * scale).max(1))
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(err["mse"], (diff**2).mean(1), rtol=1e-12)


def test_transcendental_ops_close(ev, points):
    progs = to_arrays([Program((Instruction(int(op), 3, (0,)),), 3) for op in INEXACT],
                      length=16, size=SIZE)
    got = ev.outputs(progs, points)[:, 6:]
    want = run_numpy_batch(progs, points, R)[:, 6:]
    np.testing.assert_allclose(got, want, rtol=4e-6, atol=1e-30, equal_nan=True)


def test_no_retrace_in_same_bucket(ev, points):
    rng = np.random.default_rng(0)
    y = np.zeros(len(points))
    counts = []
    for n in (SIZE - 1, SIZE - 2):  # pads to the same number of programs
        batch = to_arrays([random_program(rng, EXACT, 5) for _ in range(n)], length=16)
        ev.errors(batch, points, y)
        counts.append(ev.trace_count)
    assert counts[0] == counts[1] >= 1


def test_round_size():
    assert [kernels.round_size(n) for n in (1, 32, 33, 196, 1024, 1025)] == [
        1, 32, 34, 200, 1024, 1088]
    for n in range(1, 5000):
        assert n <= kernels.round_size(n) <= n * 1.0625


def test_opset(points, programs):
    """A kernel specialised to the batch's ops equals the general kernel; a batch with an
    op outside the evaluator's ops is refused."""
    names = sorted({OPS[int(o)].name for o in np.asarray(programs.op).ravel()})
    ev = Evaluator(n_registers=R, n_inputs=2, tile=128, backend="pallas", ops=tuple(names))
    arrays, P = ev._pad_batch(programs)
    xt, n_tiles, T = ev._tiles(points)
    rng = np.random.default_rng(5)
    y = rng.normal(size=(n_tiles, T))
    scale = rng.uniform(0.5, 2, (n_tiles, T))
    mask = np.arange(n_tiles * T).reshape(n_tiles, T) < len(points)
    general = kernels.errors(*arrays, xt, y, scale, mask, n_registers=R, tile=128,
                             interpret=True)
    special = kernels.errors(*arrays, xt, y, scale, mask, n_registers=R, tile=128,
                             interpret=True, opset=ev._opset)
    np.testing.assert_array_equal(np.asarray(general), np.asarray(special))
    narrow = Evaluator(n_registers=R, n_inputs=2, tile=128, backend="pallas", ops=("add",))
    with pytest.raises(ValueError, match="outside this evaluator's ops"):
        narrow.errors(programs, points, np.zeros(len(points)))
