"""No code runs from data: a run directory whose every file carries a payload (pickles in
the .npz, YAML tags in config.yaml, Python in front.csv, state.json, metrics.csv, the log
and the lock, a problem file planted inside it) is opened by every command that reads runs
(resume, report, verify, export, plot). Each either fails with one clear line or ignores
the payload, and the payload never runs: it would create a marker file, which must not
exist afterwards. The source is also checked: no pickle, no unsafe YAML, no eval/exec,
and ``np.load`` only with ``allow_pickle=False``."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiny
from evolve import cli
from evolve.catalog import load_problem
from evolve.runs import driver as runs
from evolve.runs.checkpoint import CheckpointError, list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
N = 6


class _Payload:
    """Unpickling this runs ``touch marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _code(marker: Path) -> str:
    return f"__import__('os').system('touch {marker}')"


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("security") / "run"
    runs.start(tiny.config(N), path, quiet=True)
    return path


def test_the_payloads_are_live(tmp_path):
    """The payloads do run code when loaded unsafely, so their absence below means
    something."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()
    marker.unlink()
    np.savez(tmp_path / "a.npz", x=np.array([_Payload(marker)], dtype=object))
    with np.load(tmp_path / "a.npz", allow_pickle=True) as npz:
        npz["x"]
    assert marker.exists()


# -- planting -----------------------------------------------------------------------------
def _reseal(ckpt: Path) -> None:
    """Checksums that match the planted files: the attacker can compute them too."""
    sums = {n: hashlib.sha256((ckpt / n).read_bytes()).hexdigest()
            for n in ("state.npz", "state.json")}
    (ckpt / "checksums.json").write_text(json.dumps(sums))


def _checkpoints(run: Path) -> list[Path]:
    return [p for _, p in list_checkpoints(run / "checkpoints")]


def _npz_objects(run: Path, marker: Path) -> None:
    for ckpt in _checkpoints(run):
        with np.load(ckpt / "state.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["error"] = np.array([_Payload(marker)] * len(arrays["error"]), dtype=object)
        arrays["payload"] = np.array([_Payload(marker)], dtype=object)
        np.savez(ckpt / "state.npz", **arrays)
        _reseal(ckpt)


def _npz_pickle(run: Path, marker: Path) -> None:
    for ckpt in _checkpoints(run):
        (ckpt / "state.npz").write_bytes(pickle.dumps(_Payload(marker)))
        _reseal(ckpt)


def _state_json(run: Path, marker: Path) -> None:
    for ckpt in _checkpoints(run):
        scalars = json.loads((ckpt / "state.json").read_text())
        scalars["fields"]["key"]["data"] = _code(marker)
        scalars["fields"]["programs"] = {"kind": "json", "data": [_code(marker)]}
        scalars["meta"] = {"problem": _code(marker), "__reduce__": _code(marker)}
        scalars["py/object"] = "os.system"
        (ckpt / "state.json").write_text(json.dumps(scalars))
        _reseal(ckpt)


def _state_programs(run: Path, marker: Path) -> None:
    """Programs that are valid arrays but break the problem's rules (a register out of
    range, an op the problem lacks), with the checksums right."""
    for ckpt in _checkpoints(run):
        with np.load(ckpt / "state.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays["programs.dst"] = arrays["programs.dst"] + 1000
        arrays["programs.op"] = np.full_like(arrays["programs.op"], -1)
        np.savez(ckpt / "state.npz", **arrays)
        _reseal(ckpt)


def _config_tag(run: Path, marker: Path) -> None:
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace(
        "seed: 0", f"seed: !!python/object/apply:os.system ['touch {marker}']"))


def _problem_file(run: Path, marker: Path, relative: bool = False) -> None:
    evil = run / "checkpoints" / "problem.py"
    evil.write_text(f"import os\nos.system('touch {marker}')\n"
                    "from evolve.problems.exp2 import PROBLEM\n")
    name = os.path.relpath(evil) if relative else str(evil)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("problem: exp2", f"problem: {name}"))


def _problem_name(run: Path, marker: Path) -> None:
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("problem: exp2",
                                                  f"problem: \"{_code(marker)}\""))


def _front(run: Path, marker: Path) -> None:
    (run / "front.csv").write_text(
        "error,cost,length,program\n"
        f"1.0,2.0,1,\"<script>alert(1)</script>\n{_code(marker)}\nreturn r1\"\n")


def _front_numbers(run: Path, marker: Path) -> None:
    code = _code(marker)
    (run / "front.csv").write_text("error,cost,length,program\n"
                                   f"\"{code}\",\"{code}\",1,\"r1 = add(r0, r0)\nreturn r1\"\n")


def _metrics(run: Path, marker: Path) -> None:
    lines = (run / "metrics.csv").read_text().splitlines()
    cells = lines[1].split(",")
    cells[1], cells[2] = _code(marker).replace(",", ";"), "=cmd|' /C calc'!A0"
    (run / "metrics.csv").write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")


def _log_and_lock(run: Path, marker: Path) -> None:
    with open(run / "events.log", "a") as f:
        f.write(_code(marker) + "\n")
    (run / "lock").write_bytes(b"1; touch " + bytes(marker) + b"\n" + pickle.dumps(
        _Payload(marker)))
    (run / "plant.pkl").write_bytes(pickle.dumps(_Payload(marker)))


def _everything(run: Path, marker: Path) -> None:
    for plant in (_npz_objects, _state_json, _front_numbers, _metrics, _log_and_lock):
        plant(run, marker)


ALL = ("resume", "report", "verify", "export", "plot")
# Each plant, and the commands that read what it poisons (the others would not look).
PLANTS = {
    "npz-object-arrays": (_npz_objects, ("resume",)),
    "npz-is-a-pickle": (_npz_pickle, ("resume",)),
    "state-json": (_state_json, ("resume",)),
    "state-programs": (_state_programs, ("resume",)),
    "config-yaml-tag": (_config_tag, ALL),
    "problem-file-in-run": (_problem_file, ALL),
    "problem-file-in-run-relative": (lambda r, m: _problem_file(r, m, relative=True), ALL),
    "problem-name-is-code": (_problem_name, ("resume", "report", "verify", "export")),
    "front-csv": (_front, ("resume", "report", "verify", "export")),
    "front-csv-numbers": (_front_numbers, ALL),
    "metrics-csv": (_metrics, ("resume", "report", "plot")),
    "log-and-lock": (_log_and_lock, ("resume", "verify", "report")),
    "everything": (_everything, ALL),
}
COMMANDS = {
    "resume": lambda run, out: ["resume", str(run), "--generations", str(N + 2), "--quiet"],
    "report": lambda run, out: ["report", str(run)],
    "verify": lambda run, out: ["verify", str(run), "--limit", "1", "--stride", "65536",
                                "--quiet"],
    "export": lambda run, out: ["export", str(run), "--format", "python", "--out",
                                str(out / "f.py")],
    "plot": lambda run, out: ["plot", str(run), "--out", str(out / "plot.png")],
}


@pytest.mark.parametrize("plant", list(PLANTS))
def test_a_planted_run_directory_runs_no_code(clean, tmp_path, capsys, plant):
    marker = tmp_path / "marker"
    outcomes = {}
    plant_in, commands = PLANTS[plant]
    for command in commands:
        run = tmp_path / f"run-{command}"
        shutil.copytree(clean, run)
        plant_in(run, marker)
        out = tmp_path / f"out-{command}"
        out.mkdir()
        status = cli.main(COMMANDS[command](run, out))
        captured = capsys.readouterr()
        assert not marker.exists(), f"{command} ran the payload of {plant}"
        assert status in (0, 2), (command, status, captured.err)
        if status == 2:
            assert captured.err.startswith("evolve: error: "), captured.err
            assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
        outcomes[command] = status
        if command == "report" and status == 0:
            page = (run / "report.html").read_text()
            assert "<script>" not in page  # program text is escaped
    if plant == "front-csv":
        assert outcomes["report"] == 0
    if plant.startswith(("config", "problem-file")):  # the run cannot even be opened
        assert set(outcomes.values()) == {2}, outcomes
    if plant == "problem-name-is-code":  # no such problem; report and plot go without it
        assert outcomes["resume"] == outcomes["verify"] == outcomes["export"] == 2
    if plant.startswith(("npz", "state")):  # every checkpoint is set aside: start again
        assert outcomes["resume"] == 0


def test_a_problem_file_outside_the_run_is_the_users_own(clean, tmp_path):
    """What ``evolve run cube.py`` does: the file named by config.yaml, outside the run."""
    problem = tmp_path / "mine.py"
    problem.write_text("from evolve.problems.exp2 import PROBLEM\n")
    run = tmp_path / "run"
    shutil.copytree(clean, run)
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("problem: exp2", f"problem: {problem}"))
    assert runs.open_run(run)[1].problem == str(problem)


# -- checkpoints with the right checksums and any contents ------------------------------------
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) |
                     st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _set(obj, path, value):
    if not path:
        return value
    obj[path[0]] = _set(obj[path[0]], path[1:], value)
    return obj


@given(st.data())
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_resealed_checkpoint_loads_or_is_refused(clean, tmp_path_factory, data):
    ckpt = tmp_path_factory.mktemp("ckpt") / "gen"
    shutil.copytree(_checkpoints(clean)[-1], ckpt)
    scalars = json.loads((ckpt / "state.json").read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(scalars))
        scalars = _set(scalars, data.draw(st.sampled_from(paths)), data.draw(_JSON))
    (ckpt / "state.json").write_text(json.dumps(scalars))
    if data.draw(st.booleans()):
        with np.load(ckpt / "state.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        name = data.draw(st.sampled_from(sorted(arrays)))
        with np.errstate(over="ignore"):  # huge values (inf where they overflow) are the point
            huge = arrays[name].astype(np.float64) * 1e300
        arrays[name] = data.draw(st.sampled_from([
            np.zeros(0), np.arange(5), np.array(["x", "y"]), np.full((2, 3), -7, np.int32),
            np.array(np.nan), huge]))
        np.savez(ckpt / "state.npz", **arrays)
    _reseal(ckpt)
    try:
        state, _ = load_checkpoint(ckpt)
        runs._check_programs(state, load_problem("exp2"))
    except CheckpointError as e:
        assert str(e)


# -- the source ---------------------------------------------------------------------------------
def _sources() -> list[Path]:
    return sorted(p for d in ("evolve", "scripts", "problems") for p in (ROOT / d).rglob("*.py"))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


_EXEC_MODULE_ALLOWED = (Path("evolve/catalog.py"), Path("scripts/bench_fec.py"))


def test_no_unsafe_loading_in_the_source():
    banned_modules = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
    banned_calls = {"eval", "exec", "yaml.load", "yaml.unsafe_load", "yaml.full_load",
                    "yaml.load_all", "pd.read_pickle", "pandas.read_pickle", "np.fromfile",
                    "torch.load", "builtins.eval", "builtins.exec", "compile"}
    found = []
    loads = 0
    for path in _sources():
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [f"{where}: import {a.name}" for a in node.names
                          if a.name.split(".")[0] in banned_modules]
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module.split(".")[0] in banned_modules:
                    found.append(f"{where}: from {node.module} import ...")
            elif isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name in banned_calls:
                    found.append(f"{where}:{node.lineno}: {name}(...)")
                if name in ("np.load", "numpy.load"):
                    loads += 1
                    flag = [k for k in node.keywords if k.arg == "allow_pickle"]
                    if not (flag and isinstance(flag[0].value, ast.Constant)
                            and flag[0].value.value is False):
                        found.append(f"{where}:{node.lineno}: np.load without "
                                     "allow_pickle=False")
                # catalog.py loads problem files; bench_fec.py --baseline loads an earlier
                # revision of our own evolve/search/fec.py from git, to time it side by side
                if name.endswith("exec_module") and where not in _EXEC_MODULE_ALLOWED:
                    found.append(f"{where}:{node.lineno}: {name}(...) outside "
                                 f"{', '.join(map(str, _EXEC_MODULE_ALLOWED))}")
    assert loads >= 1  # the checkpoint reader is among them
    assert not found, found
