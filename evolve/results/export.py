"""Export: a program as standalone source code in Python (numpy), JAX, C99, SymPy or LaTeX.

``export(program, problem, fmt)`` returns the text of a function ``f(x)`` (one argument
per input) that computes what the program computes, one statement per instruction (dead
instructions, which cannot reach the returned register, are left out, in the code and in
the program its header shows). Each op is written as its spelling in the ops table
(``evolve.ops``). The generated code imports nothing from evolve.

- ``python``: numpy float32 code. Literals are ``np.float32(v)`` with ``v`` the exact
  value of the float32; ``fma`` rounds once, through float64 rounded to odd, as in the ops
  table (a small helper is inlined). Equal to ``run_numpy`` bit for bit.
- ``jax``: the same in ``jax.numpy``. ``fma`` needs ``jax_enable_x64``; float32 roundings
  are kept only with ``XLA_FLAGS=--xla_allow_excess_precision=false``; on GPUs XLA's
  float32 ``div`` and ``sqrt`` are not correctly rounded (see ``evolve.eval.pallas``), and on
  CPUs XLA flushes subnormal float32 values to zero. For exactly rounded ops it equals the
  evaluator's lax path on CPUs bit for bit, and ``run_numpy`` away from subnormals.
- ``c``: a C99 function ``float f(float x)`` with hex float literals (exact) and
  ``fmaf``; ``min``/``max`` are IEEE 754-2019 minimum/maximum, emitted as static inline
  helpers (``ops.C_HELPERS``). Compile with ``-ffp-contract=off`` (no contraction of
  ``a * b + c`` into an FMA) and without ``-ffast-math``; link with ``-lm``.
- ``sympy``: a module that builds the real-number expression ``expr`` of the program,
  with literals as ``sympy.Float`` of their exact values (optionally simplified);
  ``to_sympy`` gives the expression itself.
- ``latex``: that expression (optionally simplified) in LaTeX (``to_latex``); literals
  with 9 significant digits.

For a problem with ``linear_scaling`` the model is ``a * f(x) + b``, with ``a, b`` the
least-squares fit of the program's outputs on the training points (``scaled_model``):
every format exports that model, as the program with the two literals and the multiply
and add appended (``evolve.scaling.scaled``), and its header says so.

``export_run`` picks a member of a run's front (``choose_row``) and exports it.
"""

from __future__ import annotations

import keyword
import math
import re
from pathlib import Path

import numpy as np

from evolve.c_code import c_literal as _c_literal  # noqa: F401 (tests read it here)
from evolve.c_code import c_source as _c_source
from evolve.c_code import header as _header
from evolve.c_code import initial_registers as _initial
from evolve.c_code import input_names as _input_names
from evolve.errors import UserError
from evolve.ops import CONST, OPS, sympy_functions
from evolve.problem import Problem
from evolve.program import Program, input_dependent
from evolve.program import live as _live
from evolve.scaling import linear_fit, scaled
from evolve.text import format_literal

FORMATS = ("python", "jax", "c", "sympy", "latex")

# helpers the ops' python spellings call (Op.python), defined in the generated code
_PY_FMA = '''
def _fma(a, b, c):
    """a * b + c rounded once to float32: exact product in float64, sum rounded to odd."""
    a, b, c = (np.asarray(v, np.float64) for v in (a, b, c))
    p = a * b
    s = p + c
    bp = s - p
    e = (p - (s - bp)) + (c - bp)  # the exact error of s (TwoSum)
    bits = s.view(np.int64)
    inexact = (e != 0) & np.isfinite(s) & (s != 0)
    away = (e > 0) == (s > 0)
    bits = np.where(inexact & ((bits & 1) == 0), bits + np.where(away, 1, -1), bits)
    return bits.view(np.float64).astype(np.float32)
'''

_JAX_FMA = '''
def _fma(a, b, c):
    """a * b + c rounded once to float32: exact product in float64, sum rounded to odd."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError("fma needs float64: jax.config.update('jax_enable_x64', True)")
    a, b, c = (jnp.asarray(v).astype(jnp.float64) for v in (a, b, c))
    p = a * b
    s = p + c
    bp = s - p
    e = (p - (s - bp)) + (c - bp)  # the exact error of s (TwoSum)
    bits = lax.bitcast_convert_type(s, jnp.int64)
    inexact = (e != 0) & jnp.isfinite(s) & (s != 0)
    away = (e > 0) == (s > 0)
    step = jnp.where(away, 1, -1).astype(jnp.int64)
    bits = jnp.where(inexact & ((bits & 1) == 0), bits + step, bits)
    return lax.bitcast_convert_type(bits, jnp.float64).astype(jnp.float32)
'''

