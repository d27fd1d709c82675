"""The JAX evaluator against the numpy reference, and its compile/numerics contracts."""

from fractions import Fraction

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve.eval.evaluator import Evaluator, run_numpy, run_numpy_batch
from evolve.ops import CONST, OPCODE, OPS
from evolve.program import Instruction, Program, to_arrays

R = 6
FLUSH = jax.devices()[0].platform == "cpu"
EXACT = [i for i, op in enumerate(OPS) if op.exact]
INEXACT = [i for i, op in enumerate(OPS) if not op.exact]


def random_program(rng: np.random.Generator, ops, length: int, n_registers: int = R) -> Program:
    instructions = []
    for _ in range(length):
        op = int(rng.choice(ops))
        args = tuple(int(a) for a in rng.integers(0, n_registers, OPS[op].arity))
        value = float(np.float32(rng.normal() * 4)) if op == CONST else 0.0
        instructions.append(Instruction(op, int(rng.integers(0, n_registers)), args, value))
    return Program(tuple(instructions), int(rng.integers(0, n_registers)))


def touches_subnormal(program: Program, x: np.ndarray) -> np.ndarray:
    """Per point: whether an op of ``program`` reads or makes a subnormal float32 there."""
    tiny = np.finfo(np.float32).tiny
    regs = np.zeros((R, len(x)), np.float32)
    regs[: x.shape[1]] = x.T
    hit = np.zeros(len(x), bool)

    def sub(v):
        return (np.abs(v) < tiny) & (v != 0)

    for ins in program.instructions:
        if ins.op == CONST:
            regs[ins.dst] = ins.value
            continue
        for a in ins.args:
            hit |= sub(regs[a])
        regs[ins.dst] = OPS[ins.op].np_fn(*(regs[a] for a in ins.args))
        hit |= sub(regs[ins.dst])
    return hit


@pytest.fixture(scope="module")
def ev32():
    return Evaluator(n_registers=R, n_inputs=2, tile=256)


@pytest.fixture(scope="module")
def points():
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, (300, 2)).astype(np.float32)
    x[:5] = [[0.0, -0.0], [np.inf, 1.0], [np.nan, 2.0], [1e38, 1e-30], [1e-39, -3e-42]]
    return x


def bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(0, 16))
def test_exact_ops_agree_bit_for_bit(ev32, points, seed, length):
    rng = np.random.default_rng(seed)
    programs = [random_program(rng, EXACT, int(rng.integers(0, length + 1))) for _ in range(5)]
    batch = to_arrays(programs, length=16)
    got = ev32.outputs(batch, points)
    want = run_numpy_batch(batch, points, R)
    # NaN payloads may differ between backends; every NaN is the same value to us.
    same = (bits(got) == bits(want)) | (np.isnan(got) & np.isnan(want))
    if FLUSH:  # XLA on CPUs flushes subnormals: points where one arose are exempt
        same |= np.stack([touches_subnormal(p, points) for p in programs]
                         + [np.zeros(len(points), bool)] * (len(same) - len(programs)))
    assert same.all()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_transcendental_ops_agree_closely(ev32, points, seed):
    rng = np.random.default_rng(seed)
    programs = [Program((Instruction(int(op), 3, (0,)),), 3) for op in INEXACT]
    programs.append(random_program(rng, EXACT + INEXACT, 6))
    batch = to_arrays(programs, length=16)
    got = ev32.outputs(batch, points[5:])
    want = run_numpy_batch(batch, points[5:], R)
    for p in range(len(programs) - 1):  # single ops: a few float32 ULPs
        np.testing.assert_allclose(got[p], want[p], rtol=4e-6, atol=1e-30, equal_nan=True)
    assert np.isnan(got[-1]).sum() == np.isnan(want[-1]).sum() or len(programs[-1]) > 0


def test_new_programs_in_same_bucket_do_not_retrace(points):
    ev = Evaluator(n_registers=R, n_inputs=2, tile=256)
    rng = np.random.default_rng(0)
    y = np.zeros(len(points))
    for n in (3, 7, 5):
        batch = to_arrays([random_program(rng, EXACT, int(rng.integers(1, 12))) for _ in range(n)],
                          length=16)
        ev.errors(batch, points, y)
        ev.outputs(batch, points)
    assert ev.trace_count == 2  # one trace per entry point, then never again


