"""Export (evolve.results.export, `evolve export`): the generated Python, JAX and C functions equal
the interpreter bit for bit; the SymPy expression evaluates close to it."""

import csv
import importlib.util
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

from evolve.cli import main
from evolve.errors import UserError
from evolve.eval.evaluator import Evaluator, run_numpy
from evolve.ops import OPS
from evolve.problem import Problem
from evolve.program import Instruction, Program, to_arrays
from evolve.results import certify as verify
from evolve.results import export
from evolve.text import parse_program
from strategies import programs
from test_certify import FRONT, LINEAR, QUADRATIC, make_run

EXACT_OPS = tuple(op.name for op in OPS if op.exact)  # const and the exactly rounded ops
R = 8
PROBLEM = Problem(name="t", description="for export tests", reference=lambda x: x[:, 0],
                  domain=((-10.0, 10.0),), ops=tuple(op.name for op in OPS), n_registers=R)

MINMAX = """\
r1 = -0.0
r2 = min(r0, r1)
r3 = max(r0, r1)
r4 = 0.0
r4 = div(r4, r4)
r5 = min(r2, r4)
r6 = abs(r3)
r6 = sqrt(r6)
r7 = neg(r6)
r2 = fma(r7, r2, r3)
r2 = sub(r2, r5)
r1 = max(r2, r1)
r1 = mul(r1, r3)
return r1
"""
CONSTANT_ONLY = "r1 = 1.5\nr2 = 2.5\nr1 = mul(r1, r2)\nreturn r1\n"
IDENTITY = "r3 = 7.0\nreturn r0\n"  # dead code only
ZERO_REGISTER = "r1 = add(r0, r5)\nr1 = mul(r1, r1)\nreturn r1\n"  # r5 starts at zero
UNWRITTEN_OUTPUT = "r1 = add(r0, r0)\nreturn r4\n"
HAND_WRITTEN = [QUADRATIC, LINEAR, MINMAX, CONSTANT_ONLY, IDENTITY, ZERO_REGISTER,
                UNWRITTEN_OUTPUT]


def program(text: str) -> Program:
    return parse_program(text, n_registers=R)


def random_exact_program(rng: np.random.Generator, length: int) -> Program:
    """A random program of exactly rounded ops, literals of any finite bit pattern."""
    ops = [i for i, op in enumerate(OPS) if op.exact]
    instructions = []
    for _ in range(length):
        op = int(rng.choice(ops))
        dst = int(rng.integers(1, R))
        if OPS[op].arity == 0:
            if rng.random() < 0.5:
                value = float(rng.choice([0.0, -0.0, 1.0, -2.5, 0.1, 3e-39, 1e30]))
            else:
                value = float(np.float32(rng.standard_normal() * 10.0 ** rng.integers(-40, 38)))
            instructions.append(Instruction(op, dst, (), value if np.isfinite(value) else 1.0))
        else:
            args = tuple(int(a) for a in rng.integers(0, R, OPS[op].arity))
            instructions.append(Instruction(op, dst, args))
    return Program(tuple(instructions), int(rng.integers(0, R)))


