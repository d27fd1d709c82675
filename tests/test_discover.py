"""scripts/discover.py: which rows it certifies and reports, and the record it writes, on a
real short run of log2 (its domain has 2^24 float32s: a certificate takes seconds on a CPU)."""

import csv
import importlib
import json
import shutil

import pytest

from evolve.catalog import load_problem
from evolve.results.certify import read_front
from evolve.text import parse_program

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def _script():
    return importlib.import_module("discover")  # scripts/ is on sys.path (conftest)


def _rows(*rows):
    """Front rows from (error, cost[, certified]) triples."""
    out = []
    for r in rows:
        row = {"error": repr(r[0]), "cost": repr(r[1]), "program": "r1 = add(r0, r0)\nreturn r1"}
        if len(r) > 2:
            row["certified_max_ulp"] = repr(r[2])
        out.append(row)
    return out


@pytest.fixture(scope="module")
def log2_run(tmp_path_factory):
    """A real run of log2 (2 generations, population 32: all 26 starts fit, from Sollya and the
    problem's shapes), certified by discover's own plan."""
    d = _script()
    run_dir = tmp_path_factory.mktemp("discover") / "log2"
    found = d.search("log2", run_dir, seconds=600, seed=0, population=32, starts="both",
                     generations=2, settings=("search.early_exit=64",))
    certs = d.certify_front(run_dir, load_problem("log2"), limit=2)
    return found, certs


def test_settings_reach_the_run_configuration(log2_run):
    found, _ = log2_run
    i = found.command.index("search.early_exit=64")
    assert found.command[i - 1] == "--set" and found.command[-1] == "certify.count=0"
    assert "early_exit: 64" in (found.run_dir / "config.yaml").read_text()


def test_certification_plan_cheapest_meeting_target_first_then_the_most_accurate():
    d = _script()
    problem = load_problem("exp2")
    rows = _rows((5.0, 3), (0.9, 8), (0.7, 9), (0.95, 6), (0.5, 12))
    assert d.certification_plan(rows, problem, limit=2) == [3, 1, 4]
    assert d.certification_plan(rows, problem, limit=10) == [3, 1, 2, 4]
    # nothing meets the target: the most accurate row only
    assert d.certification_plan(_rows((5.0, 3), (2.0, 6)), problem, limit=3) == [1]


def test_choose_row_cheapest_certified_under_target_else_most_accurate():
    d = _script()
    problem = load_problem("exp2")
    rows = _rows((0.9, 6, 1.2), (0.95, 7, 0.99), (0.8, 9, 0.85), (0.5, 10))
    assert d.choose_row(rows, problem) == 1
    rows = _rows((0.9, 6, 1.2), (0.95, 7, 1.05), (0.5, 10))
    assert d.choose_row(rows, problem) == 1  # none under: the lowest certified error
    assert d.choose_row(_rows((0.9, 6), (0.5, 10)), problem) is None


def test_verdict_against_sollyas_cheapest_under_one_ulp():
    d = _script()
    sollya = {"sollya_name": "minimax-6", "sollya_ops": 6.0, "sollya_max_ulp": 0.9}
    none = {"sollya_name": None, "sollya_ops": None, "sollya_max_ulp": None}
    assert d.verdict(5, 0.95, True, sollya, 0.9) == "beats: fewer ops"
    assert d.verdict(6, 0.95, True, sollya, 1.3) == "beats: >= 1.2x speed at equal ops"
    assert d.verdict(6, 0.95, True, sollya, 1.1) == "ties: equal ops"
    assert d.verdict(7, 0.95, True, sollya, 2.0).startswith("short: 7 ops")
    assert d.verdict(14, 0.99, True, none, None) == "beats: under 1 ULP where Sollya has none"
    assert d.verdict(5, 1.3, False, sollya, None).startswith("short: certified 1.3")


def test_sollya_reference_is_the_cheapest_baseline_under_target():
    d = _script()
    assert d.sollya_reference(load_problem("exp2")) == {
        "sollya_name": "minimax-6", "sollya_ops": 6.0,
        "sollya_max_ulp": pytest.approx(0.896, abs=1e-3)}
    assert d.sollya_reference(load_problem("exp2_nofma"))["sollya_ops"] is None


