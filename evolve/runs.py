"""Run directories: starting, checkpointing, stopping and resuming a search on disk.

A run directory holds

  config.yaml      the fully resolved configuration (``evolve.config``)
  metrics.csv      one row per generation: the row ``Engine.step`` returns
  front.csv        the current Pareto front of (error, cost): error, cost, length, program
  checkpoints/     gen-XXXXXX/ (``evolve.checkpoint``): every K generations, at the end and
                   when stopped by SIGINT/SIGTERM; the newest M are kept
  events.log       what happened, with timestamps
  lock             held (``fcntl.flock``) by the process writing the run

Exact resume: the state a checkpoint holds is everything a generation depends on, so a
run resumed from generation k continues as if never stopped. On resume, metrics.csv is
cut back to the checkpoint's generation (rows a killed process wrote after it are made
again), front.csv is rewritten from the checkpoint, and a checkpoint that fails its
checksums is reported and set aside (renamed ``*.corrupt``) for the one before it.
"""

from __future__ import annotations

import datetime as _dt
import os
import shlex
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from evolve import __version__
from evolve.checkpoint import (
    CheckpointError,
    atomic_write,
    checkpoint_name,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    remove_temporaries,
    save_checkpoint,
)
from evolve.config import RunConfig, dump_config, load_config, replace_field
from evolve.engine import Engine, State
from evolve.errors import UserError
from evolve.problem import Problem, load_problem
from evolve.progress import Progress
from evolve.rundir import Lock, RunDir, front_rows

RUNS_ROOT = Path("runs")


# -- stopping on a signal -------------------------------------------------------------------
class StopOnSignal:
    """SIGINT/SIGTERM ask the run to stop after the current generation (``.signal`` names
    the first); a second one aborts at once (KeyboardInterrupt)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal: str | None = None
        self._old = {}

    def _handle(self, signum, frame):
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)


# -- engines --------------------------------------------------------------------------------
_ENGINES: dict[str, Engine] = {}


def engine_for(config: RunConfig, problem: Problem) -> Engine:
    """The engine of ``config``: built once per process for a (problem, search) pair, since
    building one compiles the evaluator (an Engine holds no state of a run)."""
    key = config.problem + "\n" + repr(config.search)
    if key not in _ENGINES:
        _ENGINES.clear()
        _ENGINES[key] = Engine(problem, config.search)
    return _ENGINES[key]


def _problem(config: RunConfig) -> Problem:
    problem = load_problem(config.problem)
    lo, hi = config.search.init_length
    if hi > problem.max_length:
        raise UserError(f"config field 'search.init_length' = [{lo}, {hi}]: programs of problem "
                        f"{problem.name!r} have at most {problem.max_length} instructions; "
                        f"set it to at most [{min(lo, problem.max_length)}, {problem.max_length}]")
    return problem


# -- starting and resuming --------------------------------------------------------------------
@dataclass
class Outcome:
    """How a run (or a stretch of one) ended."""

    run_dir: Path
    config: RunConfig
    problem: Problem
    state: State
    stopped_by: str | None  # the signal that stopped it early, or None


def _new_run_dir(config: RunConfig, run_dir: Path | None) -> Path:
    if run_dir is not None:
        if (run_dir / "config.yaml").exists():
            raise UserError(f"{str(run_dir)!r} already holds a run; continue it with "
                            f"`evolve resume {shlex.quote(str(run_dir))}`, or choose a new "
                            "--run-dir")
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise UserError(f"--run-dir {str(run_dir)!r} exists and is not an empty "
                            "directory; choose a new one (it is created for you)")
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir
    stem = Path(config.problem).stem if config.problem.endswith(".py") else config.problem
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    RUNS_ROOT.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = RUNS_ROOT / f"{stem}-{config.seed}-{stamp}{'' if n == 1 else f'-{n}'}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UserError(f"cannot find a free run directory name under {str(RUNS_ROOT)!r}; "
                    "pass --run-dir")


def start(config: RunConfig, run_dir: Path | None = None, quiet: bool = False,
          err: TextIO | None = None) -> Outcome:
    """Start a new run of ``config`` in ``run_dir`` (default: a new one under runs/)."""
    if config.problem.endswith(".py") or Path(config.problem).is_file():
        config = replace_field(config, "problem", str(Path(config.problem).resolve()))
    problem = _problem(config)
    path = _new_run_dir(config, run_dir)
    run = RunDir(path)
    lock = Lock(path)
    try:
        atomic_write(run.config, dump_config(config).encode())
        with StopOnSignal() as stop:
            run.log(f"started: problem {config.problem}, seed {config.seed}, "
                    f"{config.generations} generations (evolve {__version__}, pid {os.getpid()})")
            return _initial(run, config, problem, stop, quiet, err or sys.stderr)
    finally:
        lock.release()


def _initial(run, config, problem, stop, quiet, err) -> Outcome:
    engine = engine_for(config, problem)
    state = engine.init(config.seed)
    run.write_front(state)
    _checkpoint(run, config, state)
    return _drive(run, config, problem, engine, state, stop, quiet, err)


def open_run(run_dir: Path) -> tuple[RunDir, RunConfig]:
    """A run directory's paths and configuration; ``UserError`` if it is not one."""
    if not run_dir.exists():
        raise UserError(f"run directory {str(run_dir)!r} does not exist; "
                        "`evolve run PROBLEM` starts a run")
    if not run_dir.is_dir():
        raise UserError(f"{str(run_dir)!r} is not a directory but a file; give a run directory")
    run = RunDir(run_dir)
    if not run.config.is_file():
        raise UserError(f"{str(run_dir)!r} is not an evolve run directory (it has no "
                        "config.yaml); `evolve run PROBLEM --run-dir DIR` makes one")
    return run, load_config(run.config)