def sample_inputs(n: int = 100_000, seed: int = 0) -> np.ndarray:
    """Float32 inputs of every kind: random bit patterns (NaN, inf, subnormals too),
    special values and ordinary numbers."""
    rng = np.random.default_rng(seed)
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.17549435e-38,
                        3.4028235e38, 0.5, 2.0, 1e-3], np.float32)
    bits = rng.integers(0, 2 ** 32, n // 2, dtype=np.uint64).astype(np.uint32).view(np.float32)
    normal = (rng.standard_normal(n - n // 2 - len(special)) * 4).astype(np.float32)
    return np.concatenate([special, bits, normal])


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    got = np.asarray(got, np.float32)
    assert got.shape == want.shape and got.dtype == np.float32
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    bad = np.flatnonzero(~same)
    assert not len(bad), f"{len(bad)} differ, e.g. {got[bad[:3]]} against {want[bad[:3]]}"


_modules = 0


def load_module(source: str, tmp_path: Path, name: str = "exported"):
    """Import generated source as a module (tests may run our generated code)."""
    global _modules
    _modules += 1
    path = tmp_path / f"{name}_{_modules}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- Python ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text", HAND_WRITTEN)
def test_python_export_equals_run_numpy(text, tmp_path):
    prog = program(text)
    module = load_module(export.export(prog, PROBLEM, "python"), tmp_path)
    x = sample_inputs()
    assert_same_bits(module.f(x), run_numpy(prog, x, R))
    assert module.f(np.float32(1.25)).shape == ()  # scalars work too


@settings(max_examples=40, deadline=None)
@given(programs(n_registers=R, ops=EXACT_OPS))
def test_python_export_of_random_programs(tmp_path_factory, prog):
    module = load_module(export.export(prog, PROBLEM, "python"), tmp_path_factory.mktemp("py"))
    x = sample_inputs(2000)
    assert_same_bits(module.f(x), run_numpy(prog, x, R))


def test_python_export_imports_nothing_from_evolve():
    source = export.export(program(MINMAX), PROBLEM, "python")
    assert "evolve" not in source.replace("Exported by evolve", "")
    assert "import numpy as np" in source
    # literals are the exact float32 values, with the short form as a comment
    assert "np.float32(0.4804530143737793)  # 0.480453" in export.export(
        program(QUADRATIC), PROBLEM, "python")


def test_python_export_of_inexact_ops_is_close(tmp_path):
    prog = program("r1 = exp2(r0)\nr2 = sin(r1)\nr1 = tanh(r2)\nr1 = add(r1, r2)\nreturn r1\n")
    module = load_module(export.export(prog, PROBLEM, "python"), tmp_path)
    x = np.linspace(-3, 3, 1001, dtype=np.float32)
    np.testing.assert_allclose(module.f(x), run_numpy(prog, x, R), rtol=1e-6, atol=1e-6)


def test_two_input_export(tmp_path):
    two = Problem(name="t2", description="", reference=lambda x: x[:, 0], ops=("add",),
                  domain=((0, 1), (0, 1)), n_registers=R)
    prog = program("r2 = fma(r0, r1, r0)\nr2 = div(r2, r1)\nreturn r2\n")
    module = load_module(export.export(prog, two, "python"), tmp_path)
    x = sample_inputs(1000).reshape(500, 2)
    assert_same_bits(module.f(x[:, 0], x[:, 1]), run_numpy(prog, x, R))


# -- JAX ------------------------------------------------------------------------------------
# The JAX export is exact on CPUs (on GPUs XLA's float32 div and sqrt are not correctly
# rounded, as its docstring says): run it and the evaluator on the CPU wherever we are.
@pytest.fixture(scope="module")
def evaluator():
    import jax

    return Evaluator(n_registers=R, backend="lax", devices=jax.devices("cpu"))


@pytest.fixture(autouse=True)
def on_cpu():
    import jax

    with jax.default_device(jax.devices("cpu")[0]):
        yield


@pytest.mark.parametrize("text", HAND_WRITTEN)
def test_jax_export_equals_the_interpreter(text, tmp_path, evaluator):
    import jax

    prog = program(text)
    module = load_module(export.export(prog, PROBLEM, "jax"), tmp_path)
    # normal numbers and specials: on CPUs XLA flushes subnormals, numpy does not
    x = np.concatenate([sample_inputs(20_000)[:14], (np.random.default_rng(1).standard_normal(
        20_000) * 4).astype(np.float32)])
    want = run_numpy(prog, x, R)
    assert_same_bits(np.asarray(module.f(x)), want)
    assert_same_bits(np.asarray(jax.jit(module.f)(x)), want)
    # and against the batched evaluator on inputs of every kind, subnormals included
    x = sample_inputs(20_000)
    evaluated = evaluator.outputs(to_arrays([prog], length=16, size=16), x)[0]
    assert_same_bits(np.asarray(jax.jit(module.f)(x)), evaluated)


def test_jax_export_of_random_programs(tmp_path, evaluator):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(3000) * 4).astype(np.float32)
    progs = [random_exact_program(rng, int(rng.integers(1, 14))) for _ in range(12)]
    evaluated = evaluator.outputs(to_arrays(progs, length=16, size=16), x)
    import jax

    for prog, want in zip(progs, evaluated):
        module = load_module(export.export(prog, PROBLEM, "jax"), tmp_path)
        assert_same_bits(np.asarray(module.f(x)), want)
        assert_same_bits(np.asarray(jax.jit(module.f)(x)), want)  # no FMA contraction


def test_jitted_jax_export_keeps_mul_then_add_rounded_twice(tmp_path):
    """XLA on CPUs contracts a*b + c into one FMA under jit; the export must not let it."""
    import jax

    prog = program("r1 = mul(r0, r0)\nr2 = 0.3\nr1 = add(r1, r2)\nreturn r1\n")
    module = load_module(export.export(prog, PROBLEM, "jax"), tmp_path)
    x = (np.random.default_rng(2).standard_normal(20_000) * 4).astype(np.float32)
    assert_same_bits(np.asarray(jax.jit(module.f)(x)), run_numpy(prog, x, R))


# -- C --------------------------------------------------------------------------------------
DRIVER = """\
#include <stdio.h>
#include <stdlib.h>

%(declarations)s
static float (*const FUNCTIONS[])(float) = {%(names)s};

int main(int argc, char **argv)
{
    /* argv: input file (float32), then one output file per function */
    FILE *in = fopen(argv[1], "rb");
    long n_functions = (long) (sizeof FUNCTIONS / sizeof FUNCTIONS[0]);
    if (!in || argc != 2 + n_functions)
        return 2;
    fseek(in, 0, SEEK_END);
    long n = ftell(in) / (long) sizeof(float);
    rewind(in);
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    if (fread(x, sizeof(float), n, in) != (size_t) n)
        return 3;
    fclose(in);
    for (long k = 0; k < n_functions; k++) {
        for (long i = 0; i < n; i++)
            y[i] = FUNCTIONS[k](x[i]);
        FILE *out = fopen(argv[2 + k], "wb");
        fwrite(y, sizeof(float), n, out);
        fclose(out);
    }
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_c_export_compiled_equals_run_numpy(tmp_path):
    rng = np.random.default_rng(11)
    progs = [program(t) for t in HAND_WRITTEN]
    progs += [random_exact_program(rng, int(rng.integers(1, 16))) for _ in range(25)]
    names = [f"f{i}" for i in range(len(progs))]
    sources = []
    for prog, name in zip(progs, names):
        path = tmp_path / f"{name}.c"
        path.write_text(export.export(prog, PROBLEM, "c", name=name))
        sources.append(str(path))
    (tmp_path / "driver.c").write_text(DRIVER % {
        "declarations": "\n".join(f"float {n}(float x);" for n in names),
        "names": ", ".join(names)})
    exe = tmp_path / "driver"
    done = subprocess.run(["gcc", "-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra",
                           "-pedantic", "-Werror", "-o", str(exe), str(tmp_path / "driver.c"),
                           *sources, "-lm"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    x = sample_inputs()
    x.tofile(tmp_path / "x.bin")
    outs = [tmp_path / f"y{i}.bin" for i in range(len(progs))]
    done = subprocess.run([str(exe), str(tmp_path / "x.bin"), *map(str, outs)],
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for prog, out in zip(progs, outs):
        assert_same_bits(np.fromfile(out, np.float32), run_numpy(prog, x, R))


def test_c_export_spelling():
    source = export.export(program(QUADRATIC), PROBLEM, "c")
    assert "float f(float x)" in source and "#include <math.h>" in source
    assert "r2 = 0x1.ebfbep-2f;  /* 0.480453 */" in source  # exact hex literal
    assert "r2 = fmaf(r2, r1, r3);" in source
    assert "evolve_minimumf" not in source  # helpers only when used
    minmax = export.export(program(MINMAX), PROBLEM, "c")
    assert "static inline float evolve_minimumf(float a, float b)" in minmax
    assert "fminf" not in minmax and "fmaxf" not in minmax
    assert "(void) x;" in export.export(program(CONSTANT_ONLY), PROBLEM, "c")


@pytest.mark.parametrize("value", [0.0, -0.0, 1.0, -2.5, 1e-45, 3.4028235e38, 0.1, 1.17549435e-38])
def test_c_literals_are_exact(value):
    literal = export._c_literal(value)
    assert literal.endswith("f")
    assert float.fromhex(literal[:-1]) == float(np.float32(value))
    assert math.copysign(1, float.fromhex(literal[:-1])) == math.copysign(1, value)


# -- SymPy ----------------------------------------------------------------------------------
@pytest.mark.parametrize("simplify", [False, True])
def test_sympy_export_is_close(simplify, tmp_path):
    import sympy

    prog = program(QUADRATIC)
    source = export.export(prog, PROBLEM, "sympy", simplify=simplify)
    module = load_module(source, tmp_path)
    expr = export.to_sympy(prog, PROBLEM, simplify=simplify)
    assert sympy.simplify(module.expr - expr) == 0
    x = np.linspace(1, 1.001, 101, dtype=np.float32)
    value = sympy.lambdify(module.x, module.expr, "numpy")(x.astype(np.float64))
    np.testing.assert_allclose(value, run_numpy(prog, x, R), rtol=1e-6)
    # literals are the exact float32 values
    floats = [a for a in sympy.preorder_traversal(export.to_sympy(prog, PROBLEM))
              if isinstance(a, sympy.Float)]
    assert sympy.Rational(float(np.float32(0.48045301))) in {sympy.Rational(f) for f in floats}


def test_sympy_export_of_every_op_matches_to_sympy(tmp_path):
    import sympy

    with pytest.raises(UserError, match="no real-number expression"):
        export.export(program(MINMAX), PROBLEM, "sympy")  # it computes 0/0
    prog = program(MINMAX.replace("r4 = div(r4, r4)", "r4 = div(r0, r3)"))
    module = load_module(export.export(prog, PROBLEM, "sympy"), tmp_path)
    assert module.expr == export.to_sympy(prog, PROBLEM)
    text = "".join(f"r{i % 7 + 1} = {op.name}({', '.join(['r0'] * op.arity)})\n"
                   for i, op in enumerate(OPS) if op.arity)
    every = program(text + "return r1\n")
    module = load_module(export.export(every, PROBLEM, "sympy"), tmp_path)
    assert module.expr == export.to_sympy(every, PROBLEM)
    x = np.array([0.3, 0.7, 1.9], np.float32)
    for text in ("r1 = exp2(r0)\nr1 = log(r1)\nreturn r1\n",
                 "r1 = sqrt(r0)\nr2 = 2.0\nr1 = max(r1, r2)\nr1 = tanh(r1)\nreturn r1\n"):
        prog = program(text)
        fn = sympy.lambdify(sympy.Symbol("x", real=True), export.to_sympy(prog, PROBLEM), "numpy")
        np.testing.assert_allclose(fn(x.astype(np.float64)), run_numpy(prog, x, R), rtol=1e-6)


# -- choosing and errors -----------------------------------------------------------------------
def test_bad_names_and_formats():
    prog = program(QUADRATIC)
    for name in ("x", "r1", "float", "def", "1f", "a-b", "_f"):
        with pytest.raises(UserError, match="function name"):
            export.export(prog, PROBLEM, "c", name=name)
    with pytest.raises(UserError, match="unknown export format"):
        export.export(prog, PROBLEM, "fortran")
    assert "def exp2_approx(x):" in export.export(prog, PROBLEM, "python", name="exp2_approx")


def rows(*pairs, certified=None):
    out = [{"error": repr(e), "cost": repr(c), "program": "return r0"} for e, c in pairs]
    for i, v in (certified or {}).items():
        out[i]["certified_max_ulp"] = repr(v)
    return out


def test_choose_row():
    p = PROBLEM.__class__(**{**{f: getattr(PROBLEM, f) for f in (
        "name", "description", "reference", "domain", "ops", "n_registers")}, "target": 1.0})
    front = rows((50.0, 1.0), (0.9, 3.0), (0.5, 5.0), (0.2, 9.0))
    assert export.choose_row(front, p) == 1  # the cheapest meeting the target
    assert export.choose_row(front, p, best=True) == 3
    assert export.choose_row(front, p, index=2) == 2
    # a certified error replaces the training error
    assert export.choose_row(rows((50.0, 1.0), (0.9, 3.0), (0.5, 5.0),
                                  certified={1: 1.2}), p) == 2
    assert export.choose_row(rows((50.0, 1.0), (3.0, 3.0)), p) == 1  # none meets it
    with pytest.raises(UserError, match=r"--index 4 is out of range: the front has 4 programs"):
        export.choose_row(front, p, index=4)


def test_export_run_uses_certified_errors(tmp_path):
    run = make_run(tmp_path)  # rows: constant (cost 0), linear (2), quadratic (3)
    text, index, info = export.export_run(run, "python")
    assert index == 2 and "certified" not in info
    verify.verify_run(run, limit=1)  # the quadratic: certified under 1 ULP
    text, index, info = export.export_run(run, "c")
    assert index == 2 and "certified max error 0." in info and "certified max error" in text


# -- the command line ------------------------------------------------------------------------
def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evolve: error: ") and "Traceback" not in err
    return lines[0]


def test_cli_export_to_stdout_and_file(tmp_path, capsys):
    run = make_run(tmp_path)
    assert main(["export", str(run), "--format", "python"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith('"""Exported by evolve') and "def f(x):" in captured.out
    assert "exported front row 2" in captured.err
    out = tmp_path / "approx.c"
    assert main(["export", str(run), "--format", "c", "--index", "1", "--name", "exp2_lin",
                 "--out", str(out)]) == 0
    assert "float exp2_lin(float x)" in out.read_text()
    assert f"Written to {out}" in capsys.readouterr().out
    assert main(["export", str(run), "--format", "sympy", "--best", "--simplify"]) == 0
    assert "expr = simplify(r2)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["export", "{tmp}/nowhere", "--format", "c"], "does not exist"),
    (["export", "{run}", "--format", "c", "--index", "3"], "--index 3 is out of range"),
    (["export", "{run}", "--format", "c", "--index", "-1"], "--index"),
    (["export", "{run}", "--format", "c", "--best", "--index", "0"], "not allowed with"),
    (["export", "{run}"], "--format"),
    (["export", "{run}", "--format", "pyhton"], "did you mean 'python'?"),
    (["export", "{run}", "--format", "c", "--simplify"], "--simplify applies to"),
    (["export", "{run}", "--format", "c", "--name", "float"], "function name"),
    (["export", "{run}", "--format", "c", "--out", "{tmp}"], "is a directory"),
    (["export", "{empty}", "--format", "c"], "empty front"),
    (["export", "{run}", "--format", "c", "--choose", "bic"], "applies to regression problems"),
    (["export", "{run}", "--format", "c", "--choose", "bic", "--best"], "not allowed with"),
    (["export", "{run}", "--format", "c", "--choose", "aic"], "choose from: accurate, best"),
])
def test_cli_export_bad_input(tmp_path, capsys, args, message):
    run = make_run(tmp_path)
    (tmp_path / "e").mkdir()
    empty = make_run(tmp_path / "e", front=[])
    argv = [a.format(tmp=tmp_path, run=run, empty=empty) for a in args]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in _one_error_line(captured.err) and captured.out == ""


