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
    # a scaled model whose scale sits in two constants (a = 8.2961e-6 times 120538.8125)
    ("nguyen-2", lambda s: F(8.29609e-6) * s[0] * (s[0] + 1) * (F(120538.8125) * s[0]**2
                                                             + F(120538.8125)), True),
    ("nguyen-2", lambda s: F(8.2e-6) * s[0] * (s[0] + 1) * (F(120538.8125) * s[0]**2
                                                          + F(120538.8125)), False),
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
    assert bench_sr.select_model(errors, sizes, n=20) == 2  # below 1e-12 all fit: the smallest
    assert bench_sr.select_model(errors, sizes, "best") == 2
    assert bench_sr.select_model(np.array([0.5, 1e-3, 1e-4]), np.array([1, 3, 9]),
                                 "accurate") == 2


def test_problem_sets_expand():
    names = bench_sr.expand_problems("nguyen,feynman,keijzer-4,nguyen-1")
    assert names[:12] == [f"nguyen-{k}" for k in range(1, 13)]
    assert len(names) == 12 + 12 + 1
    assert len(bench_sr.expand_problems("strogatz")) == 14
    for name in names + bench_sr.expand_problems("strogatz"):
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
    assert "| nguyen | 0 | evolve | 0/1 (0%) | 0/1 | – | – | – |" in table


def _args(argv):
    """The parsed arguments main() would run with (main stops before running cells)."""
    seen = {}

    def stop(args):
        seen["args"] = args
        raise SystemExit(0)

    import unittest.mock as mock

    with mock.patch.object(bench_sr, "run_all", stop), \
            mock.patch.object(bench_sr, "available", lambda engines: engines):
        with pytest.raises(SystemExit):
            bench_sr.main(argv)
    return seen["args"]


def test_cells_cover_noise_levels_and_evolve_with_and_without_scaling():
    args = _args(["--problems", "nguyen-1,nguyen-2", "--seeds", "2", "--noise", "0,0.01",
                  "--scaling", "on,off", "--engines", "evolve,operon"])
    cells = bench_sr.plan_cells(args)
    # 2 problems x 2 noise levels x 2 seeds x (evolve on, evolve off, operon)
    assert len(cells) == 2 * 2 * 2 * 3 and len(set(cells)) == len(cells)
    assert ("evolve", "nguyen-2", 1, 0.01, "off") in cells
    assert ("operon", "nguyen-1", 0, 0.0, None) in cells
    record = {"engine": "evolve", "problem": "nguyen-2", "seed": 1, "noise": 0.01,
              "settings": {"scaling": False}}
    assert bench_sr.cell_key(record) == ("evolve", "nguyen-2", 1, 0.01, "off")
    assert bench_sr.label(record) == "evolve-unscaled"
    old = {"engine": "evolve", "problem": "nguyen-2", "seed": 1}  # before noise, scaling
    assert bench_sr.cell_key(old) == ("evolve", "nguyen-2", 1, 0.0, "off")
    assert bench_sr.label(old) == "evolve"
    linear = dict(record, settings={"scaling": True, "representation": "linear"})
    assert bench_sr.label(linear) == "evolve-linear"
    assert _args(["--representation", "linear"]).representation == "linear"
    assert _args([]).representation == "tree"
    from evolve.model_choice import REGRESSION_RULE

    assert _args([]).select == REGRESSION_RULE  # the benchmark judges what export picks


@pytest.mark.parametrize("argv, message", [
    (["--noise", "0,lots"], "give numbers"), (["--noise", "-0.1"], "levels >= 0"),
    (["--scaling", "maybe"], "on, off or on,off")])
def test_bad_noise_or_scaling_is_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        bench_sr.main(argv)
    assert message in capsys.readouterr().err


def test_a_cell_gets_its_noise_and_scaling_and_no_accelerator():
    args = _args(["--noise", "0.1", "--scaling", "off", "--engines", "evolve"])
    args.noise, args.scaling = args.noise_list[0], args.scaling_list[0]
    p = bench_sr.cell_problem(load_problem("nguyen-1"), "evolve", args)
    assert p.noise == 0.1 and not p.linear_scaling
    args.scaling = "on"
    assert bench_sr.cell_problem(load_problem("nguyen-1"), "evolve", args).linear_scaling
    assert bench_sr.cell_problem(load_problem("nguyen-1"), "operon", args).noise == 0.1
    env = bench_sr.CELL_ENV
    assert env["JAX_PLATFORMS"] == "cpu" and env["CUDA_VISIBLE_DEVICES"] == ""
    assert "--xla_force_host_platform_device_count=1" in env["XLA_FLAGS"]


def test_exact_recovery_sees_the_scaled_model():
    """evolve's model is a * program + b: -3 sqrt(x) + 1.5 is sqrt(x) once scaled."""
    from dataclasses import replace

    from evolve.eval.evaluator import run_numpy
    from evolve.results.export import scaled_model, to_sympy
    from evolve.text import parse_program

    p = load_problem("nguyen-8")
    prog = parse_program("r2 = sqrt(r0)\nr3 = -3.0\nr1 = mul(r2, r3)\nr3 = 1.5\n"
                         "r1 = add(r1, r3)\nreturn r1\n", n_registers=p.n_registers)
    x_test, y_test = p.test_data()
    syms = bench_sr.symbols(p)
    for problem, exact in ((p, True), (replace(p, linear_scaling=False), False)):
        model = scaled_model(prog, problem)
        expr = to_sympy(model, problem).xreplace({sympy.Symbol("x", real=True): syms[0]})
        pred = run_numpy(model, x_test, p.n_registers)
        result = bench_sr.score(p, expr, pred, y_test)
        assert result["exact"] is exact and result["recovered"] is exact


