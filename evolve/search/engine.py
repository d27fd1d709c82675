"""The engine loop: variation -> fingerprint -> cache -> fit -> evaluate -> select.

The search state is explicit data (``State``): the population as programs with their
objectives and fingerprints, the caches, the counters and the generation number. The
randomness of generation g comes from ``fold_in(key, g)`` split per purpose, so the state
needs no other random stream, and a checkpoint of the state resumes exactly.

A generation:
  1. parents by binary tournament on Pareto rank, their partners by mate choice
     (``evolve.search.mating``: tournament, random or an evolving ideal mate), children by the
     representation's crossover and mutation (``evolve.search.representation``: linear programs,
     or DEAP trees compiled to programs);
  2. each child's fingerprint (outputs on the probe points, quantized, hashed);
     a hit in the cache reuses the objectives of the program evaluated before;
  3. with constant fitting on: children whose *structure* (constants replaced by fixed
     probe values) was never fitted get their literals fitted and written back, and the
     structure is remembered; children of a known structure keep their own literals
     (so perturbing a fitted literal is a real move);
  4. remaining misses are evaluated in one batch on the training points; programs that
     meet the error target there are re-checked on ``n_verify`` points, and that error
     is the one they keep;
  5. NSGA-II over (error, cost) on population + children, duplicates (by fingerprint)
     removed; in accuracy-first mode errors below the target are clipped to it, so
     accurate programs compete on cost alone.

One concept, a generation of the search (the state it works on is ``evolve.search.state``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import jax
import numpy as np

from evolve.batch import Programs, concat, costs, has_literal, padded, row_codes, take
from evolve.errors import UserError
from evolve.eval.evaluator import EvalParams, Evaluator
from evolve.ops import CONST
from evolve.problem import Problem
from evolve.program import Program, ProgramBatch, bucket, to_arrays
from evolve.scaling import standardized
from evolve.search import mating
from evolve.search.cmaes import CMAParams, polish
from evolve.search.fec import FECache, as_keys, first_occurrences
from evolve.search.fingerprints import FINGERPRINT_HASH, fingerprints, make_salt
from evolve.search.fitting import ConstantFitter, FitParams
from evolve.search.representation import TreeParams, crossed, make_representation
from evolve.search.selection import accuracy_first, front_indices, nsga2, pareto_ranks
from evolve.search.state import State
from evolve.search.variation import Space, VariationParams, rng_from_key
from evolve.text import parse_program


def _cpu_devices(devices: list | None) -> list | None:
    """``devices`` if they are CPUs (or None: the default backend's when it is the CPU),
    else the host's CPU devices."""
    chosen = devices or jax.devices()
    if all(d.platform == "cpu" for d in chosen):
        return devices
    return jax.devices("cpu")


STARTS = ("random", "baselines", "starts", "both")  # search.starts


# Purposes of the per-generation keys.
_VARY, _SELECT, _PROBE, _INIT, _AUDIT = range(5)
DIVERSITY_SAMPLE = 4096  # programs the metrics column "diversity" is measured on, at most
_MATE, _TREES = 101, 102  # mate choice (evolve.search.mating), the tree representation's stream
_CHILDREN = 103  # the linear representation's variation on arrays


@dataclass(frozen=True)
class SearchParams:
    """How the search runs (the ``search`` part of the run configuration)."""

    population: int = 200
    children: int = 200
    init_length: tuple[int, int] = (2, 10)
    starts: str = "random"  # generation 0: "random", or first the problem's "baselines",
    #                         its "starts" (Problem.starts) or "both", then random programs
    accuracy_first: bool = True
    fit: bool = True
    fit_points: int = 256
    fit_iterations: int = 10
    fit_limit: int | None = None  # new structures fitted a generation, at most (None: all)
    fit_polish: str = "none"  # "cma": after the LM fit, a CMA-ES on the float32 error
    fec: bool = True
    fec_capacity: int = 200_000
    fec_max_hits: int | None = None
    fec_mantissa_bits: int = 23  # all of float32: approximations that differ by an ULP differ
    audit_rate: float = 0.0
    n_train: int | None = None  # default: the problem's
    early_exit: int = 0  # >0: children first judged on ~this many training points (max errors)
    keep: str = "newest"  # of programs with one fingerprint, the one kept: "newest" or "oldest"
    variation: VariationParams = field(default_factory=VariationParams)
    # "linear" programs, or DEAP "tree"s compiled to programs; None: the problem's own
    representation: str | None = None
    tree: TreeParams = field(default_factory=TreeParams)
    cost: str = "problem"  # "problem": its cost model; "latency": XLA CPU time; "c": gcc's
    mating: str = "tournament"  # a parent's partner: "tournament", "random" or "ideal"
    mate_candidates: int = 7  # candidates an "ideal" chooser compares with its ideal
    mate_sigma: float = 0.1  # mutation of the ideals (evolve/search/mating.py)
    evaluator: EvalParams = field(default_factory=EvalParams)  # backend, CPU kernel's math


def start_programs(problem: Problem, which: str) -> list[Program]:
    """The programs generation 0 begins with for ``search.starts`` = ``which``, in order:
    the problem's baselines that are programs of it (its ops, registers and length; a
    baseline of another op set is left out), then its ``starts`` (each must be one).
    Raises ``UserError`` when a start is not a program of the problem, or none is found."""
    p = problem
    if which == "random":
        return []
    texts = []
    if which in ("baselines", "both"):
        texts += [(f"baseline {b.get('name', i)!r}", b["program"], False)
                  for i, b in enumerate(p.baselines) if b.get("program")]
    if which in ("starts", "both"):
        texts += [(f"starts[{i}]", text, True) for i, text in enumerate(p.starts)]
    programs = []
    for where, text, required in texts:
        try:
            programs.append(parse_program(text, p.n_registers, (*p.opcodes, CONST),
                                          p.max_length))
        except ValueError as e:  # ParseError, ProgramError
            if required:
                raise UserError(f"problem {p.name!r}: {where} is not a program of this "
                                f"problem: {e}") from None
    if not programs:
        raise UserError(f"search.starts = {which!r}, but problem {p.name!r} has no "
                        f"{'baseline or starts' if which == 'both' else which} program "
                        "that fits its ops, registers and length; use 'random'")
    return programs


class Children(NamedTuple):
    """A generation's children, as assessed (before selection), in the order made."""

    programs: Sequence[Program]  # a ``Programs`` view of the children's arrays
    fingerprints: list[bytes]
    error: np.ndarray  # float64 [n]
    cost: np.ndarray  # float64 [n]
    kinds: list[str]  # how each was made, e.g. "two_point+rewire", "llm_rewrite"


class Step(NamedTuple):
    """What ``Engine.step`` returns: the new state, the generation's children and its
    metrics row."""

    state: State
    children: Children
    row: dict


def working_copy(state: State) -> State:
    """A state equal to ``state`` that shares nothing a generation changes: its caches are
    copied (``FECache.copy``: a copy of its arrays), its DEAP
    stream too. Lists and arrays are shared: the engine never changes them in place."""
    tree_random = None
    if state.tree_random is not None:
        tree_random = random.Random()
        tree_random.setstate(state.tree_random.getstate())
    return replace(state, cache=state.cache.copy(), structures=state.structures.copy(),
                   tree_random=tree_random)


_EMPTY_STATS = {"hits": 0, "misses": 0, "evictions": 0, "forgotten": 0, "audits": 0,
                "false_hits": 0}


class Engine:
    """The fixed parts of a search: problem, parameters, data points and compiled code."""

    def __init__(self, problem: Problem, params: SearchParams = SearchParams(),
                 devices: list | None = None):
        self.problem = problem
        self.params = params
        self.space = Space.from_problem(problem)
        self.evaluator = Evaluator(problem.n_registers, problem.n_inputs, problem.dtype,
                                   devices=devices, backend=params.evaluator.backend,
                                   ops=problem.ops, native_math=params.evaluator.native_math,
                                   min_rows=bucket(max(params.population, params.children)))
        # Constant fitting is small, branchy, latency-bound work (a few hundred points per
        # program): it runs on the host's CPU cores even when programs are evaluated on
        # GPUs, where a vectorised fit computes every op at every step and compiles slowly.
        self.fitter = ConstantFitter(problem.n_registers, problem.n_inputs,
                                     FitParams(iterations=params.fit_iterations,
                                               lawson=problem.error in ("max_ulp", "max_abs"),
                                               linear_scaling=problem.linear_scaling),
                                     devices=_cpu_devices(devices), ops=problem.ops)
        self.latency = None
        if params.cost in ("latency", "c"):
            from evolve.search.latency import CLatencyCost, LatencyCost

            self.latency = LatencyCost(problem) if params.cost == "latency" else \
                CLatencyCost(problem)
        n_train = params.n_train or problem.n_train
        # the problem's hard points (certify.teach) join the training and fitting points
        hard = np.asarray(problem.hard_points, problem.np_dtype).reshape(-1, problem.n_inputs)
        self.x_train = np.concatenate([problem.points(n_train), hard])
        self.y_train, self.s_train = problem.targets(self.x_train)
        # at most the training points: for data (SR) problems they are the first ones
        self.x_fit = np.concatenate([problem.points(min(params.fit_points, n_train)), hard])
        self.y_fit, self.s_fit = problem.targets(self.x_fit)
        # early exit: every k-th training point and every hard point, where the largest
        # errors were found (a max error over a subset is a lower bound of the whole's)
        self.early = None
        if params.early_exit and problem.error in ("max_ulp", "max_abs") and \
                self.latency is None and params.early_exit < len(self.x_train):
            k = -(-n_train // params.early_exit)
            self.early = np.concatenate([np.arange(0, n_train, k),
                                         np.arange(n_train, len(self.x_train))])
        self.x_verify = problem.points(problem.n_verify)
        self.y_verify, self.s_verify = problem.targets(self.x_verify)
        self.salt = make_salt(problem.name, {"n_train": n_train, "n_verify": problem.n_verify})
        self.length = bucket(problem.max_length)
        self.representation = make_representation(problem, params)

    # -- probes -----------------------------------------------------------------------
    def probe_points(self, key: jax.Array) -> np.ndarray:
        """The probe set of a run: drawn once from the run's key, part of its identity."""
        # The domain's corners are always probed: programs that differ only there
        # (x/x against 1 at x = 0) must not share a fingerprint.
        corners = self.problem.grid(2)
        rest = self.problem.sample(rng_from_key(jax.random.fold_in(key, _PROBE)),
                                   max(self.problem.n_probe - len(corners), 0))
        return np.concatenate([corners, rest])

    def batch(self, programs) -> ProgramBatch:
        """``programs`` (a list of ``Program``, a ``Programs`` view or a ``ProgramBatch``) as
        arrays of this engine's padded length, one row a program."""
        if isinstance(programs, Programs):
            programs = programs.batch
        if isinstance(programs, ProgramBatch):
            return padded(programs, len(programs.length), self.length)
        return to_arrays(list(programs), length=self.length)

    def _fingerprints(self, batch: ProgramBatch, probe: np.ndarray,
                      structure: bool = False) -> list[bytes]:
        n = len(batch.length)
        if not n:
            return []
        if structure:  # literals replaced by fixed values that depend on their slot only
            slot_values = np.float32(0.5) + np.arange(batch.const.shape[1], dtype=np.float32) * \
                np.float32(0.1234567)
            batch = batch._replace(const=np.where(batch.op == CONST, slot_values[None, :],
                                                  batch.const).astype(np.float32))
        out = self.evaluator.outputs(batch, probe)[:n]
        if self.problem.linear_scaling:  # f and a*f + b are one model (evolve.scaling)
            out = standardized(out)
        salt = self.salt + (b"structure" if structure else b"")
        return fingerprints(out, self.params.fec_mantissa_bits, salt)  # on the device

    def features(self, programs, probe: np.ndarray) -> np.ndarray:
        """Behaviour features of ``programs`` (``evolve.search.mating.features``): their outputs on
        the first probe points, scaled by the training targets."""
        batch = self.batch(programs)
        n = len(batch.length)
        if not n:
            return np.zeros((0, mating.N_FEATURES))
        out = self.evaluator.outputs(batch, probe[: mating.N_FEATURES])
        return mating.features(out[:n], float(np.mean(self.y_train)),
                               float(np.std(self.y_train)))

    def _diversity(self, programs: Programs, probe: np.ndarray) -> float:
        """``mating.diversity`` of ``programs``: of all of them up to ``DIVERSITY_SAMPLE``,
        else of that many spread evenly through the population (a metrics column must not
        cost an evaluation of 1e5 programs a generation)."""
        n = len(programs)
        if n > DIVERSITY_SAMPLE:
            programs = take(self.batch(programs),
                            np.linspace(0, n - 1, DIVERSITY_SAMPLE).astype(np.int64))
        return mating.diversity(self.features(programs, probe))

    # -- evaluation -------------------------------------------------------------------
    def _train_error(self, batch: ProgramBatch) -> np.ndarray:
        """Training errors of the programs of ``batch`` (float64)."""
        stats = self.evaluator.errors(batch, self.x_train, self.y_train, self.s_train)
        return np.asarray(self.problem.error_value(stats)[: len(batch.length)], np.float64)

    def _evaluate(self, batch: ProgramBatch, known: dict[int, float] | None = None,
                  hopeless=None) -> tuple[np.ndarray, np.ndarray]:
        """Errors of the programs of ``batch`` (float64): training error, verified when it
        meets the target, and which of them are lower bounds (bool). ``known``: training
        errors already measured, by row.

        ``hopeless`` (early exit, ``search.early_exit``): a function of the errors of the
        rows on the early-exit subset of the training points (lower bounds of their
        errors) that says which rows cannot reach the front; those keep the bound, and
        only the others are measured on every training point."""
        n = len(batch.length)
        partial = np.zeros(n, bool)
        if not n:
            return np.zeros(0), partial
        known = known or {}
        error = np.array([known.get(i, np.nan) for i in range(n)], np.float64)
        todo = np.array([i not in known for i in range(n)], bool)
        if todo.any() and hopeless is not None:  # given only where self.early is set
            rows = np.flatnonzero(todo)
            sub = take(batch, rows)
            e = self.early
            bound = np.asarray(self.problem.error_value(self.evaluator.errors(
                sub, self.x_train[e], self.y_train[e], self.s_train[e]))[: len(rows)],
                np.float64)
            out = np.asarray(hopeless(rows, bound), bool)
            error[rows[out]] = bound[out]
            partial[rows[out]] = True
            todo[rows[out]] = False
        if todo.any():
            error[todo] = self._train_error(take(batch, todo))
        if self.problem.target is not None:
            good = np.flatnonzero((error < self.problem.target) & ~partial)
            if len(good):
                sub = take(batch, good)
                vstats = self.evaluator.errors(sub, self.x_verify, self.y_verify, self.s_verify)
                error[good] = np.maximum(error[good], self.problem.error_value(vstats)[: len(good)])
        return error, partial

    def _fit(self, batch: ProgramBatch, rng: np.random.Generator) -> np.ndarray:
        """The fitted literals of ``batch``'s programs: its const array, float32 [n, L]
        (with ``search.fit_polish`` = "cma", polished on their float32 error: ``_polish``)."""
        n = len(batch.length)
        const, _ = self.fitter.fit(batch, self.x_fit, self.y_fit, self.s_fit)
        if self.params.fit_polish == "cma":
            return self._polish(batch._replace(const=const[:n]), rng)
        return const[:n]

    def _polish(self, batch: ProgramBatch, rng: np.random.Generator) -> np.ndarray:
        """``batch``'s literals after ``evolve.search.cmaes.polish`` on the problem's error
        of each program as it runs in float32, on the fitting points: const float32 [n, L]."""
        n, L = batch.op.shape
        is_const = (batch.op == CONST) & (np.arange(L)[None, :] < batch.length[:, None])
        K = int(is_const.sum(1).max(initial=0))
        if not n or not K:
            return np.asarray(batch.const)
        slots = np.argsort(~is_const, axis=1, kind="stable")[:, :K]  # literal positions first
        active = np.take_along_axis(is_const, slots, 1)
        rows, ks = np.nonzero(active)

        def evaluate(c):  # [n, lam, K] -> [n, lam]
            lam = c.shape[1]
            big = ProgramBatch(*(np.repeat(np.asarray(a), lam, axis=0) for a in batch))
            const = np.array(big.const)
            r = rows[:, None] * lam + np.arange(lam)[None, :]  # each literal of each copy
            const[r, slots[rows, ks][:, None]] = c[rows, :, ks]
            stats = self.evaluator.errors(big._replace(const=const), self.x_fit, self.y_fit,
                                          self.s_fit)
            return np.asarray(self.problem.error_value(stats)[: n * lam]).reshape(n, lam)

        best, _ = polish(evaluate, np.take_along_axis(np.asarray(batch.const), slots, 1),
                         active, rng, CMAParams())
        const = np.array(batch.const)
        const[rows, slots[rows, ks]] = best[rows, ks]
        return const

    def _most_promising(self, batch: ProgramBatch, new: dict[bytes, int]
                        ) -> tuple[dict[bytes, int], dict[int, float]]:
        """The structures of ``new`` (fingerprint: row of ``batch``) to fit this generation:
        all, or the ``fit_limit`` with the lowest training error before fitting (with the
        literals they inherited; ties in the children's order). The others keep their
        literals, and are fitted when their structure comes again; their training errors
        (row: error) come back too, so that they are not measured twice."""
        limit = self.params.fit_limit
        if limit is None or len(new) <= limit:
            return new, {}
        rows = np.fromiter(new.values(), np.int64, len(new))
        before = self._train_error(take(batch, rows))
        order = np.argsort(np.where(np.isnan(before), np.inf, before), kind="stable")
        chosen = set(rows[order[:limit]].tolist())
        unfitted = {int(r): float(e) for r, e in zip(rows, before) if int(r) not in chosen}
        return {fp: i for fp, i in new.items() if i in chosen}, unfitted

    def assess(self, state: State, programs, probe: np.ndarray,
               rng: np.random.Generator) -> tuple[Programs, np.ndarray, np.ndarray,
                                                   list[bytes], dict]:
        """Fingerprint, fit, look up and evaluate ``programs`` (a list of ``Program``, a
        ``Programs`` view or a ``ProgramBatch``), all as arrays.

        Changes ``state`` (its caches and counters: pass a ``working_copy``) and not
        ``programs`` (the fitted programs are returned, as a ``Programs`` view)."""
        batch = self.batch(programs)
        n = len(batch.length)
        params = self.params
        info = {"fits": 0, "evaluated": 0, "early_exits": 0,
                "fitted_rows": np.zeros(0, np.int64)}
        trained: dict[int, float] = {}  # training errors measured while choosing what to fit
        if params.fit and n:
            idx = np.flatnonzero(has_literal(batch))
            if len(idx):
                sfps = self._fingerprints(take(batch, idx), probe, structure=True)
                # structures never fitted, each once (its first child), in the children's order
                skeys = as_keys(sfps)
                unknown = np.flatnonzero(~state.structures.contains_many(skeys))
                first = unknown[first_occurrences(skeys[unknown])[0]]
                new = {sfps[j]: i for j, i in zip(first.tolist(), idx[first].tolist())}
                new, trained = self._most_promising(batch, new)
                if new:
                    rows = np.fromiter(new.values(), np.int64, len(new))
                    const = np.array(batch.const)
                    const[rows] = self._fit(take(batch, rows), rng)
                    batch = batch._replace(const=const)  # one scatter of the fitted rows
                    info["fitted_rows"] = rows
                    state.structures.insert_column(list(new), "fitted", np.ones(len(new)))
                    info["fits"] = len(new)
                    state.fits += len(new)
        fps = self._fingerprints(batch, probe)
        keys = as_keys(fps)
        error = np.full(n, np.nan)
        if params.fec:  # hits, and the error cached for each
            found, cached = state.cache.lookup_column(keys, "error")
        else:
            found, cached = np.zeros(n, bool), np.full(n, np.nan)
        # Hits to re-evaluate: one uniform draw a child from the generation's stream.
        audit_rate = state.cache.audit_rate if params.fec else 0.0
        audited = rng.random(n) < audit_rate if audit_rate > 0 else np.zeros(n, bool)
        target = self.problem.target
        if params.fec and target is not None and len(state.programs):
            # Hits under the target decide the front (accuracy first: they compete on cost),
            # and a fingerprint of probe outputs cannot tell programs apart that differ at a
            # few float32 only (one rounding more near x = 1): such hits are measured,
            # unless the child is a copy of a program of the population. They count as
            # audits: a different error is a false hit.
            under = found & (cached < target)
            if under.any():
                copies = np.isin(row_codes(batch), row_codes(self.batch(state.programs)))
                audited |= under & ~copies
        served = found & ~audited
        error[served] = cached[served]
        todo = np.flatnonzero(~found | audited)  # children to evaluate: each fingerprint once
        cost = costs(batch, self.problem) if self.latency is None else None
        if len(todo):
            first, group = first_occurrences(keys[todo])
            rows = todo[first]
            hopeless = None
            if self.early is not None and len(state.error):
                hopeless = self._hopeless(state, cost[rows], ~found[rows])
            fresh, partial = self._evaluate(take(batch, rows),
                                            {j: trained[i] for j, i in enumerate(rows.tolist())
                                             if i in trained}, hopeless)
            info["evaluated"] = len(rows)
            info["early_exits"] = int(partial.sum())
            state.evaluations += len(rows)
            error[todo] = fresh[group]
            hit = found[todo]  # audited hits: their fingerprint's fresh error checks the cache's
            checked = np.zeros(len(rows), bool)
            checked[group[hit]] = True
            was = np.full(len(rows), np.nan)
            was[group[hit]] = cached[todo[hit]]
            if checked.any():
                state.cache.record_audit_column(was[checked], fresh[checked])
            if params.fec:  # lower bounds (early exits) are not the error: not cached
                keep = ~checked & ~partial
                state.cache.insert_column(keys[rows[keep]], "error", fresh[keep])
        out = Programs(batch)
        if self.latency is not None:  # measured speed (evolve/search/latency.py)
            cost = self.latency(out, error)
        return out, error, cost, fps, info

    def _hopeless(self, state: State, cost: np.ndarray, may_exit: np.ndarray):
        """Early exit's test (``_evaluate``'s ``hopeless``) for children of costs ``cost``:
        a child whose objectives, its error's lower bound in place of its error, are
        strictly dominated by a member of the population's front cannot reach the front
        (both objectives are non-decreasing in the error, so its true objectives are
        dominated too). Children where ``may_exit`` is False (audited cache hits) are
        measured in full."""
        front = self._objectives(state.error, state.cost)
        front = front[front_indices(front)]
        front = front[np.argsort(front[:, 1], kind="stable")]
        # best[i]: the least first objective of the first i front members by cost (inf: none)
        best = np.concatenate([[np.inf], np.minimum.accumulate(front[:, 0])])

        def hopeless(rows: np.ndarray, bound: np.ndarray) -> np.ndarray:
            obj = self._objectives(bound, cost[rows])
            at_most = best[np.searchsorted(front[:, 1], obj[:, 1], side="right")]  # cost <=
            below = best[np.searchsorted(front[:, 1], obj[:, 1], side="left")]  # cost <
            return ((at_most < obj[:, 0]) | (below <= obj[:, 0])) & may_exit[rows]

        return hopeless

    def start_programs(self) -> list[Program]:
        """The programs generation 0 begins with (``start_programs`` of the problem and
        ``search.starts``)."""
        return start_programs(self.problem, self.params.starts)

    def remeasure(self, state: State) -> State:
        """``state`` with its population's errors measured on this engine's points (those
        of a run whose training points grew: ``certify.teach``) and an empty equivalence
        cache (its errors were measured on other points); the structures cache is kept
        (fitting does not depend on it being complete)."""
        if not isinstance(state.cache, FECache):
            raise UserError("training points that change during a run (certify.teach) do "
                            "not work with islands yet; set certify.teach: false")
        error, _ = self._evaluate(self.batch(state.programs))
        cache = FECache(state.cache.capacity, state.cache.max_hits, state.cache.audit_rate)
        return replace(state, error=error, cache=cache,
                       evaluations=state.evaluations + len(error))

    # -- the loop -----------------------------------------------------------------------
    def init(self, seed: int, probe_key: jax.Array | None = None,
             caches: tuple | None = None) -> State:
        """Generation 0: a random population, assessed.

        Islands (``evolve.runs.islands.core``) pass the run's ``probe_key``, so that fingerprints agree
        across islands, and ``caches`` (cache, structures) shared by the islands."""
        key = jax.random.key(seed)
        cache, structures = caches or (FECache(self.params.fec_capacity,
                                               self.params.fec_max_hits,
                                               self.params.audit_rate),
                                       FECache(self.params.fec_capacity))
        state = State(0, key, [], np.zeros(0), np.zeros(0), [], cache, structures,
                      probe_key=probe_key, fingerprint_hash=FINGERPRINT_HASH)
        rng = rng_from_key(jax.random.fold_in(jax.random.fold_in(key, 0), _INIT))
        state.tree_random = self.representation.new_random(jax.random.fold_in(key, _TREES))
        programs, genomes = self.representation.initial(rng, state, self.params.population)
        probe = self.probe_points(key if probe_key is None else probe_key)
        starts = self.start_programs()[: self.params.population]
        if starts:  # first in the population; their literals are kept (structures "fitted")
            if self.representation.name != "linear":
                raise UserError("search.starts needs the linear representation")
            programs = starts + list(programs)[len(starts):]
            batch = self.batch(starts)
            sfps = self._fingerprints(take(batch, has_literal(batch)), probe, structure=True)
            state.structures.insert_column(sfps, "fitted", np.ones(len(sfps)))
        programs, error, cost, fps, info = self.assess(state, programs, probe, rng)
        genomes = self.representation.absorb(genomes, programs, info["fitted_rows"])
        keep = self._select(error, cost, fps, random.Random(seed))
        state.programs = Programs(take(programs.batch, keep))
        state.genomes = [genomes[i] for i in keep] if genomes else []
        if self.params.mating == "ideal":
            state.ideals = mating.initial_ideals(
                rng_from_key(jax.random.fold_in(key, _MATE)), len(programs))[keep]
        state.error, state.cost = error[keep], cost[keep]
        state.fingerprints = [fps[i] for i in keep]
        state.cache.take_stats()
        state.structures.take_stats()
        return state

    def _objectives(self, error: np.ndarray, cost: np.ndarray) -> np.ndarray:
        if self.params.accuracy_first and self.problem.target is not None:
            return accuracy_first(error, cost, self.problem.target)
        # A NaN or Inf error is the worst in both objectives: never a cheap trade-off.
        return np.stack([error, np.where(np.isfinite(error), cost, np.inf)], axis=1)

    def _select(self, error, cost, fps, rng_gen: random.Random) -> np.ndarray:
        # One program per fingerprint survives: the one of the lowest error objective
        # (programs of one fingerprint differ in error only where a hit was measured
        # again, see assess; in accuracy-first mode all errors under the target are one),
        # and among equal ones the newest (search.keep). Keeping the newest (a child over
        # the parent it equals) lets neutral variants drift, so multi-step structures can
        # form, without letting copies of one function fill the population.
        n = len(fps)
        if not n:
            return np.zeros(0, np.int64)
        keys = as_keys(fps)
        err = self._objectives(np.asarray(error, np.float64), np.asarray(cost, np.float64))[:, 0]
        age = -np.arange(n) if self.params.keep == "newest" else np.arange(n)
        order = np.lexsort((age, err, keys))
        first = np.ones(n, bool)
        first[1:] = keys[order[1:]] != keys[order[:-1]]
        unique = np.sort(order[first])
        obj = self._objectives(error[unique], cost[unique])
        mu = min(self.params.population, len(unique))
        return unique[np.sort(nsga2(obj, mu, rng_gen))]

    def step(self, state: State, vary=None) -> Step:
        """One generation: the new state, the children and the metrics row (``Step``).

        ``state`` is not changed (the new state has caches of its own: ``working_copy``).
        ``vary`` (e.g. ``evolve.search.llm.edits.LLMVariation``) may replace children: called
        as ``vary(engine, state, key_g, pick, children, kinds, probe, rng)`` in place of
        ``assess``, it returns (children, kinds, error, cost, fingerprints, info, pending);
        ``vary.finish(new_state, pending)`` adds columns to the metrics row.
        """
        t0 = time.perf_counter()
        state = working_copy(state)
        g = state.generation + 1
        key_g = jax.random.fold_in(state.key, g)
        rng = rng_from_key(jax.random.fold_in(key_g, _VARY))
        sel_rng = random.Random(int(rng_from_key(jax.random.fold_in(key_g, _SELECT))
                                    .integers(2**63)))
        probe = self.probe_points(state.key if state.probe_key is None else state.probe_key)
        if state.fingerprint_hash != FINGERPRINT_HASH:  # a checkpoint of an earlier version
            state.fingerprints = self._fingerprints(self.batch(state.programs), probe)
            state.fingerprint_hash = FINGERPRINT_HASH
        ranks = pareto_ranks(self._objectives(state.error, state.cost))
        n = len(state.programs)
        params = self.params
        ideals = None
        if params.mating == "ideal":
            mate_rng = rng_from_key(jax.random.fold_in(key_g, _MATE))
            ideals = state.ideals
            if ideals is None or len(ideals) != n:  # e.g. immigrants arrived: start afresh
                ideals = mating.initial_ideals(mate_rng, n)
        pick = mating.choose_pairs(
            rng, ranks, params.children, params.mating, ideals,
            self.features(state.programs, probe) if ideals is not None else None,
            params.mate_candidates)
        if self.representation.name == "tree" and (vary is not None or len(state.genomes) != n):
            raise ValueError("the tree representation needs a tree for every program: LLM "
                             "edits and migrants between islands are linear programs only")
        children, child_genomes, kinds = self.representation.children(
            rng, state, pick, jax.random.fold_in(key_g, _CHILDREN))
        pending = None
        if vary is None:
            children, error, cost, fps, info = self.assess(state, children, probe, rng)
            child_genomes = self.representation.absorb(child_genomes, children,
                                                       info["fitted_rows"])
        else:
            children, kinds, error, cost, fps, info, pending = vary(
                self, state, key_g, pick, Programs(self.batch(children)), kinds, probe, rng)
        everyone = concat(self.batch(state.programs), self.batch(children))
        all_error = np.concatenate([state.error, error])
        all_cost = np.concatenate([state.cost, cost])
        all_fps = list(state.fingerprints) + list(fps)
        keep = self._select(all_error, all_cost, all_fps, sel_rng)
        all_genomes = state.genomes + child_genomes
        new = State(g, state.key, Programs(take(everyone, keep)), all_error[keep], all_cost[keep],
                    [all_fps[i] for i in keep], state.cache, state.structures,
                    state.evaluations, state.fits, probe_key=state.probe_key,
                    genomes=[all_genomes[i] for i in keep] if all_genomes else [],
                    tree_random=state.tree_random, fingerprint_hash=FINGERPRINT_HASH)
        if ideals is not None:
            born = mating.child_ideals(mate_rng, ideals, pick, crossed(kinds), params.mate_sigma)
            new.ideals = np.concatenate([ideals, born])[keep]
        stats = {**_EMPTY_STATS, **new.cache.take_stats()}
        new.structures.take_stats()
        front = front_indices(np.stack([new.error, new.cost], 1))
        target = self.problem.target
        ok = new.error < target if target is not None else np.zeros(len(new.error), bool)
        row = {
            "generation": g,
            "evaluations": new.evaluations,
            "evaluated": info["evaluated"],
            **({"early_exits": info.get("early_exits", 0)} if self.early is not None else {}),
            "fits": info["fits"],
            "cache_hits": stats["hits"],
            "cache_misses": stats["misses"],
            "cache_false_hits": stats["false_hits"],
            "best_error": float(np.min(new.error)),
            "best_cost_at_target": float(np.min(new.cost[ok])) if ok.any() else float("nan"),
            "front_size": len(front),
            "unique_fingerprints": len(set(new.fingerprints)),
            "unique_children": len(set(fps)),
            "diversity": self._diversity(new.programs, probe),
            "population": len(new.programs),
            "wall_seconds": time.perf_counter() - t0,
        }
        if vary is not None:
            row.update(vary.finish(new, pending))
        return Step(new, Children(children, list(fps), np.asarray(error, np.float64),
                                  np.asarray(cost, np.float64), list(kinds)), row)