def test_division_by_zero_and_overflow_are_values():
    ev = Evaluator(n_registers=3, tile=128)
    x = np.array([0.0, 1.0, 3e38, -0.0], np.float32)
    div = Program((Instruction(OPCODE["div"], 1, (0, 0)),), 1)  # 0/0 = nan, x/x = 1
    big = Program((Instruction(OPCODE["mul"], 1, (0, 0)),), 1)  # overflows to inf
    log0 = Program((Instruction(OPCODE["log"], 1, (0,)),), 1)  # -inf, nan
    batch = to_arrays([div, big, log0])
    out = ev.outputs(batch, x)
    assert np.isnan(out[0, 0]) and out[0, 1] == 1.0
    assert np.isinf(out[1, 2])
    assert out[2, 0] == -np.inf
    err = ev.errors(batch, x, np.ones(4))
    assert np.isinf(err["max_abs"]).all()  # NaN and Inf count as the worst error


@pytest.mark.parametrize("backend", ["lax", "pallas", "native"])
def test_an_infinite_error_at_a_zero_scale_makes_the_scaled_max_nan(backend):
    # r1 = x / r2 (never written, zero): inf at x != 0, NaN at 0 (an infinite error). The
    # NaN point is the first of 5,120: XLA's CPU max over that many dropped it (inf then)
    from evolve.eval.cpu import kernel as native

    if backend == "native" and not native.available():
        pytest.skip("no C++ compiler here")
    prog = Program((Instruction(OPCODE["div"], 1, (0, 2)),), 1)
    x = np.linspace(0, 1, 5120, dtype=np.float32)
    scale = np.ones(5120)
    scale[0] = 0.0  # inf * 0 at x = 0
    devices = jax.devices("cpu") if backend == "native" else None  # a GPU host too
    ev = Evaluator(n_registers=3, n_inputs=1, backend=backend, ops=("div",), devices=devices)
    err = ev.errors(to_arrays([prog, prog]), x, np.zeros(5120), scale)
    assert np.isnan(err["max_scaled"]).all() and np.isinf(err["max_abs"]).all()
    # with no zero scale, the same errors are infinite, not NaN
    err = ev.errors(to_arrays([prog]), x, np.zeros(5120))
    assert np.isinf(err["max_scaled"]).all()


def test_errors_match_reference(ev32, points):
    rng = np.random.default_rng(5)
    programs = [random_program(rng, EXACT, 8) for _ in range(9)]
    batch = to_arrays(programs, length=16)
    x = points[5:]
    y = np.sin(x[:, 0].astype(np.float64))
    scale = 1 / (1 + np.abs(y))
    err = ev32.errors(batch, x, y, scale)
    with np.errstate(all="ignore"):
        diff = np.abs(run_numpy_batch(batch, x, R).astype(np.float64) - y)
    diff[np.isnan(diff)] = np.inf
    np.testing.assert_allclose(err["max_abs"], diff.max(1))
    np.testing.assert_allclose(err["max_scaled"], (diff * scale).max(1))
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(err["mse"], (diff**2).mean(1))


def test_float64_mode_matches_reference():
    ev = Evaluator(n_registers=R, n_inputs=1, dtype="float64", tile=128)
    rng = np.random.default_rng(2)
    x = rng.uniform(-2, 2, 200)
    programs = [random_program(rng, [o for o in EXACT if o != OPCODE["fma"]], 10) for _ in range(4)]
    batch = to_arrays(programs, length=16)
    got = ev.outputs(batch, x)
    assert got.dtype == np.float64
    want = run_numpy_batch(batch, x, R, np.float64)
    np.testing.assert_array_equal(got, want)


def _exact_fma32(a, b, c):
    return np.float32(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))


floats32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(a=floats32, b=floats32, c=floats32)
def test_fma_reference_rounds_once(a, b, c):
    a, b, c = (np.array([v], np.float32) for v in (a, b, c))
    exact = Fraction(float(a[0])) * Fraction(float(b[0])) + Fraction(float(c[0]))
    got = OPS[OPCODE["fma"]].np_fn(a, b, c)[0]
    if abs(exact) > Fraction(float(np.finfo(np.float32).max)):
        return  # overflow: inf either way
    # Correct rounding: float(Fraction) rounds to nearest double, which can double-round;
    # compare against the float32 neighbours of the exact value instead.
    lo = np.float32(float(exact))
    with np.errstate(over="ignore"):  # a neighbour of the largest float32 is infinite
        cands = {v for v in (lo, np.nextafter(lo, np.float32(np.inf)),
                             np.nextafter(lo, np.float32(-np.inf))) if np.isfinite(v)}
    best = min(cands, key=lambda v: (abs(Fraction(float(v)) - exact),
                                     int(np.float32(v).view(np.uint32)) & 1))
    assert got == best or (got == 0 and best == 0)


