"""The run configuration: every field, its default, its check and a one-line description.

A configuration is built in layers, later ones winning: the defaults, a YAML file
(``--config F.yaml``), ``--set NAME=VALUE`` overrides, then the command line's own
options (``PROBLEM``, ``--seed``, ``--generations``). Fields have dotted names:
``problem``, ``seed``, ``generations``, ``checkpoint_every``, ``keep_checkpoints``, every
field of ``SearchParams`` under ``search.`` and every field of ``VariationParams`` under
``search.variation.``. Dict fields (``search.variation.mutation_weights``) are maps whose
known keys are fields of their own (``search.variation.mutation_weights.insert``); a map
given in part keeps the defaults of the keys it leaves out.

In a YAML file, fields are nested maps (``search: {population: 64}``) or dotted keys
(``search.population: 64``). Files are read with ``yaml.safe_load`` only. Every value is
checked when the configuration is built; an error names the field, the value and the
fix (with "did you mean" for unknown names) and is a ``UserError``. The run directory
holds the fully resolved configuration (``dump_config``), which reads back to the same
``RunConfig``.

One concept, the run configuration, in one module: each field's description and check sit
in one table beside the others (most of its length), so a new field is one place to read.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evolve.errors import UserError, did_you_mean
from evolve.eval.evaluator import BACKENDS, NATIVE_MATHS
from evolve.runs.islands.core import IslandParams
from evolve.search.engine import STARTS, SearchParams
from evolve.search.llm.edits import LLMParams


@dataclass(frozen=True)
class SamplingParams:
    """Where the problem's points are drawn (``evolve.problem.Problem.per_binade``)."""

    per_binade: float | None = None  # None: the problem's own; a run records the value used
    near_zeros: bool | None = None  # None: the problem's own; a run records the rule used


@dataclass(frozen=True)
class CertifyParams:
    """The certificate at the end of ``evolve run`` and ``evolve resume``
    (``evolve.results.certify.certify_end_of_run``)."""

    seconds: float = 10.0  # estimated seconds the certificates may take, in all
    count: int = 3  # programs meeting the target on sampled points, cheapest first
    teach: bool = False  # failed certificates add their worst input to the training points


@dataclass(frozen=True)
class RunConfig:
    """A run, fully resolved: what to solve, for how long, how to save it, how to search."""

    problem: str
    seed: int = 0
    generations: int = 100
    checkpoint_every: int = 10
    keep_checkpoints: int = 3
    search: SearchParams = field(default_factory=SearchParams)
    llm: LLMParams = field(default_factory=LLMParams)
    islands: IslandParams = field(default_factory=IslandParams)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    certify: CertifyParams = field(default_factory=CertifyParams)


# What a config.yaml that lacks a field (written before the field existed) meant by it,
# where that differs from the field's default: such a run resumes as it began.
LEGACY: dict[str, Any] = {"sampling.per_binade": 0.0, "sampling.near_zeros": False,
                          "search.evaluator.native_math": "libmvec",
                          "search.representation": "linear"}

