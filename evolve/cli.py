"""The ``evolve`` command line.

Each command is a function ``cmd_<name>(args) -> int`` (its exit status) listed once in
``COMMANDS`` with its help line and the function that declares its arguments. Commands
import what they need inside, so ``evolve --help`` stays fast and one broken module does
not take down the others.

There is one error path: bad input raises ``UserError`` (argparse's own complaints are
turned into one too), and ``main`` prints it as ``evolve: error: <message>`` on stderr
and returns 2, without a traceback.

One concept, the command line: a parser and a short handler per subcommand.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import evolve
from evolve import __version__
from evolve.errors import UserError, did_you_mean
from evolve.model_choice import REGRESSION_RULE, RULES

PROG = "evolve"


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are UserErrors: one line, no usage block."""

    def error(self, message: str):
        raise UserError(f"{message}; see '{self.prog} --help'")

    def _check_value(self, action, value):
        # argparse's own check, with the closest choice named (commands, --format, ...).
        if action.choices is not None and value not in action.choices:
            hint = did_you_mean(str(value), map(str, action.choices))
            choices = ", ".join(map(str, action.choices))
            raise argparse.ArgumentError(
                action, f"invalid choice {value!r}{hint}; choose from: {choices}")


# -- demo -----------------------------------------------------------------------------

# 2^x on [0, 1]: the least-squares cubic (numpy.polynomial.polynomial.polyfit on 100,001
# equispaced points), coefficients rounded to float32, in Horner form with fma.
DEMO_PROGRAM = """\
r1 = 0.0790199
r2 = 0.22412628
r1 = fma(r1, r0, r2)
r2 = 0.6968388
r1 = fma(r1, r0, r2)
r2 = 0.99981195
r1 = fma(r1, r0, r2)
return r1
"""
DEMO_REGISTERS = 3


def _add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--points", type=int, default=100_000, metavar="N",
                   help="float32 points in [0, 1] to evaluate (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=5, metavar="K",
                   help="timed evaluations after the first, compiling one (default: %(default)s)")


def cmd_demo(args: argparse.Namespace) -> int:
    """Evaluate a hand-written 2^x approximation and report its error and speed."""
    if args.points < 1:
        raise UserError(f"--points must be at least 1, got {args.points}")
    if args.repeat < 1:
        raise UserError(f"--repeat must be at least 1, got {args.repeat}")

    import jax
    import numpy as np

    from evolve.eval.evaluator import Evaluator, run_numpy
    from evolve.problem import ulp32
    from evolve.program import to_arrays
    from evolve.text import parse_program

    program = parse_program(DEMO_PROGRAM, n_registers=DEMO_REGISTERS)
    batch = to_arrays([program])
    x = np.linspace(0.0, 1.0, args.points).astype(np.float32)
    evaluator = Evaluator(n_registers=DEMO_REGISTERS, n_inputs=1, dtype="float32")

    start = time.perf_counter()
    approx = evaluator.outputs(batch, x)[0]
    first_s = time.perf_counter() - start
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        evaluator.outputs(batch, x)
        times.append(time.perf_counter() - start)
    best_s = min(times)

    exact = np.exp2(x.astype(np.float64))
    err = np.abs(approx.astype(np.float64) - exact)
    ulps = err / ulp32(exact)
    reference = run_numpy(program, x, DEMO_REGISTERS, np.float32)
    differ = int(np.count_nonzero(approx.view(np.uint32) != reference.view(np.uint32)))
    excess_off = "xla_allow_excess_precision=false" in os.environ.get("XLA_FLAGS", "")
    devices = jax.devices()

    print("program (2^x on [0, 1], least-squares cubic, Horner form):")
    print("".join(f"  {line}\n" for line in DEMO_PROGRAM.splitlines()), end="")
    print(f"points:          {args.points} float32 in [0, 1]; exact value: np.exp2 in float64")
    print(f"max abs error:   {err.max():.3e}")
    print(f"max ULP error:   {ulps.max():.1f}  "
          "(|approx - f(x)| / 2^(floor(log2|f(x)|) - 23), float32 ULPs of f(x)'s binade)")
    print("numpy reference: " + ("bit-identical at every point" if differ == 0
                                 else f"differs at {differ} of {args.points} points"))
    print("XLA excess precision: " + ("off" if excess_off else
                                      "ON: float32 roundings may be skipped, errors may read low"))
    print(f"throughput:      {args.points / best_s:.3e} points/s, "
          f"{len(program) * args.points / best_s:.3e} instructions x points/s "
          f"(best of {args.repeat}; first call, with compilation: {first_s:.2f} s; "
          f"{len(devices)} {devices[0].platform} device(s))")
    return 0


