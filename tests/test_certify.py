"""Certification (evolve.results.certify, `evolve verify`): every float32 of an interval, checked
against a brute-force numpy computation on tiny intervals; front.csv gains its columns."""

import csv
import math
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evolve
import tiny
from evolve.cli import main
from evolve.errors import UserError
from evolve.eval.evaluator import run_numpy
from evolve.problem import Problem, ulp32
from evolve.results import certify as verify
from evolve.runs.config import dump_config, replace_field
from evolve.runs.files import FRONT_COLUMNS, Lock, meets_target
from evolve.text import parse_program

TINY_DOMAIN = (1.0, 1.0 + 2 ** -10)  # 8193 float32 values
PROBLEM_FILE = f'''\
import evolve
import jax
import jax.numpy as jnp
import numpy as np

from evolve.problem import Problem

PROBLEM = Problem(
    name="tiny_exp2",
    description="2^x on [1, 1 + 2^-10]: 8193 float32 inputs, for tests",
    reference=lambda x: np.exp2(x[:, 0]),
    domain=({TINY_DOMAIN!r},),
    ops=("add", "sub", "mul", "fma", "div", "min", "max", "exp2"),
    target=1.0,
)
'''

# 2^x = 2 * 2^t with t = x - 1 (exact), near t = 0.
QUADRATIC = """\
r1 = 1.0
r1 = sub(r0, r1)
r2 = 0.48045301
r3 = 1.3862944
r2 = fma(r2, r1, r3)
r3 = 2.0
r2 = fma(r2, r1, r3)
return r2
"""
LINEAR = """\
r1 = 1.0
r1 = sub(r0, r1)
r2 = 1.3862944
r3 = 2.0
r2 = fma(r2, r1, r3)
return r2
"""
CONSTANT = """\
r1 = 2.0007
return r1
"""
# (error, cost, program) as an engine would write them: sorted by cost
FRONT = [(1000.0, 0.0, CONSTANT), (2.5, 2.0, LINEAR), (0.9, 3.0, QUADRATIC)]


def tiny_problem(domain=TINY_DOMAIN, reference=lambda x: np.exp2(x[:, 0]), **kw) -> Problem:
    return Problem(name="t", description="", reference=reference, domain=(domain,),
                   ops=("add", "sub", "mul", "fma", "div", "min", "max", "exp2", "abs"),
                   target=1.0, **kw)


def program(text: str):
    return parse_program(text, n_registers=8)


