"""scripts/bench_eval.py: the engines timed round robin, and the JSON lines it prints."""

import json

import bench_eval  # scripts/ is on sys.path (conftest)
import pytest


def test_rounds_turn_the_order_and_stop_at_the_budget():
    calls = []
    runs = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = bench_eval.interleaved(runs, budget_s=1e9, min_rounds=3, max_rounds=4)
    assert {n: len(t) for n, t in times.items()} == {"a": 4, "b": 4, "c": 4}
    assert calls[:6] == ["a", "b", "c", "b", "c", "a"]
    calls.clear()
    times = bench_eval.interleaved(runs, budget_s=0.0, min_rounds=2, max_rounds=9)
    assert len(times["a"]) == 2 and len(calls) == 6  # past the budget after the minimum


def test_lines_follow_the_benchmark_convention(capsys):
    bench_eval.main(["--cases", "20,8,1000", "--max-seconds", "0.5", "--baselines", "deap"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    keys = {"bench", "case", "metric", "value", "unit", "baseline", "baseline_value", "ratio"}
    assert all(set(line) == keys for line in lines)
    gp = [line for line in lines if line["metric"] == "gpops"]
    assert {line["case"]["path"] for line in gp} == {"errors", "outputs"}
    for line in gp:
        assert line["baseline"] == "deap" and line["value"] > 0 and line["baseline_value"] > 0
        assert line["ratio"] == line["value"] / line["baseline_value"]
        assert line["case"]["rounds"] >= 3 and line["case"]["programs_measured"] == 20
        assert line["case"]["ratio_best_of_rounds"] > 0
        assert "roofline_fp32" in line["case"]  # None here: a CPU has no peak in the table
        device = line["case"]["device"]
        assert device["cpu"] and device["native_isa"] in ("avx512", "avx2", "generic")
        assert device["numpy_simd"] is None or isinstance(device["numpy_simd"], list)
        share = line["case"]["others_cpu"]
        assert share is None or 0.0 <= share <= 1.0
        assert line["case"]["loadavg_1m_end"] >= 0


def test_the_share_of_the_cores_others_took():
    # 10 s on 2 cores: 12 busy core-seconds, 7 of them this process's -> 5 of 20 others'
    assert bench_eval.others_share((0.0, 100.0, 1.0), (10.0, 112.0, 8.0), 2) == 0.25
    assert bench_eval.others_share((0.0, 100.0, 1.0), (10.0, 107.0, 8.0), 2) == 0.0
    assert bench_eval.others_share((0.0, 0.0, 0.0), (1.0, 9.0, 0.0), 2) == 1.0  # clipped
    assert bench_eval.others_share(None, (1.0, 1.0, 1.0), 2) is None
    assert bench_eval.others_share((1.0, 1.0, 1.0), (1.0, 2.0, 1.0), 2) is None
    now = bench_eval.cpu_seconds()
    assert now is None or (now[0] > 0 and now[1] >= 0 and now[2] >= 0)


def test_backends_run_side_by_side_and_the_first_is_the_baseline(capsys):
    bench_eval.main(["--cases", "16,8,500", "--max-seconds", "0.2", "--baselines", "none",
                     "--backends", "native,lax", "--paths", "errors"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    gp = {line["case"]["backend"]: line for line in lines if line["metric"] == "gpops"}
    assert set(gp) == {"native", "lax"}
    assert {line["case"]["path"] for line in gp.values()} == {"errors"}
    assert gp["native"]["baseline"] is None
    assert gp["lax"]["baseline"] == "evolve:native"
    assert gp["lax"]["ratio"] == gp["lax"]["value"] / gp["native"]["value"]
    compiles = [line for line in lines if line["metric"] == "compile_time"]
    assert {line["case"]["backend"] for line in compiles} == {"native", "lax"}


def test_the_native_kernels_math_side_by_side(capsys):
    bench_eval.main(["--cases", "16,8,500", "--max-seconds", "0.2", "--baselines", "none",
                     "--backends", "native,native/libmvec", "--paths", "errors"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    gp = {line["case"]["backend"]: line for line in lines if line["metric"] == "gpops"}
    assert set(gp) == {"native", "native/libmvec"}
    assert gp["native/libmvec"]["baseline"] == "evolve:native"


def test_unknown_backends_or_paths_are_refused(capsys):
    for argv in (["--backends", "gpu"], ["--paths", "value"], ["--backends", "lax,lax"],
                 ["--backends", "native/fast"], ["--backends", "lax/own32"]):
        with pytest.raises(SystemExit):
            bench_eval.main(argv)
    assert "--backends" in capsys.readouterr().err


def test_a_missing_peer_is_one_line_and_the_other_rows_still_come(capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyoperon", None)  # import pyoperon fails
    bench_eval.main(["--cases", "16,8,500", "--max-seconds", "0.2", "--baselines",
                     "deap,operon", "--paths", "errors"])
    out = capsys.readouterr()
    assert out.err.count("pyoperon") == 1
    assert "bench_eval: pyoperon not installed (pip install -e '.[bench]'); skipping its rows" \
        in out.err and "Traceback" not in out.err
    gp = [json.loads(line) for line in out.out.splitlines()]
    gp = [line for line in gp if line["metric"] == "gpops"]
    assert gp and {line["baseline"] for line in gp} == {"deap"}