_ARRAY_MINMAX = '''
def _minimum(a, b):
    """IEEE 754-2019 minimum: NaN if either is NaN, and -0 < +0."""
    pick_a = (a < b) | ((a == b) & {xp}.signbit(a))
    return {xp}.where({xp}.isnan(a) | {xp}.isnan(b), a + b, {xp}.where(pick_a, a, b))


def _maximum(a, b):
    """IEEE 754-2019 maximum: NaN if either is NaN, and +0 > -0."""
    pick_a = (a > b) | ((a == b) & ~{xp}.signbit(a))
    return {xp}.where({xp}.isnan(a) | {xp}.isnan(b), a + b, {xp}.where(pick_a, a, b))
'''


# -- the straight-line code every format shares ---------------------------------------------
def _exact_repr(value: float) -> str:
    """A Python float literal of the float32 ``value``'s exact value."""
    return repr(float(np.float32(value)))


def _check_name(name: str) -> None:
    c_keywords = {"auto", "break", "case", "char", "const", "continue", "default", "do",
                  "double", "else", "enum", "extern", "float", "for", "goto", "if", "inline",
                  "int", "long", "register", "restrict", "return", "short", "signed",
                  "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned",
                  "void", "volatile", "while"}
    if (not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or keyword.iskeyword(name)
            or name in c_keywords or re.fullmatch(r"(r|x)\d*|_\w*", name)):
        raise UserError(f"function name {name!r} is not usable: give an identifier such as "
                        "'exp2_approx' (not a keyword, not r<N> or x<N>, no leading '_')")


# -- numpy and JAX ------------------------------------------------------------------------
def _array_source(program: Program, problem: Problem, name: str, info: str, jax: bool) -> str:
    xp = "jnp" if jax else "np"
    live = _live(program)
    names = {ins.name for ins in live}
    inputs = _input_names(problem.n_inputs)
    doc = _header(program, problem, info)
    if jax:
        doc += ["", "Keeps float32 roundings only with XLA_FLAGS=--xla_allow_excess_precision="
                "false; fma needs", "jax_enable_x64 (mul is written so XLA cannot fuse it into "
                "an FMA). On GPUs, XLA's float32 div and sqrt are "
                "not correctly rounded; on CPUs,", "XLA flushes subnormal float32 values to "
                "zero."]
    out = ['"""' + doc[0]] + doc[1:] + ['"""', ""]
    out += (["import jax", "import jax.numpy as jnp", "from jax import lax"] if jax
            else ["import numpy as np"])
    out.append("")
    if "fma" in names:
        out += ["", (_JAX_FMA if jax else _PY_FMA).strip("\n"), ""]
    if names & {"min", "max"}:
        out += ["", _ARRAY_MINMAX.format(xp=xp).strip("\n"), ""]
    out += ["", f"def {name}({', '.join(inputs)}):",
            f'    """The program on float32 input{"s" if len(inputs) > 1 else ""}; '
            f'returns float32 (arrays broadcast)."""']
    for v in inputs:
        out.append(f"    {v} = {xp}.asarray({v}, dtype={xp}.float32)")
    body = []
    first = inputs[0]
    for r in _initial(program, problem.n_inputs):
        body.append(f"r{r} = {inputs[r]}" if r < problem.n_inputs
                    else f"r{r} = {xp}.zeros_like({first})")
    for ins in live:
        if ins.op == CONST:
            body.append(f"r{ins.dst} = {xp}.float32({_exact_repr(ins.value)})  "
                        f"# {format_literal(ins.value)}")
        else:
            args = [f"r{a}" for a in ins.args]
            op = OPS[ins.op]  # its spelling: python, or jax where that differs
            spelling = op.jax if jax and op.jax else op.python
            body.append(f"r{ins.dst} = " + spelling.format(*args, xp=xp))
    depends = program.output < problem.n_inputs  # the last value of the output register
    for ins, dep in zip(program.instructions, input_dependent(program, problem.n_inputs)):
        if ins.dst == program.output:
            depends = dep
    shape = f"{xp}.broadcast_shapes({', '.join(f'{xp}.shape({v})' for v in inputs)})"
    ret = (f"return r{program.output}" if depends else
           f"return {xp}.asarray({xp}.broadcast_to(r{program.output}, {shape}), "
           f"dtype={xp}.float32)")
    if jax:
        out += ["    " + line for line in body + [ret]]
    else:
        out.append('    with np.errstate(all="ignore"):  # IEEE results: inf, nan, no warnings')
        out += ["        " + line for line in body + [ret]]
    return "\n".join(out) + "\n"