def make_run(root: Path, front=FRONT, header=FRONT_COLUMNS) -> Path:
    """A run directory holding what verify and export read: config.yaml (its problem: the
    tiny problem file) and front.csv."""
    problem_file = root / "tiny_exp2.py"
    problem_file.write_text(PROBLEM_FILE)
    run = root / "run"
    run.mkdir()
    config = replace_field(tiny.config(1), "problem", str(problem_file))
    (run / "config.yaml").write_text(dump_config(config))
    with open(run / "front.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for error, cost, text in front:
            label = [meets_target(error, None, 1.0)] if "meets_target" in header else []
            w.writerow([repr(error), repr(cost), len(program(text)), text.rstrip("\n"), *label])
    return run


def brute_force(prog, problem: Problem, x: np.ndarray):
    """Max ULP error, worst x, inputs over 1 ULP: plain numpy on every point."""
    out = run_numpy(prog, x, problem.n_registers, np.float32)
    y = problem.reference(x.astype(np.float64)[:, None])
    with np.errstate(all="ignore"):
        err = np.abs(out.astype(np.float64) - y)
    err[np.isnan(err)] = np.inf
    ulps = err / ulp32(y)
    i = int(np.argmax(ulps))
    return float(ulps[i]), float(x[i]), int(np.count_nonzero(ulps > 1))


def all_float32(lo: float, hi: float) -> np.ndarray:
    return verify.from_keys(np.arange(verify.order_key(lo), verify.order_key(hi) + 1))


# -- float32 enumeration ---------------------------------------------------------------------
def test_order_keys_enumerate_float32_in_order():
    assert verify.order_key(0.0) == 0 and verify.order_key(-0.0) == -1
    assert verify.order_key(1.0) == 0x3F800000  # [0, 1]: 1,065,353,217 values
    values = np.array([-np.inf, -1.5, -1e-45, -0.0, 0.0, 1e-45, 1.0, np.inf], np.float32)
    keys = np.array([verify.order_key(v) for v in values])
    assert (np.diff(keys) > 0).all()
    back = verify.from_keys(keys)
    assert np.array_equal(back.view(np.uint32), values.view(np.uint32))
    x = verify.from_keys(np.arange(-1000, 1000))
    assert (np.diff(x.astype(np.float64)) >= 0).all()
    assert np.count_nonzero(x == 0) == 2  # -0 then +0


@pytest.mark.parametrize("start, stride, n", [(-10, 1, 25), (-10, 3, 25), (-9, 3, 25),
                                              (5, 1, 9), (100, 7, 9), (-2 ** 31 + 9, 1000, 50)])
def test_key_ranges(start, stride, n):
    fast = verify._keys_range(start, stride, n)
    slow = verify.from_keys(start + stride * np.arange(n))
    assert np.array_equal(fast.view(np.uint32), slow.view(np.uint32))


def test_float32_interval_rounds_inwards():
    lo, hi = verify.float32_interval(0.1, 0.3)
    assert float(lo) >= 0.1 and float(np.nextafter(lo, np.float32(0))) < 0.1
    assert float(hi) <= 0.3 and float(np.nextafter(hi, np.float32(1))) > 0.3


def test_inverse_ulp32_is_one_over_ulp32():
    rng = np.random.default_rng(0)
    y = np.concatenate([
        [0.0, -0.0, 5e-324, 2.0 ** -1022, 2.0 ** -126, 2.0 ** -127, 2.0 ** -149, 2.0 ** -150,
         1.0, 2.0, np.nextafter(2.0, 0), 1e300, -3.0, np.finfo(np.float64).max],
        rng.standard_normal(5000) * 10.0 ** rng.integers(-300, 300, 5000)])
    got = np.asarray(jax.jit(verify.inverse_ulp32)(jnp.asarray(y, jnp.float64)))
    assert np.array_equal(got, 1 / ulp32(y))  # the JAX function the certificate uses


# -- certify -----------------------------------------------------------------------------
@pytest.mark.parametrize("text", [QUADRATIC, LINEAR, CONSTANT])
def test_certify_equals_brute_force(text):
    problem = tiny_problem()
    prog = program(text)
    cert = verify.certify(prog, problem)
    x = all_float32(*TINY_DOMAIN)
    assert cert.total == cert.points == len(x) == 8193
    assert cert.exhaustive and cert.stride == 1
    assert (cert.max_ulp, cert.worst_x, cert.over_1ulp) == brute_force(prog, problem, x)
    assert cert.sample_checked >= 129 and cert.sample_mismatches == 0
    assert cert.interval == TINY_DOMAIN
    assert "CERTIFIED: exhaustive over all 8,193 float32" in cert.describe()


def test_quadratic_is_under_one_ulp_and_linear_is_not():
    quad = verify.certify(program(QUADRATIC), tiny_problem())
    lin = verify.certify(program(LINEAR), tiny_problem())
    assert quad.max_ulp < 1 and quad.over_1ulp == 0
    assert lin.max_ulp > 1 and lin.over_1ulp > 0


def test_chunks_give_the_same_certificate():
    prog, problem = program(QUADRATIC), tiny_problem()
    one = verify.certify(prog, problem)
    many = verify.certify(prog, problem, chunk=1024)  # 9 chunks, the last one padded
    assert (one.max_ulp, one.worst_x, one.over_1ulp, one.max_abs) == (
        many.max_ulp, many.worst_x, many.over_1ulp, many.max_abs)
    assert many.sample_checked > one.sample_checked


def test_worst_inputs_are_the_worst_chunks_worst_points():
    prog, problem = program(LINEAR), tiny_problem()
    cert = verify.certify(prog, problem, chunk=1024)  # 9 chunks
    x = all_float32(*TINY_DOMAIN)
    out = run_numpy(prog, x, problem.n_registers, np.float32)
    y = problem.reference(x.astype(np.float64)[:, None])
    ulps = np.abs(out.astype(np.float64) - y) / ulp32(y)
    assert 1 < len(cert.worst_inputs) <= verify.WORST_INPUTS
    assert cert.worst_inputs[0] == (cert.worst_x, cert.max_ulp)
    errors = [u for _, u in cert.worst_inputs]
    assert errors == sorted(errors, reverse=True)
    # each is the worst point of a chunk (a device's share of a call) of its own
    per = 1024 // len(jax.devices())
    chunks = set()
    for v, u in cert.worst_inputs:
        (i,) = np.flatnonzero(x == np.float32(v))
        assert ulps[i] == u
        chunks.add(i // per)
    assert len(chunks) == len(cert.worst_inputs)


def test_an_interval_across_zero_holds_both_zeros():
    # [-2^-140, 2^-140]: 512 subnormals each side, -0 and +0.
    problem = tiny_problem(domain=(-2.0 ** -140, 2.0 ** -140), reference=lambda x: 3 + x[:, 0])
    prog = program("r1 = 3.0\nr1 = add(r0, r1)\nreturn r1\n")
    cert = verify.certify(prog, problem, chunk=256)
    x = all_float32(-2.0 ** -140, 2.0 ** -140)
    assert cert.total == len(x) == 1026
    assert (cert.max_ulp, cert.worst_x, cert.over_1ulp) == brute_force(prog, problem, x)
    assert cert.worst_x == -2.0 ** -140 and cert.max_ulp == 0  # 3 + x rounds to 3 in float64


def test_subnormal_flush_to_zero_refuses_the_certificate():
    problem = tiny_problem(domain=(2.0 ** -140, 2.0 ** -139), reference=lambda x: 3 * x[:, 0])
    prog = program("r1 = 3.0\nr1 = mul(r0, r1)\nreturn r1\n")  # exact in IEEE float32
    import jax

    from evolve.eval.cpu import kernel as native

    if verify.flushes_subnormals(tuple(jax.devices())):  # XLA on CPUs
        with pytest.raises(verify.CertificationError, match="flushes subnormal float32"):
            verify.certify(prog, problem, backend="lax")
    if native.available():  # the C++ kernel keeps subnormals, as numpy does
        cert = verify.certify(prog, problem, backend="native")
        assert cert.max_ulp == 0 and not cert.flushes_subnormals
        assert "C++ kernel" in cert.device


def test_stride_is_a_sampled_check_not_a_certificate():
    prog, problem = program(LINEAR), tiny_problem()
    cert = verify.certify(prog, problem, stride=7)
    assert not cert.exhaustive and cert.points == math.ceil(8193 / 7)
    x = all_float32(*TINY_DOMAIN)[::7]
    assert (cert.max_ulp, cert.worst_x, cert.over_1ulp) == brute_force(prog, problem, x)
    text = cert.describe()
    assert "SAMPLED CHECK, NOT A CERTIFICATE" in text and "CERTIFIED" not in text


def test_nan_and_inf_outputs_are_infinite_errors():
    prog = program("r1 = 0.0\nr1 = div(r0, r1)\nreturn r1\n")  # x / 0 = inf
    cert = verify.certify(prog, tiny_problem())
    assert cert.max_ulp == math.inf and cert.over_1ulp == 8193 and cert.worst_x == 1.0


def test_interval_argument_overrides_the_domain():
    cert = verify.certify(program(QUADRATIC), tiny_problem(), interval=(1.0, 1.0 + 2 ** -12))
    assert cert.total == 2049


def test_excess_precision_on_is_refused(monkeypatch):
    assert evolve.excess_precision_off("--xla_allow_excess_precision=false")
    assert not evolve.excess_precision_off("")
    assert not evolve.excess_precision_off(
        "--xla_allow_excess_precision=false --xla_allow_excess_precision=true")
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    with pytest.raises(UserError, match="excess precision is on"):
        verify.certify(program(QUADRATIC), tiny_problem())


def test_evaluator_disagreeing_with_numpy_is_no_certificate(monkeypatch):
    from evolve.eval import evaluator as interpreter

    real = interpreter.run_numpy

    def off_by_one_ulp(prog, x, n_registers, dtype=np.float32):
        out = real(prog, x, n_registers, dtype)
        return np.nextafter(out, np.float32(np.inf))

    monkeypatch.setattr(interpreter, "run_numpy", off_by_one_ulp)
    with pytest.raises(verify.CertificationError, match="disagrees with the numpy reference"):
        verify.certify(program(QUADRATIC), tiny_problem())
    # ops that are not exactly rounded may differ: counted, not refused
    inexact = program("r1 = exp2(r0)\nreturn r1\n")
    cert = verify.certify(inexact, tiny_problem())
    assert 0 < cert.sample_mismatches <= cert.sample_checked
    assert "differ from the numpy reference" in cert.describe()


def test_unsupported_problems_are_refused():
    two = Problem(name="t2", description="", reference=lambda x: x[:, 0],
                  domain=((0, 1), (0, 1)), ops=("add",))
    with pytest.raises(UserError, match="2 inputs"):
        verify.certify(program("return r0\n"), two)
    f64 = tiny_problem(dtype="float64")
    with pytest.raises(UserError, match="float32 inputs only"):
        verify.certify(program("return r0\n"), f64)


# -- the front of a run -------------------------------------------------------------------
def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_verify_run_writes_the_certified_columns(tmp_path):
    run = make_run(tmp_path)
    before = read_csv(run / "front.csv")
    results = verify.verify_run(run)
    assert [i for i, _ in results] == [2, 1, 0]  # meeting the target, then most accurate
    rows = read_csv(run / "front.csv")
    problem = tiny_problem()
    x = all_float32(*TINY_DOMAIN)
    for i, cert in results:
        row = rows[i]
        same = [k for k in FRONT_COLUMNS if k != "meets_target"]
        assert {k: row[k] for k in same} == {k: before[i][k] for k in same}
        max_ulp, worst, over = brute_force(program(row["program"]), problem, x)
        # the label follows the certificate, not the sampled error
        assert before[i]["meets_target"] == ("sampled only" if i == 2 else "no")
        assert row["meets_target"] == ("certified" if max_ulp < 1 else "no")
        assert float(row["certified_max_ulp"]) == max_ulp == cert.max_ulp
        assert float(row["certified_worst_x"]) == worst
        assert int(row["certified_over_1ulp"]) == over
    header = (run / "front.csv").read_text().splitlines()[0]
    assert header == ",".join(FRONT_COLUMNS + verify.CERTIFIED_COLUMNS)
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary left


def test_verify_run_limit_keeps_earlier_certificates(tmp_path):
    run = make_run(tmp_path)
    verify.verify_run(run, limit=2)
    rows = read_csv(run / "front.csv")
    assert rows[0]["certified_max_ulp"] == "" and rows[2]["certified_max_ulp"] != ""
    kept = rows[1]["certified_max_ulp"]
    verify.verify_run(run, limit=1)
    again = read_csv(run / "front.csv")
    assert again[1]["certified_max_ulp"] == kept and again[0]["certified_max_ulp"] == ""


def test_verify_run_with_a_stride_leaves_the_front_alone(tmp_path):
    run = make_run(tmp_path)
    before = (run / "front.csv").read_bytes()
    results = verify.verify_run(run, stride=16)
    assert len(results) == 3 and not results[0][1].exhaustive
    assert (run / "front.csv").read_bytes() == before


def test_verify_run_refuses_a_locked_run(tmp_path):
    run = make_run(tmp_path)
    lock = Lock(run)
    try:
        with pytest.raises(UserError, match="in use by another evolve process"):
            verify.verify_run(run)
    finally:
        lock.release()


# -- the command line ---------------------------------------------------------------------
def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evolve: error: ") and "Traceback" not in err
    return lines[0]


def test_cli_verify(tmp_path, capsys):
    run = make_run(tmp_path)
    assert main(["verify", str(run), "--limit", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert re.search(r"front row 2: max error 0\.\d+ ULP at x = ", captured.out)
    assert "CERTIFIED: exhaustive over all 8,193 float32 in [1.0, 1.0009765625]" in captured.out
    assert "wrote certified_max_ulp" in captured.out
    assert read_csv(run / "front.csv")[2]["certified_max_ulp"]


def test_cli_verify_progress_and_stride(tmp_path, capsys):
    run = make_run(tmp_path)
    assert main(["verify", str(run), "--stride", "5", "--limit", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("SAMPLED CHECK, NOT A CERTIFICATE: every 5th") == 2
    assert "not a certificate: front.csv not changed" in captured.out
    assert "[1/2] front row 2" in captured.err and "100.0% of 1,639 points" in captured.err


@pytest.mark.parametrize("args, message", [
    (["verify", "{tmp}/nowhere"], "does not exist"),
    (["verify", "{run}", "--limit", "0"], "--limit"),
    (["verify", "{run}", "--stride", "x"], "--stride"),
    (["verify", "{empty}"], "empty front"),
    (["verify", "{nofront}"], "front.csv' is missing"),
])
def test_cli_verify_bad_input(tmp_path, capsys, args, message):
    run = make_run(tmp_path)
    (tmp_path / "e").mkdir()
    empty = make_run(tmp_path / "e", front=[])
    (tmp_path / "n").mkdir()
    nofront = make_run(tmp_path / "n")
    (nofront / "front.csv").unlink()
    argv = [a.format(tmp=tmp_path, run=run, empty=empty, nofront=nofront) for a in args]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in _one_error_line(captured.err) and captured.out == ""


def test_device_reference_equals_host_reference():
    """The targets computed on the device from the problem's jax_reference give the same
    certificate as the host's numpy reference; a wrong device reference is caught."""
    import jax.numpy as jnp

    prog = program(QUADRATIC)
    host = verify.certify(prog, tiny_problem(), chunk=4096, reference="host")
    dev = verify.certify(prog, tiny_problem(jax_reference=lambda x: jnp.exp2(x[:, 0])),
                         chunk=4096, reference="device")
    assert (dev.max_ulp, dev.worst_x, dev.over_1ulp) == (host.max_ulp, host.worst_x,
                                                         host.over_1ulp)
    assert dev.reference.startswith("on the device") and host.reference == "host"
    wrong = tiny_problem(jax_reference=lambda x: jnp.exp2(x[:, 0]) * (1 + 2.0 ** -30))
    with pytest.raises(verify.CertificationError, match="reference"):
        verify.certify(prog, wrong, chunk=4096, reference="device")
    with pytest.raises(UserError, match="jax_reference"):
        verify.certify(prog, tiny_problem(), reference="device")


def test_verify_with_certify_teach_adds_failed_programs_worst_inputs(tmp_path):
    from evolve.runs import hard_points
    from evolve.runs.config import load_config

    front = [(1000.0, 0.0, CONSTANT), (0.95, 2.0, LINEAR), (0.9, 3.0, QUADRATIC)]
    run = make_run(tmp_path, front=front)
    config = replace_field(load_config(run / "config.yaml"), "certify.teach", True)
    (run / "config.yaml").write_text(dump_config(config))
    failed = [c for _, c in verify.verify_run(run) if c.max_ulp >= 1]  # in its order
    taught = [p.x[0] for p in hard_points.load(run)]
    assert failed and taught[0] == failed[0].worst_x
    assert set(taught) == {x for c in failed
                           for x in [c.worst_x] + [v for v, u in c.worst_inputs if u >= 1]}