def test_front_rows_round_trip_through_csv(tmp_path):
    run = make_run(tmp_path)
    with open(run / "front.csv", newline="") as f:
        body = list(csv.reader(f))[1:]
    assert [float(r[1]) for r in body] == [c for _, c, _ in FRONT]


def test_the_header_shows_the_program_without_dead_instructions():
    prog = program("r3 = 7.0\nr1 = add(r0, r0)\nr2 = mul(r1, r1)\nreturn r1\n")
    for fmt in ("python", "jax", "c"):
        source = export.export(prog, PROBLEM, fmt)
        assert "without its dead instructions" in source and "r1 = add(r0, r0)" in source
        assert "r3 = " not in source and "r2 = " not in source  # the dead instructions


def test_choose_row_of_a_regression_front_follows_the_model_choice():
    from evolve.catalog import load_problem

    p = load_problem("nguyen-8")  # error nmse, 20 training points, target 1e-12
    front = rows((0.5, 1.0), (1e-3, 3.0), (5e-4, 40.0))
    assert export.choose_row(front, p) == 1  # bic, the default: 40 nodes do not pay for half
    assert export.choose_row(front, p, rule="accurate") == 2  # within 1.5x of the lowest
    assert export.choose_row(front, p, rule="bic", n_train=10_000) == 2
    assert export.choose_row(front, p, best=True) == 2
    assert export.choose_row(rows((0.5, 1.0), (1e-13, 5.0), (1e-14, 9.0)), p) == 1  # exact
    with pytest.raises(UserError, match="unknown model choice 'smallest'; choose from"):
        export.choose_row(front, p, rule="smallest")
    ulp = load_problem("exp2")
    with pytest.raises(UserError, match="--choose applies to regression problems"):
        export.choose_row(rows((0.5, 1.0)), ulp, rule="bic")


