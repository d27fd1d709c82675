"""Run directories, checkpoints, exact resume and progress, in process (one engine for all
tests; the real-process kill test is in test_cli.py)."""

import csv
import io
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest

import tiny
from evolve.errors import UserError
from evolve.runs import driver as runs
from evolve.runs import files as rundir
from evolve.runs.checkpoint import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from evolve.runs.progress import Progress
from evolve.runs.summary import summary
from evolve.text import parse_program

N = 12  # generations of the reference run; checkpoints every 3, the last 3 kept


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of N generations."""
    path = tmp_path_factory.mktemp("runs") / "reference"
    outcome = runs.start(tiny.config(N), path, quiet=True)
    assert outcome.stopped_by is None and outcome.state.generation == N
    return path


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_run_directory_layout(reference):
    names = {p.name for p in reference.iterdir()}
    assert {"config.yaml", "metrics.csv", "front.csv", "checkpoints", "events.log"} <= names
    assert [g for g, _ in list_checkpoints(reference / "checkpoints")] == [6, 9, 12]
    assert not [p for p in (reference / "checkpoints").iterdir() if p.name.startswith(".")]
    for _, ckpt in list_checkpoints(reference / "checkpoints"):
        assert {p.name for p in ckpt.iterdir()} == {"state.npz", "state.json", "checksums.json"}
    metrics = pd.read_csv(reference / "metrics.csv")
    assert list(metrics["generation"]) == list(range(1, N + 1))
    assert {"evaluations", "cache_hits", "cache_misses", "best_error", "wall_seconds"} <= set(
        metrics.columns)
    log = (reference / "events.log").read_text()
    assert "started" in log and "checkpoint gen-000012" in log and "finished" in log
    from evolve.runs.config import replace_field

    # config.yaml: the resolved config, with the sampling rule the problem's points followed
    # and the genomes it evolved
    recorded = replace_field(tiny.config(N), "sampling.per_binade", 0.5)
    recorded = replace_field(recorded, "search.representation", "linear")
    assert runs.open_run(reference)[1] == replace_field(recorded, "sampling.near_zeros", True)


def test_front_csv(reference):
    with open(reference / "front.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == rundir.FRONT_COLUMNS
    body = rows[1:]
    assert body
    keys = [(float(r[1]), float(r[0])) for r in body]
    assert keys == sorted(keys)
    for error, cost, length, program, label in body:
        assert len(parse_program(program).instructions) == int(length)
        assert repr(float(error)) == error and repr(float(cost)) == cost
        assert label == ("sampled only" if float(error) < 1 else "no")  # exp2: target 1
    assert len(pd.read_csv(reference / "front.csv")) == len(body)


def test_checkpoint_round_trip(reference, tmp_path):
    _, path = list_checkpoints(reference / "checkpoints")[-1]
    state, meta = load_checkpoint(path)
    assert meta["problem"] == "exp2" and state.generation == N
    again, _ = load_checkpoint(save_checkpoint(tmp_path, state, meta))
    assert again.programs == state.programs
    assert again.fingerprints == state.fingerprints
    np.testing.assert_array_equal(again.error, state.error)
    np.testing.assert_array_equal(again.cost, state.cost)
    np.testing.assert_array_equal(jax.random.key_data(again.key), jax.random.key_data(state.key))
    assert (again.evaluations, again.fits) == (state.evaluations, state.fits)
    for name in ("cache", "structures"):
        a, b = getattr(again, name).to_state(), getattr(state, name).to_state()
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], np.ndarray):
                np.testing.assert_array_equal(a[k], b[k])
            else:
                assert a[k] == b[k], k
    with np.load(path / "state.npz", allow_pickle=False) as npz:  # plain arrays only
        assert all(npz[k].dtype != object for k in npz.files)


@pytest.mark.parametrize("damage, expected", [
    (lambda p: _corrupt(p / "state.npz"), "state.npz does not match its sha256"),
    (lambda p: (p / "state.json").write_text("{}"), "state.json does not match"),
    (lambda p: (p / "checksums.json").unlink(), "checksums.json is missing"),
    (lambda p: (p / "state.npz").unlink(), "state.npz is missing"),
])
def test_damaged_checkpoints_are_refused(reference, tmp_path, damage, expected):
    _, path = list_checkpoints(reference / "checkpoints")[-1]
    copy = tmp_path / path.name
    shutil.copytree(path, copy)
    damage(copy)
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(copy)


@pytest.mark.parametrize("stop", [3, 7])
def test_resume_from_a_checkpoint_is_exact(reference, tmp_path, stop):
    path = tmp_path / "run"
    runs.start(tiny.config(stop), path, quiet=True)  # ends with a checkpoint at `stop`
    outcome = runs.resume(path, N, quiet=True)
    assert outcome.state.generation == N
    assert runs.open_run(path)[1].generations == N
    tiny.assert_same_run(reference, path)


def test_resume_after_a_kill_drops_later_metrics_rows(reference, tmp_path):
    path = tmp_path / "run"
    runs.start(tiny.config(6), path, quiet=True)
    # What a process killed at generation 8 leaves: rows past the checkpoint, a torn line.
    with open(path / "metrics.csv", "a") as f:
        f.write("7,1,2,3\n8,1,2,3\n9,1,")
    outcome = runs.resume(path, N, quiet=True)
    assert outcome.state.generation == N
    tiny.assert_same_run(reference, path)
    assert "3 later metrics rows dropped" in (path / "events.log").read_text()


def test_corrupt_latest_checkpoint_falls_back_to_the_one_before(reference, tmp_path, capsys):
    path = tmp_path / "run"
    runs.start(tiny.config(9), path, quiet=True)
    capsys.readouterr()
    _corrupt(path / "checkpoints" / "gen-000009" / "state.npz")
    runs.resume(path, N, quiet=True)
    err = capsys.readouterr().err
    assert re.search(r"warning: checkpoint \S*gen-000009 is corrupt .*sha256", err)
    assert "gen-000009 is corrupt" in (path / "events.log").read_text()
    assert "resumed from gen-000006" in (path / "events.log").read_text()
    assert (path / "checkpoints" / "gen-000009.corrupt").is_dir()
    tiny.assert_same_run(reference, path)


def test_no_usable_checkpoint_starts_again(reference, tmp_path, capsys):
    path = tmp_path / "run"
    runs.start(tiny.config(3), path, quiet=True)
    for _, ckpt in list_checkpoints(path / "checkpoints"):
        (ckpt / "checksums.json").write_text("not json")
    runs.resume(path, N, quiet=True)
    assert capsys.readouterr().err.count("is corrupt") == 2  # gen-000000, gen-000003
    tiny.assert_same_run(reference, path)


def test_a_locked_run_is_refused(reference, tmp_path):
    path = tmp_path / "run"
    shutil.copytree(reference, path)
    lock = rundir.Lock(path)  # as if another process were running it
    try:
        with pytest.raises(UserError, match=r"in use by another evolve process \(pid \d+\)"):
            runs.resume(path, N + 3, quiet=True)
    finally:
        lock.release()


def test_default_run_directory_name(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    outcome = runs.start(tiny.config(1, seed=5), quiet=True)
    assert re.fullmatch(r"runs/exp2-5-\d{8}-\d{6}", str(outcome.run_dir))
    assert (tmp_path / outcome.run_dir / "config.yaml").is_file()


def test_summary_names_the_run_and_a_program(reference):
    state, _ = load_checkpoint(list_checkpoints(reference / "checkpoints")[-1][1])
    config = runs.open_run(reference)[1]
    from evolve.catalog import load_problem

    text = summary(runs.Outcome(reference, config, load_problem("exp2"), state, None))
    assert f"run directory: {reference}" in text
    assert "return r" in text and "# error" in text


def test_state_json_is_plain_json(reference):
    _, path = list_checkpoints(reference / "checkpoints")[-1]
    scalars = json.loads((path / "state.json").read_text())
    assert scalars["generation"] == N
    kinds = {name: f["kind"] for name, f in scalars["fields"].items()}
    assert {"generation": "json", "key": "key", "programs": "programs", "error": "array",
            "cost": "array", "fingerprints": "bytes", "cache": "cache", "structures": "cache",
            "evaluations": "json", "fits": "json"}.items() <= kinds.items()
    assert scalars["fields"]["key"]["data"] == "threefry2x32"


def _rows(n, start=0):
    return [{"generation": g, "evaluations": 10 * g, "evaluated": 10, "cache_hits": 3,
             "cache_misses": 1, "best_error": 100.0 / g, "best_cost_at_target":
             float("nan") if g < 3 else 7.0} for g in range(start + 1, n + 1)]


def test_progress_on_a_terminal_is_one_live_line():
    out = io.StringIO()
    progress = Progress(out, total=5, start=0, tty=True)
    for row in _rows(5):
        progress.update(row)
        time.sleep(0.11)  # past the redraw interval
    progress.close()
    text = out.getvalue()
    assert text.count("\r") == 5 and text.endswith("\n") and text.count("\n") == 1
    last = text.rsplit("\r", 1)[1]
    assert "gen 5/5" in last and "best sampled error 20" in last
    assert "best cost at target (sampled) 7" in last
    assert "evals/s" in last and "cache hits 75%" in last and "ETA 0:00:00" in last


def test_progress_in_a_log_is_plain_lines_every_few_generations():
    out = io.StringIO()
    progress = Progress(out, total=100, start=40, tty=False)
    for row in _rows(100, start=40):
        progress.update(row)
    progress.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [int(re.match(r"gen (\d+)/100", line).group(1)) for line in lines] == [
        *range(42, 100, 6), 100]  # every 6th (a tenth of the 60 to go), and the last
    assert "best cost at target" in lines[0]


def test_quiet_progress_writes_nothing():
    out = io.StringIO()
    progress = Progress(out, total=3, start=0, quiet=True, tty=True)
    for row in _rows(3):
        progress.update(row)
    progress.close()
    assert out.getvalue() == ""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_asks_for_a_stop_and_a_second_aborts(signum):
    before = signal.getsignal(signum)
    with runs.StopOnSignal() as stop:
        os.kill(os.getpid(), signum)
        time.sleep(0.05)  # the handler runs in the main thread between bytecodes
        assert stop.signal == signal.Signals(signum).name
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
            time.sleep(0.05)
    assert signal.getsignal(signum) is before


def test_checkpoints_name_the_evaluator_and_a_resume_with_another_warns(reference, tmp_path):
    _, meta = load_checkpoint(list_checkpoints(reference / "checkpoints")[-1][1])
    path = tmp_path / "run"
    shutil.copytree(reference, path)
    run, config = runs.open_run(path)
    from evolve.catalog import load_problem

    engine = runs.engine_for(config, load_problem(config.problem))
    assert meta["evaluator"] == runs.evaluator_kind(engine) == engine.evaluator.kind
    err = io.StringIO()
    runs.check_evaluator(run, err, meta, engine)  # the same: nothing to say
    runs.check_evaluator(run, err, {}, engine)  # a checkpoint of an older version: nothing
    assert err.getvalue() == ""
    runs.check_evaluator(run, err, {"evaluator": "cuda"}, engine)  # this is a CPU
    assert f"made with the cuda evaluator, this resume evaluates with {meta['evaluator']}" \
        in err.getvalue()
    assert "set search.evaluator.backend: cuda in config.yaml" in err.getvalue()
    assert "made with the cuda evaluator" in (path / "events.log").read_text()


def test_a_run_without_the_excess_precision_flag_warns(tmp_path, monkeypatch):
    import evolve

    assert evolve.excess_precision_off()  # conftest imported evolve: the flag is set
    assert not evolve.excess_precision_off("--xla_allow_excess_precision=false "
                                           "--xla_allow_excess_precision=true")
    path = tmp_path / "run"
    monkeypatch.setenv("XLA_FLAGS", "")
    err = io.StringIO()
    runs.start(tiny.config(1), path, quiet=True, err=err)
    assert "XLA_FLAGS lacks --xla_allow_excess_precision=false" in err.getvalue()


def test_summary_shows_programs_without_dead_instructions(reference):
    from dataclasses import replace

    from evolve.catalog import load_problem
    from evolve.ops import CONST
    from evolve.program import Instruction, Program, pruned

    state, _ = load_checkpoint(list_checkpoints(reference / "checkpoints")[-1][1])
    config = runs.open_run(reference)[1]
    problem = load_problem("exp2")
    # a dead instruction (its register is never read) in front of every program
    dead = Instruction(CONST, problem.n_registers - 1, (), 0.25)
    padded = [Program((dead, *p.instructions), p.output) for p in state.programs]
    assert all(len(pruned(p)) < len(p) for p in padded if p.output != dead.dst)
    text = summary(runs.Outcome(reference, config, problem,
                                     replace(state, programs=padded), None))
    shown = text.split("# error")[1:]
    assert shown and all("0.25" not in block for block in shown)


def test_summary_says_meeting_the_target_only_on_a_certificate(tmp_path):
    from evolve.catalog import load_problem
    from evolve.runs.files import RunDir
    from test_files import DEAD, LIVE, _state

    problem = load_problem("exp2")
    state = _state([DEAD, LIVE], [0.95, 0.9948], [2.0, 1.0])
    RunDir(tmp_path).write_front(state, problem.target)
    outcome = runs.Outcome(tmp_path, tiny.config(3), problem, state, None)
    text = summary(outcome)
    assert "meeting the target" not in text
    assert "under the target on sampled points only" in text
    assert "# error 0.9948 sampled (max on 1,000,512 sampled points; not certified), " \
           "cost 1" in text  # 512 training + 1e6 check points
    front = list(csv.DictReader(open(tmp_path / "front.csv", newline="")))
    front[0].update(certified_max_ulp="1.189", certified_worst_x="0.25",
                    certified_over_1ulp="4185")  # LIVE (cost 1), as `evolve verify` writes
    front[1].update(certified_max_ulp="0.97", certified_worst_x="0.5",
                    certified_over_1ulp="0")
    with open(tmp_path / "front.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(front[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(front)
    text = summary(outcome)
    meets, rest = text.split("programs meeting the target (certified max error < 1")[1].split(
        "under the target on sampled points but not on every float32")
    assert "# error 0.97 certified (max over every float32 of the domain), cost 2" in meets
    assert "0.9948" not in meets and "on sampled points only" not in text
    assert "certified max error 1.189 at x = 0.25 (4185 inputs over 1 ULP)" in rest


def test_summary_of_a_regression_run_shows_the_chosen_model(tmp_path):
    """For an "nmse" problem the summary shows the model the default model choice picks
    (not the most accurate: it overfits noisy data), with its linear scaling a * f + b."""
    from evolve.catalog import load_problem
    from evolve.runs.config import build_config
    from test_files import _state

    problem = load_problem("nguyen-8")  # sqrt(x): error nmse, linear scaling on
    config = build_config(overrides={"problem": "nguyen-8", "generations": 3})
    programs = [parse_program(t, n_registers=problem.n_registers) for t in (
        "return r0\n", "r1 = sqrt(r0)\nreturn r1\n",
        "r1 = sqrt(r0)\nr2 = mul(r1, r0)\nr2 = mul(r2, r1)\nr1 = add(r1, r2)\nreturn r1\n")]
    state = _state(programs, [0.04, 2e-3, 7e-4], [1.0, 2.0, 7.0])
    text = summary(runs.Outcome(tmp_path, config, problem, state, None))
    assert "the model chosen from the front of 3 by the rule 'bic'" in text
    assert "# training error 0.0007 (NMSE, 1 - R^2 on 20 points), cost 7" in text
    assert "with linear scaling: the model is a * f + b" in text
    from evolve.eval.evaluator import run_numpy
    from evolve.results.export import scaled_model

    x_test, y_test = problem.test_data()  # the held-out R^2 of the scaled model shown
    out = run_numpy(scaled_model(programs[2], problem), x_test, problem.n_registers)
    r2 = 1 - np.mean((out.astype(np.float64) - y_test) ** 2) / np.var(y_test)
    assert f"# held-out test R^2 {r2:.9f} on 1,000 points (noise-free)" in text
    assert "no program meets the target" not in text and "sampled" not in text


def test_a_run_evolves_the_problems_own_genomes_and_records_them(tmp_path):
    """search.representation: null (the default) takes the problem's own (trees for the
    symbolic-regression problems) and config.yaml records it; a setting the problem's trees
    cannot take (LLM edits: linear programs) names both fixes."""
    from evolve.runs.config import build_config, load_config

    sets = ["search.population=8", "search.children=8", "search.fit_iterations=2"]
    config = build_config(sets=sets, overrides={"problem": "nguyen-8", "generations": 1})
    assert config.search.representation is None
    outcome = runs.start(config, tmp_path / "sr", quiet=True)
    assert load_config(tmp_path / "sr" / "config.yaml").search.representation == "tree"
    assert outcome.state.genomes  # trees, kept as text
    llm = build_config(sets=[*sets, "llm.rate=0.1", "llm.models=[m]"],
                       overrides={"problem": "nguyen-8", "generations": 1})
    with pytest.raises(UserError, match=r"problem 'nguyen-8' evolves trees .*cannot take LLM "
                                        r"edits.*set llm.rate=0; or set "
                                        r"search.representation=linear"):
        runs.start(llm, tmp_path / "llm", quiet=True)
    assert not (tmp_path / "llm").exists()