def _warn(run: RunDir, err: TextIO, message: str) -> None:
    run.log("warning: " + message)
    err.write(f"evolve: warning: {message}\n")
    err.flush()


def _latest_state(run: RunDir, err: TextIO) -> State | None:
    """The newest checkpoint that reads back; corrupt ones are reported and set aside."""
    for generation, path in reversed(list_checkpoints(run.checkpoints)):
        try:
            state, meta = load_checkpoint(path)
        except CheckpointError as e:
            aside = path.with_name(path.name + ".corrupt")
            n = 1
            while aside.exists():
                n += 1
                aside = path.with_name(f"{path.name}.corrupt{n}")
            os.replace(path, aside)
            _warn(run, err, f"checkpoint {path} is corrupt ({e}); moved it to {aside.name} "
                            "and trying the one before it")
            continue
        if state.generation != generation:
            raise UserError(f"checkpoint {path} holds generation {state.generation}, "
                            "not its name's; the run directory was tampered with")
        return state
    return None


def resume(run_dir: Path, generations: int | None = None, quiet: bool = False,
           err: TextIO | None = None) -> Outcome:
    """Continue the run in ``run_dir`` from its newest good checkpoint to ``generations``
    in total (default: the configured number)."""
    err = err or sys.stderr
    run, config = open_run(run_dir)
    problem = _problem(config)
    lock = Lock(run_dir)
    try:
        remove_temporaries(run.checkpoints)
        state = _latest_state(run, err)
        at = state.generation if state is not None else 0
        quoted = shlex.quote(str(run_dir))
        if generations is None and at >= config.generations:
            raise UserError(f"run {str(run_dir)!r} is finished (generation {at} of "
                            f"{config.generations}); to run more, give the new total: "
                            f"evolve resume {quoted} --generations {max(2 * at, at + 1)}")
        if generations is not None and generations <= at:
            raise UserError(f"run {str(run_dir)!r} is at generation {at} already; "
                            f"--generations is the total to reach, so give more than {at}, "
                            f"e.g. evolve resume {quoted} --generations {max(2 * at, at + 1)}")
        if generations is not None and generations != config.generations:
            config = replace_field(config, "generations", generations)
            atomic_write(run.config, dump_config(config).encode())
        with StopOnSignal() as stop:
            if state is None:
                run.metrics.truncate(0)
                run.log(f"resumed with no usable checkpoint: starting again from generation 0 "
                        f"to {config.generations} (pid {os.getpid()})")
                return _initial(run, config, problem, stop, quiet, err)
            dropped, missing = run.metrics.truncate(at)
            run.log(f"resumed from {checkpoint_name(at)} to {config.generations} generations"
                    f"{f', {dropped} later metrics rows dropped' if dropped else ''} "
                    f"(evolve {__version__}, pid {os.getpid()})")
            if missing:
                _warn(run, err, f"metrics.csv lacks the rows of generations {missing[0]}.."
                                f"{missing[-1]} ({len(missing)} rows); they cannot be made again")
            run.write_front(state)
            engine = engine_for(config, problem)
            return _drive(run, config, problem, engine, state, stop, quiet, err)
    finally:
        lock.release()


def _checkpoint(run: RunDir, config: RunConfig, state: State) -> None:
    run.metrics.sync()
    path = save_checkpoint(run.checkpoints, state, {"problem": config.problem,
                                                    "seed": config.seed, "version": __version__})
    prune_checkpoints(run.checkpoints, config.keep_checkpoints)
    run.log(f"checkpoint {path.name}")


def _drive(run: RunDir, config: RunConfig, problem: Problem, engine: Engine, state: State,
           stop: StopOnSignal, quiet: bool, err: TextIO) -> Outcome:
    """Generations until the configured total or a stop signal; checkpoints on the way."""
    progress = Progress(err, config.generations, state.generation, quiet)
    saved = state.generation
    try:
        while state.generation < config.generations and stop.signal is None:
            state, row = engine.step(state)
            run.metrics.append(row)
            run.write_front(state)
            progress.update(row)
            if state.generation % config.checkpoint_every == 0:
                _checkpoint(run, config, state)
                saved = state.generation
    finally:
        progress.close()
    if saved != state.generation:
        _checkpoint(run, config, state)
    if stop.signal is not None and state.generation < config.generations:
        run.log(f"stopped by {stop.signal} at generation {state.generation}")
    else:
        run.log(f"finished at generation {state.generation}")
    return Outcome(run.path, config, problem, state,
                   stop.signal if state.generation < config.generations else None)


# -- results ----------------------------------------------------------------------------------
def summary(outcome: Outcome, count: int = 3) -> str:
    """What ``evolve run`` prints at the end: the run directory and the best programs."""
    state, problem = outcome.state, outcome.problem
    lines = [f"run directory: {outcome.run_dir}",
             f"generation {state.generation} of {outcome.config.generations}, "
             f"{state.evaluations} evaluations"]
    front = front_rows(state)
    target = problem.target
    good = [r for r in front if target is not None and r[0] < target]
    if good:
        lines.append(f"programs meeting the target (error < {target:g}), cheapest first:")
        chosen = good[:count]
    else:
        lines.append(f"no program meets the target (error < {target:g}) yet; the most accurate:"
                      if target is not None else "the most accurate program:")
        chosen = [min(front, key=lambda r: (r[0], r[1]))] if front else []
    for error, cost, _, text in chosen:
        lines.append(f"# error {error:.6g}, cost {cost:g}")
        lines.append(text)
    return "\n".join(lines) + "\n"
