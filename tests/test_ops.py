"""The ops table (evolve.ops): every op has every spelling, and each spelling computes the
op: numpy against JAX on random float32 values (exactly rounded ops bit for bit), the
export spellings (python, JAX, C, sympy) through exported programs against numpy, LaTeX
against sympy's printing, CUDA and PTX in the generated kernel source (nvcc is not here),
DEAP through the primitive set's names."""

from __future__ import annotations

import numpy as np
import pytest

from evolve.eval.cuda import kernel as cuda
from evolve.ops import CONST, OPS, sympy_functions
from evolve.problem import Problem
from evolve.program import Instruction, Program
from evolve.results import export
from test_export import load_module

NAMED = [op for op in OPS if op.arity]
SPELLINGS = ("sympy", "c", "cuda", "python", "latex", "deap")


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_every_op_has_every_spelling(op):
    for field in SPELLINGS:
        assert isinstance(getattr(op, field), str) and getattr(op, field), (op.name, field)
    if op.arity:
        assert callable(op.np_fn) and callable(op.jax_fn)
        names = [f"r{i}" for i in range(op.arity)]
        for field in ("sympy", "c", "cuda", "python", "latex"):  # every operand, once formatted
            text = getattr(op, field).format(*names, xp="np")
            assert all(n in text for n in names), (op.name, field, text)
    assert op.ptx is None or all(isinstance(line, str) for line in op.ptx)


def _args(op, n=4096, seed=0):
    rng = np.random.default_rng(seed)
    args = [(rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(np.float32)
            for _ in range(op.arity)]
    args[0][:6] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40]
    return args


def _same_bits(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


@pytest.mark.parametrize("op", NAMED, ids=lambda op: op.name)
def test_numpy_and_jax_agree(op):
    args = _args(op)
    want = op.np_fn(*args)
    got = np.asarray(op.jax_fn(*args))
    if op.exact:
        normal = np.all([np.abs(a) >= 1.2e-38 for a in args] + [np.abs(want) >= 1.2e-38],
                        axis=0) | ~np.isfinite(want)  # XLA's CPU flushes subnormals
        assert _same_bits(got, want)[normal].all()
    else:
        ok = np.isclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)
        assert ok.mean() > 0.999


def _single(op) -> tuple[Program, Problem]:
    """A program of just ``op`` on its inputs (x0, x1, x2), and a problem for export."""
    n = max(op.arity, 1)
    prog = Program((Instruction(OPS.index(op), 3, tuple(range(op.arity))),), 3)
    problem = Problem(name="ops", description="one op", reference=lambda x: x[:, 0],
                      domain=((-10.0, 10.0),) * n, ops=tuple(o.name for o in OPS),
                      n_registers=4)
    return prog, problem


@pytest.mark.parametrize("op", NAMED, ids=lambda op: op.name)
def test_python_spelling_exported_equals_numpy(op, tmp_path):
    prog, problem = _single(op)
    module = load_module(export.export(prog, problem, "python"), tmp_path)
    args = _args(op, 2000, seed=1)
    assert _same_bits(module.f(*args), op.np_fn(*args)).all()


@pytest.mark.parametrize("op", NAMED, ids=lambda op: op.name)
def test_sympy_spelling_exported_is_the_real_operation(op, tmp_path):
    import sympy

    prog, problem = _single(op)
    module = load_module(export.export(prog, problem, "sympy"), tmp_path)
    symbols = sorted(module.expr.free_symbols, key=str)
    rng = np.random.default_rng(2)
    args = [rng.uniform(0.5, 2.0, 64) for _ in range(op.arity)]
    f = sympy.lambdify(symbols, module.expr, "numpy")
    got = np.broadcast_to(f(*args[: len(symbols)]), (64,))
    want = op.np_fn(*(a.astype(np.float64) for a in args))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    inputs = (sympy.symbols(" ".join(f"x{i}" for i in range(op.arity)), real=True)
              if op.arity > 1 else (sympy.Symbol("x", real=True),))
    assert module.expr == sympy_functions()[op.name](*inputs)


@pytest.mark.parametrize("op", NAMED, ids=lambda op: op.name)
def test_latex_spelling_is_what_sympy_prints(op):
    import sympy

    names = sympy.symbols("a b c")[: op.arity]
    assert op.latex.format(*map(str, names)) == sympy.latex(
        sympy_functions()[op.name](*names))


def test_c_spellings_compile_and_equal_numpy(tmp_path):
    """Every op's C spelling, through exported C (gcc), equals numpy (tests/test_export.py
    runs the compiled functions on many more programs)."""
    import shutil
    import subprocess

    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    for op in NAMED:
        prog, problem = _single(op)
        source = export.export(prog, problem, "c", name="g")
        assert op.c.format(*(f"r{i}" for i in range(op.arity))) in source
        path = tmp_path / f"{op.name}.c"
        n = 1000
        params = ", ".join(f"float x{i}" for i in range(op.arity))
        args = _args(op, n, seed=3)
        for i, a in enumerate(args):
            a.tofile(tmp_path / f"{op.name}_{i}.bin")
        reads = "".join(f'    FILE* f{i} = fopen("{tmp_path}/{op.name}_{i}.bin", "rb"); '
                        f"fread(a{i}, 4, {n}, f{i}); fclose(f{i});\n" for i in range(op.arity))
        decl = "".join(f"static float a{i}[{n}];\n" for i in range(op.arity))
        call = ", ".join(f"a{i}[k]" for i in range(op.arity))
        path.write_text(source + f"""
#include <stdio.h>
float g({params});
{decl}static float out[{n}];
int main(void) {{
{reads}    for (int k = 0; k < {n}; ++k) out[k] = g({call});
    FILE* o = fopen("{tmp_path}/{op.name}_out.bin", "wb"); fwrite(out, 4, {n}, o); fclose(o);
    return 0;
}}
""")
        exe = tmp_path / op.name
        done = subprocess.run(["gcc", "-std=c99", "-O2", "-ffp-contract=off", "-o", str(exe),
                               str(path), "-lm"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        subprocess.run([str(exe)], check=True, timeout=60)
        got = np.fromfile(tmp_path / f"{op.name}_out.bin", np.float32)
        want = op.np_fn(*args)
        if op.exact:
            assert _same_bits(got, want).all(), op.name
        else:
            assert np.isclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True).mean() > 0.999


def test_cuda_and_ptx_spellings_are_in_the_generated_kernel():
    every = tuple(range(len(OPS)))
    acc = cuda.source(every, 8, cuda.CudaShape(points=4, threads=128))
    smem = cuda.source(every, 8, cuda.CudaShape(points=4, registers="smem"))
    for op in NAMED:
        spelled = op.cuda.format("a", "b", "c")
        assert spelled in smem, op.name  # smem computes every op in C++
        if op.ptx is None:  # acc computes it in C++, after copying its arguments out
            assert spelled in acc, op.name
        else:
            assert op.ptx[-1].split()[0] in acc, op.name  # its PTX instruction
    assert {op.name for op in NAMED if op.ptx} == {"add", "sub", "mul", "div", "fma", "neg",
                                                    "abs", "sqrt"}


def test_deap_spellings_name_the_primitives():
    from evolve.search.trees import primitive_set

    pset = primitive_set([op.name for op in NAMED], 3)
    names = {p.name for prims in pset.primitives.values() for p in prims}
    assert names == {op.deap for op in NAMED}
    assert OPS[CONST].deap == "literal"
