"""scripts/bench_sr.py's judgement: exact recovery, R^2, model choice, problem sets.
(The engines themselves run in the benchmark, not here.)"""


import bench_sr  # scripts/ is on sys.path (conftest)
import numpy as np
import pytest
import sympy

from evolve.catalog import load_problem  # noqa: E402

F = sympy.Float


@pytest.mark.parametrize("name, found, exact", [
    ("nguyen-8", lambda s: sympy.sqrt(s[0]) + F(9.6e-18), True),
    ("nguyen-10", lambda s: 2 * sympy.sin(s[0]) * sympy.sin(s[1] + F(1.5707964)), True),
    ("nguyen-11", lambda s: sympy.exp(s[1] * sympy.log(s[0])), True),
    ("feynman-I.6.2a", lambda s: F(0.3989423) * sympy.exp(F(-0.49999) * s[0] * s[0]), True),
    ("feynman-I.12.4", lambda s: s[0] * F(0.0795775) / (s[1] * s[2] * s[2]), True),
    ("feynman-II.38.14", lambda s: s[0] / (F(2.0) + 2 * s[1]), True),
    ("nguyen-12", lambda s: s[0]**4 - s[0]**3 + s[1]**2 / 2 - s[1] + F(0.01), False),
    ("nguyen-1", lambda s: s[0]**3 + s[0]**2 + F(1.01) * s[0], False),
    ("nguyen-7", lambda s: sympy.log(s[0] + 1) * 2, False),
])
def test_exact_recovery(name, found, exact):
    p = load_problem(name)
    _, y = p.test_data()
    result = bench_sr.score(p, found(bench_sr.symbols(p)), y, y)
    assert result["exact"] is exact
    assert result["recovered"]  # the predictions given were the targets: R^2 = 1
    assert result["test_r2"] == 1.0 and result["size"] > 0


def test_r2_and_recovered_without_exactness():
    p = load_problem("nguyen-5")
    _, y = p.test_data()
    x0 = bench_sr.symbols(p)[0]
    near = bench_sr.score(p, x0, y + 1e-4 * np.std(y), y)
    assert near["test_r2"] > 0.999999 and near["recovered"] and not near["exact"]
    off = bench_sr.score(p, x0, y + 0.1 * np.std(y), y)
    assert not off["recovered"]
    assert bench_sr.r2_score(y, np.full_like(y, np.nan)) is None


def test_select_model():
    errors = np.array([0.5, 1e-3, 2e-14, 1e-15, 3e-16])
    sizes = np.array([1, 3, 7, 12, 20])
    assert bench_sr.select_model(errors, sizes) == 2  # below 1e-12 all fit: the smallest
    assert bench_sr.select_model(errors, sizes, "best") == 2
    assert bench_sr.select_model(np.array([0.5, 1e-3, 1e-4]), np.array([1, 3, 9])) == 2


def test_problem_sets_expand():
    names = bench_sr.expand_problems("nguyen,feynman,keijzer-4,nguyen-1")
    assert names[:12] == [f"nguyen-{k}" for k in range(1, 13)]
    assert len(names) == 12 + 12 + 1
    for name in names:
        load_problem(name)


def test_generations_end_within_the_budget(monkeypatch):
    """Generations of 3 s in a 10 s budget that began 1 s before the first: three run
    (the third ends at 10 s; a fourth would end at 13 s, past the budget)."""
    now = [1.0]
    monkeypatch.setattr(bench_sr.time, "perf_counter", lambda: now[0])

    def step():
        now[0] += 3.0

    assert bench_sr.run_generations(step, 0.0, 10.0) == (3, 10.0)
    # one generation always runs, even one that outgrows the budget
    now[0] = 0.0
    assert bench_sr.run_generations(lambda: now.__setitem__(0, now[0] + 12.0), 0.0, 10.0) == (
        1, 12.0)


def test_a_missing_peer_is_one_line_and_the_rest_go_on(monkeypatch):
    import io
    import sys

    monkeypatch.setitem(sys.modules, "pyoperon", None)  # as if not installed
    err = io.StringIO()
    assert bench_sr.available(["evolve", "operon", "deap"], err) == ["evolve", "deap"]
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and "skipping operon" in lines[0] and "pip install" in lines[0]


def test_summary_of_failed_cells_has_no_numbers_to_format():
    record = {"bench": "sr", "engine": "evolve", "problem": "nguyen-1", "set": "nguyen",
              "seed": 0, "error": "ValueError: x", "recovered": False, "exact": False}
    rows, table = bench_sr.summarize([record])
    assert rows[0]["errors"] == 1 and rows[0]["median_size"] is None
    assert "| nguyen | evolve | 0/1 (0%) | 0/1 | – | – | – |" in table
