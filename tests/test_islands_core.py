"""Islands in one process: run directory, exact resume, migration, resets, the shared cache
(the Ray backend, which must give the same runs, is tested in test_ray_actors.py)."""

import csv
import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tiny
from evolve import cli
from evolve.errors import UserError
from evolve.ops import CONST
from evolve.program import Instruction, Program
from evolve.results.plots import load_run, plot_runs
from evolve.runs import driver as runs
from evolve.runs.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from evolve.runs.config import build_config
from evolve.runs.files import front_rows
from evolve.runs.islands.core import TOTAL, IslandParams, Stepped, island_seed, plan_boundary
from evolve.search.fec import FECache
from evolve.search.shared_cache import SharedCacheView, apply_log
from evolve.search.state import IslandsState, Members

N = 6  # generations; checkpoints every 3; migration every 2, resets after 2 stagnant
SETS = ["islands.count=2", "islands.migrate_every=2", "islands.reset_stagnant_after=2"]


def config(generations: int, *extra: str, seed: int = 0):
    return build_config(sets=tiny.SETS + SETS + list(extra),
                        overrides={"problem": tiny.PROBLEM, "generations": generations,
                                   "seed": seed})


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("islands") / "reference"
    outcome = runs.start(config(N), path, quiet=True)
    assert outcome.state.generation == N and outcome.stopped_by is None
    return path


def test_metrics_have_a_row_per_island_and_one_for_the_run(reference):
    m = pd.read_csv(reference / "metrics.csv", dtype={"island": str})
    assert list(m.columns[:2]) == ["generation", "island"]
    assert list(m["island"]) == ["0", "1", TOTAL] * N
    assert list(m["generation"]) == [g for g in range(1, N + 1) for _ in range(3)]
    islands, total = m[m["island"] != TOTAL], m[m["island"] == TOTAL]
    for column in ("evaluations", "evaluated", "cache_hits", "cache_misses", "immigrants"):
        sums = islands.groupby("generation")[column].sum().to_numpy()
        np.testing.assert_array_equal(total[column].to_numpy(), sums)
    mins = islands.groupby("generation")["best_error"].min().to_numpy()
    np.testing.assert_array_equal(total["best_error"].to_numpy(), mins)
    # Migration every 2 generations, 2 migrants to each island on a ring of 2.
    assert list(total["immigrants"]) == [0, 4, 0, 4, 0, 4]
    rate = total["cache_hits"] / (total["cache_hits"] + total["cache_misses"])
    np.testing.assert_allclose(total["cache_hit_rate"], rate)


def test_checkpoint_holds_every_island_and_the_shared_caches(reference, tmp_path):
    _, path = list_checkpoints(reference / "checkpoints")[-1]
    state, meta = load_checkpoint(path)
    assert isinstance(state, IslandsState) and state.generation == N and state.count == 2
    a, b = state.islands
    assert a.programs != b.programs  # each island searches with its own keys
    assert a.cache is not b.cache and a.cache.base is b.cache.base is state.shared["cache"]
    for island in state.islands:  # shared: every island's population is in the one cache
        assert all(fp in state.shared["cache"] for fp in island.fingerprints)
    with np.load(path / "state.npz", allow_pickle=False) as npz:
        names = set(npz.files)
    assert {"key", "island.0.programs.op", "island.1.error", "shared.cache.fingerprints",
            "shared.structures.fingerprints"} <= names
    assert not any(n.startswith(("cache.", "structures.")) for n in names)
    scalars = json.loads((path / "state.json").read_text())
    assert scalars["islands"]["count"] == 2 and scalars["meta"]["problem"] == tiny.PROBLEM
    # Written back, it reads back the same.
    again, _ = load_checkpoint(save_checkpoint(tmp_path, state, meta))
    for x, y in zip(again.islands, state.islands):
        assert x.programs == y.programs and x.fingerprints == y.fingerprints
        np.testing.assert_array_equal(x.error, y.error)
        np.testing.assert_array_equal(jax.random.key_data(x.key), jax.random.key_data(y.key))
    assert (again.best, again.stagnant) == (state.best, state.stagnant)
    np.testing.assert_array_equal(again.shared["cache"].to_state()["fingerprints"],
                                  state.shared["cache"].to_state()["fingerprints"])