# -- SymPy ----------------------------------------------------------------------------------
def to_sympy(program: Program, problem: Problem, simplify: bool = False):
    """The program as a sympy expression over real symbols ``x`` (or ``x0, x1, ...``).

    Literals are ``sympy.Float`` with the exact value of their float32; operations are the
    exact real ones (``fma`` is ``a*b + c``), so the expression is the program without
    float32 rounding."""
    import sympy

    fns = sympy_functions()
    regs = {i: sympy.Symbol(v, real=True) for i, v in enumerate(_input_names(problem.n_inputs))}
    for ins in _live(program):
        if ins.op == CONST:
            regs[ins.dst] = sympy.Float(float(np.float32(ins.value)))
            continue
        try:
            regs[ins.dst] = fns[ins.name](*(regs.get(a, sympy.Float(0.0)) for a in ins.args))
        except (ZeroDivisionError, ValueError, TypeError) as e:
            raise UserError(f"the program has no real-number expression: sympy fails on "
                            f"{ins.name}(...) writing r{ins.dst} ({type(e).__name__}: {e}), "
                            "as for 0/0 or a NaN; export it as python, jax or c") from None
    expr = regs.get(program.output, sympy.Float(0.0))
    return sympy.simplify(expr) if simplify else expr


def to_latex(program: Program, problem: Problem, simplify: bool = False) -> str:
    """The program's real-number expression (``to_sympy``) in LaTeX, literals shown with
    the 9 significant digits that identify a float32."""
    import sympy

    expr = to_sympy(program, problem, simplify)
    expr = expr.xreplace({f: sympy.Float(f, 9) for f in expr.atoms(sympy.Float)})
    return sympy.latex(expr)


def _sympy_source(program: Program, problem: Problem, info: str, simplify: bool) -> str:
    to_sympy(program, problem)  # refuses programs that sympy cannot express
    live = _live(program)
    inputs = _input_names(problem.n_inputs)
    doc = _header(program, problem, info)
    doc += ["", "The real-number expression of the program: literals are the exact values "
            "of its float32", "literals, operations are exact (no float32 rounding)."]
    names = {"Float", "Symbol"} | ({"simplify"} if simplify else set())
    for ins in live:
        names |= set(re.findall(r"\b([A-Za-z_]\w*)\(", OPS[ins.op].sympy))
    out = ['"""' + doc[0]] + doc[1:] + ['"""', "", f"from sympy import {', '.join(sorted(names))}",
                                       ""]
    for v in inputs:
        out.append(f'{v} = Symbol("{v}", real=True)')
    for r in _initial(program, problem.n_inputs):
        out.append(f"r{r} = {inputs[r]}" if r < problem.n_inputs else f"r{r} = Float(0.0)")
    for ins in live:
        if ins.op == CONST:
            out.append(f"r{ins.dst} = Float({_exact_repr(ins.value)})  "
                       f"# {format_literal(ins.value)}")
        else:
            out.append(f"r{ins.dst} = " + OPS[ins.op].sympy.format(*(f"r{a}" for a in ins.args)))
    out.append(f"expr = {'simplify(' if simplify else ''}r{program.output}"
               f"{')' if simplify else ''}")
    return "\n".join(out) + "\n"


# -- the model of a program ----------------------------------------------------------------
def scaling_of(program: Program, problem: Problem, n_train: int | None = None
               ) -> tuple[float, float]:
    """The linear scaling ``a, b`` of ``program`` for ``problem``: the least-squares fit of
    its float32 outputs to the targets of the first ``n_train`` training points (the
    search's ``search.n_train``; default the problem's), as the search scored it."""
    from evolve.eval.evaluator import run_numpy

    x = problem.points(n_train or problem.n_train)
    y, _ = problem.targets(x)
    a, b = linear_fit(run_numpy(program, x, problem.n_registers, np.float32), y)
    return float(a), float(b)


def scaled_model(program: Program, problem: Problem, n_train: int | None = None) -> Program:
    """The program of the model ``program`` stands for: itself, or with the problem's
    ``linear_scaling`` the program of ``a * program + b`` (``scaling_of``)."""
    if not problem.linear_scaling:
        return program
    a, b = scaling_of(program, problem, n_train)
    return scaled(program, a, b, problem.n_registers)