@pytest.mark.slow  # a real run: about 20 s on a 2-core CPU, more when loaded
def test_a_short_search_checkpoints_and_its_front_gets_certificates(log2_run):
    found, certs = log2_run
    assert found.generations == 2
    assert (found.run_dir / "checkpoints" / "gen-000002").is_dir()
    header, rows = read_front(found.run_dir)
    assert "certified_max_ulp" in header and certs
    problem = load_problem("log2")
    plan = _script().certification_plan(rows, problem, 2)
    assert list(certs) == plan[: len(certs)]  # in the plan's order, stopping at a success
    for i, cert in certs.items():
        assert float(rows[i]["certified_max_ulp"]) == float(cert.max_ulp)
        assert cert.exhaustive
    # Sollya's degree-10 hi-lo polynomial (0.917 ULP) is in generation 0: certified under 1
    i = _script().choose_row(rows, problem)
    assert i is not None and float(rows[i]["certified_max_ulp"]) < 1.0


@pytest.mark.slow  # a real run: about 20 s on a 2-core CPU, more when loaded
def test_the_record_of_a_real_run(log2_run):
    d = _script()
    found, _ = log2_run
    problem = load_problem("log2")
    _, rows = read_front(found.run_dir)
    row = rows[d.choose_row(rows, problem)]
    speeds = {"c_speed_vs_sollya": 1.0, "c_speed_vs_libm": 0.8}
    settings = {"device": d.device(), "population": 32, "starts": "both", "seed": 0}
    record = d.discovery_record(problem, row, found, d.sollya_reference(problem), speeds,
                                settings)
    json.dumps(record)  # JSON-ready
    program = parse_program(record["program"], n_registers=problem.n_registers)
    assert record["ops"] == problem.cost(program) == float(row["cost"])
    assert record["certified_max_ulp"] == float(row["certified_max_ulp"])
    assert record["under_target"] is True
    assert record["sollya_ops"] == 12.0 and record["sollya_name"] == "minimax-10-hilo"
    assert record["verdict"] == d.verdict(record["ops"], record["certified_max_ulp"], True,
                                          d.sollya_reference(problem), 1.0)
    assert record["generations"] == 2 and record["population"] == 32
    assert record["continue_command"].startswith(f"evolve resume {found.run_dir}")