# -- problems, run, resume ----------------------------------------------------------------


def _no_arguments(p: argparse.ArgumentParser) -> None:
    """For commands that take none."""


def cmd_problems(args: argparse.Namespace) -> int:
    """List the problems in problems/ with their one-line descriptions."""
    from evolve.catalog import list_problems

    problems = list_problems()
    width = max((len(p.name) for p in problems), default=0) + 2
    for problem in problems:
        print(f"{problem.name:<{width}}{problem.description}")
    return 0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("problem", nargs="?", metavar="PROBLEM",
                   help="a problem name (see `evolve problems`) or the path of a .py file "
                        "defining PROBLEM")
    p.add_argument("--config", metavar="F.yaml", help="a YAML file of config fields")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="sets",
                   help="set a config field (repeatable), e.g. --set search.population=64")
    p.add_argument("--seed", type=_count, metavar="N", help="the config field seed")
    p.add_argument("--generations", type=_count, metavar="N",
                   help="the config field generations: total generations to run")
    p.add_argument("--run-dir", metavar="DIR",
                   help="where the run is written (default: runs/PROBLEM-SEED-TIMESTAMP)")
    p.add_argument("--islands", type=_positive, metavar="N",
                   help="the config field islands.count: searches side by side that exchange "
                        "programs")
    p.add_argument("--ray-address", metavar="auto|local|ADDRESS",
                   help="the config field islands.ray_address: run the islands as Ray actors "
                        "on the cluster at ADDRESS, the running one (auto) or a new one here "
                        "(local)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--help-config", action="store_true",
                   help="list the config fields, their defaults and descriptions, and exit")