def test_cli_exports_the_chosen_model_of_a_regression_run(tmp_path, capsys):
    """`evolve run` on an SR problem, then `evolve export --choose`: the header names the
    rule, and the function computes the front row's scaled model."""
    run = tmp_path / "sr"
    assert main(["run", "nguyen-8", "--generations", "2", "--run-dir", str(run), "--quiet",
                 "--set", "search.population=8", "--set", "search.children=8",
                 "--set", "search.fit_iterations=2"]) == 0
    out = capsys.readouterr().out
    assert "the model chosen from the front" in out and "\n# tree: " in out  # trees: SR's own
    for rule in ("bic", None):
        argv = ["export", str(run), "--format", "python", "--out", str(tmp_path / "f.py")]
        assert main(argv + (["--choose", rule] if rule else [])) == 0
        text = (tmp_path / "f.py").read_text()
        assert f"Model choice: {rule or 'bic'} (--choose)." in text
        f = load_module(text, tmp_path).f
        assert np.isfinite(f(np.linspace(0.5, 4, 8, dtype=np.float32))).all()
    capsys.readouterr()


# -- linear scaling -------------------------------------------------------------------------
def test_every_format_exports_the_scaled_model(tmp_path):
    """With linear scaling the exported model is a * f + b (a, b fitted on the training
    points): python, jax and sympy compute it, C and LaTeX spell it, the header says so."""
    import sympy

    from evolve.catalog import load_problem
    from evolve.scaling import linear_fit

    p = load_problem("nguyen-8")  # sqrt(x) on [0, 4]: a = -1/3, b = 1/2 undo themselves
    prog = parse_program("r2 = sqrt(r0)\nr3 = -3.0\nr1 = mul(r2, r3)\nr3 = 1.5\n"
                         "r1 = add(r1, r3)\nreturn r1\n", n_registers=p.n_registers)
    x = p.points(p.n_train)
    y, _ = p.targets(x)
    a, b = linear_fit(run_numpy(prog, x, p.n_registers), y)
    model = export.scaled_model(prog, p)
    assert export.scaling_of(prog, p) == (float(a), float(b))
    assert p.cost(model) == p.cost(prog) + 4
    grid = np.linspace(0, 4, 101, dtype=np.float32)
    f = load_module(export.export(prog, p, "python"), tmp_path).f
    assert_same_bits(f(grid), run_numpy(model, grid, p.n_registers))
    np.testing.assert_allclose(f(grid), np.sqrt(grid.astype(np.float64)), atol=3e-6)
    source = export.export(prog, p, "sympy")
    assert "Linear scaling: the model is a * f(x) + b" in source
    expr = export.to_sympy(model, p)
    xs = sympy.Symbol("x", real=True)
    assert abs(float(expr.subs(xs, 2.25)) - 1.5) < 1e-5
    latex = export.export(prog, p, "latex")  # sympy folds a and b into the expression
    assert latex.startswith("1.0000000") and "\\sqrt{x}" in latex
    c = export.export(prog, p, "c")
    assert f"{export._c_literal(a)};" in c and f"{export._c_literal(b)};" in c
    jax_source = export.export(prog, p, "jax")
    assert jax_source.count("jnp.float32(") == 4  # the program's two literals, a and b
    # without scaling the program is exported as it is
    from dataclasses import replace

    plain = export.export(prog, replace(p, linear_scaling=False), "python")
    assert "Linear scaling" not in plain
    assert_same_bits(load_module(plain, tmp_path).f(grid), run_numpy(prog, grid, p.n_registers))
