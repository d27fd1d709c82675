"""The command line: help, version, the one-line error path, and the demo."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

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
    missing = [m for m in ("text.py", "interpreter.py", "problem.py") if not (ROOT / "evolve" / m).exists()]
    if missing:
        pytest.skip(f"the demo needs evolve/{', evolve/'.join(missing)}, not written yet")
    assert main(["demo", "--points", "4097", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    max_abs = float(re.search(r"max abs error:\s+(\S+)", out).group(1))
    max_ulp = float(re.search(r"max ULP error:\s+(\S+)", out).group(1))
    # The cubic's own error is 2.03e-4 (about 1700 ULPs of [1, 2)); float32 rounding adds little.
    assert 1.9e-4 < max_abs < 2.2e-4
    assert 1500 < max_ulp < 1900
    assert "bit-identical at every point" in out
    assert "excess precision: off" in out
