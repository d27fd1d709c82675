"""Regenerate the minimax-polynomial baselines in problems/baselines/<problem>.json.

For each function (exp2, exp, log2, erf, tanh) this runs Sollya's fpminimax (relative
error, float32 coefficients) at each degree, builds the program evaluating the polynomial
in our text form for both op sets (``<name>``: a Horner step is one fma; ``<name>_nofma``:
mul then add), measures its max ULP error with our own float32 evaluation
(``evolve.eval.evaluator.run_numpy``, fma by the ops table's numpy reference) and writes the
results as data, with each program's cost by the problem's cost model. Degrees go up from
low ones to the first whose measured error is below 1 ULP, or to a cap. Besides plain
Horner ("minimax-d"), log2, erf and tanh also get a form that adds the leading term
separately ("minimax-d-hilo", "minimax-d-x+xq"; FORMS), since their plain Horner forms
never reach 1 ULP.

The measurement is exhaustive (every float32 of the domain) when the domain holds at most
2^24 of them; otherwise it takes every ``--stride``-th float32 in order plus the 2^20
float32 nearest each end of the domain; with ``--exhaustive-last`` the first program below
1 ULP of each form is then checked on every float32 (minutes each on a CPU). Each entry's
"checked" says which.

Needs the ``sollya`` program (Debian: apt-get install sollya); CI does not: the JSON files
are data in git. Sollya's output is parsed (hex float literals), never evaluated.

    python scripts/sollya_baselines.py                       # every function
    python scripts/sollya_baselines.py exp2 --exhaustive-last
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evolve.catalog import load_problem  # noqa: E402
from evolve.eval.evaluator import run_numpy  # noqa: E402
from evolve.problem import Problem  # noqa: E402
from evolve.program import input_dependent, used  # noqa: E402
from evolve.text import format_literal, format_program, parse_program  # noqa: E402

OUT_DIR = ROOT / "problems" / "baselines"


INV_LN2_HI = float.fromhex("0x1.715476p+0")  # 1/ln(2) rounded to float32

FORMS = {
    "horner": "Horner form, every coefficient a float32",
    "x+xq": "x + x*q(s), s = x*x: the coefficient of x is 1 + a float32 (Sollya constraint x)",
    "hilo": "C*t + t*q(t), C = float32(1/ln2): the coefficient of t is C + a float32",
}


@dataclass(frozen=True)
class Family:
    """One function's polynomials.

    sollya: the function in Sollya's syntax, of x (of t = x - 1 when var is "t").
    var: "x": p(x) = c0 + c1 x + ... + cd x^d; "t": p = t*(c1 + c2 t + ... + cd t^(d-1)),
        t = x - 1 (exact in float32 on the domain); "odd": p = x*(c1 + c3 s + ... + cd
        s^((d-1)/2)), s = x*x.
    forms: how the program evaluates p (FORMS): "horner" for all; "x+xq" (odd) and "hilo"
        (t) add the leading term separately, so its coefficient is carried to more bits.
    degrees: the degrees to try, in order.
    """

    name: str
    sollya: str
    var: str
    degrees: tuple[int, ...]
    forms: tuple[str, ...] = ("horner",)

    def monomials(self, d: int) -> list[int]:
        if self.var == "x":
            return list(range(d + 1))
        if self.var == "t":
            return list(range(1, d + 1))
        return list(range(1, d + 1, 2))


FAMILIES = {
    "exp2": Family("exp2", "2^x", "x", tuple(range(2, 10))),
    "exp": Family("exp", "exp(x)", "x", tuple(range(2, 10))),
    "log2": Family("log2", "log2(1+x)", "t", tuple(range(3, 15)), ("horner", "hilo")),
    "erf": Family("erf", "erf(x)", "odd", tuple(range(3, 20, 2)), ("horner", "x+xq")),
    "tanh": Family("tanh", "tanh(x)", "odd", tuple(range(3, 20, 2)), ("horner", "x+xq")),
}


def hex32(v: float) -> str:
    """A float32 as a short hex literal, e.g. 0x1.715476p+0."""
    m, e = float(v).hex().split("p")
    if "." in m:
        m = m.rstrip("0").rstrip(".")
    return f"{m}p{e}"


def entry_name(form: str, d: int) -> str:
    return f"minimax-{d}" if form == "horner" else f"minimax-{d}-{form}"


# ---------------------------------------------------------------------------- Sollya

def sollya_interval(family: Family, problem: Problem) -> tuple[float, float]:
    """The interval of the polynomial's variable (x, or t = x - 1 for var "t")."""
    lo, hi = problem.domain[0]
    if family.var == "t":
        lo, hi = float(np.float32(lo) - np.float32(1)), float(np.float32(hi) - np.float32(1))
    return lo, hi


