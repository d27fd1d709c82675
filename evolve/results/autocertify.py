"""The certificate at the end of a run, where it is quick.

At the end of ``evolve run`` and ``evolve resume`` (not when a run is stopped early), the
cheapest programs of the front that meet the target on the run's sampled points are
certified over every float32 of the domain (``evolve.results.certify.certify``) and the
certificates written into front.csv, as ``evolve verify`` writes them. Only problems with
a max ULP error, one float32 input and a target take part.

"Quick" is measured, not assumed. A certificate is a number of device calls of one size
(``certify.chunk_plan``: 64 calls of 2^24 points for the float32 of [0, 1] on a CPU, 8 of
2^27 on a GPU). The first candidate is run on one call's worth of points spread evenly over
the domain (every k-th float32): once to compile, once timed. A program's estimate is that
time, times the calls, times its length over the timed program's (time grows with points
x ops). It is certified when the estimate fits in what is left of ``certify.seconds``
(the timing calls count against it too); the others are named with their estimate and
the ``evolve verify`` command that certifies them. A domain of one call's size or less is
certified by the timing call itself. Where the timed sampled check already finds an error
over the target, that program misses it for certain (though this is not a certificate):
it is said so, and not certified.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evolve.errors import UserError
from evolve.problem import Problem
from evolve.results.certify import (
    Certificate,
    CertificationError,
    certification_order,
    certify,
    chunk_plan,
    domain_points,
    read_front,
    record_certificate,
    teach_points,
    write_front,
)
from evolve.runs import hard_points
from evolve.runs.config import CertifyParams
from evolve.runs.files import Lock, writing
from evolve.text import ParseError, parse_program


@dataclass(frozen=True)
class Outcome:
    """What the end-of-run certification did, front row by front row."""

    certified: tuple[tuple[int, Certificate], ...]  # (row, certificate), in the order made
    skipped: tuple[tuple[int, str], ...]  # (row, why), rows left to `evolve verify`
    notes: tuple[str, ...]  # lines for people: what was certified, what was not and why


def takes_part(problem: Problem) -> bool:
    """Whether the problem's programs can be certified at the end of a run."""
    return (problem.error == "max_ulp" and problem.n_inputs == 1
            and problem.dtype == "float32" and problem.target is not None)


def candidates(rows: list[dict[str, str]], problem: Problem, count: int) -> list[int]:
    """The front rows to certify: not certified yet, under the target on the sampled
    points, cheapest first (then lowest error); ``count`` of them at most."""
    under = [i for i, r in enumerate(rows)
             if problem.meets_target(float(r["error"])) and not r.get("certified_max_ulp")]
    under.sort(key=lambda i: (float(rows[i]["cost"]), float(rows[i]["error"])))
    return under[:count]