# One line for every field, keyed by dotted name (tests check that none is missing).
DESCRIPTIONS: dict[str, str] = {
    "problem": "problem name (see `evolve problems`) or path of a .py file defining PROBLEM",
    "seed": "seed of the run's root random key; the same seed and config give the same run",
    "generations": "total generations to run (resume with a larger --generations to extend)",
    "checkpoint_every": "write a checkpoint every this many generations (and at the end)",
    "keep_checkpoints": "checkpoints kept on disk, newest first (older ones are deleted)",
    "search": "how the search runs",
    "search.population": "programs kept from one generation to the next",
    "search.children": "children made (and assessed) each generation",
    "search.init_length": "[min, max] instructions of the random programs of generation 0",
    "search.starts": "generation 0: 'random' programs, or first the problem's 'baselines' "
                     "(e.g. Sollya's minimax polynomials, their literals kept), its own "
                     "'starts' (structures its file suggests) or 'both', then random ones",
    "search.accuracy_first": "clip errors below the target to it, so accurate programs compete "
                             "on cost",
    "search.fit": "fit the literals of each new program structure to the target",
    "search.fit_points": "points of the domain the constant fitting uses",
    "search.fit_polish": "after the Levenberg-Marquardt fit (float64): 'none', or 'cma' for a "
                         "separable CMA-ES on each program's own float32 error on the fitting "
                         "points (evolve/search/cmaes.py)",
    "search.fit_iterations": "iterations of the constant fitting per structure",
    "search.fit_limit": "new structures fitted a generation, at most: those with the lowest "
                        "training error before fitting (null: all); the others keep their "
                        "literals until their structure comes again",
    "search.early_exit": "judge children first on about this many training points (every "
                         "k-th, and the hard points); those whose error there already puts "
                         "them behind the population's front keep that lower bound and skip "
                         "the rest (problems with a max error; 0: off)",
    "search.fec": "skip programs whose fingerprint (functional equivalence) was seen before",
    "search.fec_capacity": "entries of the fingerprint cache (least recently used dropped)",
    "search.fec_max_hits": "forget a cache entry after this many hits (null: never)",
    "search.fec_mantissa_bits": "significand bits kept when fingerprinting outputs (0..23; 23 = exact, needed for ULP problems)",
    "search.audit_rate": "fraction of cache hits re-evaluated to measure false hits (0..1)",
    "search.n_train": "training points (null: the problem's own number)",
    "search.keep": "of programs with one fingerprint, the one kept: 'newest' or 'oldest'",
    "search.variation": "rates of the variation operators",
    "search.variation.mutation_weights": "relative weights of the mutation kinds (normalised)",
    "search.variation.crossover_rate": "fraction of children made by crossover (0..1)",
    "search.variation.crossover_weights": "relative weights of the crossover kinds "
                                          "(normalised)",
    "search.variation.const_sigma": "relative size of a literal's perturbation",
    "search.variation.max_retries": "redraws of a mutation that leaves a program unchanged",
    "search.representation": "genomes: 'linear' programs, or DEAP expression 'tree's compiled "
                             "to programs; null: the problem's own (trees for symbolic "
                             "regression, linear programs for the others); a run records it",
    "search.tree": "how trees are made and varied (search.representation=tree)",
    "search.tree.init_depth": "[min, max] depth of the ramped half-and-half trees of generation 0",
    "search.tree.max_height": "height limit of a tree (children above it are made again)",
    "search.tree.max_size": "node limit of a tree (null: the problem's max_length)",
    "search.tree.crossover_rate": "fraction of children made by one-point crossover (else by "
                                  "one mutation)",
    "search.tree.mutation_weights": "relative weights of DEAP's tree mutations (normalised)",
    "search.tree.subtree_depth": "[min, max] depth of the subtrees uniform mutation grows",
    "search.tree.literal_range": "[low, high] of the literals random trees draw",
    "search.tree.max_tries": "attempts at a child within the limits before a parent is copied",
    "search.cost": "the cost objective: 'problem' (the problem's cost model), 'latency' "
                   "(ns per point of the program jitted by XLA on the CPU) or 'c' (ns per "
                   "call of the program exported to C and built by gcc -O2 -march=native); "
                   "timed for programs meeting the target, estimated from op weights for "
                   "the others",
    "search.mating": "a parent's partner: 'tournament' (binary, on Pareto rank), 'random', "
                     "or 'ideal' (closest to the parent's evolving ideal mate)",
    "search.mate_candidates": "candidates an 'ideal' chooser compares with its ideal",
    "search.mate_sigma": "standard deviation of the mutation of ideal mates",
    "search.evaluator": "how programs are evaluated (both change output bits: kept for resume)",
    "search.evaluator.backend": "'auto' (C++ kernel on CPUs, CUDA on GPUs, where they build; "
                                "else 'lax' or 'pallas'), 'native', 'cuda', 'pallas' or 'lax'",
    "search.evaluator.native_math": "the C++ CPU kernel's exp, log, sin...: 'own32' (ours in "
                                    "float32, inlined: within 1.5 ULP), 'libmvec' (glibc's) "
                                    "or 'own' (float64-evaluated, correctly rounded but for "
                                    "a few in 1e5)",
    "llm": "LLM edits as variation operators (docs/llm.md); off while llm.rate is 0",
    "llm.rate": "fraction of children proposed by an LLM (0 turns LLM edits off)",
    "llm.models": "model names to ask; NAME@BASE_URL for a model on another server",
    "llm.model_weights": "relative weight of each model of llm.models ([]: equal)",
    "llm.base_url": "OpenAI-compatible server, up to /v1 (vLLM, llama.cpp, Ollama, hosted)",
    "llm.api_key_env": "environment variable holding the API key ('': send no key)",
    "llm.temperature": "sampling temperature of the requests",
    "llm.max_tokens": "most tokens a reply may have",
    "llm.timeout": "seconds a request may take, retries included; then it is cut off",
    "llm.retries": "retries of a request answered 429 or 5xx, or that failed to connect",
    "llm.backoff": "seconds before the first retry (doubling, jittered; or Retry-After)",
    "llm.max_in_flight": "requests in flight at once",
    "llm.crossover_rate": "fraction of LLM children made by crossover (else mutation)",
    "llm.inspirations": "parents shown to an LLM crossover (2 or 3)",
    "llm.history": "outcomes of recent LLM edits shown in each prompt",
    "llm.answer": "reply format asked for: 'either', 'program' or 'edits' (SEARCH/REPLACE)",
    "llm.budget_tokens": "tokens (in + out) the run may spend on LLM edits (null: no limit)",
    "llm.budget_cost": "money the run may spend on LLM edits (null: no limit)",
    "llm.price_in": "price of a million prompt tokens (for llm.budget_cost)",
    "llm.price_out": "price of a million reply tokens (for llm.budget_cost)",
    "llm.breaker": "circuit breaker per endpoint: a failing server is paused, then probed",
    "llm.breaker.failures": "consecutive failures (refused, timeout, HTTP error) that pause "
                            "an endpoint",
    "llm.breaker.cooldown": "seconds of an endpoint's first pause; doubled after each failed "
                            "probe",
    "llm.breaker.max_cooldown": "seconds of an endpoint's longest pause",
    "islands": "islands: searches side by side that exchange programs (docs/islands.md)",
    "islands.count": "number of islands (1: one plain search)",
    "islands.migrate_every": "send migrants every this many generations",
    "islands.migrants": "best programs each island sends per migration (0: no migration)",
    "islands.topology": "where migrants go: 'ring' (to the next island) or 'random'",
    "islands.reset_stagnant_after": "refound an island from the best one after this many "
                                    "generations without improvement (null: never)",
    "islands.shared_cache": "share the equivalence and fitted-structure caches across islands",
    "islands.ray_address": "run islands as Ray actors: 'local', 'auto' or a cluster address "
                           "(null: in this process)",
    "sampling": "where the problem's training, check and probe points lie",
    "sampling.per_binade": "share (0..1) of the points of a float32 problem drawn uniformly in "
                           "the float32 bit pattern (every binade alike), the rest uniform in "
                           "value (null: the problem's own, 0.5 for ULP problems; a run "
                           "records the value it used)",
    "sampling.near_zeros": "draw half of those per-binade points around the zeros of the "
                           "function inside the domain, per binade of the distance (true, "
                           "false; null: the problem's own, true for ULP problems; a run "
                           "records the rule it used)",
    "certify": "the certificate at the end of `evolve run` / `evolve resume` (ULP problems "
               "of one float32 input)",
    "certify.seconds": "estimated seconds all end-of-run certificates may take; a program "
                       "whose estimate does not fit is left to `evolve verify` (0: none)",
    "certify.count": "programs certified at the end of a run, at most: those meeting the "
                     "target on sampled points, cheapest first",
    "certify.teach": "programs whose certificate (end of run, or evolve verify) misses the "
                     "target add their worst input to the training points of the generations "
                     "after the newest checkpoint (hard_points.json; a resumed run measures "
                     "its population on them again); single searches only, not islands",
}


