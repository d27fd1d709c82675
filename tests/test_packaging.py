"""What `pip install .` puts into site-packages: only the package ``evolve`` (the problem
library installs as ``evolve.problems``, its Sollya baselines with it)."""

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_installs_nothing_but_evolve(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = tmp_path.glob("evolve-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"evolve"}, top
    for path in ("evolve/problems/exp2.py", "evolve/problems/_common.py",
                 "evolve/eval/cuda/kernel.py", "evolve/search/llm/edits.py",
                 "evolve/runs/islands/core.py"):
        assert path in names, path
    assert any(n.startswith("evolve/problems/baselines/") and n.endswith(".json")
               for n in names)
    # every package of the source tree is in the wheel (setup.cfg lists them by hand)
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "evolve").rglob("__init__.py")}
    assert {p for p in packages if f"{p}/__init__.py" not in names} == set()


def test_the_problem_library_imports_under_evolve():
    import evolve.problems.exp2 as exp2

    assert exp2.PROBLEM.name == "exp2"
    assert importlib.util.find_spec("evolve.problems._common") is not None
