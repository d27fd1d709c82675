"""The command line: help, version, the one-line error path, the demo, and the run commands
(problems, run, resume, plot, report), including a run killed and resumed for real."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tiny
from evolve import __version__
from evolve.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("evolve: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: evolve")
    for command in COMMANDS:
        assert re.search(rf"^\s+{command.name}\s+\S", out, re.MULTILINE), command.name


def test_help_as_a_real_process():
    done = subprocess.run([sys.executable, "-m", "evolve", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert all(c.name in done.stdout for c in COMMANDS)


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"evolve {__version__}"


def test_unknown_command_is_one_line_and_status_2(capsys):
    assert main(["dmeo"]) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert "'dmeo'" in line and "did you mean 'demo'?" in line
    assert captured.out == ""


def test_no_command_is_an_error(capsys):
    assert main([]) == 2
    assert "COMMAND" in _one_error_line(capsys.readouterr().err)


def test_bad_option_value_names_the_option(capsys):
    assert main(["demo", "--points", "many"]) == 2
    assert "--points" in _one_error_line(capsys.readouterr().err)


def test_user_error_from_a_command(capsys):
    assert main(["demo", "--points", "0"]) == 2
    assert "--points must be at least 1" in _one_error_line(capsys.readouterr().err)


def test_demo(capsys):
    assert main(["demo", "--points", "4097", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    max_abs = float(re.search(r"max abs error:\s+(\S+)", out).group(1))
    max_ulp = float(re.search(r"max ULP error:\s+(\S+)", out).group(1))
    # The cubic's own error is 2.03e-4 (about 1700 ULPs of [1, 2)); float32 rounding adds little.
    assert 1.9e-4 < max_abs < 2.2e-4
    assert 1500 < max_ulp < 1900
    assert "bit-identical at every point" in out
    assert "excess precision: off" in out


# -- problems, run, resume, plot, report ----------------------------------------------------


def test_problems_lists_names_and_descriptions(capsys):
    from evolve.catalog import load_problem

    assert main(["problems"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^exp2\s+" + re.escape(load_problem("exp2").description), out, re.M)


def test_help_config_lists_the_fields(capsys):
    assert main(["run", "exp2", "--help-config"]) == 0
    out = capsys.readouterr().out
    for name in ("problem", "seed", "generations", "checkpoint_every", "keep_checkpoints",
                 "search.population", "search.variation.mutation_weights.insert"):
        assert re.search(rf"^{re.escape(name)}\s", out, re.M), name
    assert main(["run", "--help-config"]) == 0  # no PROBLEM needed


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run of 4 generations, made through the command line."""
    path = tmp_path_factory.mktemp("cli") / "finished"
    assert main(["run", *tiny.cli_args(4), "--run-dir", str(path)]) == 0
    return path