def _at_least(lo: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v is None or v >= lo), f"must be at least {lo}"


def _between(lo: float, hi: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v is None or lo <= v <= hi), f"must be between {lo} and {hi}"


def _weights_ok(v: Mapping[str, float]) -> bool:
    return sum(v.values()) > 0


# Checks beyond the type, keyed by dotted name: (predicate, what the value must be).
CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _between(0, 2**63 - 1),
    "generations": _at_least(0),
    "checkpoint_every": _at_least(1),
    "keep_checkpoints": _at_least(1),
    "search.population": _at_least(1),
    "search.children": _at_least(1),
    "search.init_length": (lambda v: 1 <= v[0] <= v[1], "must be [min, max] with 1 <= min <= max"),
    "search.fit_points": _at_least(1),
    "search.fit_polish": (lambda v: v in ("none", "cma"), "must be 'none' or 'cma'"),
    "search.fit_iterations": _at_least(0),
    "search.fit_limit": _at_least(0),
    "search.early_exit": _at_least(0),
    "search.fec_capacity": _at_least(1),
    "search.fec_max_hits": _at_least(1),
    "search.fec_mantissa_bits": _between(0, 23),
    "search.audit_rate": _between(0, 1),
    "search.n_train": _at_least(2),
    "search.keep": (lambda v: v in ("newest", "oldest"), "must be 'newest' or 'oldest'"),
    "search.starts": (lambda v: v in STARTS, "must be one of " + ", ".join(map(repr, STARTS))),
    "search.variation.mutation_weights": (_weights_ok, "must not be all 0"),
    "search.variation.crossover_rate": _between(0, 1),
    "search.variation.crossover_weights": (_weights_ok, "must not be all 0"),
    "search.variation.const_sigma": _at_least(0),
    "search.variation.max_retries": _at_least(1),
    "search.representation": (lambda v: v in (None, "linear", "tree"),
                              "must be 'linear' or 'tree' (or null: the problem's own)"),
    "search.tree.init_depth": (lambda v: 0 <= v[0] <= v[1],
                               "must be [min, max] with 0 <= min <= max"),
    "search.tree.max_height": _at_least(0),
    "search.tree.max_size": _at_least(1),
    "search.tree.crossover_rate": _between(0, 1),
    "search.tree.mutation_weights": (_weights_ok, "must not be all 0"),
    "search.tree.subtree_depth": (lambda v: 0 <= v[0] <= v[1],
                                  "must be [min, max] with 0 <= min <= max"),
    "search.tree.literal_range": (lambda v: v[0] <= v[1], "must be [low, high] with low <= high"),
    "search.tree.max_tries": _at_least(1),
    "search.cost": (lambda v: v in ("problem", "latency", "c"),
                    "must be 'problem', 'latency' or 'c'"),
    "search.mating": (lambda v: v in ("tournament", "random", "ideal"),
                      "must be 'tournament', 'random' or 'ideal'"),
    "search.mate_candidates": _at_least(1),
    "search.mate_sigma": _at_least(0),
    "search.evaluator.backend": (lambda v: v in BACKENDS,
                                 "must be " + ", ".join(map(repr, BACKENDS))),
    "search.evaluator.native_math": (lambda v: v in NATIVE_MATHS,
                                     "must be " + " or ".join(map(repr, NATIVE_MATHS))),
    "islands.count": _at_least(1),
    "islands.migrate_every": _at_least(1),
    "islands.migrants": _at_least(0),
    "sampling.per_binade": _between(0, 1),
    "sampling.near_zeros": (lambda v: v is None or isinstance(v, bool),
                            "must be true, false or null"),
    "certify.seconds": _at_least(0),
    "certify.count": _at_least(0),
    "certify.teach": (lambda v: isinstance(v, bool), "must be true or false"),
    "islands.topology": (lambda v: v in ("ring", "random"), "must be 'ring' or 'random'"),
    "islands.reset_stagnant_after": _at_least(1),
    "islands.ray_address": (lambda v: v is None or v.strip() != "",
                            "must be 'local', 'auto', an address like 10.0.0.1:6379, or null"),
    "llm.rate": _between(0, 1),
    "llm.temperature": _at_least(0),
    "llm.max_tokens": _at_least(1),
    "llm.timeout": (lambda v: v > 0, "must be above 0"),
    "llm.retries": _at_least(0),
    "llm.backoff": _at_least(0),
    "llm.max_in_flight": _at_least(1),
    "llm.crossover_rate": _between(0, 1),
    "llm.inspirations": _between(2, 3),
    "llm.history": _at_least(0),
    "llm.answer": (lambda v: v in ("either", "program", "edits"),
                   "must be 'either', 'program' or 'edits'"),
    "llm.budget_tokens": _at_least(0),
    "llm.budget_cost": _at_least(0),
    "llm.price_in": _at_least(0),
    "llm.price_out": _at_least(0),
    "llm.breaker.failures": _at_least(1),
    "llm.breaker.cooldown": (lambda v: v > 0, "must be above 0"),
    "llm.breaker.max_cooldown": (lambda v: v > 0, "must be above 0"),
}