def test_front_csv_is_the_front_over_all_islands(reference):
    state, _ = load_checkpoint(list_checkpoints(reference / "checkpoints")[-1][1])
    union = Members.union([Members.of(s, range(len(s.programs))) for s in state.islands])
    with open(reference / "front.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert [(repr(e), repr(c), str(n), t) for e, c, n, t in front_rows(union)] == \
        [tuple(r[:4]) for r in rows]


@pytest.mark.parametrize("stop", [3, 4])
def test_resume_is_exact(reference, tmp_path, stop):
    path = tmp_path / "run"
    runs.start(config(stop), path, quiet=True)
    if stop == 4:  # what a process killed after generation 5 leaves behind: rows past 4
        with open(path / "metrics.csv", "a") as f:
            f.write("5,0,1\n5,1,1\n")
    runs.resume(path, N, quiet=True)
    tiny.assert_same_run(reference, path)


def test_islands_with_caches_of_their_own_resume_exactly(tmp_path):
    extra = ("islands.shared_cache=false", "islands.topology=random", "islands.count=3")
    runs.start(config(4, *extra), tmp_path / "a", quiet=True)
    runs.start(config(3, *extra), tmp_path / "b", quiet=True)
    runs.resume(tmp_path / "b", 4, quiet=True)
    tiny.assert_same_run(tmp_path / "a", tmp_path / "b")
    state, _ = load_checkpoint(list_checkpoints(tmp_path / "a" / "checkpoints")[-1][1])
    assert state.shared is None and len({id(s.cache) for s in state.islands}) == 3


@pytest.mark.parametrize("count", ["1", "3"])
def test_resume_refuses_a_config_that_does_not_match_the_checkpoints(reference, tmp_path,
                                                                       count):
    path = tmp_path / "run"
    shutil.copytree(reference, path)
    config = path / "config.yaml"
    config.write_text(config.read_text().replace("count: 2", f"count: {count}"))
    with pytest.raises(UserError, match="checkpoints hold 2 islands, but its config.yaml"):
        runs.resume(path, N + 1, quiet=True)


def test_the_seed_decides_the_run(reference, tmp_path):
    path = tmp_path / "run"
    runs.start(config(2, seed=1), path, quiet=True)
    assert (path / "front.csv").read_bytes() != (reference / "front.csv").read_bytes()
    assert island_seed(0, 0) != island_seed(0, 1) != island_seed(1, 0)


def test_plot_shows_islands(reference, tmp_path):
    run = load_run(reference)
    assert list(run.metrics["island"]) == [TOTAL] * N
    assert sorted(set(run.islands["island"].astype(int))) == [0, 1]
    written = plot_runs([reference], tmp_path / "fitness.png")
    assert all(p.stat().st_size > 0 for p in written)


def test_command_line(tmp_path, capsys):
    path = tmp_path / "run"
    assert cli.main(["run", *tiny.cli_args(2), "--islands", "2", "--run-dir", str(path)]) == 0
    assert "run directory" in capsys.readouterr().out
    assert runs.open_run(path)[1].islands.count == 2
    assert "island" in (path / "metrics.csv").read_text().splitlines()[0]
    assert cli.main(["run", *tiny.cli_args(2), "--islands", "0"]) == 2
    with pytest.raises(UserError, match="islands.topology.*'ring' or 'random'"):
        build_config(sets=["islands.topology=star"], overrides={"problem": "exp2"})


# -- the parts ------------------------------------------------------------------------------
def _members(*errors: float, tag: int = 0) -> Members:
    programs = [Program((Instruction(CONST, 1, (), e),), 1) for e in errors]
    return Members(programs, np.array(errors, np.float64), np.ones(len(errors)),
                   [bytes([tag, i]) * 8 for i in range(len(errors))])


def _state(best: list[float], stagnant: list[int]) -> IslandsState:
    return IslandsState(0, jax.random.key(0), best, stagnant, 0, _members())


def test_migration_goes_round_a_ring_or_at_random():
    stepped = [Stepped(None, _members(float(i), tag=i), float(i)) for i in range(4)]
    state = _state([0.0, 1.0, 2.0, 3.0], [0] * 4)
    plans, _, _ = plan_boundary(IslandParams(count=4, migrate_every=2), state.key, 4, state,
                                stepped)
    assert [p.arrivals[0] is stepped[(i - 1) % 4].elite for i, p in enumerate(plans)] == [True] * 4
    plans, _, _ = plan_boundary(IslandParams(count=4, migrate_every=2), state.key, 3, state,
                                stepped)
    assert all(not p.arrivals for p in plans)  # not a migration generation
    params = IslandParams(count=4, migrate_every=1, topology="random")
    sources = []
    for g in range(1, 9):
        plans, _, _ = plan_boundary(params, state.key, g, state, stepped)
        again, _, _ = plan_boundary(params, state.key, g, state, stepped)
        arrivals = [[id(m) for m in p.arrivals] for p in plans]
        assert arrivals == [[id(m) for m in p.arrivals] for p in again]  # from keys only
        assert sum(map(len, arrivals)) == 4
        for i, p in enumerate(plans):
            assert stepped[i].elite not in p.arrivals  # never to itself
        sources.append(arrivals)
    assert len({repr(s) for s in sources}) > 1


def test_stagnant_islands_are_reset_from_the_best():
    stepped = [Stepped(None, _members(5.0, tag=0), 5.0), Stepped(None, _members(1.0, tag=1), 1.0),
               Stepped(None, _members(9.0, tag=2), 9.0)]
    state = _state([5.0, 1.0, 9.0], [1, 7, 0])
    params = IslandParams(count=3, migrate_every=100, reset_stagnant_after=2)
    plans, best, stagnant = plan_boundary(params, state.key, 1, state, stepped)
    assert plans[0].founders is stepped[1].elite  # stalled for 2: refounded from island 1
    assert plans[1].founders is None  # the best island itself is never reset
    assert plans[2].founders is None  # stalled for 1 only
    assert (best, stagnant) == ([1.0, 1.0, 9.0], [0, 8, 1])


def test_shared_cache_views_see_the_generation_start_and_logs_apply_in_island_order():
    fp = [bytes([i]) * 16 for i in range(4)]
    base = FECache(3)
    base.insert(fp[0], {"error": 0.0})
    a, b = SharedCacheView(base, "cache"), SharedCacheView(base, "cache")
    a.insert(fp[1], {"error": 1.0})
    b.insert(fp[2], {"error": 2.0})
    assert a.lookup(fp[1]) == {"error": 1.0} and b.lookup(fp[1]) is None  # not till the boundary
    assert a.lookup(fp[0]) == {"error": 0.0} and len(base) == 1  # base untouched
    assert (a.take_stats()["hits"], b.take_stats()["misses"]) == (2, 1)
    logs = [a.take_log(), b.take_log()]
    replica = FECache.from_state(FECache(3).to_state())
    replica.insert(fp[0], {"error": 0.0})
    for cache in (base, replica):  # every copy that applies the logs in order ends equal
        for log in logs:
            apply_log(cache, log)
    lru = [fp.index(bytes(k)) for k in base.to_state()["fingerprints"]]
    assert lru == [1, 0, 2]  # fp0 was hit after fp1's insert
    for k in ("fingerprints", "hit_counts", "scalars"):
        np.testing.assert_array_equal(base.to_state()[k], replica.to_state()[k])
    b.insert(fp[3], {"error": 3.0})  # the cache is full: the oldest goes at the boundary
    apply_log(base, b.take_log())
    assert fp[1] not in base and fp[3] in a and a.lookup(fp[3]) == {"error": 3.0}


generations = st.lists(st.tuples(st.lists(st.integers(0, 7), max_size=10),
                                  st.lists(st.integers(0, 7), max_size=10),
                                  st.lists(st.booleans(), max_size=10)), max_size=5)


@given(generations, st.integers(1, 6))
def test_one_islands_log_does_what_the_calls_do_on_the_cache(gens, capacity):
    # one island, as the engine calls its view: lookups, audits of some hits, inserts of
    # the misses; at the boundary its log (batches of keys and columns) replays on the
    # shared cache what the same calls do on a cache of its own
    fp = [bytes([i, 7 - i]) * 8 for i in range(8)]
    base, alone = FECache(capacity, audit_rate=0.5), FECache(capacity, audit_rate=0.5)
    for g, (looked, inserted, audited) in enumerate(gens):
        view = SharedCacheView(base, "cache")
        for cache in (view, alone):
            found, error = cache.lookup_column([fp[i] for i in looked], "error")
            hits = error[found][: len(audited)]
            cache.record_audit_column(hits, np.where(audited[: len(hits)], hits, hits + 1))
            cache.insert_column([fp[i] for i in inserted], "error", np.array(inserted) + g / 8)
        counted = ("hits", "misses", "audits", "false_hits")  # a view evicts nothing
        mine, its = view.take_stats(), alone.take_stats()
        assert [mine[k] for k in counted] == [its[k] for k in counted]
        apply_log(base, view.take_log())
        for k, v in base.to_state().items():
            assert repr(v) == repr(alone.to_state()[k]), k


def test_the_run_row_sums_counts_and_averages_diversity():
    from types import SimpleNamespace

    from evolve.runs.islands.core import total_row

    rows = [{"generation": 3, "island": i, "evaluations": 10 * (i + 1), "best_error": e,
             "diversity": d, "wall_seconds": 0.1}
            for i, (e, d) in enumerate([(2.0, 0.2), (1.5, 0.4)])]
    state = SimpleNamespace(error=np.array([1.5, 2.0]), cost=np.array([3.0, 1.0]))
    out = total_row(rows, state, fingerprints=7, wall_seconds=0.5)
    assert out["island"] == TOTAL and out["generation"] == 3
    assert out["evaluations"] == 30 and out["best_error"] == 1.5
    assert np.isclose(out["diversity"], 0.3) and out["wall_seconds"] == 0.5


def test_tree_islands_migrate_their_trees_and_resume_exactly(tmp_path):
    """Migrants of the tree representation travel with their trees' text: an island that
    receives them holds them as genomes, and a stopped run resumes to the same run."""
    from evolve.search.trees import parse_tree, primitive_set

    sets = ["search.population=12", "search.children=12", "search.fit_iterations=2",
            "checkpoint_every=3", *SETS]

    def tree_config(generations):
        return build_config(sets=sets, overrides={"problem": "nguyen-8", "generations":
                                                  generations})

    full = runs.start(tree_config(6), tmp_path / "full", quiet=True)
    runs.start(tree_config(3), tmp_path / "part", quiet=True)
    runs.resume(tmp_path / "part", 6, quiet=True)
    tiny.assert_same_run(tmp_path / "full", tmp_path / "part")
    m = pd.read_csv(tmp_path / "full" / "metrics.csv", dtype={"island": str})
    assert list(m[m["island"] == TOTAL]["immigrants"]) == [0, 4, 0, 4, 0, 4]
    problem = full.problem
    pset = primitive_set([o for o in problem.ops if o != "const"], problem.n_inputs)
    for island in full.state.islands:
        assert len(island.genomes) == len(island.programs) == 12
        for text in island.genomes:
            parse_tree(text, pset)  # every member is a tree