# -- public ---------------------------------------------------------------------------------
def export(program: Program, problem: Problem, fmt: str, *, name: str = "f",
           simplify: bool = False, info: str = "", n_train: int | None = None) -> str:
    """The source text of ``program`` in format ``fmt`` (one of ``FORMATS``): a function
    ``name(x)`` (``python``, ``jax``, ``c``) or a module defining ``expr`` (``sympy``,
    simplified if ``simplify``). ``info`` is a line for the header comment. With the
    problem's ``linear_scaling``, the model exported is ``a * program + b`` fitted on the
    first ``n_train`` training points (``scaled_model``)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose from: {', '.join(FORMATS)}")
    if simplify and fmt not in ("sympy", "latex"):
        raise UserError("simplify applies to the sympy and latex formats only")
    _check_name(name)
    if problem.linear_scaling:
        a, b = scaling_of(program, problem, n_train)
        program = scaled(program, a, b, problem.n_registers)
        line = (f"Linear scaling: the model is a * f(x) + b, a = {a!r}, b = {b!r} (least "
                f"squares on the {n_train or problem.n_train} training points; written as "
                "float32 literals, a left out if 1, b if 0); its cost with them is "
                f"{problem.cost(program):g}.")
        info = f"{info}\n{line}" if info else line
    if fmt == "c":
        return _c_source(program, problem, name, info)
    if fmt == "sympy":
        return _sympy_source(program, problem, info, simplify)
    if fmt == "latex":
        return to_latex(program, problem, simplify) + "\n"
    return _array_source(program, problem, name, info, jax=fmt == "jax")


def choose_row(rows: list[dict[str, str]], problem: Problem, index: int | None = None,
               best: bool = False, rule: str | None = None,
               n_train: int | None = None) -> int:
    """The front row to export: ``index``; or with ``best`` the lowest error; by default,
    for a regression problem (error "nmse") the model that the choice ``rule`` picks
    (``evolve.model_choice``; default ``REGRESSION_RULE``; ``n_train``, the run's
    training points, default the problem's), for others the cheapest row meeting the
    problem's target, else the lowest error. Errors are the certified max ULP where
    ``evolve verify`` wrote one (``verify.row_error``)."""
    from evolve.model_choice import REGRESSION_RULE, RULES, choose_model
    from evolve.results.certify import row_error

    n = len(rows)
    if index is not None:
        if not 0 <= index < n:
            raise UserError(f"--index {index} is out of range: the front has {n} "
                            f"program{'s' * (n != 1)} (indices 0..{n - 1}, in front.csv order)")
        return index
    if n == 0:
        raise UserError("the front is empty: nothing to choose from")
    if rule is not None and problem.error != "nmse":
        raise UserError(f"--choose applies to regression problems (error 'nmse'); problem "
                        f"{problem.name!r} measures {problem.error!r}: use --best or --index")
    if rule is not None and rule not in RULES:
        raise UserError(f"unknown model choice {rule!r}; choose from: {', '.join(RULES)}")
    errors = [row_error(r, problem) for r in rows]
    costs = [float(r["cost"]) for r in rows]
    errors = [e if not math.isnan(e) else math.inf for e in errors]
    if problem.error == "nmse" and not best:
        return choose_model(errors, costs, rule or REGRESSION_RULE, n_train or problem.n_train)
    meeting = [i for i in range(n) if problem.meets_target(errors[i])]
    if meeting and not best:
        return min(meeting, key=lambda i: (costs[i], errors[i], i))
    return min(range(n), key=lambda i: (errors[i], costs[i], i))


def _row_info(row: dict[str, str], index: int, problem: Problem) -> str:
    unit = " ULP" if problem.error == "max_ulp" else ""
    text = (f"Front row {index}: cost {float(row['cost']):g}, training error "
            f"{float(row['error']):.6g}{unit} ({problem.error})")
    if row.get("certified_max_ulp"):
        text += (f"; certified max error {float(row['certified_max_ulp']):.6g} ULP over every "
                 f"float32 of the domain (worst x = {row.get('certified_worst_x', '?')})")
    return text + "."


def export_run(run_dir: Path, fmt: str, index: int | None = None, best: bool = False,
               name: str = "f", simplify: bool = False,
               rule: str | None = None) -> tuple[str, int, str]:
    """Export a member of the front of ``run_dir``: (source text, row index, a line
    describing the row)."""
    from evolve.catalog import load_problem
    from evolve.results.certify import read_front
    from evolve.runs.driver import open_run
    from evolve.text import ParseError, parse_program

    run_dir = Path(run_dir)
    _, config = open_run(run_dir)
    problem = load_problem(config.problem)
    _, rows = read_front(run_dir)
    i = choose_row(rows, problem, index, best, rule, config.search.n_train)
    try:
        program = parse_program(rows[i]["program"], n_registers=problem.n_registers)
    except ParseError as e:
        raise UserError(f"front.csv row {i} holds no valid program (line {e.line}, column "
                        f"{e.column}: {e.detail}); the run directory is damaged") from None
    info = _row_info(rows[i], i, problem)
    if problem.error == "nmse" and index is None and not best:
        from evolve.model_choice import REGRESSION_RULE
        info += f" Model choice: {rule or REGRESSION_RULE} (--choose)."
    return export(program, problem, fmt, name=name, simplify=simplify, info=info,
                  n_train=config.search.n_train), i, info