# -- the fields, read from the dataclasses ------------------------------------------------
@dataclass(frozen=True)
class Field:
    """A configurable value: its dotted name, type, default and description."""

    name: str
    type: Any  # a resolved type hint: int, float, bool, str, int | None, tuple[int, int]
    default: Any
    description: str


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None  # required


def _walk(cls, prefix: str = "") -> tuple[dict[str, Field], dict[str, type]]:
    """Leaf fields and groups (nested dataclasses, dict fields) of ``cls``, by dotted name."""
    leaves: dict[str, Field] = {}
    groups: dict[str, Any] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        name, hint, default = prefix + f.name, hints[f.name], _default(f)
        if dataclasses.is_dataclass(hint):
            groups[name] = hint
            sub_leaves, sub_groups = _walk(hint, name + ".")
            leaves.update(sub_leaves)
            groups.update(sub_groups)
        elif hint is dict or typing.get_origin(hint) is dict:
            groups[name] = dict
            for key, value in default.items():
                leaves[f"{name}.{key}"] = Field(f"{name}.{key}", type(value), value,
                                                f"weight of {key!r} (>= 0)")
        else:
            leaves[name] = Field(name, hint, default, DESCRIPTIONS.get(name, ""))
    return leaves, groups


FIELDS, GROUPS = _walk(RunConfig)