def test_fma_is_single_rounding_in_jax(ev32):
    rng = np.random.default_rng(9)
    abc = rng.normal(size=(4000, 3)).astype(np.float32)
    # inputs where two roundings differ from one: a*b = 1 + 2^-24 + tiny, c = -1
    abc[0] = [1 + 2**-12, 1 + 2**-12, -1]
    ev = Evaluator(n_registers=4, n_inputs=3, tile=512)
    prog = Program((Instruction(OPCODE["fma"], 3, (0, 1, 2)),), 3)
    got = ev.outputs(to_arrays([prog]), abc)[0]
    want = run_numpy(prog, abc, 4)
    np.testing.assert_array_equal(bits(got), bits(want))
    assert got[0] == np.float32(2**-11 + 2**-24)  # a*b+c exactly, not rounded twice


def test_bad_points_shape_is_a_clear_error(ev32):
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        ev32.outputs(to_arrays([Program((), 0)]), np.zeros((5, 3), np.float32))


def test_to_arrays_matches_a_plain_loop():
    """The vectorised to_arrays against the instruction-by-instruction definition, with
    empty programs, three-argument ops, padding rows and repeated calls (cached rows)."""
    from evolve.program import MAX_ARITY, f32_bits, from_arrays

    rng = np.random.default_rng(3)
    programs = [Program((), 1)]
    for _ in range(40):
        body = []
        for _ in range(int(rng.integers(0, 12))):
            op = int(rng.integers(0, len(OPS)))
            args = tuple(int(a) for a in rng.integers(0, 6, OPS[op].arity))
            body.append(Instruction(op, int(rng.integers(1, 6)), args,
                                    float(rng.normal()) if op == CONST else 0.0))
        programs.append(Program(tuple(body), int(rng.integers(0, 6))))
    for _ in range(2):
        batch = to_arrays(programs, length=16, size=64)
        op = np.zeros((64, 16), np.int32)
        args = np.zeros((64, 16, MAX_ARITY), np.int32)
        const = np.zeros((64, 16), np.float32)
        for p, prog in enumerate(programs):
            for i, ins in enumerate(prog.instructions):
                op[p, i] = ins.op
                args[p, i, : len(ins.args)] = ins.args
                const[p, i] = ins.value
        np.testing.assert_array_equal(batch.op, op)
        np.testing.assert_array_equal(batch.args, args)
        np.testing.assert_array_equal(batch.const, const)
        assert batch.const.dtype == np.float32 and batch.args.dtype == np.int32
        assert from_arrays(batch)[: len(programs)] == programs
    for v in (0.1, -0.0, 1e-46, 3.4028235e38, float("inf"), float("nan"), 2.0 ** -149):
        assert f32_bits(v) == int(np.array(v, dtype=np.float32).view(np.uint32))
        assert Instruction(CONST, 1, (), v)._key()[3] == f32_bits(np.float32(v))


def test_grow_pads_on_the_device_to_min_rows_with_skipped_rows():
    programs = [Program((Instruction(OPCODE["add"], 1, (0, 0)),), output=1)] * 5
    ev = Evaluator(n_registers=2, n_inputs=1, backend="lax", min_rows=64)
    arrays, P = ev._pad_batch(to_arrays(programs, length=8))
    grown = ev._grow(arrays)
    assert P == 5 and all(g.shape[0] >= 64 for g in grown)
    for i, (a, g) in enumerate(zip(arrays, grown)):
        g = np.asarray(g)
        assert g.shape[1:] == a.shape[1:] and g.dtype == a.dtype
        np.testing.assert_array_equal(g[: len(a)], a)
        assert (g[len(a):] == (-1 if i == 4 else 0)).all()  # lengths -1: rows kernels skip
    assert ev._grow(grown) is grown  # already tall enough
    # the grown arrays, sharded over the devices, feed the compiled call as host rows do
    x = np.linspace(-1, 1, 300, dtype=np.float32)[:, None]
    xt, n_tiles, T = ev._tiles(x)
    y = np.zeros(n_tiles * T)
    y[:300] = 2 * x[:, 0]
    mask = np.arange(n_tiles * T) < 300
    args = (xt, y.reshape(n_tiles, T), np.ones((n_tiles, T)), mask.reshape(n_tiles, T))
    on_device = np.asarray(ev._errors(*grown, *args))[:P]
    on_host = np.asarray(ev._errors(*arrays, *args))[:P]
    np.testing.assert_array_equal(on_device, on_host)
    assert (on_host == 0).all()  # x + x is 2x exactly