@pytest.mark.slow  # a real run: about 20 s on a 2-core CPU, more when loaded
@needs_gcc
def test_c_speeds_times_the_exported_program_against_sollya_and_libm(log2_run):
    d = _script()
    found, _ = log2_run
    problem = load_problem("log2")
    with open(found.run_dir / "front.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    row = rows[d.choose_row(rows, problem)]
    speeds = d.c_speeds(problem, row, d.CFLAGS, calls=100_000, repeats=1, points=10_000)
    assert speeds["c_speed_vs_sollya"] > 0 and speeds["c_speed_vs_libm"] > 0
    assert speeds["c_sollya_timed"] == "minimax-10-hilo"


def test_bad_options_name_the_fix():
    d = _script()
    with pytest.raises(SystemExit, match="not function problems; choose from"):
        d.main(["--problems", "nguyen1"])
    with pytest.raises(SystemExit, match="add -ffp-contract=off"):
        d.main(["--problems", "exp2", "--cflags=-O2"])


@pytest.mark.slow  # two short real runs of log2: about 30 s on a 2-core CPU
def test_teach_adds_failed_certificates_worst_inputs_and_the_next_round_trains_on_them(
        tmp_path):
    import dataclasses

    from evolve.results.certify import certify
    from evolve.runs import hard_points

    d = _script()
    run_dir = tmp_path / "log2"
    d.search("log2", run_dir, seconds=600, seed=0, population=32, starts="both",
             generations=2)
    problem = load_problem("log2")

    def failing(program, problem):  # the real certificate, read as over the target
        cert = certify(program, problem)
        return dataclasses.replace(cert, max_ulp=cert.max_ulp + 1.5)

    certs = d.certify_front(run_dir, problem, limit=1, certifier=failing, teach=True)
    points = hard_points.load(run_dir)
    assert certs and {(c.worst_x,) for c in certs.values()} <= {p.x for p in points}
    assert all(p.from_generation == 3 for p in points)
    found = d.resume(run_dir, seconds=600, generations=4)
    assert found.generations == 4 and found.command[3] == "resume"
    events = (run_dir / "events.log").read_text()
    assert f"generation 3: {len(points)} hard points" in events
    # without teach a failed certificate leaves the hard points alone
    d.certify_front(run_dir, problem, limit=1, certifier=failing)
    assert hard_points.load(run_dir) == points


def test_rounds_must_be_positive():
    d = _script()
    with pytest.raises(SystemExit, match="--rounds 0: give 1 or more"):
        d.main(["--problems", "exp2", "--rounds", "0"])


def _record(problem, ops, ulp, under, verdict, sollya_ops=None):
    return {"problem": problem, "ops": ops, "certified_max_ulp": ulp, "under_target": under,
            "verdict": verdict, "sollya_ops": sollya_ops,
            "sollya_max_ulp": None if sollya_ops is None else 0.9,
            "c_speed_vs_sollya": 1.0, "c_sollya_timed": "minimax-6",
            "device": "CPU AMD EPYC, 2 cores, 1-min load 1.0 at the end", "seconds": 40.0}


def test_best_records_take_the_cheapest_certified_row_of_each_problem(tmp_path):
    d = _script()
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(json.dumps(r) for r in [
        _record("exp2", 7, 0.80, True, "short: 7 ops against Sollya's 6", 6),
        _record("log2_nofma", 18, 2.03, False, "short: certified 2.03 ULP"),
        _record("exp", 8, 0.70, True, "short: 8 ops against Sollya's 6", 6)]) + "\n")
    b.write_text("\n".join(json.dumps(r) for r in [
        _record("exp2", 6, 0.95, True, "ties: equal ops", 6),
        _record("exp2", 6, 0.90, True, "ties: equal ops", 6),
        _record("log2_nofma", 34, 0.55, True, "beats: under 1 ULP where Sollya has none"),
        _record("log2_nofma", 17, 1.50, False, "short: certified 1.50 ULP")]) + "\n")
    best = d.best_records([a, b])
    assert best["exp2"][0]["certified_max_ulp"] == 0.90 and best["exp2"][1] == "b.jsonl"
    assert best["log2_nofma"][0]["ops"] == 34  # under the target beats cheaper and over it
    assert best["exp"][0]["ops"] == 8 and best["exp"][1] == "a.jsonl"
    table = d.best_table([a, b])
    rows = [ln for ln in table.splitlines() if ln.startswith("| exp") or ln.startswith("| log2")]
    assert [r.split(" | ")[0] for r in rows] == ["| exp2", "| exp", "| log2_nofma"]
    assert table.splitlines()[-1] == ("3 of 3 problems certified under the target; 1 beat "
                                      "Sollya; 1 above Sollya's ops + 1.")
    assert "CPU AMD EPYC, 2 cores |" in rows[0]


def _fake_certificate(max_ulp):
    from evolve.results.certify import Certificate

    return Certificate(max_ulp=max_ulp, worst_x=0.5, over_1ulp=0, max_abs=1e-8, points=10,
                       total=10, stride=1, interval=(0.0, 1.0), sample_checked=0,
                       sample_mismatches=0, flushes_subnormals=False, seconds=0.1,
                       device="fake")


def test_the_starts_are_certified_when_the_front_has_nothing_under_the_target():
    d = _script()
    problem = load_problem("erf_nofma")
    cands = d.start_candidates(problem, "both")
    # the problem's own starts first (its split start leads), then baselines whose recorded
    # error is under the target (erf_nofma has none)
    assert [str(q) for q in cands] == [str(parse_program(t)) for t in problem.starts]
    assert d.start_candidates(problem, "random") == []
    seen = []

    def certifier(program, problem):
        seen.append(program)
        return _fake_certificate(1.2 if len(seen) == 1 else 0.9)

    rows = d.certify_starts(problem, "both", 3, certifier)
    assert len(rows) == len(seen) == 2  # stops at the first one under the target
    assert [r["round"] for r in rows] == ["0", "0"]
    assert float(rows[1]["certified_max_ulp"]) == 0.9
    assert parse_program(rows[1]["program"]) == cands[1]
    assert float(rows[1]["cost"]) == problem.cost(cands[1])
    assert d.choose_row(rows, problem) == 1
    exp2 = load_problem("exp2")  # no starts of its own: Sollya's programs under 1 ULP
    assert [b["program"] for b in exp2.baselines if b["error"] < 1 and b.get("program")] and \
        len(d.start_candidates(exp2, "both")) >= 1