def fixed_part(form: str) -> str | None:
    """The Sollya constraint (the polynomial's fixed part) of a form, or None."""
    return {"horner": None, "x+xq": "x", "hilo": f"{hex32(INV_LN2_HI)} * x"}[form]


def fpminimax_call(family: Family, form: str, d: int, interval: tuple[float, float]) -> str:
    basis = ", ".join(map(str, family.monomials(d)))
    lo, hi = map(hex32, interval)
    fixed = fixed_part(form)
    return (f"fpminimax({family.sollya}, [|{basis}|], [|single...|], [{lo}; {hi}], "
            f"floating, relative{'' if fixed is None else ', ' + fixed})")


def sollya_script(family: Family, interval: tuple[float, float]) -> str:
    """A Sollya script printing, per form and degree, ``C form d i coeff`` lines (the
    coefficients beyond the fixed part) and ``S form d supnorm`` (relative error)."""
    lo, hi = map(hex32, interval)
    lines = ["display = hexadecimal!;", "prec = 200!;",
             f'print("K", single(1/log(2)) - {hex32(INV_LN2_HI)});']
    for form in family.forms:
        fixed = fixed_part(form) or "0"
        for d in family.degrees:
            lines.append(f"p = {fpminimax_call(family, form, d, interval)};")
            lines += [f'print("C {form} {d} {i}", coeff(p - ({fixed}), {i}));'
                      for i in family.monomials(d)]
            lines.append(f'print("S {form} {d}", '
                         f"dirtyinfnorm(p / ({family.sollya}) - 1, [{lo}; {hi}]));")
    return "\n".join([*lines, "quit;"]) + "\n"


_NUM = re.compile(r"[+-]?(?:0|0x[0-9a-f]+(?:\.[0-9a-f]*)?p[+-]?[0-9]+)", re.ASCII)
_LINE = re.compile(r"([CSK])(?: ([a-z+]+) ([0-9]+))?(?: ([0-9]+))? (\S+)", re.ASCII)


def parse_sollya_output(text: str) -> dict[tuple[str, int], dict]:
    """{(form, degree): {"coeffs": {i: float}, "sup": float}} from the printed lines.

    Numbers must be hex float literals (or 0); anything else on such a line is an error.
    """
    out: dict[tuple[str, int], dict] = {}
    for line in text.splitlines():
        m = _LINE.fullmatch(line.strip())
        if not m:
            continue
        kind, form, d, i, num = m.groups()
        if not _NUM.fullmatch(num):
            raise ValueError(f"sollya printed a non-number: {line!r}")
        value = float.fromhex(num) if num.lstrip("+-") != "0" else 0.0
        if kind == "K":
            if value != 0:
                raise ValueError(f"float32(1/ln2) is not {hex32(INV_LN2_HI)}: {line!r}")
            continue
        entry = out.setdefault((form, int(d)), {"coeffs": {}, "sup": None})
        if kind == "C":
            if float(np.float32(value)) != value:
                raise ValueError(f"coefficient is not a float32: {line!r}")
            entry["coeffs"][int(i)] = value
        else:
            entry["sup"] = value
    return out