def test_model_choices_and_their_table():
    errors = np.array([0.5, 1e-3, 9e-4, 1e-15])
    sizes = np.array([1, 3, 30, 40])
    assert bench_sr.select_model(errors, sizes, "lowest") == 3
    assert bench_sr.select_model(errors, sizes, "accurate") == 3
    # BIC, 20 points: the exact fit (loss floored at 1e-12) pays 40 log 20 and still wins;
    # against a near fit it does not: 20 log(1e-3) + 3 log 20 < 20 log(5e-4) + 40 log 20
    assert bench_sr.select_model(errors, sizes, "bic", n=20) == 3
    near = np.array([0.5, 1e-3, 5e-4])
    assert bench_sr.select_model(near, sizes[[0, 1, 3]], "bic", n=20) == 1
    assert bench_sr.select_model(near, sizes[[0, 1, 3]], "accurate") == 2
    with pytest.raises(ValueError, match="choose from"):
        bench_sr.select_model(errors, sizes, "smallest")
    front = [[0.5, 1, 1, 0.2], [1e-3, 3, 7, 0.999], [1e-15, 40, 44, 1.0]]
    records = [{"bench": "sr", "engine": "evolve", "set": "nguyen", "problem": "nguyen-1",
                "seed": s, "noise": 0.01, "settings": {"scaling": True}, "front": front,
                "picks": {"accurate": 2, "best": 1, "lowest": 2, "bic": 1}} for s in (0, 1)]
    rows, table = bench_sr.choice_table(records)
    by_rule = {r["rule"]: r for r in rows}
    assert by_rule["accurate"]["r2_recovered"] == 2 and by_rule["best"]["r2_recovered"] == 0
    assert by_rule["bic"]["median_size"] == 7
    assert "| nguyen | 0.01 | evolve | lowest | 2/2 | 1.000000000 | 44 |" in table


def test_rescore_judges_a_record_again_from_its_tree():
    record = {"bench": "sr", "engine": "evolve", "problem": "nguyen-8", "seed": 0,
              "noise": 0.0, "settings": {"scaling": True}, "exact": False,
              "model": "add(mul(sqrt(ARG0), -3.0), 1.5)", "test_r2": None}
    first = bench_sr.rescore(record)
    assert first["exact"] and first["recovered"] and first["rescored"]
    assert "rescore_error" in first  # the R^2 recorded (None) is not the program's
    again = bench_sr.rescore(dict(record, test_r2=first["test_r2"]))
    assert "rescore_error" not in again and again["native_size"] == 6 + 4  # + a and b
    unscaled = bench_sr.rescore(dict(record, settings={"scaling": False}))
    assert not unscaled["exact"] and not unscaled["recovered"]
    # a linear-program record keeps the scaled model's program text
    from evolve.results.export import scaled_model
    from evolve.text import format_program, parse_program

    p = load_problem("nguyen-8")
    prog = parse_program("r2 = sqrt(r0)\nr3 = -3.0\nr1 = mul(r2, r3)\nr3 = 1.5\n"
                         "r1 = add(r1, r3)\nreturn r1\n", n_registers=p.n_registers)
    linear = dict(record, settings={"scaling": True, "representation": "linear"},
                  model=format_program(scaled_model(prog, p)), test_r2=again["test_r2"])
    judged = bench_sr.rescore(linear)
    assert judged["exact"] and "rescore_error" not in judged


def test_an_evolve_cell_records_its_front_with_each_members_model():
    """A short evolve cell in this process: the record's front holds every member's text,
    and the pick of the cell's rule is the model it reports."""
    args = _args(["--engines", "evolve", "--budget", "3"])
    args.noise, args.scaling = args.noise_list[0], args.scaling_list[0]
    record = bench_sr.run_cell("evolve", "nguyen-8", 0, args)
    assert "error" not in record and record["generations"] >= 1
    front, picks = record["front"], record["picks"]
    assert set(picks) == set(bench_sr.SELECT_RULES)
    assert all(len(member) == 5 and isinstance(member[4], str) for member in front)
    assert front[picks[args.select]][4] == record["model"]
    rescored = bench_sr.rescore(record)
    assert "rescore_error" not in rescored


def test_the_bar_table_compares_with_operon_and_lists_the_shortfalls():
    def rec(engine, problem, seed, recovered, exact, scaling=True, noise=0.0):
        r = {"bench": "sr", "engine": engine, "problem": problem, "seed": seed,
             "noise": noise, "recovered": recovered, "exact": exact,
             "test_r2": 1.0 if recovered else 0.99, "size": 9}
        if engine == "evolve":
            r["settings"] = {"scaling": scaling}
        return r

    records = [rec("evolve", "a", s, True, True) for s in (0, 1)]
    records += [rec("evolve", "b", s, s == 0, False) for s in (0, 1)]
    records += [rec("evolve", "b", s, True, True, scaling=False) for s in (0, 1)]
    records += [rec("operon", p, s, True, p == "a" and s == 0) for p in "ab" for s in (0, 1)]
    rows, md = bench_sr.bar_table(records)
    by = {r["engine"]: r for r in rows}
    scaled = by["evolve"]
    assert (scaled["recovered"], scaled["operon_recovered"]) == (3, 4)
    assert not scaled["recovered_met"] and scaled["exact_met"]  # 2 exact >= 1.5 x 1
    assert by["evolve-unscaled"]["cells"] == 2
    assert "b (noise 0): 1/2 against 2/2" in md and "(short)" in md
