"""scripts/bench_numerics.py: which programs it picks, the JSON it prints, and that what it
times computes what the program computes (C and JAX, bit for bit against run_numpy)."""

import csv
import importlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from evolve.catalog import load_problem
from evolve.eval.evaluator import run_numpy
from evolve.results import export
from test_export import load_module

ROOT = Path(__file__).resolve().parents[1]
FRONTS = ROOT / "docs" / "suite-h200"
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _script():
    return importlib.import_module("bench_numerics")  # scripts/ is on sys.path (conftest)


def _front(path: Path, rows: list[tuple]) -> None:
    """A front.csv with rows (cost, program text, certified max ULP or '')."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["error", "cost", "length", "program", "certified_max_ulp",
                    "certified_worst_x", "certified_over_1ulp"])
        for cost, text, ulp in rows:
            certified = ulp != ""
            w.writerow([ulp or 5.0, cost, text.count("\n"), text, ulp,
                        0.5 if certified else "", 0 if certified else ""])


CUBIC = "r1 = 0.5\nr2 = fma(r0, r1, r1)\nr1 = fma(r2, r0, r1)\nr1 = fma(r1, r0, r0)\nreturn r1\n"


def test_evolved_pick_is_the_cheapest_certified_under_1ulp(tmp_path):
    s = _script()
    problem = load_problem("exp2")
    _front(tmp_path / "exp2-1-front.csv", [(1, CUBIC, ""), (2, CUBIC, 1.5), (3, CUBIC, 0.95)])
    _front(tmp_path / "exp2-2-front.csv", [(4, CUBIC, 0.9)])
    c = s.evolved_candidate(problem, tmp_path)
    assert (c.label, c.max_ulp, c.under_1ulp) == ("exp2-1-front.csv row 2", 0.95, True)
    (tmp_path / "exp2-1-front.csv").unlink()
    _front(tmp_path / "exp2-2-front.csv", [(1, CUBIC, ""), (2, CUBIC, 3.0), (5, CUBIC, 1.25)])
    c = s.evolved_candidate(problem, tmp_path)  # none under 1 ULP: the most accurate, flagged
    assert (c.label, c.max_ulp, c.under_1ulp) == ("exp2-2-front.csv row 2", 1.25, False)
    assert s.evolved_candidate(load_problem("exp"), tmp_path) is None  # no front: no data
    assert s.op_counts(c.program, problem) == {"fma": 3}


def test_sollya_pick_is_the_cheapest_under_1ulp_else_the_most_accurate():
    s = _script()
    c = s.sollya_candidate(load_problem("exp2"))
    assert (c.label, c.under_1ulp) == ("minimax-6", True) and c.max_ulp < 1
    c = s.sollya_candidate(load_problem("exp2_nofma"))
    best = min(b["error"] for b in load_problem("exp2_nofma").baselines)
    assert c.max_ulp == best > 1 and not c.under_1ulp


@needs_gcc
def test_timed_c_and_jax_equal_run_numpy_bit_for_bit(tmp_path):
    s = _script()
    entries = []
    for name in ("exp2", "exp_nofma"):  # fma; and mul/add that must not be contracted
        problem = load_problem(name)
        entries += [(problem, s.evolved_candidate(problem, FRONTS)),
                    (problem, s.sollya_candidate(problem))]
    rng = np.random.default_rng(5)
    for k, cflags in enumerate(s.DEFAULT_CFLAGS):
        exe = s.build_harness(entries, cflags, tmp_path, f"h{k}")
        for problem, c in entries:
            lo, hi = problem.domain[0]
            x = np.concatenate([[lo, hi, 0.0], rng.uniform(lo, hi, 61)]).astype(np.float32)
            want = run_numpy(c.program, x, problem.n_registers)
            got = s.c_outputs(exe, c.name, x, tmp_path)
            assert got.view(np.uint32).tolist() == want.view(np.uint32).tolist(), (cflags, c.name)
    # the jitted function is the one `evolve export --format jax` writes, bit for bit
    problem, c = entries[0]
    module = load_module(export.export(c.program, problem, "jax", name="g"), tmp_path)
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    want = run_numpy(c.program, x, problem.n_registers).view(np.uint32).tolist()
    assert np.asarray(s.jax_function(c.program)(x)).view(np.uint32).tolist() == want
    assert np.asarray(module.g(x)).view(np.uint32).tolist() == want


@needs_gcc
def test_bench_lines_follow_the_benchmark_convention():
    s = _script()
    lines = s.bench_problems(["exp2"], FRONTS, calls=3000, repeats=1, points=1000,
                             jax_points=1000, cflags_sets=["-O2 -ffp-contract=off"],
                             check_points=65)
    keys = ["bench", "case", "metric", "value", "unit", "baseline", "baseline_value", "ratio"]
    for line in lines:
        assert list(line) == keys and line["bench"] == "numerics"
        assert json.loads(json.dumps(line)) == line
        assert isinstance(line["value"], float) and math.isfinite(line["value"])
        if line["baseline"] is None:
            assert line["baseline_value"] is None and line["ratio"] is None
        else:
            assert math.isclose(line["ratio"], line["value"] / line["baseline_value"])
    speed = {(ln["case"]["backend"], ln["case"]["impl"], ln["baseline"]) for ln in lines
             if ln["metric"] == "gcalls_per_s"}
    for backend, libm in (("c", "libm exp2f"), ("xla", "libm jnp.exp2")):
        assert {(backend, "evolved", "sollya minimax-6"), (backend, "evolved", libm),
                (backend, "sollya", libm), (backend, "libm", None)} <= speed
    first = lines[0]
    assert first["metric"] == "op_count" and first["value"] == first["baseline_value"] == 6
    ulp = next(ln for ln in lines if ln["metric"] == "max_ulp")
    assert ulp["value"] == pytest.approx(0.8998, abs=1e-4)
    timed = [ln for ln in lines if ln["metric"] == "ns_per_call"]
    assert len(timed) == 6 and all(ln["case"]["calls"] in (3000, 1000) for ln in timed)
    # exp2's programs are fma only: nothing for XLA to contract, so every backend is exact
    assert all(ln["case"]["differ_from_run_numpy"] == 0 for ln in timed
               if ln["case"]["impl"] != "libm")


def test_cli_refuses_flags_that_change_the_arithmetic(capsys):
    s = _script()
    with pytest.raises(SystemExit, match="ffp-contract=off"):
        s.main(["--problems", "exp2", "--cflags", "-O3 -ffast-math"])
    with pytest.raises(SystemExit, match="not function problems"):
        s.main(["--problems", "nguyen1"])


def test_without_gcc_it_says_what_to_install(monkeypatch):
    s = _script()
    monkeypatch.setattr(s.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="gcc not found.*apt-get install gcc"):
        s.main(["--problems", "exp2"])