def run_sollya(script: str, sollya: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".sollya", delete=False) as f:
        f.write(script)
    try:
        done = subprocess.run([sollya, "--warnonstderr", f.name], capture_output=True,
                              text=True, timeout=600, check=False)
    finally:
        Path(f.name).unlink()
    if done.returncode != 0:
        raise RuntimeError(f"sollya failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def sollya_version(sollya: str) -> str:
    out = subprocess.run([sollya, "--version"], capture_output=True, text=True,
                         check=False).stdout
    m = re.search(r"sollya (\S+)", out)
    return m.group(1) if m else "unknown"


# ---------------------------------------------------------------------------- programs

def program_text(family: Family, form: str, coeffs: dict[int, float], fma: bool) -> str:
    """The program (text) evaluating the polynomial in ``form``; input r0, result r1."""
    powers = sorted(coeffs)
    var = {"x": "r0", "t": "r3", "odd": "r3"}[family.var]
    lines = []
    if family.var == "t":
        lines += ["r3 = 1.0", "r3 = sub(r0, r3)        # t = x - 1, exact"]
    elif family.var == "odd":
        lines += ["r3 = mul(r0, r0)        # s = x*x"]
    lines.append(f"r1 = {format_literal(coeffs[powers[-1]])}")
    for k in reversed(powers[:-1]):
        lines.append(f"r2 = {format_literal(coeffs[k])}")
        if fma:
            lines.append(f"r1 = fma(r1, {var}, r2)")
        else:
            lines += [f"r1 = mul(r1, {var})", "r1 = add(r1, r2)"]
    if form == "horner" and family.var != "x":
        lines.append(f"r1 = mul(r1, {'r3' if family.var == 't' else 'r0'})")
    elif form == "x+xq":  # x + x*q
        lines += ["r1 = fma(r1, r0, r0)"] if fma else ["r1 = mul(r1, r0)", "r1 = add(r1, r0)"]
    elif form == "hilo":  # C*t + t*q
        lines += ["r1 = mul(r1, r3)", f"r4 = {format_literal(INV_LN2_HI)}"]
        lines += ["r1 = fma(r3, r4, r1)"] if fma else ["r4 = mul(r3, r4)", "r1 = add(r4, r1)"]
    lines.append("return r1")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- checking

def _key(x: float) -> int:
    """A float32's place in the ordered sequence of float32 (0 for both zeros)."""
    b = int(np.array(x, np.float32).view(np.int32))
    return b if b >= 0 else -(b & 0x7FFFFFFF)


def _from_keys(k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, np.int64)
    bits = np.where(k >= 0, k, (-k) | 0x80000000).astype(np.uint32)
    return bits.view(np.float32)


def domain_keys(problem: Problem) -> tuple[int, int]:
    """The first and last float32 of the (one-input) domain, as ordered keys."""
    lo, hi = problem.domain[0]
    return _key(lo), _key(hi)


def check_points(problem: Problem, stride: int, ends: int = 1 << 20,
                 exhaustive_limit: int = 1 << 24) -> tuple[np.ndarray, str]:
    """The float32 points to check and how they were chosen ("exhaustive" when the domain
    holds at most ``exhaustive_limit`` float32)."""
    k0, k1 = domain_keys(problem)
    if k1 - k0 + 1 <= exhaustive_limit:
        return _from_keys(np.arange(k0, k1 + 1)), "exhaustive"
    keys = np.concatenate([np.arange(k0, k1 + 1, stride), np.arange(k0, k0 + ends),
                           np.arange(k1 - ends + 1, k1 + 1)])
    return (_from_keys(np.unique(keys)),
            f"stride {stride} + 2^{ends.bit_length() - 1} nearest each end")


def _errors(program, problem: Problem, x: np.ndarray, y: np.ndarray, scale: np.ndarray):
    out = run_numpy(program, x, problem.n_registers).astype(np.float64)
    err = np.abs(out - y) * scale
    err = np.where(np.isnan(err), np.inf, err)
    i = int(np.argmax(err))
    return float(err[i]), float(x[i])


class Checker:
    """Max ULP error of programs over a fixed set of float32 points (references cached)."""

    def __init__(self, problem: Problem, x: np.ndarray, chunk: int = 1 << 21):
        self.x, self.chunk = x, chunk
        self.y, self.scale = [], []
        for s in range(0, len(x), chunk):
            y, scale = problem.targets(x[s:s + chunk, None])
            self.y.append(y)
            self.scale.append(scale)

    def max_error(self, program, problem: Problem) -> tuple[float, float]:
        """(max error in the problem's unit, the float32 input where it occurs)."""
        worst = (-1.0, float("nan"))
        for j, s in enumerate(range(0, len(self.x), self.chunk)):
            worst = max(worst, _errors(program, problem, self.x[s:s + self.chunk],
                                       self.y[j], self.scale[j]))
        return worst


def exhaustive_max_error(program, problem: Problem, chunk: int = 1 << 21,
                         log=None) -> tuple[float, float]:
    """Max error over every float32 of the domain, in chunks (references not cached)."""
    k0, k1 = domain_keys(problem)
    worst, t = (-1.0, float("nan")), time.time()
    for n, s in enumerate(range(k0, k1 + 1, chunk)):
        x = _from_keys(np.arange(s, min(s + chunk, k1 + 1)))
        y, scale = problem.targets(x[:, None])
        worst = max(worst, _errors(program, problem, x, y, scale))
        if log and n % 64 == 63:
            log(f"  {s - k0 + chunk} of {k1 - k0 + 1} ({time.time() - t:.0f} s), "
                f"max {worst[0]:.4f}")
    return worst


# ---------------------------------------------------------------------------- main

def op_counts(program, problem: Problem) -> dict[str, int]:
    """How many input-dependent, live instructions of each op (what the cost counts)."""
    counts: dict[str, int] = {}
    live, dep = used(program), input_dependent(program, problem.n_inputs)
    for ins, u, d in zip(program.instructions, live, dep):
        if u and d:
            counts[ins.name] = counts.get(ins.name, 0) + 1
    return counts


def build(family: Family, sollya: str, stride: int, exhaustive_last: bool, log,
          out_dir: Path = OUT_DIR) -> None:
    """Write problems/baselines/<name>.json and <name>_nofma.json for one function."""
    problems = [load_problem(family.name), load_problem(f"{family.name}_nofma")]
    interval = sollya_interval(family, problems[0])
    t = time.time()
    polys = parse_sollya_output(run_sollya(sollya_script(family, interval), sollya))
    log(f"{family.name}: sollya {time.time() - t:.1f} s, {len(polys)} polynomials")
    x, checked = check_points(problems[0], stride)
    t = time.time()
    checker = Checker(problems[0], x)
    log(f"{family.name}: {len(x)} points ({checked}), references {time.time() - t:.1f} s")
    k0, k1 = domain_keys(problems[0])
    version = sollya_version(sollya)
    for problem in problems:
        fma = "fma" in problem.ops
        entries = []
        for form in family.forms:
            for d in family.degrees:
                poly = polys.get((form, d))
                if poly is None or set(poly["coeffs"]) != set(family.monomials(d)):
                    log(f"{problem.name}: {form} degree {d}: no polynomial from sollya")
                    continue
                text = program_text(family, form, poly["coeffs"], fma)
                program = parse_program(text, problem.n_registers, problem.ops)
                t = time.time()
                error, where = checker.max_error(program, problem)
                how = checked
                if error < 1.0 and exhaustive_last and checked != "exhaustive":
                    log(f"{problem.name}: {entry_name(form, d)}: {error:.4f} ULP on the "
                        "sample; checking every float32")
                    error, where = max((error, where), exhaustive_max_error(
                        program, problem, log=log))
                    how = "exhaustive"
                cost = problem.cost(program)
                log(f"{problem.name}: {entry_name(form, d)}: cost {cost:g}, max {error:.4f} "
                    f"ULP at {where!r} ({time.time() - t:.1f} s)")
                entries.append({
                    "name": entry_name(form, d),
                    "form": form,
                    "degree": d,
                    "error": error,
                    "cost": cost,
                    "ops": op_counts(program, problem),
                    "program": format_program(program),
                    "fixed_part": {"horner": None, "x+xq": "x",
                                   "hilo": f"{hex32(INV_LN2_HI)} * t"}[form],
                    "coefficients": [{"power": k, "hex": hex32(poly["coeffs"][k]),
                                      "decimal": format_literal(poly["coeffs"][k])}
                                     for k in family.monomials(d)],
                    "fpminimax": fpminimax_call(family, form, d, interval),
                    "sollya_relative_error": poly["sup"],
                    "worst_x": hex32(where),
                    "checked": how,
                    "n_checked": int(len(x)) if how != "exhaustive" else k1 - k0 + 1,
                })
                if error < 1.0:
                    break
        doc = {
            "problem": problem.name,
            "generated_by": "scripts/sollya_baselines.py",
            "sollya_version": version,
            "polynomial": {"x": "p(x) = c0 + c1 x + ... + cd x^d",
                           "t": "p = t*(c1 + c2 t + ... + cd t^(d-1)), t = x - 1 (exact)",
                           "odd": "p = x*(c1 + c3 s + ... + cd s^((d-1)/2)), s = x*x"}[
                               family.var],
            "forms": {f: FORMS[f] for f in family.forms},
            "evaluation": "one fma a Horner step" if fma else "mul then add a Horner step",
            "error": "max ULP: |out - f(x)| / 2^(floor(log2|f(x)|) - 23), f in float64; "
                     "out by evolve.eval.evaluator.run_numpy in float32",
            "domain": [hex32(v) for v in problem.domain[0]],
            "n_float32_in_domain": k1 - k0 + 1,
            "baselines": entries,
        }
        path = out_dir / f"{problem.name}.json"
        path.write_text(json.dumps(doc, indent=1) + "\n")
        log(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("functions", nargs="*", metavar="FUNCTION",
                    help=f"some of {', '.join(FAMILIES)} (default: all)")
    ap.add_argument("--sollya", default="sollya", help="the sollya program")
    ap.add_argument("--stride", type=int, default=128,
                    help="check every STRIDE-th float32 when a domain holds more than 2^24 "
                         "(default 128)")
    ap.add_argument("--exhaustive-last", action="store_true",
                    help="check the first program below 1 ULP of each form on every float32 "
                         "of the domain (minutes per program on a CPU)")
    ap.add_argument("--max-degree", type=int, default=None,
                    help="try no degree above this (default: each function's own range)")
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR,
                    help="where the JSON files go (default: problems/baselines)")
    args = ap.parse_args(argv)
    unknown = [f for f in args.functions if f not in FAMILIES]
    if unknown:
        ap.error(f"unknown function(s) {', '.join(unknown)}; known: {', '.join(FAMILIES)}")
    if shutil.which(args.sollya) is None:
        print(f"sollya_baselines: {args.sollya!r} not found: install Sollya (Debian: apt-get "
              "install sollya) or pass --sollya PATH; the committed problems/baselines/*.json "
              "stay as they are", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.functions or FAMILIES:
        family = FAMILIES[name]
        if args.max_degree is not None:
            family = replace(family, degrees=tuple(d for d in family.degrees
                                                   if d <= args.max_degree))
        build(family, args.sollya, args.stride, args.exhaustive_last,
              lambda msg: print(msg, file=sys.stderr, flush=True), args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
