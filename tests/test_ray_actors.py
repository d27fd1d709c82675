"""Islands as Ray actors on a local Ray cluster that the tests start (2 CPUs): the same
runs as in one process, with an actor killed mid-run, and resumed."""

import warnings
from pathlib import Path

import pytest

import tiny
from evolve.runs import driver as runs
from evolve.runs.config import build_config

ray = pytest.importorskip("ray")
ray_islands = pytest.importorskip("evolve.runs.islands.ray_actors")

pytestmark = pytest.mark.slow  # starts Ray and its actors (they compile the evaluator)

N = 6
SETS = ["islands.count=2", "islands.migrate_every=2", "islands.reset_stagnant_after=2"]


def config(generations: int, ray_address: str | None):
    return build_config(sets=tiny.SETS + SETS, overrides={
        "problem": tiny.PROBLEM, "generations": generations,
        "islands.ray_address": ray_address})


@pytest.fixture(scope="module")
def cluster():
    with warnings.catch_warnings():  # Ray starts its processes by fork + exec: harmless
        warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
        ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The run in one process."""
    path = tmp_path_factory.mktemp("islands") / "reference"
    runs.start(config(N, None), path, quiet=True)
    return path


@pytest.fixture
def kill(monkeypatch):
    """``kill(island, generation)``: kill that island's actor once its step is sent."""
    def arm(island: int, generation: int) -> None:
        def after_submit(g, actors):
            if g == generation:
                ray.kill(actors[island])
        monkeypatch.setattr(ray_islands, "after_submit", after_submit)
    return arm


def test_a_killed_actor_is_restarted_and_the_run_is_the_one_in_process(cluster, reference,
                                                                        tmp_path, kill):
    kill(1, 5)  # checkpoints at 0 and 3: the new actor replays generation 4
    path = tmp_path / "run"
    outcome = runs.start(config(N, "auto"), path, quiet=True)
    assert outcome.state.generation == N and outcome.state.islands is None  # driver: light
    log = (path / "events.log").read_text()
    assert "island 1's Ray actor died" in log and "restarted it from gen-000003" in log
    tiny.assert_same_run(reference, path)


def test_a_run_on_ray_resumes_exactly_on_ray_or_in_process(cluster, reference, tmp_path,
                                                          kill):
    kill(0, 0)  # before any checkpoint: the new actor starts the island again
    path = tmp_path / "run"
    runs.start(config(3, "auto"), path, quiet=True)
    assert "restarted it from generation 0" in (path / "events.log").read_text()
    runs.resume(path, 4, quiet=True, ray_address="none")  # a generation in this process
    assert runs.open_run(path)[1].islands.ray_address is None
    runs.resume(path, N, quiet=True, ray_address="auto")
    tiny.assert_same_run(reference, path)


def test_tree_islands_on_ray_are_the_run_in_process(cluster, tmp_path):
    """Trees migrate between Ray actors as between islands in one process."""
    sets = ["search.population=12", "search.children=12", "search.fit_iterations=2",
            "checkpoint_every=3", *SETS]

    def tree_config(ray_address):
        return build_config(sets=sets, overrides={"problem": "nguyen-8", "generations": 4,
                                                  "islands.ray_address": ray_address})

    runs.start(tree_config(None), tmp_path / "here", quiet=True)
    runs.start(tree_config("auto"), tmp_path / "ray", quiet=True)
    tiny.assert_same_run(tmp_path / "here", tmp_path / "ray")
