"""Run directories: starting, checkpointing, stopping and resuming a search on disk.

A run directory holds

  config.yaml      the fully resolved configuration (``evolve.runs.config``)
  metrics.csv      one row per generation: the row ``Engine.step`` returns (a run of
                   islands, ``evolve.runs.islands.core``: a row per island and one for the run)
  front.csv        the current Pareto front of (error, cost): error, cost, length, program
  checkpoints/     gen-XXXXXX/ (``evolve.runs.checkpoint``): every K generations, at the end and
                   when stopped by SIGINT/SIGTERM; the newest M are kept
  events.log       what happened, with timestamps
  llm-replies.jsonl  with LLM edits on: every reply, keyed by request (``evolve.search.llm.edits``)
  lock             held (``fcntl.flock``) by the process writing the run

Exact resume: the state a checkpoint holds is everything a generation depends on, so a
run resumed from generation k continues as if never stopped. On resume, metrics.csv is
cut back to the checkpoint's generation (rows a killed process wrote after it are made
again), front.csv is rewritten from the checkpoint, and a checkpoint that fails its
checksums is reported and set aside (renamed ``*.corrupt``) for the one before it.

One concept, the life of a run directory: start, resume, the generation loop with its
checkpoints, and the summary at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import jax

import evolve
from evolve import __version__
from evolve.batch import Programs
from evolve.errors import UserError
from evolve.problem import Problem
from evolve.program import Program, ProgramError, bucket, validate
from evolve.runs import hard_points, host
from evolve.runs.checkpoint import (
    CheckpointError,
    atomic_write,
    checkpoint_name,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    remove_temporaries,
    save_checkpoint,
)
from evolve.runs.config import RunConfig, dump_config, load_config, replace_field, run_problem
from evolve.runs.files import Lock, RunDir, writing
from evolve.runs.islands.core import InProcess, IslandSearch, check_state, uses_islands
from evolve.runs.progress import Progress
from evolve.search.engine import Engine
from evolve.search.llm.edits import api_key, open_llm
from evolve.search.state import IslandsState, State

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
    key = (config.problem + "\n" + repr(config.search) + repr(problem.binade_share)
           + repr(problem.near_zeros_on)
           + repr(problem.hard_points))
    if key not in _ENGINES:
        _ENGINES.clear()
        _ENGINES[key] = Engine(problem, config.search)
    return _ENGINES[key]


def prepare_islands(config) -> None:
    """For a run of islands, what must hold before its run directory is made or locked:
    ``UserError`` for what cannot run; connects to the Ray cluster if one is named."""
    if not uses_islands(config.islands):
        return
    if config.llm.rate > 0:
        raise UserError("LLM edits (llm.rate > 0) do not run with islands yet; set "
                        "llm.rate=0, or islands.count=1 without --ray-address")
    if config.islands.ray_address is not None:
        from evolve.runs.islands.ray_actors import connect

        connect(config.islands.ray_address)


def open_islands(config, engine: Callable[[], Engine], checkpoints, log: Callable[[str], None]
                 ) -> IslandSearch:
    """The ``IslandSearch`` of run configuration ``config``: in this process (``engine()``
    builds the engine), or on Ray when ``islands.ray_address`` is set (restarted actors
    reload from ``checkpoints``; ``log`` records what happened)."""
    params = config.islands
    if params.ray_address is None:
        return IslandSearch(params, InProcess(engine(), params))
    from evolve.runs.islands.ray_actors import RayIslands

    return IslandSearch(params, RayIslands(config, checkpoints, log))


@contextlib.contextmanager
def searcher(config: RunConfig, problem: Problem, run: RunDir):
    """The engine of ``config``; for a run of islands, an ``evolve.runs.islands.core.IslandSearch``
    (in this process or on Ray), closed when the block ends."""
    if not uses_islands(config.islands):
        yield engine_for(config, problem)
        return
    search = open_islands(config, lambda: engine_for(config, problem), run.checkpoints, run.log)
    try:
        yield search
    finally:
        search.close()


def _problem(config: RunConfig) -> Problem:
    problem = run_problem(config)
    lo, hi = config.search.init_length
    if hi > problem.max_length:
        raise UserError(f"config field 'search.init_length' = [{lo}, {hi}]: programs of problem "
                        f"{problem.name!r} have at most {problem.max_length} instructions; "
                        f"set it to at most [{min(lo, problem.max_length)}, {problem.max_length}]")
    api_key(config.llm)  # LLM edits on and the key's variable unset: say so before starting
    return problem


def check_devices() -> None:
    """``UserError`` unless JAX can start a device backend (``JAX_PLATFORMS`` may name a
    platform this machine lacks; a GPU's driver may be gone)."""
    try:
        jax.devices()
    except Exception as e:  # a RuntimeError, or an AssertionError from some JAX versions
        platforms = os.environ.get("JAX_PLATFORMS")
        asked = f" (JAX_PLATFORMS={platforms!r})" if platforms else ""
        detail = " ".join(str(e).split())[:200] or f"no backend started ({type(e).__name__})"
        raise UserError(f"JAX cannot start a device backend{asked}: {detail}; check the "
                        "device and its driver, or unset JAX_PLATFORMS to use the CPU") from None


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
        # What a start that failed (or was killed) before config.yaml was written leaves.
        left = ("lock", ".config.yaml.tmp-")
        if run_dir.exists() and (not run_dir.is_dir() or
                                 any(not p.name.startswith(left) for p in run_dir.iterdir())):
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
    if config.sampling.per_binade is None:  # config.yaml records the rule of its points
        config = replace_field(config, "sampling.per_binade", problem.binade_share)
    if config.sampling.near_zeros is None:
        config = replace_field(config, "sampling.near_zeros", problem.near_zeros_on)
    if config.search.representation is None:  # config.yaml records the genomes evolved
        try:
            config = replace_field(config, "search.representation", problem.representation)
        except UserError as e:
            fix = str(e).replace(" or use 'linear'", "")
            raise UserError(f"problem {problem.name!r} evolves {problem.representation}s "
                            f"(search.representation: null takes the problem's own): {fix}; "
                            "or set search.representation=linear") from None
    check_devices()
    prepare_islands(config)  # before a run directory is made: a bad Ray address, say
    with writing(run_dir or RUNS_ROOT):
        path = _new_run_dir(config, run_dir)
    run = RunDir(path)
    with writing(path):  # a full disk or a read-only one: one line, and resumable
        lock = Lock(path)
        try:
            atomic_write(run.config, dump_config(config).encode())
            with StopOnSignal() as stop:
                run.log(f"started: problem {config.problem}, seed {config.seed}, "
                        f"{config.generations} generations (evolve {__version__}, "
                        f"pid {os.getpid()})")
                return _initial(run, config, problem, stop, quiet, err or sys.stderr)
        finally:
            lock.release()


def check_precision(run: RunDir, err: TextIO) -> None:
    """Warn unless XLA's excess precision is off (``evolve.excess_precision_off``): float32
    errors may read too low without it."""
    if not evolve.excess_precision_off():
        _warn(run, err, "XLA_FLAGS lacks --xla_allow_excess_precision=false (EVOLVE_NO_XLA_FLAGS "
                        "set?): XLA may skip float32 roundings, so float32 errors may read too "
                        "low; unset EVOLVE_NO_XLA_FLAGS, or add the flag to XLA_FLAGS")


def _initial(run, config, problem, stop, quiet, err) -> Outcome:
    check_precision(run, err)
    with searcher(config, problem, run) as engine:
        state = engine.init(config.seed)
        run.write_front(state, problem.target)
        _checkpoint(run, config, state, evaluator=evaluator_kind(engine))
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
    config = load_config(run.config)
    _refuse_code_in(run_dir, config.problem)
    return run, config


def _refuse_code_in(run_dir: Path, problem: str) -> None:
    """``UserError`` if config.yaml names a problem file inside the run directory: a run
    directory holds data, and opening one must never run code it carries."""
    if not (problem.endswith(".py") or Path(problem).is_file()):
        return  # a problem of problems/, by name
    inside = Path(run_dir).resolve()
    for path in (Path(os.path.abspath(problem)), Path(problem).resolve()):
        if path == inside or inside in path.parents:
            raise UserError(f"{str(run_dir)!r}/config.yaml names the problem file "
                            f"{problem!r}, which lies inside the run directory; a run "
                            "directory holds data, never code, so it is not loaded. If you "
                            "trust the file, move it out and set problem: in config.yaml to "
                            "its new path")


def _warn(run: RunDir, err: TextIO, message: str) -> None:
    run.log("warning: " + message)
    err.write(f"evolve: warning: {message}\n")
    err.flush()


def _check_programs(state: State, problem: Problem) -> None:
    """``CheckpointError`` if a program of ``state`` breaks the problem's register, op,
    length or literal rules: a checkpoint edited by hand, since the engine never makes
    such a program (and its evaluator would refuse it)."""
    if isinstance(state, IslandsState):
        for island in state.islands:
            _check_programs(island, problem)
        return
    if not isinstance(state.programs, (list, Programs)) or not all(
            isinstance(p, Program) for p in state.programs):
        raise CheckpointError("the population is not a list of programs")
    for i, program in enumerate(state.programs):
        try:
            validate(program, problem.n_registers, bucket(problem.max_length), problem.opcodes)
        except ProgramError as e:
            raise CheckpointError(f"program {i} of the population is not valid ({e})") from None


def _latest_state(run: RunDir, err: TextIO, problem: Problem) -> tuple[State, dict] | None:
    """The newest checkpoint that reads back, and its meta; corrupt ones are reported and
    set aside."""
    for generation, path in reversed(list_checkpoints(run.checkpoints)):
        try:
            state, meta = load_checkpoint(path)
            _check_programs(state, problem)
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
        return state, meta
    return None


def resume(run_dir: Path, generations: int | None = None, quiet: bool = False,
           err: TextIO | None = None, ray_address: str | None = None) -> Outcome:
    """Continue the run in ``run_dir`` from its newest good checkpoint to ``generations``
    in total (default: the configured number). A run of islands continues on the Ray
    cluster at ``ray_address`` if given ("none": in this process)."""
    err = err or sys.stderr
    run, config = open_run(run_dir)
    problem = _problem(config)
    if ray_address is not None:
        config = replace_field(config, "islands.ray_address",
                               None if ray_address == "none" else ray_address)
    check_devices()
    prepare_islands(config)
    with writing(run_dir):  # a full disk or a read-only one: one line, and resumable
        return _resume(run, config, problem, generations, quiet, err, ray_address is not None)


def _resume(run: RunDir, config: RunConfig, problem: Problem, generations: int | None,
            quiet: bool, err: TextIO, new_address: bool = False) -> Outcome:
    run_dir = run.path
    lock = Lock(run_dir)
    try:
        remove_temporaries(run.checkpoints)
        state, meta = _latest_state(run, err, problem) or (None, {})
        if state is not None:
            check_state(state, config.islands)
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
        if new_address:  # --ray-address: where islands run is part of config.yaml
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
            # the hard points of the generations up to the checkpoint's (certify.teach)
            points = hard_points.active(hard_points.load(run_dir, problem.n_inputs), at)
            if points:
                problem = dataclasses.replace(problem, hard_points=points)
            run.write_front(state, problem.target)
            check_precision(run, err)
            with searcher(config, problem, run) as engine:
                check_evaluator(run, err, meta, engine)
                message = host.moved(meta.get("host"))
                if message:
                    _warn(run, err, message)
                return _drive(run, config, problem, engine, state, stop, quiet, err,
                              meta.get("llm"))
    finally:
        lock.release()


def evaluator_kind(engine) -> str | None:
    """What the search's evaluator resolved to (``Evaluator.kind``: "native/libmvec",
    "cuda"...), or None where it is not in this process (islands on Ray)."""
    engine = getattr(getattr(engine, "backend", None), "engine", engine)  # islands here
    evaluator = getattr(engine, "evaluator", None)
    return None if evaluator is None else evaluator.kind


def check_evaluator(run: RunDir, err: TextIO, meta: dict, engine) -> None:
    """Warn when a resume evaluates programs with another evaluator than the checkpoint's
    (``search.evaluator.backend: auto`` resolved otherwise here: output bits may differ)."""
    was, now = meta.get("evaluator"), evaluator_kind(engine)
    if was is not None and now is not None and was != now:
        backend, _, math = was.partition("/")
        fix = f"search.evaluator.backend: {backend}" + (
            f" and search.evaluator.native_math: {math}" if math else "")
        _warn(run, err, f"the run's checkpoints were made with the {was} evaluator, this "
                        f"resume evaluates with {now}: errors may differ in their last bits "
                        f"from an uninterrupted run; set {fix} in config.yaml (on a machine "
                        "where it builds) for an exact resume")


def _checkpoint(run: RunDir, config: RunConfig, state: State, llm=None,
                evaluator: str | None = None) -> None:
    run.metrics.sync()
    meta = {"problem": config.problem, "seed": config.seed, "version": __version__,
            "host": host.describe()}  # where the generations were computed (evolve.runs.host)
    if evaluator is not None:  # what search.evaluator resolved to (check_evaluator)
        meta["evaluator"] = evaluator
    if llm is not None:  # the LLM operator's counters, budget and history (evolve.search.llm.edits)
        meta["llm"] = llm.state_dict()
    path = save_checkpoint(run.checkpoints, state, meta)
    prune_checkpoints(run.checkpoints, config.keep_checkpoints)
    run.log(f"checkpoint {path.name}")


def _drive(run: RunDir, config: RunConfig, problem: Problem, engine: Engine, state: State,
           stop: StopOnSignal, quiet: bool, err: TextIO, saved_llm: dict | None = None
           ) -> Outcome:
    """Generations until the configured total or a stop signal; checkpoints on the way."""
    llm = open_llm(config.llm, problem, run.path, saved_llm, run.log)  # None when off
    kind = evaluator_kind(engine)
    progress = Progress(err, config.generations, state.generation, quiet)
    saved = state.generation
    hard = hard_points.load(run.path, problem.n_inputs)
    try:
        while state.generation < config.generations and stop.signal is None:
            points = hard_points.active(hard, state.generation + 1)
            if points != problem.hard_points:  # the training points grow here
                if not isinstance(engine, Engine):
                    raise UserError(f"{hard_points.FILE} in {str(run.path)!r}: training "
                                    "points that grow during a run do not work with islands "
                                    "yet; delete the file to resume")
                problem = dataclasses.replace(problem, hard_points=points)
                engine = engine_for(config, problem)
                state = engine.remeasure(state)
                run.log(f"generation {state.generation + 1}: {len(points)} hard points "
                        f"({hard_points.FILE}) join the training points; the population's "
                        "errors measured again, the equivalence cache emptied")
            state, _, row = engine.step(state, llm)
            rows = row if isinstance(row, list) else [row]  # islands: theirs, then the run's
            for r in rows:
                run.metrics.append(r)
            run.write_front(state, problem.target)
            progress.update(rows[-1])
            if state.generation % config.checkpoint_every == 0:
                _checkpoint(run, config, state, llm, kind)
                saved = state.generation
    finally:
        progress.close()
        if llm is not None:
            llm.close()
    if saved != state.generation:
        _checkpoint(run, config, state, llm, kind)
    if stop.signal is not None and state.generation < config.generations:
        run.log(f"stopped by {stop.signal} at generation {state.generation}")
    else:
        run.log(f"finished at generation {state.generation}")
    return Outcome(run.path, config, problem, state,
                   stop.signal if state.generation < config.generations else None)