def certify_end_of_run(run_dir: Path, problem: Problem, params: CertifyParams,
                       on_start: Callable[[int, dict, int, int], None] | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       clock: Callable[[], float] = time.perf_counter) -> Outcome:
    """Certify the cheapest under-target programs of the front of ``run_dir`` that fit in
    ``params.seconds`` (estimated), at most ``params.count``; write their certificates
    into front.csv (under the run's lock). ``on_start`` and ``progress`` are as for
    ``evolve.results.certify.verify_run``; ``clock`` times the calls."""
    if not takes_part(problem):
        return Outcome((), (), ())
    run_dir = Path(run_dir)
    header, rows = read_front(run_dir)
    chosen = candidates(rows, problem, params.count)
    if not chosen:
        return Outcome((), (), ())
    order = certification_order(rows, problem)  # `evolve verify`'s: the limit to reach them
    limit = max(order.index(i) for i in chosen) + 1
    verify = f"evolve verify {shlex.quote(str(run_dir))} --limit {limit}"
    if params.seconds <= 0:
        return Outcome((), tuple((i, "certify.seconds is 0") for i in chosen), (
            f"not certified: {len(chosen)} program(s) under the target on sampled points "
            f"(certify.seconds is 0); certify with: {verify}",))
    total = domain_points(problem)
    size, calls = chunk_plan(problem)
    stride = -(-total // size)  # one call's worth of points, spread over the domain
    programs = {i: _program(rows, i, problem) for i in chosen}
    done: list[tuple[int, Certificate]] = []
    skipped: list[tuple[int, str]] = []
    notes: list[str] = []
    lock = Lock(run_dir)

    def record(i: int, cert: Certificate) -> None:
        done.append((i, cert))
        record_certificate(rows[i], cert, problem)
        with writing(run_dir):
            write_front(run_dir, header, rows)  # after each row: a stop keeps it
        verdict = "meets" if cert.max_ulp < problem.target else "MISSES"
        notes.append(f"certified: {what(i)}: max error {cert.max_ulp:.6g} ULP over all "
                     f"{cert.total:,} float32 of the domain ({verdict} the target "
                     f"{problem.target:g}; worst x = {cert.worst_x!r}; {cert.seconds:.2g} s)")
        points = teach_points(run_dir, rows[i], cert, problem) if params.teach else []
        if points:
            xs = ", ".join(repr(p.x[0]) for p in points)
            notes.append(f"x = {xs} join{'s' if len(points) == 1 else ''} the training points "
                         f"from generation {points[0].from_generation} ({hard_points.FILE}; "
                         "certify.teach)")

    def what(i: int) -> str:
        return f"front row {i} (cost {float(rows[i]['cost']):g})"

    try:
        first = programs[chosen[0]]
        t0 = clock()
        try:
            if stride > 1:
                certify(first, problem, stride=stride)  # compiles the call; untimed
            t1 = clock()
            timed = certify(first, problem, stride=stride)
        except (CertificationError, UserError) as e:
            return Outcome((), tuple((i, str(e)) for i in chosen), (f"not certified: {e}",))
        per_call = clock() - t1
        left = float(params.seconds) - (clock() - t0)
        later = 0  # rows left to `evolve verify` for want of time
        for k, i in enumerate(chosen):
            estimate = per_call * calls * max(len(programs[i]), 1) / max(len(first), 1)
            if i == chosen[0] and stride == 1:
                record(i, timed)  # the timing call was the whole certificate
                continue
            if i == chosen[0] and timed.max_ulp >= problem.target:
                why = (f"a sampled check of every {stride}th float32 finds "
                       f"{timed.max_ulp:.6g} ULP at x = {timed.worst_x!r}: over the target")
                skipped.append((i, why))
                notes.append(f"not certified: {what(i)}: {why}")
                continue
            if estimate > left:
                later += 1
                why = (f"certifying its {total:,} float32 inputs would take about "
                       f"{estimate:.2g} s, more than the {max(left, 0):.2g} s left of "
                       f"certify.seconds = {params.seconds:g}")
                skipped.append((i, why))
                notes.append(f"not certified: {what(i)}: {why}")
                continue
            if on_start is not None:
                on_start(k, rows[i], i, len(chosen))
            t0 = clock()
            try:
                cert = certify(programs[i], problem, progress=progress)
            except (CertificationError, UserError) as e:
                skipped.append((i, str(e)))
                notes.append(f"not certified: {what(i)}: {e}")
                continue
            left -= clock() - t0
            record(i, cert)
        if later:
            notes.append(f"to certify what was left: {verify}  (or raise certify.seconds)")
        return Outcome(tuple(done), tuple(skipped), tuple(notes))
    finally:
        lock.release()


def _program(rows: list[dict[str, str]], i: int, problem: Problem):
    try:
        return parse_program(rows[i]["program"], n_registers=problem.n_registers)
    except ParseError as e:
        raise UserError(f"front.csv row {i} holds no valid program (line {e.line}, column "
                        f"{e.column}: {e.detail}); the run directory is damaged") from None
