"""Hard points (certify.teach): the file, which apply when, and exact resume with them."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

import tiny
from evolve.catalog import load_problem
from evolve.errors import UserError
from evolve.runs import driver as runs
from evolve.runs import hard_points
from evolve.runs.checkpoint import list_checkpoints, load_checkpoint
from evolve.runs.config import build_config
from evolve.search.engine import Engine, SearchParams

X = 0.9323627352714539  # exp2's worst input of a failed certificate (a float32)


def test_points_are_added_after_the_newest_checkpoint_once(tmp_path):
    (tmp_path / "checkpoints" / "gen-000007").mkdir(parents=True)
    assert hard_points.load(tmp_path) == []
    [p] = hard_points.add(tmp_path, [(X,)], "why")
    assert p.from_generation == 8 and p.x == (X,)
    assert hard_points.add(tmp_path, [(X,)], "again") == [p]  # not twice
    hard_points.add(tmp_path, [(0.5,)], "other")
    loaded = hard_points.load(tmp_path, n_inputs=1)
    assert [q.x for q in loaded] == [(X,), (0.5,)]
    assert hard_points.active(loaded, 7) == () and hard_points.active(loaded, 8) == ((X,), (0.5,))
    data = json.loads((tmp_path / hard_points.FILE).read_text())
    assert data["points"][0]["x"] == [X.hex()]  # exact, read back without eval


@pytest.mark.parametrize("text, match", [
    ("not json", "not readable JSON"),
    ('{"format": "other", "points": []}', "not a hard-points file"),
    ('{"format": "evolve-hard-points-1", "points": [{"x": ["__import__"], '
     '"from_generation": 1}]}', "point 0 is damaged"),
    ('{"format": "evolve-hard-points-1", "points": [{"x": ["0x1p-1"], '
     '"from_generation": 0}]}', "point 0 is damaged"),
])
def test_a_damaged_file_is_refused_with_the_fix(tmp_path, text, match):
    (tmp_path / hard_points.FILE).write_text(text)
    with pytest.raises(UserError, match=match):
        hard_points.load(tmp_path)


def test_the_engine_trains_on_hard_points_and_measures_again():
    problem = load_problem("exp2")
    params = SearchParams(population=16, children=16, n_train=512, fit_points=64)
    plain = Engine(problem, params)
    taught = Engine(dataclasses.replace(problem, hard_points=((X,),)), params)
    assert len(taught.x_train) == len(plain.x_train) + 1 and taught.x_train[-1, 0] == \
        np.float32(X)
    assert len(taught.x_fit) == len(plain.x_fit) + 1
    state = plain.init(0)
    again = taught.remeasure(state)
    assert len(again.cache) == 0 and len(state.cache) > 0
    assert again.evaluations == state.evaluations + len(state.programs)
    np.testing.assert_array_equal(again.error, taught._evaluate(taught.batch(state.programs))[0])
    assert (again.error >= state.error).all()  # one more point: never a lower max error


def test_teaching_is_refused_with_islands():
    with pytest.raises(UserError, match="certify.teach.*not islands"):
        build_config(sets=["certify.teach=true", "islands.count=2"],
                     overrides={"problem": "exp2"})


def test_resume_with_hard_points_is_exact(tmp_path):
    # A finished run taught at generation 6; resumed to 12 in one go, or to 9 then 12.
    first = tmp_path / "one"
    runs.start(tiny.config(6), first, quiet=True)
    hard_points.add(first, [(X,)], "a failed certificate")
    second = tmp_path / "two"
    shutil.copytree(first, second)
    runs.resume(first, 12, quiet=True)
    runs.resume(second, 9, quiet=True)
    runs.resume(second, 12, quiet=True)
    tiny.assert_same_run(first, second)
    assert "hard points" in (first / "events.log").read_text()
    # the point is in the training set from generation 7 on: the front is measured on it
    taught = Engine(dataclasses.replace(runs.run_problem(tiny.config(12)), hard_points=((X,),)),
                    tiny.config(12).search)
    gen, path = list_checkpoints(first / "checkpoints")[-1]
    state, _ = load_checkpoint(path)
    np.testing.assert_array_equal(state.error, taught._evaluate(taught.batch(state.programs))[0])
