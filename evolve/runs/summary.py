"""What ``evolve run`` prints when a run ends (``summary``): the run directory and its best
programs, each error labelled sampled or certified; for a regression problem, the model
its model choice picks (``evolve.model_choice``), with its linear scaling and its
held-out test R^2."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evolve.problem import Problem
from evolve.runs.files import front_rows, read_certificates
from evolve.search.state import State

if TYPE_CHECKING:
    from evolve.runs.driver import Outcome


def _regression_choice(state: State, problem: Problem, front: list, n_train: int) -> list[str]:
    """The summary's lines for a regression problem (error "nmse"): the model that the
    default model choice picks from the front, as ``evolve export`` writes it (with the
    linear scaling ``a * f + b`` where the problem has it)."""
    from evolve.eval.evaluator import run_numpy
    from evolve.model_choice import REGRESSION_RULE, choose_model
    from evolve.program import pruned
    from evolve.scaling import linear_fit, scaled
    from evolve.text import format_program, parse_program

    if not front:
        return ["no program with a finite error yet"]
    i = choose_model([r[0] for r in front], [r[1] for r in front], REGRESSION_RULE, n_train)
    error, cost, _, text = front[i]
    exact = " (an exact fit: under the target)" if problem.meets_target(error) else ""
    lines = [f"the model chosen from the front of {len(front)} by the rule {REGRESSION_RULE!r} "
             "(`evolve export --choose RULE` for another; docs/symbolic-regression.md):",
             f"# training error {error:.6g} (NMSE, 1 - R^2 on {n_train:,} points){exact}, "
             f"cost {cost:g}"]
    genomes = getattr(state, "genomes", None)
    if genomes:  # the tree the program was compiled from
        same = np.flatnonzero((state.error == error) & (state.cost == cost))
        tree = next((genomes[k] for k in same
                     if format_program(pruned(state.programs[k])).rstrip("\n") == text), None)
        if tree is not None:
            lines.append(f"# tree: {tree}")
    if problem.linear_scaling:
        program = parse_program(text, n_registers=problem.n_registers)
        x = problem.points(n_train)
        a, b = linear_fit(run_numpy(program, x, problem.n_registers, np.float32),
                          problem.targets(x)[0])
        lines.append(f"# with linear scaling: the model is a * f + b, a = {float(a)!r}, "
                     f"b = {float(b)!r}:")
        text = format_program(scaled(program, float(a), float(b),
                                     problem.n_registers)).rstrip("\n")
    if problem.n_test:  # held-out points, noise-free: what the model does off its data
        x_test, y_test = problem.test_data()
        out = run_numpy(parse_program(text, n_registers=problem.n_registers), x_test,
                        problem.n_registers, np.float32).astype(np.float64)
        with np.errstate(all="ignore"):
            r2 = 1.0 - float(np.mean((out - y_test) ** 2) / np.var(y_test))
        if np.isfinite(r2):
            lines.append(f"# held-out test R^2 {r2:.9f} on {len(y_test):,} points "
                         "(noise-free)")
    return lines + [text]


def summary(outcome: Outcome, count: int = 3) -> str:
    """What ``evolve run`` prints at the end: the run directory and the best programs,
    each as ``format_program(pruned(p))`` (``front_rows``: without dead instructions; the
    checkpoint keeps the full genome).

    A program is said to meet the target only on a certificate in front.csv (``evolve
    verify``, or the end-of-run certificate); errors measured on the run's points are
    labelled as sampled, with the number of points."""
    state, problem, config = outcome.state, outcome.problem, outcome.config
    lines = [f"run directory: {outcome.run_dir}",
             f"generation {state.generation} of {config.generations}, "
             f"{state.evaluations} evaluations"]
    front = front_rows(state)
    certified = read_certificates(Path(outcome.run_dir) / "front.csv")
    target = problem.target
    n_train = config.search.n_train or problem.n_train
    checked = f"{n_train + problem.n_verify:,} sampled points"

    ulp = {text: float(row["certified_max_ulp"]) for text, row in certified.items()
           if row.get("certified_max_ulp")}  # certified max errors, by program text

    def cert(text: str) -> float | None:
        return ulp.get(text)

    def on(error: float) -> str:
        return checked if target is not None and error < target else "the training points"

    def show(rows, head: str, with_cert: bool) -> None:
        lines.append(head)
        for error, cost, _, text in rows[:count]:
            c = cert(text)
            if with_cert and c is not None:
                lines.append(f"# error {c:.6g} certified (max over every float32 of the "
                             f"domain), cost {cost:g}; sampled {error:.6g} on {on(error)}")
            else:
                sure = "; not certified" if target is not None and error < target else ""
                lines.append(f"# error {error:.6g} sampled (max on {on(error)}{sure}), "
                             f"cost {cost:g}")
            lines.append(text)

    if problem.error == "nmse":
        return "\n".join(lines + _regression_choice(state, problem, front, n_train)) + "\n"
    if target is None:
        show([min(front, key=lambda r: (r[0], r[1]))] if front else [],
             "the most accurate program:", True)
        return "\n".join(lines) + "\n"
    good = [r for r in front if ulp.get(r[3], np.inf) < target]
    unsure = [r for r in front if r[0] < target and r[3] not in ulp]
    failed = [r for r in front if r[0] < target and ulp.get(r[3], -np.inf) >= target]
    if good:
        show(good, f"programs meeting the target (certified max error < {target:g} over every "
                   "float32 of the domain), cheapest first:", True)
    if unsure:
        show(unsure, f"programs under the target on sampled points only (max error < "
                     f"{target:g} on {checked}; not certified), cheapest first:", False)
    if failed:
        lines.append(f"under the target on sampled points but not on every float32 "
                     f"(certified max error >= {target:g}):")
        for error, cost, _, text in failed[:count]:
            cells = certified[text]
            lines.append(f"# cost {cost:g}: certified max error {cert(text):.6g} at x = "
                         f"{cells['certified_worst_x']} ({cells['certified_over_1ulp']} inputs "
                         f"over 1 ULP); sampled {error:.6g} on {on(error)}")
    if not good and not unsure:
        best = [min(front, key=lambda r: (r[0], r[1]))] if front else []
        show(best, f"no program meets the target (error < {target:g}) yet; the most "
                   "accurate:", True)
    return "\n".join(lines) + "\n"