# -- values -------------------------------------------------------------------------------
def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if _is_optional(hint):
        inner = [a for a in args if a is not type(None)][0]
        return f"{_type_name(inner)} or null"
    if typing.get_origin(hint) is tuple and args[-1:] == (Ellipsis,):
        return f"a list of values, each {_type_name(args[0])}"
    if typing.get_origin(hint) is tuple:
        return f"a list of {len(args)} values, [{', '.join(_type_name(a) for a in args)}]"
    return str(hint)


def _is_optional(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    return (origin is typing.Union or origin is types.UnionType) and \
        type(None) in typing.get_args(hint)


class _Bad(Exception):
    """A value that is not of the field's type."""


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` (lenient only where nothing is lost), or raise ``_Bad``."""
    if _is_optional(hint):
        if value is None:
            return None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(value, inner[0])
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Bad
    if hint is int:
        if isinstance(value, str):
            try:
                value = float(value.replace("_", "")) if any(c in value for c in ".eE") else \
                    int(value.replace("_", ""))
            except ValueError:
                raise _Bad from None
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Bad
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value.replace("_", ""))
            except ValueError:
                raise _Bad from None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and \
                math.isfinite(value):
            return float(value)
        raise _Bad
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise _Bad
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[-1:] == (Ellipsis,):
        if isinstance(value, str):  # one item given alone: llm.models=qwen2.5-coder
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise _Bad
        return tuple(_coerce(v, typing.get_args(hint)[0]) for v in value)
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise _Bad
        return tuple(_coerce(v, a) for v, a in zip(value, args))
    raise TypeError(f"evolve.runs.config cannot handle fields of type {hint!r}; teach _coerce")


def _yaml_value(value: Any) -> Any:
    """A value as written to config.yaml (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


# -- layers -------------------------------------------------------------------------------
def _unknown(name: str, where: str) -> UserError:
    choices = list(FIELDS) + list(GROUPS)
    hint = did_you_mean(name, choices)
    if not hint:  # a misspelt last part: suggest within the same group
        head, _, tail = name.rpartition(".")
        close = did_you_mean(tail, [n.rpartition(".")[2] for n in choices
                                    if n.rpartition(".")[0] == head])
        hint = close.replace("'", f"'{head}.", 1) if close and head else close
    return UserError(f"unknown config field {name!r}{where}{hint}; "
                     "`evolve run --help-config` lists the fields")


def _flatten(prefix: str, value: Any, out: dict[str, Any], where: str) -> None:
    """Put ``value`` for the dotted name ``prefix`` into ``out`` as leaf values."""
    if prefix in FIELDS:
        out[prefix] = value
        return
    if prefix and prefix not in GROUPS:
        raise _unknown(prefix, where)
    if not isinstance(value, Mapping):
        names = sorted({n[len(prefix) + 1:].partition(".")[0] for n in FIELDS
                        if n.startswith(prefix + ".")})
        raise UserError(f"config field {prefix!r} = {_show(value)}{where} is a group of "
                        f"fields, not a value; set its fields ({', '.join(names)}) as "
                        f"{prefix}.NAME=VALUE or give a map {prefix}: {{NAME: VALUE}}")
    for key, sub in value.items():
        _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out, where)


def _parse_set(item: str) -> tuple[str, Any]:
    name, eq, text = item.partition("=")
    name = name.strip()
    if not eq or not name:
        raise UserError(f"--set expects NAME=VALUE (e.g. --set search.population=64), "
                        f"got {item!r}")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except Exception:  # not only YAMLError: see read_yaml
        value = text
    return name, value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file (``yaml.safe_load``); empty files give ``{}``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read config file {str(path)!r}: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or "not valid YAML").split())
        raise UserError(f"config file {str(path)!r} is not valid YAML{at}: {problem}") from None
    except (ValueError, TypeError, AttributeError, OverflowError, RecursionError) as e:
        # PyYAML's safe constructors raise these for some malformed scalars (a date such as
        # 2001-02-30, a bad !!timestamp) and nesting too deep for Python's stack.
        raise UserError(f"config file {str(path)!r} is not valid YAML: a value cannot be "
                        f"read ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise UserError(f"config file {str(path)!r} must hold a map of fields (name: value), "
                        f"not a {type(data).__name__}")
    return dict(data)


def build_config(file: str | Path | None = None, sets: Iterable[str] = (),
                 overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """The configuration from defaults, a YAML ``file``, ``--set`` items and ``overrides``.

    ``overrides`` maps dotted names to values (the command line's PROBLEM, --seed,
    --generations); None values are ignored. Raises ``UserError`` for anything invalid.
    """
    values: dict[str, Any] = {}
    if file is not None:
        _flatten("", read_yaml(file), values, f" in {str(file)!r}")
    for item in sets:
        name, value = _parse_set(item)
        _flatten(name, value, values, " (from --set)")
    for name, value in (overrides or {}).items():
        if value is not None:
            _flatten(name, value, values, "")
    return from_values(values)


def from_values(values: Mapping[str, Any], where: str = "") -> RunConfig:
    """The configuration with leaf ``values`` (by dotted name) over the defaults."""
    resolved = {}
    for name, f in FIELDS.items():
        if name not in values:
            resolved[name] = f.default
            continue
        value = values[name]
        try:
            resolved[name] = _coerce(value, f.type)
        except _Bad:
            raise UserError(f"config field {name!r} = {_show(value)}{where} is not "
                            f"{_type_name(f.type)}; set it like {name}: {_show(f.default)} "
                            "(the default)") from None
    if resolved["problem"] is None:
        raise UserError(f"no problem given{where}: pass PROBLEM (`evolve problems` lists them) or set "
                        "problem: NAME in the config file")
    for name, (ok, must) in CHECKS.items():
        if name in GROUPS:
            value, default = _group_value(name, resolved), _group_value(name, _defaults())
        elif name in FIELDS:
            value, default = resolved[name], FIELDS[name].default
        else:  # a field this version of the engine does not have
            continue
        if not ok(value):
            raise UserError(f"config field {name!r} = {_show(value)}{where} {must}; "
                            f"the default is {_show(default)}")
    for name, group in GROUPS.items():  # the entries of dict fields are weights: >= 0
        for key, value in _group_value(name, resolved).items():
            if group is dict and value < 0:
                raise UserError(f"config field {name + '.' + key!r} = {_show(value)}{where} "
                                f"must be at least 0; the default is "
                                f"{_show(FIELDS[name + '.' + key].default)}")
    if resolved.get("certify.teach") and (resolved.get("islands.count") or 1) > 1:
        raise UserError(f"certify.teach{where} works for single searches, not islands yet; "
                        "set certify.teach: false or islands.count: 1")
    if resolved.get("search.representation") == "tree":  # trees need a tree per program
        if resolved.get("search.starts", "random") != "random":
            raise UserError(f"search.representation = 'tree'{where} starts from random trees "
                            "only; set search.starts='random' or use 'linear'")
        if (resolved.get("llm.rate") or 0) > 0:
            raise UserError(f"search.representation = 'tree'{where} cannot take LLM edits "
                            "(they are linear programs); set llm.rate=0 or use 'linear'")
    return _build(RunConfig, "", resolved)


def _defaults() -> dict[str, Any]:
    return {name: f.default for name, f in FIELDS.items()}


def _group_value(name: str, resolved: Mapping[str, Any]) -> Any:
    return {n[len(name) + 1:]: v for n, v in resolved.items() if n.startswith(name + ".")}


def _build(cls, prefix: str, resolved: Mapping[str, Any]):
    kwargs = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        name = prefix + f.name
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            kwargs[f.name] = _build(hint, name + ".", resolved)
        elif name in GROUPS:
            kwargs[f.name] = _group_value(name, resolved)
        else:
            kwargs[f.name] = resolved[name]
    return cls(**kwargs)


# -- writing and describing -----------------------------------------------------------------
def to_dict(config: RunConfig) -> dict[str, Any]:
    """The configuration as nested plain data (what config.yaml holds)."""

    def convert(obj):
        if dataclasses.is_dataclass(obj):
            return {f.name: convert(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                    if f.init}
        if isinstance(obj, Mapping):
            return {str(k): convert(v) for k, v in obj.items()}
        return _yaml_value(obj)

    return convert(config)


HEADER = ("# evolve run configuration, fully resolved (every default filled in).\n"
          "# `evolve run --help-config` describes each field.\n")


def dump_config(config: RunConfig) -> str:
    """The YAML text of ``config``; ``load_config`` of it gives ``config`` back."""
    return HEADER + yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=False)


def load_config(path: str | Path) -> RunConfig:
    """The configuration in a YAML file (a run's config.yaml), checked. A field the file
    lacks takes its ``LEGACY`` value if it has one (the file was written before the field
    existed), else its default."""
    values: dict[str, Any] = {}
    where = f" in {str(path)!r}"
    _flatten("", read_yaml(path), values, where)
    return from_values({**LEGACY, **values}, where)


def run_problem(config: RunConfig):
    """The ``evolve.problem.Problem`` a run of ``config`` solves: ``config.problem`` loaded,
    its points drawn by the run's ``sampling.per_binade`` and ``sampling.near_zeros``
    (None: the problem's own)."""
    from evolve.catalog import load_problem

    problem = load_problem(config.problem)
    near = config.sampling.near_zeros
    if near is not None and near != problem.near_zeros_on:
        problem = dataclasses.replace(problem, near_zeros=near)
    share = config.sampling.per_binade
    if share is None or share == problem.per_binade:
        return problem
    if share and problem.dtype != "float32":
        raise UserError(f"config field 'sampling.per_binade' = {share!r}: problem "
                        f"{problem.name!r} is in {problem.dtype}, and per binade sampling draws "
                        "float32 bit patterns; set sampling.per_binade: 0 (or null)")
    return dataclasses.replace(problem, per_binade=share)


def replace_field(config: RunConfig, name: str, value: Any) -> RunConfig:
    """``config`` with the field ``name`` (dotted) set to ``value``, checked."""
    values: dict[str, Any] = {}
    _flatten("", to_dict(config), values, "")
    _flatten(name, value, values, "")
    return from_values(values)


def help_config() -> str:
    """The table of fields that ``evolve run --help-config`` prints."""
    rows = []
    for name, f in FIELDS.items():
        group = name.rpartition(".")[0]
        if GROUPS.get(group) is dict and (not rows or not rows[-1][0].startswith(group)):
            rows.append((group, "(map)", DESCRIPTIONS[group]))
        default = "(required)" if name == "problem" else _show(f.default)
        rows.append((name, default, f.description))
    width = max(len(r[0]) for r in rows) + 2
    dwidth = max(len(r[1]) for r in rows) + 2
    lines = [
        "Configuration fields: set them in a YAML file (--config F.yaml) as nested maps",
        "(search: {population: 64}) or dotted keys, or with --set NAME=VALUE (repeatable).",
        "Later layers win: defaults, --config, --set, then PROBLEM, --seed and --generations.",
        "",
        f"{'field':<{width}}{'default':<{dwidth}}description",
    ]
    lines += [f"{n:<{width}}{d:<{dwidth}}{desc}" for n, d, desc in rows]
    return "\n".join(lines) + "\n"
