"""Symbolic regression: evolve against DEAP, gplearn and Operon on the same problems,
seeds and wall-clock budget. Prints one JSON object a line (and appends it to --out).

    python scripts/bench_sr.py --problems nguyen,feynman --seeds 5 --budget 60 \
        --engines evolve,deap,gplearn,operon --jobs 16 --out sr.jsonl
    python scripts/bench_sr.py --problems nguyen,feynman,strogatz --noise 0,0.01 \
        --scaling on,off --engines evolve,operon --seeds 2 --budget 20 --jobs 2 --out sr.jsonl
    python scripts/bench_sr.py --summary sr.jsonl        # the docs/symbolic-regression.md table from a JSONL file

Each (engine, problem, seed, noise) cell runs in its own process, pinned to one core with
one thread (OMP/BLAS threads 1, XLA's CPU thread pool off, one XLA device) and with every
accelerator hidden (``JAX_PLATFORMS=cpu``, no visible CUDA or ROCm device: on a GPU host
cells would otherwise share its GPUs and measure that), and gets the same budget: the clock starts after imports and data loading, so compilation (ours: the JAX
evaluator) counts. evolve's cells use JAX's persistent compilation cache as ``evolve run``
does (``EVOLVE_CACHE_DIR``), so a cell loads from disk what an earlier cell compiled (a
user's second run); the first cell to need a shape compiles it. evolve, DEAP and gplearn run whole generations while the next one,
predicted to last as long as the last one did, would end within the budget (so a cell
ends at or a little under it); Operon stops by its own ``max_time`` (whole seconds
left). ``wall_s`` is the search's time; choosing and converting the model afterwards is
``after_s``, not counted. Every engine gets the problem's training points and the op set
+ - x / sin cos exp log sqrt with constants. ``--noise`` levels (SRBench's 0, 0.001,
0.01, 0.1: Gaussian noise of that many standard deviations of the clean training
targets, ``Problem.noise``) apply to the training targets only: recovery is judged on the
noise-free test points. Results per cell:

- ``test_r2``: R^2 of the final model on the held-out test points (noise-free);
- ``exact``: the model, simplified by sympy with every constant rounded to 3 decimals,
  equals the true formula with its constants evaluated and rounded the same way (docs/symbolic-regression.md);
  or does so after constants within 1e-5 (relative) of a/b, a/b pi or a/(b pi) (b <= 12)
  are replaced by them first (so that 2 sin(x) sin(y + 1.5707964) counts as 2 sin(x) cos(y)),
  or after products are distributed over sums (``sympy.expand_mul``: a scaled model
  8.3e-6 x (x + 1)(120538.8 x^2 + 120538.8) counts as x^4 + x^3 + x^2 + x);
- ``recovered``: ``exact`` or ``test_r2 > 0.999999``;
- ``size``: nodes of the simplified sympy expression (``sympy.preorder_traversal``), one
  measure for every engine; ``native_size``: the engine's own node count of the model
  (evolve's with linear scaling: the program's size + 2 for a != 1 + 2 for b != 0, as
  Operon counts its scaled models).

Engines and their settings (each its authors' defaults or published examples, except the
shared op set; population 1000 for the peers):

- ``evolve``: trees (``search.representation=tree``), NSGA-II on (NMSE, size), constant
  fitting, the equivalence cache; NMSE after linear scaling (the problems' default;
  ``--scaling off`` or ``on,off`` runs it without, recorded as ``settings.scaling``), the
  model then a * program + b (``evolve.results.export.scaled_model``); the model is the smallest of the final Pareto front
  within 1.5x of its lowest training loss, losses floored at 1e-12 since evaluation is
  float32 (``--select best``: PySR's rule, the largest drop of log-loss per added node);
- ``deap``: DEAP 1.4's symbolic-regression example (``eaSimple``, cxpb 0.5, mutpb 0.1,
  tournament 3, ramped half-and-half 1..2, uniform mutation, height limit 17), numpy
  float64 with IEEE ops (no protection: a NaN or inf is the worst fitness, as for us),
  MSE; the model is the hall of fame's best;
- ``gplearn``: ``SymbolicRegressor`` defaults (MAE, parsimony 0.001, tournament 20) with
  the op set (gplearn's protected div, log and sqrt; exp clipped at |x| <= 100), grown one
  generation at a time with ``warm_start``; the model is ``_program``;
- ``operon``: ``pyoperon.sklearn.SymbolicRegressor`` defaults with 10 local-search
  (Levenberg-Marquardt) iterations, ``max_time`` = budget, one thread; the model is
  ``model_`` (its minimum-description-length choice).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENGINES = ("evolve", "deap", "gplearn", "operon")
NGUYEN = tuple(f"nguyen-{k}" for k in range(1, 13))
FEYNMAN = tuple(f"feynman-{eq}" for eq in (
    "I.6.2a", "I.6.2", "I.8.14", "I.10.7", "I.12.1", "I.14.3", "I.18.4", "I.25.13",
    "I.29.4", "I.34.27", "II.3.24", "II.38.14"))
STROGATZ = tuple(f"strogatz-{system}-{k}" for system in (
    "bacres", "barmag", "glider", "lv", "predprey", "shearflow", "vdp") for k in (1, 2))
SETS = {"nguyen": NGUYEN, "feynman": FEYNMAN, "strogatz": STROGATZ}
R2_RECOVERED = 0.999999
SIMPLIFY_SECONDS = 30
PEER_POPULATION = 1000

# Threads pinned to one per cell, accelerators hidden (set before numpy, JAX or Operon start).
CELL_ENV = {
    "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "", "HIP_VISIBLE_DEVICES": "",
    "ROCR_VISIBLE_DEVICES": "",
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1 "
                 "--xla_force_host_platform_device_count=1",
}


# -- problems -------------------------------------------------------------------------
def expand_problems(spec: str) -> list[str]:
    """Problem names from "nguyen,feynman,keijzer-4,...": sets expand, names pass."""
    out: list[str] = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        out.extend(SETS.get(item, (item,)))
    return list(dict.fromkeys(out))


def problem_set(name: str) -> str:
    return name.split("-", 1)[0]


def symbols(problem):
    """Sympy symbols x0.. with the signs the problem's domain gives them: positive for a
    domain [0, b] too (uniform draws never give 0 exactly; exp(y log x) is then x^y)."""
    import sympy

    out = []
    for i, (lo, _) in enumerate(problem.domain):
        kw = {"positive": True} if lo >= 0 else {}
        out.append(sympy.Symbol(f"x{i}", real=True, **kw))
    return out


# -- scoring --------------------------------------------------------------------------
class _Timeout(Exception):
    pass


def _alarm(seconds: int):
    def handler(signum, frame):
        raise _Timeout

    signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)


def _rounded(expr, digits: int = 3):
    import sympy

    return expr.xreplace({f: sympy.Float(round(float(f), digits))
                          for f in expr.atoms(sympy.Float)})


def _snapped(expr, rel: float = 1e-5):
    """``expr`` with each constant within ``rel`` of a simple value (a/b or a/b times pi
    or 1/pi, b <= 12) replaced by it, so that sin(x + 1.5707964) simplifies to cos(x)."""
    import sympy

    def snap(f: float):
        for k in (0, 1, -1):
            scale = math.pi ** k
            for b in range(1, 13):
                a = round(f * b / scale)
                if a and abs(a) <= 100 and abs(a / b * scale - f) <= rel * abs(f):
                    return sympy.Rational(a, b) * sympy.pi ** k
        return None

    out = {}
    for f in expr.atoms(sympy.Float):
        v = snap(float(f))
        if v is not None:
            out[f] = v
    return expr.xreplace(out)


def r2_score(y, pred) -> float | None:
    import numpy as np

    pred = np.asarray(pred, np.float64).reshape(-1)
    if pred.shape != y.shape or not np.all(np.isfinite(pred)):
        return None
    ss = float(np.sum((y - np.mean(y)) ** 2))
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else None


def score(problem, expr, pred_test, y_test) -> dict:
    """test R^2, exact recovery (sympy), recovered, size of the simplified expression."""
    import sympy

    syms = symbols(problem)
    out = {"test_r2": r2_score(y_test, pred_test), "exact": False, "simplified": None,
           "size": None, "note": None}
    if expr is None:
        out["note"] = "no expression"
    else:
        try:
            _alarm(SIMPLIFY_SECONDS)
            simple = sympy.simplify(expr)
            out["simplified"] = str(_rounded(simple, 6))
            out["size"] = sum(1 for _ in sympy.preorder_traversal(simple))
            truth = problem.formula(syms, sympy)
            truth = _rounded(sympy.nfloat(sympy.simplify(truth), exponent=False))
            # a scaled model a * (c g(x)) + b carries its scale in two constants: products
            # distributed (expand_mul), a c is one coefficient, rounded as one
            for candidate in (simple, sympy.simplify(_snapped(simple)),
                              sympy.expand_mul(simple)):
                found = sympy.nfloat(candidate, exponent=False)  # sqrt stays sqrt
                diff = sympy.simplify(_rounded(found) - truth)
                if diff == 0 or _rounded(sympy.expand(diff)) == 0:
                    out["exact"] = True
                    break
        except _Timeout:
            out["note"] = f"sympy.simplify took over {SIMPLIFY_SECONDS} s: not exact"
        except Exception as e:  # sympy fails on some expressions (e.g. with zoo): not exact
            out["note"] = f"sympy: {type(e).__name__}: {str(e)[:120]}"
        finally:
            signal.alarm(0)
        if out["size"] is None:
            out["size"] = sum(1 for _ in sympy.preorder_traversal(expr))
    out["recovered"] = bool(out["exact"] or (out["test_r2"] is not None
                                             and out["test_r2"] > R2_RECOVERED))
    return out


# -- engines --------------------------------------------------------------------------
def run_generations(step, t0: float, budget: float) -> tuple[int, float]:
    """Calls ``step()`` (one generation) at least once, then again while another
    generation, predicted to take as long as the last, would end by ``t0 + budget``.
    Returns the generations run and the seconds since ``t0`` when the last ended."""
    generations, begun = 0, time.perf_counter()
    while True:
        step()
        generations += 1
        now = time.perf_counter()
        last, begun = now - begun, now
        if now - t0 + last > budget:
            return generations, now - t0


# evolve's model choice from its final front: the rules of `evolve export --choose`
# (evolve.model_choice.RULES; not imported here, so that the parent process leaves JAX alone)
SELECT_RULES = ("accurate", "best", "lowest", "bic")


def select_model(errors, sizes, rule: str = "bic", n: int | None = None) -> int:
    """``evolve.model_choice.choose_model``: the index of the model ``rule`` picks."""
    from evolve.model_choice import choose_model

    return choose_model(errors, sizes, rule, n)


def run_evolve(problem, seed, budget, t0, args) -> dict:
    import jax
    import numpy as np

    import evolve
    from evolve.eval.evaluator import run_numpy
    from evolve.results.export import scaled_model, to_sympy
    from evolve.search.engine import Engine, SearchParams
    from evolve.search.selection import front_indices
    from evolve.text import format_program

    # compiled code from disk where an earlier cell compiled the same shapes, as `evolve
    # run` does (EVOLVE_CACHE_DIR; EVOLVE_NO_COMPILATION_CACHE=1: off): a user's second run
    evolve.use_compilation_cache()
    params = SearchParams(population=args.population, children=args.population,
                          representation=args.representation, mating=args.mating)
    engine = Engine(problem, params, devices=jax.devices("cpu")[:1])
    state = engine.init(seed)

    def step():
        nonlocal state
        state = engine.step(state).state

    generations, searched = run_generations(step, t0, budget)
    idx = front_indices(np.stack([state.error, state.cost], axis=1))
    n = len(engine.x_train)
    pick = int(idx[select_model(state.error[idx], state.cost[idx], args.select, n)])
    program = scaled_model(state.programs[pick], problem)  # a * f + b with scaling on
    x_test, y_test = problem.test_data()
    pred = run_numpy(program, x_test, problem.n_registers, np.float32)
    # the whole front, for comparing model choices on the held-out points: each member's
    # training error, search cost, model size, test R^2 and text (as "model" holds it: the
    # tree, or the scaled model's program), and each rule's pick
    front = []
    for i in idx.tolist():
        model = scaled_model(state.programs[i], problem)
        r2 = r2_score(y_test, run_numpy(model, x_test, problem.n_registers, np.float32))
        text = state.genomes[i] if state.genomes else format_program(model)
        front.append([float(state.error[i]), float(state.cost[i]), problem.cost(model), r2,
                      text])
    picks = {rule: int(select_model(state.error[idx], state.cost[idx], rule, n))
             for rule in SELECT_RULES}
    syms = symbols(problem)
    try:  # to_sympy names inputs x (one input) or x0, x1, ...: give them the domain's signs
        expr = to_sympy(program, problem)
        expr = expr.xreplace({s: syms[int(s.name[1:] or 0)] for s in expr.free_symbols})
    except Exception:
        expr = None
    return {"expr": expr, "pred": pred, "native_size": problem.cost(program),
            "searched_s": searched, "generations": generations, "evaluations": state.evaluations,
            "model": state.genomes[pick] if state.genomes else format_program(program),
            "front": front, "picks": picks}


def rescore(record: dict) -> dict:
    """An evolve record judged again (``score``) from its model's text (a tree, or for
    linear programs the scaled model's program), with the same
    problem, noise and scaling: for records made before a change of the judgement. The
    test R^2 must come out as recorded (the same program), else ``rescore_error``."""
    import numpy as np

    from evolve.catalog import load_problem
    from evolve.eval.evaluator import run_numpy
    from evolve.results.export import scaled_model, to_sympy
    from evolve.search.trees import parse_tree, primitive_set, tree_to_program
    from evolve.text import parse_program

    args = argparse.Namespace(noise=record.get("noise") or 0.0,
                              scaling="on" if cell_key(record)[4] == "on" else "off")
    problem = cell_problem(load_problem(record["problem"]), "evolve", args)
    if (record.get("settings") or {}).get("representation") == "linear":
        program = parse_program(record["model"], n_registers=problem.n_registers)  # scaled
    else:
        pset = primitive_set([o for o in problem.ops if o != "const"], problem.n_inputs)
        tree = parse_tree(record["model"], pset)
        program = scaled_model(tree_to_program(tree, problem.n_inputs, problem.n_registers),
                               problem)
    x_test, y_test = problem.test_data()
    pred = run_numpy(program, x_test, problem.n_registers, np.float32)
    syms = symbols(problem)
    expr = to_sympy(program, problem)
    expr = expr.xreplace({s: syms[int(s.name[1:] or 0)] for s in expr.free_symbols})
    out = dict(record, **score(problem, expr, pred, y_test), native_size=problem.cost(program),
               rescored=True)
    if out["test_r2"] != record.get("test_r2"):
        out["rescore_error"] = f"test R^2 {out['test_r2']!r}, recorded {record.get('test_r2')!r}"
    return out


def _np_ops():
    import numpy as np

    return {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
            "sin": np.sin, "cos": np.cos, "exp": np.exp, "log": np.log, "sqrt": np.sqrt}


def run_deap(problem, seed, budget, t0, args) -> dict:
    import operator
    import random
    from functools import partial

    import numpy as np
    import sympy
    from deap import algorithms, base, creator, gp, tools

    x = problem.points(problem.n_train)
    y, _ = problem.targets(x)
    x = x.astype(np.float64)
    random.seed(seed)  # DEAP draws from the global stream: this process is this cell's own
    pset = gp.PrimitiveSet("MAIN", problem.n_inputs)
    for name, fn in _np_ops().items():
        pset.addPrimitive(fn, 1 if name in ("sin", "cos", "exp", "log", "sqrt") else 2,
                          name=name)
    pset.addEphemeralConstant("c", partial(random.uniform, -1.0, 1.0))
    creator.create("FitnessMin", base.Fitness, weights=(-1.0,))
    creator.create("Individual", gp.PrimitiveTree, fitness=creator.FitnessMin)
    toolbox = base.Toolbox()
    toolbox.register("expr", gp.genHalfAndHalf, pset=pset, min_=1, max_=2)
    toolbox.register("individual", tools.initIterate, creator.Individual, toolbox.expr)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    cols = list(x.T)

    def evaluate(ind):
        with np.errstate(all="ignore"):
            out = np.broadcast_to(np.asarray(gp.compile(ind, pset)(*cols), np.float64), y.shape)
            mse = float(np.mean((out - y) ** 2))
        return (mse if math.isfinite(mse) else 1e300,)

    toolbox.register("evaluate", evaluate)
    toolbox.register("select", tools.selTournament, tournsize=3)
    toolbox.register("mate", gp.cxOnePoint)
    toolbox.register("expr_mut", gp.genFull, min_=0, max_=2)
    toolbox.register("mutate", gp.mutUniform, expr=toolbox.expr_mut, pset=pset)
    limit = gp.staticLimit(key=operator.attrgetter("height"), max_value=17)
    toolbox.decorate("mate", limit)
    toolbox.decorate("mutate", limit)
    pop = toolbox.population(n=PEER_POPULATION)
    hof = tools.HallOfFame(1)

    def step():
        pop[:] = algorithms.eaSimple(pop, toolbox, 0.5, 0.1, 1, halloffame=hof, verbose=False)[0]

    generations, searched = run_generations(step, t0, budget)
    best = hof[0]
    x_test, _ = problem.test_data()
    with np.errstate(all="ignore"):
        pred = np.broadcast_to(np.asarray(gp.compile(best, pset)(*x_test.astype(np.float64).T),
                                          np.float64), (len(x_test),))
    syms = symbols(problem)
    fns = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
           "div": operator.truediv, "sin": sympy.sin, "cos": sympy.cos, "exp": sympy.exp,
           "log": sympy.log, "sqrt": sympy.sqrt}
    return {"expr": _prefix_to_sympy(best, lambda n: (n.name, n.arity) if isinstance(
        n, gp.Primitive) else ("arg", int(n.value[3:])) if isinstance(n.value, str) else
        ("const", float(n.value)), fns, syms), "pred": pred, "native_size": len(best),
        "searched_s": searched, "generations": generations, "evaluations": None, "model": str(best)}


def _prefix_to_sympy(nodes, kind, fns, syms):
    """A sympy expression from a prefix list of nodes; ``kind(node)`` gives (name, arity),
    ("arg", index) or ("const", value)."""
    import sympy

    pos = 0

    def build():
        nonlocal pos
        what, val = kind(nodes[pos])
        pos += 1
        if what == "arg":
            return syms[val]
        if what == "const":
            return sympy.Float(val)
        return fns[what](*(build() for _ in range(val)))

    try:
        return build()
    except (ZeroDivisionError, ValueError, TypeError):
        return None


def _gplearn_exp(x):
    import numpy as np

    with np.errstate(over="ignore"):
        return np.exp(np.clip(x, -100.0, 100.0))


def run_gplearn(problem, seed, budget, t0, args) -> dict:
    import warnings

    import numpy as np
    import sympy
    from gplearn.functions import _Function, make_function
    from gplearn.genetic import SymbolicRegressor

    warnings.filterwarnings("ignore")
    x = problem.points(problem.n_train).astype(np.float64)
    y, _ = problem.targets(x)
    exp = make_function(function=_gplearn_exp, name="exp", arity=1)
    est = SymbolicRegressor(population_size=PEER_POPULATION, generations=0,
                            function_set=("add", "sub", "mul", "div", "sin", "cos", "log",
                                          "sqrt", exp),
                            const_range=(-1.0, 1.0), random_state=seed, n_jobs=1,
                            warm_start=True, verbose=0)

    def step():  # warm_start: one more generation on top of those grown
        est.set_params(generations=est.generations + 1)
        est.fit(x, y)

    generations, searched = run_generations(step, t0, budget)
    x_test, _ = problem.test_data()
    pred = est.predict(x_test.astype(np.float64))
    syms = symbols(problem)
    fns = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
           "div": lambda a, b: a / b, "sin": sympy.sin, "cos": sympy.cos, "exp": sympy.exp,
           "log": lambda a: sympy.log(sympy.Abs(a)), "sqrt": lambda a: sympy.sqrt(sympy.Abs(a))}
    program = est._program.program
    expr = _prefix_to_sympy(program, lambda n: (n.name, n.arity) if isinstance(n, _Function)
                            else ("arg", int(n)) if isinstance(n, (int, np.integer))
                            else ("const", float(n)), fns, syms)
    return {"expr": expr, "pred": pred, "native_size": len(program),
            "searched_s": searched, "generations": generations, "evaluations": None, "model": str(est._program)}


def run_operon(problem, seed, budget, t0, args) -> dict:
    import numpy as np
    import sympy
    from pyoperon.sklearn import SymbolicRegressor

    x = np.ascontiguousarray(problem.points(problem.n_train), np.float64)
    y, _ = problem.targets(x)
    remaining = max(int(budget - (time.perf_counter() - t0)), 1)
    est = SymbolicRegressor(allowed_symbols="add,sub,mul,div,sin,cos,exp,log,sqrt,constant,"
                                            "variable",
                            population_size=PEER_POPULATION, generations=10**6,
                            max_evaluations=10**12, optimizer_iterations=10, n_threads=1,
                            max_time=remaining, random_state=seed)
    est.fit(x, y)
    searched = time.perf_counter() - t0
    x_test, _ = problem.test_data()
    x_test = np.ascontiguousarray(x_test, np.float64)  # keep alive: Dataset views it
    pred = est.predict(x_test)
    syms = symbols(problem)
    hashes = {h: syms[int(name[1:]) - 1] for h, name in est.variables_.items()}
    nodes = est.model_.Nodes
    fns = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
           "Div": lambda a, b: a / b, "Sin": sympy.sin, "Cos": sympy.cos, "Exp": sympy.exp,
           "Log": sympy.log, "Sqrt": sympy.sqrt}

    def build(i):  # postfix: the first argument is the node just before its parent
        n = nodes[i]
        kind = str(n.Type).rsplit(".", 1)[-1]
        if n.IsVariable:
            return sympy.Float(n.Value) * hashes[n.HashValue]
        if kind == "Constant":
            return sympy.Float(n.Value)
        args, j = [], i - 1
        for _ in range(n.Arity):
            args.append(build(j))
            j -= nodes[j].Length + 1
        return fns[kind](*args)

    try:
        expr = build(len(nodes) - 1)
    except (KeyError, ZeroDivisionError, ValueError, TypeError):
        expr = None
    return {"expr": expr, "pred": pred, "native_size": len(nodes),
            "searched_s": searched, "generations": None, "evaluations": None,
            "model": est.get_model_string(est.model_, 6)}


RUNNERS = {"evolve": run_evolve, "deap": run_deap, "gplearn": run_gplearn,
           "operon": run_operon}
# Imported before the clock starts, so no engine pays for its imports.
IMPORTS = {"evolve": ("evolve.search.engine", "evolve.results.export", "evolve.eval.evaluator"),
           "deap": ("deap.algorithms", "deap.gp"), "gplearn": ("gplearn.genetic",),
           "operon": ("pyoperon.sklearn",)}


INSTALL = {"gplearn": "pip install gplearn==0.4.3, or pip install -e '.[bench]'",
           "operon": "pip install pyoperon, or pip install -e '.[bench]'",
           "deap": "pip install deap"}


def available(engines: list[str], err=sys.stderr) -> list[str]:
    """The ``engines`` whose packages are installed; one line on ``err`` for each other,
    saying what to install (the benchmark goes on with the rest)."""
    import importlib.util

    keep = []
    for engine in engines:
        missing = [m for m in IMPORTS[engine] if not _findable(importlib.util, m)]
        if missing:
            print(f"bench_sr: skipping {engine}: {missing[0].split('.')[0]} is not installed "
                  f"({INSTALL.get(engine, 'install it')})", file=err)
        else:
            keep.append(engine)
    return keep


def _findable(util, module: str) -> bool:
    try:
        return util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or one set to None
        return False


def cell_problem(problem, engine: str, args):
    """The problem a cell runs: with the cell's noise level and, for evolve, its linear
    scaling (``args.scaling``, "on" or "off")."""
    from dataclasses import replace

    changes = {"noise": float(args.noise)} if args.noise else {}
    if engine == "evolve" and problem.error == "nmse":
        changes["linear_scaling"] = args.scaling == "on"
    return replace(problem, **changes) if changes else problem


def run_cell(engine: str, name: str, seed: int, args) -> dict:
    """One (engine, problem, seed) cell in this process: the JSON record."""
    import importlib

    from evolve.catalog import load_problem

    for module in IMPORTS[engine]:
        importlib.import_module(module)
    problem = cell_problem(load_problem(name), engine, args)
    x_test, y_test = problem.test_data()
    record = {"bench": "sr", "engine": engine, "problem": name, "set": problem_set(name),
              "seed": seed, "budget_s": args.budget, "noise": args.noise,
              "n_train": problem.n_train, "n_test": len(x_test)}
    if engine == "evolve":  # the options that change our search
        record["settings"] = {"population": args.population, "mating": args.mating,
                              "representation": args.representation,
                              "select": args.select, "scaling": problem.linear_scaling}
    t0 = time.perf_counter()
    try:
        result = RUNNERS[engine](problem, seed, args.budget, t0, args)
    except Exception as e:
        record.update(error=f"{type(e).__name__}: {str(e)[:300]}",
                      wall_s=time.perf_counter() - t0, recovered=False, exact=False)
        return record
    wall = time.perf_counter() - t0
    # wall_s: the search (the budget's part); after_s: choosing and converting the model
    record.update(wall_s=round(result["searched_s"], 2),
                  after_s=round(wall - result["searched_s"], 2), generations=result["generations"],
                  evaluations=result["evaluations"], native_size=result["native_size"],
                  **score(problem, result["expr"], result["pred"], y_test),
                  model=result["model"])
    if "front" in result:  # evolve: its final front, and the pick of every model choice
        record.update(front=result["front"], picks=result["picks"])
    return record


# -- the harness ----------------------------------------------------------------------
def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("deap", "gplearn", "pyoperon", "jax", "sympy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def cell_key(record: dict) -> tuple:
    """(engine, problem, seed, noise, scaling) of a record: what tells cells apart.
    ``scaling`` is evolve's (records made before it was an option were unscaled), None
    for the other engines."""
    scaling = None
    if record["engine"] == "evolve":
        scaling = "on" if (record.get("settings") or {}).get("scaling") else "off"
    return (record["engine"], record["problem"], int(record["seed"]),
            float(record.get("noise") or 0.0), scaling)


def label(record: dict) -> str:
    """The engine as tables show it: evolve without linear scaling is "evolve-unscaled",
    with linear programs "evolve-linear" (records made before these were options have no
    such setting: trees, and "evolve" before scaling was an option)."""
    if record.get("engine") != "evolve":
        return record.get("engine", "?")
    settings = record.get("settings") or {}
    name = "evolve-unscaled" if settings.get("scaling") is False else "evolve"
    return name + ("-linear" if settings.get("representation") == "linear" else "")


def _done(path: Path | None) -> set[tuple]:
    if path is None or not path.is_file():
        return set()
    done = set()
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("bench") == "sr" and "engine" in r:
            done.add(cell_key(r))
    return done


def plan_cells(args) -> list[tuple]:
    """Every (engine, problem, seed, noise, scaling) cell to run, problems outermost:
    evolve once per ``args.scaling_list`` entry, the other engines once."""
    return [(e, p, s, noise, sc) for p in expand_problems(args.problems)
            for noise in args.noise_list for s in args.seed_list for e in args.engines
            for sc in (args.scaling_list if e == "evolve" else [None])]


def run_all(args) -> list[dict]:
    cells = plan_cells(args)
    out = Path(args.out) if args.out else None
    if args.resume:
        done = _done(out)
        cells = [c for c in cells if c not in done]
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1 and args.jobs < len(cores):
        cores = cores[1:]  # core 0 takes the machine's interrupts: leave it out if we can
    free = list(cores)
    running: dict[subprocess.Popen, tuple] = {}
    records = []
    pending = list(cells)
    started = time.time()
    while pending or running:
        while pending and len(running) < args.jobs:
            engine, name, seed, noise, scaling = pending.pop(0)
            core = free.pop(0) if free else cores[len(running) % len(cores)]
            cmd = [sys.executable, __file__, "--cell", f"{engine}:{name}:{seed}",
                   "--budget", str(args.budget), "--population", str(args.population),
                   "--mating", args.mating, "--representation", args.representation,
                   "--noise", repr(noise),
                   "--scaling", scaling or "on", "--select", args.select]
            env = {**os.environ, **CELL_ENV}
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=env, cwd=ROOT,
                                    preexec_fn=lambda c=core: os.sched_setaffinity(0, {c}))
            running[proc] = (engine, name, seed, core, time.time(), noise)
        time.sleep(0.2)
        for proc in [p for p in running if p.poll() is not None or
                     time.time() - running[p][4] > args.budget + args.grace]:
            engine, name, seed, core, t, noise = running.pop(proc)
            if proc.poll() is None:
                proc.kill()
            stdout, stderr = proc.communicate()
            lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
            try:
                record = json.loads(lines[-1])
            except (IndexError, ValueError):
                record = {"bench": "sr", "engine": engine, "problem": name,
                          "set": problem_set(name), "seed": seed, "budget_s": args.budget,
                          "noise": noise, "recovered": False, "exact": False,
                          "error": f"cell failed (exit {proc.returncode}): "
                                   f"{stderr.strip()[-300:]}"}
            record["core"] = core
            if core in cores and core not in free:
                free.append(core)
            records.append(record)
            line = json.dumps(record, sort_keys=True)
            print(line, flush=True)
            if out:
                with open(out, "a") as f:
                    f.write(line + "\n")
    print(json.dumps({"bench": "sr-run", "cells": len(cells), "jobs": args.jobs,
                      "wall_s": round(time.time() - started, 1), "versions": _versions(),
                      "cpu_count": os.cpu_count()}), flush=True)
    return records


def summarize(records: list[dict]) -> tuple[list[dict], str]:
    """Per (set, engine): recovery and exact rates, median test R^2, size and time; the
    rows as JSON objects and as a markdown table."""
    import numpy as np

    rows = []
    order = {name: i for i, name in enumerate(("evolve", "evolve-unscaled", *ENGINES[1:]))}
    keys = sorted({(r["set"], float(r.get("noise") or 0.0), label(r)) for r in records
                   if "engine" in r}, key=lambda k: (k[0], k[1], order.get(k[2], 9)))
    for s, noise, e in keys:
        rs = [r for r in records if r.get("set") == s and label(r) == e
              and float(r.get("noise") or 0.0) == noise]
        r2 = [r.get("test_r2") for r in rs]
        r2 = np.array([v if v is not None else -np.inf for v in r2])
        sizes = [r["size"] for r in rs if r.get("size") is not None]
        rows.append({
            "bench": "sr-summary", "set": s, "noise": noise, "engine": e, "cells": len(rs),
            "problems": len({r["problem"] for r in rs}), "seeds": len({r["seed"] for r in rs}),
            "recovered": sum(bool(r.get("recovered")) for r in rs),
            "exact": sum(bool(r.get("exact")) for r in rs),
            "median_test_r2": float(np.median(r2)) if len(r2) else None,
            "median_size": float(np.median(sizes)) if sizes else None,
            "median_wall_s": float(np.median([r.get("wall_s", np.nan) for r in rs])),
            "errors": sum(1 for r in rs if r.get("error")),
        })
    lines = ["| set | noise | engine | recovered (exact or test R² > 0.999999) | "
             "exact (sympy) | median test R² | median size | median time (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        n = row["cells"]
        r2 = row["median_test_r2"]
        r2s = "–" if r2 is None or not math.isfinite(r2) else (
            f"{r2:.9f}" if r2 > 0.99 else f"{r2:.3f}")
        lines.append(f"| {row['set']} | {row['noise']:g} | {row['engine']} | "
                     f"{row['recovered']}/{n} "
                     f"({row['recovered'] / n:.0%}) | {row['exact']}/{n} | {r2s} | "
                     f"{_g(row['median_size'])} | {_g(row['median_wall_s'], '.0f')} |")
    return rows, "\n".join(lines)


def choice_table(records: list[dict]) -> tuple[list[dict], str]:
    """Each model choice (``SELECT_RULES``) applied to evolve's recorded final fronts,
    judged on the held-out points: cells whose pick has test R^2 > 0.999999, the median
    test R^2 and model size of the picks, per (set, noise, engine label)."""
    import numpy as np

    rows = []
    fronts = [r for r in records if r.get("front") and r.get("picks")]
    for key in sorted({(r["set"], float(r.get("noise") or 0.0), label(r)) for r in fronts}):
        rs = [r for r in fronts if (r["set"], float(r.get("noise") or 0.0), label(r)) == key]
        for rule in SELECT_RULES:
            chosen = [r["front"][r["picks"][rule]] for r in rs if rule in r["picks"]]
            r2 = np.array([c[3] if c[3] is not None else -np.inf for c in chosen])
            rows.append({"bench": "sr-choice", "set": key[0], "noise": key[1],
                         "engine": key[2], "rule": rule, "cells": len(chosen),
                         "r2_recovered": int(np.sum(r2 > R2_RECOVERED)),
                         "median_test_r2": float(np.median(r2)) if len(r2) else None,
                         "median_size": float(np.median([c[2] for c in chosen]))
                         if chosen else None})
    lines = ["| set | noise | engine | model choice | test R² > 0.999999 | median test R² | "
             "median model size |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        r2 = row["median_test_r2"]
        r2s = "–" if r2 is None or not math.isfinite(r2) else f"{r2:.9f}"
        lines.append(f"| {row['set']} | {row['noise']:g} | {row['engine']} | {row['rule']} | "
                     f"{row['r2_recovered']}/{row['cells']} | {r2s} | "
                     f"{_g(row['median_size'])} |")
    return rows, "\n".join(lines)


def _g(value: float | None, spec: str = "g") -> str:
    return "–" if value is None or not math.isfinite(value) else format(value, spec)


def per_problem_table(records: list[dict]) -> str:
    """Recovered / cells per problem, noise level and engine (markdown)."""
    engines = [e for e in ("evolve", "evolve-unscaled", *ENGINES[1:])
               if any(label(r) == e for r in records)]
    rows = list(dict.fromkeys((r["problem"], float(r.get("noise") or 0.0)) for r in records
                              if "problem" in r))
    lines = ["| problem | noise | " + " | ".join(engines) + " |",
             "|---|---|" + "---|" * len(engines)]
    for p, noise in rows:
        cells = []
        for e in engines:
            rs = [r for r in records if r.get("problem") == p and label(r) == e
                  and float(r.get("noise") or 0.0) == noise]
            cells.append(f"{sum(bool(r.get('recovered')) for r in rs)}/{len(rs)}"
                         f" ({sum(bool(r.get('exact')) for r in rs)} exact)" if rs else "")
        lines.append(f"| {p} | {noise:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_table(records: list[dict], against: str = "operon") -> tuple[list[dict], str]:
    """The issue's bar per noise level, over every problem of the records: each evolve
    setting against ``against`` (recovered at least its count, exact at least 1.5x its
    count, median test R^2 no worse), then the problems where evolve recovers fewer cells
    than it (the shortfalls, problem by problem). Rows as JSON objects, and markdown."""
    import numpy as np

    def stats(rs):
        r2 = np.array([r["test_r2"] if r.get("test_r2") is not None else -np.inf for r in rs])
        sizes = [r["size"] for r in rs if r.get("size") is not None]
        return {"cells": len(rs), "recovered": sum(bool(r.get("recovered")) for r in rs),
                "exact": sum(bool(r.get("exact")) for r in rs),
                "median_test_r2": float(np.median(r2)) if len(r2) else None,
                "median_size": float(np.median(sizes)) if sizes else None}

    rows, short = [], []
    for noise in sorted({float(r.get("noise") or 0.0) for r in records}):
        at = [r for r in records if float(r.get("noise") or 0.0) == noise]
        peer = stats([r for r in at if label(r) == against])
        for e in ("evolve", "evolve-unscaled"):
            mine = [r for r in at if label(r) == e]
            if not mine or not peer["cells"]:
                continue
            ours = stats(mine)
            rows.append({"bench": "sr-bar", "noise": noise, "engine": e, "against": against,
                         **{f"{k}": v for k, v in ours.items()},
                         **{f"{against}_{k}": v for k, v in peer.items()},
                         "recovered_met": ours["recovered"] >= peer["recovered"],
                         "exact_met": ours["exact"] >= 1.5 * peer["exact"],
                         "r2_met": (ours["median_test_r2"] or -np.inf)
                         >= (peer["median_test_r2"] or -np.inf)})
        for p in dict.fromkeys(r["problem"] for r in at):
            mine = [r for r in at if r["problem"] == p and label(r) == "evolve"]
            theirs = [r for r in at if r["problem"] == p and label(r) == against]
            a, b = stats(mine), stats(theirs)
            if mine and theirs and a["recovered"] < b["recovered"]:
                short.append(f"{p} (noise {noise:g}): {a['recovered']}/{a['cells']} "
                             f"against {b['recovered']}/{b['cells']}")
    lines = [f"| noise | engine | recovered | {against} | exact | {against} | exact ratio | "
             f"median test R² | {against} | median size | {against} |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ratio = (f"{row['exact'] / row[against + '_exact']:.2f}x"
                 if row[against + "_exact"] else "–")
        lines.append(
            f"| {row['noise']:g} | {row['engine']} | {row['recovered']}/{row['cells']}"
            f"{'' if row['recovered_met'] else ' (short)'} | "
            f"{row[against + '_recovered']}/{row[against + '_cells']} | {row['exact']} | "
            f"{row[against + '_exact']} | {ratio}{'' if row['exact_met'] else ' (short)'} | "
            f"{_g(row['median_test_r2'], '.9f')} | {_g(row[against + '_median_test_r2'], '.9f')} | "
            f"{_g(row['median_size'])} | {_g(row[against + '_median_size'])} |")
    lines.append("")
    lines.append(f"Where evolve (the default, scaled) recovers fewer cells than {against}: "
                 + ("; ".join(short) if short else "nowhere") + ".")
    return rows, "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problems", default="nguyen,feynman",
                   help="comma-separated problem names or sets (nguyen, feynman, strogatz)")
    p.add_argument("--seeds", default="5", help="a count N (seeds 0..N-1) or a list 0,3,7")
    p.add_argument("--budget", type=float, default=60.0, help="wall seconds per cell")
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--jobs", type=int, default=1, help="cells run at once (one core each)")
    p.add_argument("--out", help="append every record to this JSONL file")
    p.add_argument("--resume", action="store_true", help="skip cells already in --out")
    p.add_argument("--population", type=int, default=500, help="evolve's population")
    p.add_argument("--mating", default="tournament", help="evolve's search.mating")
    p.add_argument("--representation", default="tree", choices=("tree", "linear"),
                   help="evolve's search.representation (linear cells: give them an --out "
                        "of their own; --resume tells cells apart by scaling, not this)")
    p.add_argument("--select", default="bic", choices=SELECT_RULES,
                   help="evolve's choice from its front (see select_model)")
    p.add_argument("--noise", default="0",
                   help="noise levels on the training targets, e.g. 0,0.001,0.01,0.1 "
                        "(standard deviations of the clean targets; test points stay clean)")
    p.add_argument("--scaling", default="on",
                   help="evolve's linear scaling: on, off, or on,off (a cell each)")
    p.add_argument("--grace", type=float, default=180.0,
                   help="seconds past the budget before a cell is killed")
    p.add_argument("--summary", metavar="FILE.jsonl", help="print the tables of a results file")
    p.add_argument("--rescore", metavar="FILE.jsonl",
                   help="judge the evolve records of FILE again (its other records pass "
                        "unchanged), printing the records (--out: append them there)")
    p.add_argument("--cell", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        args.noise_list = [float(v) for v in args.noise.split(",") if v.strip()]
    except ValueError:
        p.error(f"--noise {args.noise!r}: give numbers separated by commas, e.g. 0,0.01")
    if not args.noise_list or any(not v >= 0 for v in args.noise_list):
        p.error(f"--noise {args.noise!r}: give levels >= 0, e.g. 0,0.01")
    args.scaling_list = [v.strip() for v in args.scaling.split(",") if v.strip()]
    if not args.scaling_list or set(args.scaling_list) - {"on", "off"}:
        p.error(f"--scaling {args.scaling!r}: give on, off or on,off")
    if args.cell:
        args.noise, args.scaling = args.noise_list[0], args.scaling_list[0]
        engine, name, seed = args.cell.split(":")
        print(json.dumps(run_cell(engine, name, int(seed), args), sort_keys=True), flush=True)
        return 0
    if args.rescore:
        for line in Path(args.rescore).read_text().splitlines():
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r.get("bench") == "sr" and r.get("engine") == "evolve" and r.get("model"):
                r = rescore(r)
            text = json.dumps(r, sort_keys=True)
            print(text, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(text + "\n")
        return 0
    if args.summary:
        records = [r for r in (json.loads(line) for line in
                               Path(args.summary).read_text().splitlines() if line.startswith("{"))
                   if r.get("bench") == "sr"]
        rows, table = summarize(records)
        for row in rows:
            print(json.dumps(row))
        print(table)
        print()
        print(per_problem_table(records))
        bars, bar_md = bar_table(records)
        for row in bars:
            print(json.dumps(row))
        print()
        print(bar_md)
        print()
        choices, choice_md = choice_table(records)
        if choices:
            for row in choices:
                print(json.dumps(row))
            print()
            print(choice_md)
        return 0
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in args.engines if e not in ENGINES]
    if bad:
        p.error(f"unknown engines {bad}; choose from {', '.join(ENGINES)}")
    args.engines = available(args.engines)
    if not args.engines:
        p.error("none of the engines asked for is installed (see the lines above)")
    args.seed_list = (list(range(int(args.seeds))) if "," not in args.seeds
                      else [int(s) for s in args.seeds.split(",")])
    records = run_all(args)
    rows, table = summarize(records)
    for row in rows:
        print(json.dumps(row), flush=True)
    print(table, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