def _finish(outcome, quiet: bool = False) -> int:
    import shlex

    from evolve.runs.summary import summary

    notes = ()
    if not outcome.stopped_by:  # certify the cheapest under-target programs, where quick
        from evolve.results.autocertify import certify_end_of_run

        progress = _VerifyProgress(quiet)
        notes = certify_end_of_run(outcome.run_dir, outcome.problem, outcome.config.certify,
                                   on_start=progress.start, progress=progress).notes
    print(summary(outcome), end="")
    for line in notes:
        print(line)
    if outcome.stopped_by:
        print(f"{PROG}: stopped by {outcome.stopped_by} at generation "
              f"{outcome.state.generation} of {outcome.config.generations}; checkpoint written. "
              f"Resume with: {PROG} resume {shlex.quote(str(outcome.run_dir))}",
              file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Start a run: evolve programs for PROBLEM, writing a run directory."""
    from pathlib import Path

    from evolve.runs import config as cfg

    if args.help_config:
        print(cfg.help_config(), end="")
        return 0
    config = cfg.build_config(args.config, args.sets, {
        "problem": args.problem, "seed": args.seed, "generations": args.generations,
        "islands.count": args.islands, "islands.ray_address": args.ray_address})
    from evolve.runs import driver as runs

    outcome = runs.start(config, Path(args.run_dir) if args.run_dir else None, quiet=args.quiet)
    return _finish(outcome, args.quiet)


def _add_resume_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory to continue")
    p.add_argument("--generations", type=_count, metavar="N",
                   help="total generations to reach (default: the run's configured number)")
    p.add_argument("--ray-address", metavar="auto|local|ADDRESS|none",
                   help="a run of islands: continue on this Ray cluster (none: in this "
                        "process); the result is the same wherever it runs")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue a run from its newest checkpoint, exactly as if it had never stopped."""
    from pathlib import Path

    from evolve.runs import driver as runs

    return _finish(runs.resume(Path(args.run_dir), args.generations, quiet=args.quiet,
                               ray_address=args.ray_address), args.quiet)


# -- plot, report ---------------------------------------------------------------------------


def _optional_module(name: str, what: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
        raise UserError(f"{what} is not available: this installation lacks {name}") from None


def _add_plot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    p.add_argument("--out", metavar="F.png",
                   help="the image to write (default: RUN_DIR/fitness.png for one run, "
                        "fitness.png here for several)")


def cmd_plot(args: argparse.Namespace) -> int:
    """Plot fitness curves of one or more runs (several: mean and band)."""
    from pathlib import Path

    from evolve.runs.driver import open_run

    dirs = [Path(d) for d in args.run_dirs]
    for d in dirs:
        open_run(d)
    out = Path(args.out) if args.out else (dirs[0] / "fitness.png" if len(dirs) == 1
                                           else Path("fitness.png"))
    plotting = _optional_module("evolve.results.plots", "plotting")
    written = plotting.plot_runs(dirs, out)
    for path in written if isinstance(written, (list, tuple)) else [written or out]:
        print(path)
    return 0


def _add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")


def cmd_report(args: argparse.Namespace) -> int:
    """Write an HTML page for a run: curves, front, best programs."""
    from pathlib import Path

    from evolve.runs.driver import open_run

    open_run(Path(args.run_dir))
    report = _optional_module("evolve.results.report", "the HTML report")
    print(report.write_report(Path(args.run_dir)))
    return 0


# -- verify, export ---------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")
    p.add_argument("--limit", type=_positive, metavar="N",
                   help="certify only N programs of the front: those meeting the target, "
                        "cheapest first, then the most accurate others (default: all)")
    p.add_argument("--stride", type=_positive, default=1, metavar="K",
                   help="a quick sampled check of every K-th float32: NOT a certificate, and "
                        "front.csv is left alone (default: 1, every float32)")
    p.add_argument("--reference", choices=("auto", "host", "device"), default="auto",
                   help="where f(x) is computed: the problem's numpy reference on the host, "
                        "or its jax_reference on the device, checked against the host's on "
                        "samples (default auto: the device on GPUs, when the problem has one)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


class _VerifyProgress:
    """Progress of a certification on stderr: a live line on a terminal, else every 10 %."""

    def __init__(self, quiet: bool):
        self.quiet, self.tty = quiet, sys.stderr.isatty()
        self.label, self.t0, self.next = "", time.perf_counter(), 0.0

    def start(self, k: int, row: dict, index: int, n: int) -> None:
        self.label = (f"[{k + 1}/{n}] front row {index} (cost {float(row['cost']):g}, "
                      f"training error {float(row['error']):.4g})")
        self.t0, self.next = time.perf_counter(), 0.1

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else float("nan")
        line = (f"{self.label}: {done / total:6.1%} of {total:,} points, {rate:.3g} points/s, "
                f"{left:.0f} s left")
        if self.tty:
            sys.stderr.write("\r" + line + ("\n" if done == total else ""))
        elif done / total >= self.next or done == total:
            sys.stderr.write(line + "\n")
            self.next = done / total + 0.1
        sys.stderr.flush()


def cmd_verify(args: argparse.Namespace) -> int:
    """Certify the front: every float32 of the domain, max ULP error, into front.csv."""
    from pathlib import Path

    from evolve.results import certify as verify

    progress = _VerifyProgress(args.quiet)
    results = verify.verify_run(Path(args.run_dir), limit=args.limit, stride=args.stride,
                                on_start=progress.start, progress=progress,
                                reference=args.reference)
    for index, cert in results:
        print(f"front row {index}: {cert.describe()}")
    if args.stride == 1:
        print(f"wrote {', '.join(verify.CERTIFIED_COLUMNS)} of {len(results)} row"
              f"{'s' * (len(results) != 1)} to {Path(args.run_dir) / 'front.csv'}")
    else:
        print(f"sampled check (every {args.stride}th float32), not a certificate: "
              "front.csv not changed; run without --stride to certify")
    return 0


def _add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory")
    p.add_argument("--format", required=True, choices=("python", "jax", "c", "sympy", "latex"),
                   help="the language of the exported function")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--index", type=_count, metavar="I",
                       help="the front.csv row to export (0 is the first)")
    which.add_argument("--best", action="store_true",
                       help="the most accurate program (default: the cheapest one meeting the "
                            "problem's target, else the most accurate; for regression "
                            "problems, the model that --choose picks)")
    which.add_argument("--choose", choices=RULES, metavar="RULE",
                       help="regression problems (error nmse): the rule that picks the model "
                            f"from the front, one of {', '.join(RULES)} (default: "
                            f"{REGRESSION_RULE}; docs/symbolic-regression.md)")
    p.add_argument("--out", metavar="FILE", help="write to FILE (default: stdout)")
    p.add_argument("--name", default="f", metavar="NAME",
                   help="the function's name (default: %(default)s)")
    p.add_argument("--simplify", action="store_true",
                   help="simplify the expression (--format sympy or latex only)")


def cmd_export(args: argparse.Namespace) -> int:
    """Print a front member as a standalone Python, JAX, C or SymPy function."""
    from pathlib import Path

    from evolve.results.export import export_run

    if args.simplify and args.format not in ("sympy", "latex"):
        raise UserError(f"--simplify applies to --format sympy or latex only, not {args.format}")
    text, _, info = export_run(Path(args.run_dir), args.format, index=args.index,
                               best=args.best, name=args.name, simplify=args.simplify,
                               rule=args.choose)
    if args.out:
        out = Path(args.out)
        if out.is_dir():
            raise UserError(f"--out {args.out!r} is a directory; give a file name")
        try:
            out.write_text(text)
        except OSError as e:
            raise UserError(f"cannot write --out {args.out!r}: {e.strerror}") from None
        print(f"{info} Written to {out}.")
    else:
        print(text, end="")
        print(f"{PROG}: exported {info[0].lower()}{info[1:]}", file=sys.stderr)
    return 0


# -- the table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A subcommand: ``evolve <name> ...`` runs ``run(args)``, which returns the exit status."""

    name: str
    run: Callable[[argparse.Namespace], int]
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]


COMMANDS: tuple[Command, ...] = (
    Command("problems", cmd_problems, "list the problems with one-line descriptions",
            _no_arguments),
    Command("run", cmd_run, "start a run: evolve programs for PROBLEM (see --help-config)",
            _add_run_arguments),
    Command("resume", cmd_resume, "continue a stopped or finished run, exactly",
            _add_resume_arguments),
    Command("plot", cmd_plot, "plot fitness curves of runs", _add_plot_arguments),
    Command("report", cmd_report, "write an HTML report of a run", _add_report_arguments),
    Command("verify", cmd_verify, "certify the front: max ULP error over every float32 input",
            _add_verify_arguments),
    Command("export", cmd_export, "a front member as a Python, JAX, C or SymPy function",
            _add_export_arguments),
    Command("demo", cmd_demo, "evaluate a hand-written 2^x approximation: error and speed",
            _add_demo_arguments),
)


def build_parser() -> argparse.ArgumentParser:
    """The parser for every command in ``COMMANDS``."""
    parser = _Parser(prog=PROG, description="Evolutionary program discovery with batched "
                                            "JAX evaluation.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    evolve.use_compilation_cache()
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as done:  # --help and --version print, then exit
            return done.code if isinstance(done.code, int) else 0
        return args.run(args)
    except UserError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `evolve problems | head`: the reader left; not an error of ours
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return 0