def test_run_prints_the_run_dir_and_best_program(finished, capsys):
    # the fixture's output went to an earlier capture: run the summary again via resume
    assert main(["resume", str(finished), "--generations", "5", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"run directory: {finished}" in out
    assert "generation 5 of 5" in out
    assert re.search(r"^# error \S+ (sampled|certified) \(.*\), cost \S+.*\n(r\d+ = .*\n)*"
                     r"return r\d+$", out, re.M)


@pytest.mark.parametrize("argv, expected", [
    (["run", "exp3"], ["unknown problem 'exp3'", "did you mean", "exp2", "evolve problems"]),
    (["run", "exp2", "--set", "search.populaton=4"], ["did you mean 'search.population'?"]),
    (["run", "exp2", "--set", "search.population=lots"],
     ["'search.population' = 'lots' is not an integer"]),
    (["run", "exp2", "--config", "/nonexistent/c.yaml"], ["config file", "does not exist"]),
    (["run", "exp2", "--generations", "-3"], ["--generations", "at least 0"]),
    (["run"], ["no problem given"]),
    (["run", "exp2", "--set", "search.init_length=[2, 99]"],
     ["'search.init_length'", "at most 24 instructions"]),
    (["resume", "/nonexistent/run"], ["run directory '/nonexistent/run' does not exist"]),
    (["plot", "/nonexistent/run"], ["does not exist"]),
    (["report", "/nonexistent/run"], ["does not exist"]),
])
def test_bad_input_is_one_line_and_status_2(capsys, argv, expected):
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    for part in expected:
        assert part in line


def test_resume_of_a_foreign_directory(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["resume", str(tmp_path)]) == 2
    assert "is not an evolve run directory" in _one_error_line(capsys.readouterr().err)


def test_run_into_a_used_directory(tmp_path, finished, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["run", "exp2", "--run-dir", str(tmp_path)]) == 2
    assert "exists and is not an empty directory" in _one_error_line(capsys.readouterr().err)
    assert main(["run", "exp2", "--run-dir", str(finished)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "already holds a run" in line and f"evolve resume {finished}" in line


def test_resume_of_a_finished_run_says_how_to_extend(finished, capsys):
    at = int(runs_at(finished))
    assert main(["resume", str(finished)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"is finished (generation {at} of {at})" in line
    assert f"evolve resume {finished} --generations {2 * at}" in line
    assert main(["resume", str(finished), "--generations", str(at)]) == 2
    assert f"at generation {at} already" in _one_error_line(capsys.readouterr().err)


def runs_at(run_dir: Path) -> int:
    from evolve.runs.checkpoint import list_checkpoints

    return list_checkpoints(run_dir / "checkpoints")[-1][0]


def test_a_corrupt_config_is_named(tmp_path, finished, capsys):
    import shutil

    path = tmp_path / "run"
    shutil.copytree(finished, path)
    (path / "config.yaml").write_text("problem: exp2\nsearch:\n  population: -1\n")
    assert main(["resume", str(path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"'search.population' = -1 in '{path / 'config.yaml'}' must be at least 1" in line


def _wait_for(condition, process, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended (status {process.returncode}) too soon:\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("timed out waiting for the run")
        time.sleep(0.02)


@pytest.mark.slow
def test_killed_and_interrupted_runs_resume_exactly(tmp_path, capsys):
    """SIGKILL mid-run, resume; SIGINT the resumed run (a clean stop, status 0, the resume
    command printed); resume to the end: the same front.csv and metrics.csv as a run that
    was never stopped."""
    from evolve.runs.checkpoint import list_checkpoints

    n = 60
    reference = tmp_path / "reference"
    assert main(["run", *tiny.cli_args(n), "--run-dir", str(reference)]) == 0
    path = tmp_path / "run"
    cmd = [sys.executable, "-m", "evolve"]
    run = subprocess.Popen([*cmd, "run", *tiny.cli_args(n), "--run-dir", str(path)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: any(g > 0 for g, _ in list_checkpoints(path / "checkpoints")), run)
    run.kill()  # SIGKILL
    run.communicate()
    killed_at = runs_at(path)
    assert 0 < killed_at < n

    resume = subprocess.Popen([*cmd, "resume", str(path), "--quiet"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = path / "events.log"
    _wait_for(lambda: log.read_text().count("resumed from") == 1, resume)
    resume.send_signal(signal.SIGINT)
    out, err = resume.communicate(timeout=240)
    assert resume.returncode == 0, err
    stopped_at = runs_at(path)
    assert killed_at <= stopped_at < n
    assert f"stopped by SIGINT at generation {stopped_at} of {n}" in err
    assert f"Resume with: evolve resume {path}" in err
    assert "Traceback" not in err
    assert f"run directory: {path}" in out

    capsys.readouterr()
    assert main(["resume", str(path), "--quiet"]) == 0
    assert f"generation {n} of {n}" in capsys.readouterr().out
    tiny.assert_same_run(reference, path)


def test_scripts_are_thin_wrappers():
    done = subprocess.run([sys.executable, "scripts/resume.py", "/nonexistent/run"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "does not exist" in _one_error_line(done.stderr)
    done = subprocess.run([sys.executable, "scripts/run.py", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--help-config" in done.stdout
    done = subprocess.run([sys.executable, "scripts/plot.py", "/nonexistent/run"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "does not exist" in _one_error_line(done.stderr)


def test_a_closed_pipe_is_not_an_error(monkeypatch):
    """`evolve problems | head -1`: the reader has left, writes fail with EPIPE; the
    command ends quietly with status 0 instead of a traceback."""
    import os

    read, write = os.pipe()
    os.close(read)  # the reader is gone
    out = os.fdopen(write, "w", buffering=1)
    monkeypatch.setattr("sys.stdout", out)
    try:
        assert main(["problems"]) == 0
    finally:
        out.close()
