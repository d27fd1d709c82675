"""Resource faults: a full disk, a read-only run directory, a missing device, a lock held by
another process. Each gives one clear line (``UserError``, exit status 2 from the command
line), leaves no half-written or corrupt file, and the run resumes exactly once the cause
is gone. (Kills at random moments: ``scripts/fault_inject.py`` and test_cli.py.)"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tiny
from evolve import cli
from evolve.errors import UserError
from evolve.runs import driver as runs
from evolve.runs.checkpoint import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
N = 9  # generations of the reference run; checkpoints every 3


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "reference"
    runs.start(tiny.config(N), path, quiet=True)
    return path


# -- simulated faults -------------------------------------------------------------------
_WRITE_MODES = set("wax+")
_real_open = builtins.open


def _under(path, root: Path) -> bool:
    try:
        return os.fspath(os.path.abspath(path)).startswith(os.fspath(root))
    except TypeError:  # a file descriptor
        return False


class _FullDisk:
    """Files opened for writing under ``root`` share ``budget`` bytes; the write that
    passes it writes what fits, then fails with ENOSPC, as on a disk that fills up. With
    ``match``, the ``nth`` write to a file whose name contains it fails instead (half of
    it written)."""

    def __init__(self, root: Path, budget: int, code: int = errno.ENOSPC,
                 match: str | None = None, nth: int = 1):
        self.root, self.left, self.code, self.written = root, budget, code, 0
        self.match, self.nth = match, nth

    def open(self, file, mode="r", *args, **kwargs):
        f = _real_open(file, mode, *args, **kwargs)
        if _WRITE_MODES & set(mode) and _under(file, self.root):
            return _Metered(f, self, os.fspath(file))
        return f


class _Metered:
    def __init__(self, f, disk: _FullDisk, name: str):
        self._f, self._disk, self._name = f, disk, name

    def write(self, data):
        n = len(data)
        disk = self._disk
        if disk.match is not None and disk.match in os.path.basename(self._name):
            disk.nth -= 1
            if disk.nth == 0:
                disk.left = len(data) // 2
        if n > self._disk.left:
            self._f.write(data[: self._disk.left])
            self._disk.left = 0
            raise OSError(self._disk.code, os.strerror(self._disk.code), self._name)
        self._disk.left -= n
        self._disk.written += n
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __iter__(self):
        return iter(self._f)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def disk(monkeypatch):
    """``disk(root, budget)`` makes writes under ``root`` fail after ``budget`` bytes."""

    def install(root: Path, budget: int, code: int = errno.ENOSPC, **when) -> _FullDisk:
        full = _FullDisk(Path(os.path.abspath(root)), budget, code, **when)
        monkeypatch.setattr(builtins, "open", full.open)
        monkeypatch.setattr(io, "open", full.open)  # pathlib's write_text goes through it
        return full

    return install


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(root)``: every write under ``root`` fails with EROFS, as on a file
    system mounted read-only (tests run as root here, so chmod would not stop writes)."""

    def install(root: Path) -> None:
        root = Path(os.path.abspath(root))

        def refuse(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))

        def guard_open(file, mode="r", *args, **kwargs):
            if _WRITE_MODES & set(mode) and _under(file, root):
                refuse(file)
            return _real_open(file, mode, *args, **kwargs)

        def guard(fn, n_paths=1):
            def wrapped(*args, **kwargs):
                for path in args[:n_paths]:
                    if _under(path, root):
                        refuse(path)
                return fn(*args, **kwargs)
            return wrapped

        monkeypatch.setattr(builtins, "open", guard_open)
        monkeypatch.setattr(io, "open", guard_open)
        for name, n in (("replace", 2), ("rename", 2), ("mkdir", 1), ("unlink", 1),
                        ("remove", 1), ("rmdir", 1)):
            monkeypatch.setattr(os, name, guard(getattr(os, name), n))

    return install


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}


def _assert_consistent(path: Path) -> None:
    """No half-written file, and every checkpoint on disk reads back."""
    leftovers = [p for p in path.rglob("*") if ".tmp-" in p.name or p.name.startswith(".old-")]
    assert not leftovers, leftovers
    for _, ckpt in list_checkpoints(path / "checkpoints"):
        load_checkpoint(ckpt)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("evolve: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# -- a full disk ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bytes_of_a_run(tmp_path_factory, reference) -> int:
    """How many bytes the tiny run writes in all (metered, with room to spare)."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("metered") / "run"
    full = _FullDisk(Path(os.path.abspath(path.parent)), 1 << 40)
    mp.setattr(builtins, "open", full.open)
    mp.setattr(io, "open", full.open)
    try:
        runs.start(tiny.config(N), path, quiet=True)
    finally:
        mp.undo()
    return full.written


@pytest.mark.parametrize("when", [
    {"fraction": 0.0}, {"fraction": 0.3}, {"fraction": 0.97},  # somewhere in the bytes
    {"match": "lock"}, {"match": ".config.yaml"}, {"match": "events.log", "nth": 3},
    {"match": "metrics.csv"}, {"match": "metrics.csv", "nth": 5},
    {"match": ".front.csv", "nth": 4}, {"match": "state.npz", "nth": 2},
    {"match": "state.json", "nth": 3}, {"match": "checksums.json", "nth": 2},
], ids=lambda w: "-".join(map(str, w.values())))
def test_a_full_disk_stops_the_run_cleanly_and_it_resumes_exactly(
        reference, bytes_of_a_run, tmp_path, disk, monkeypatch, when):
    path = tmp_path / "run"
    if "fraction" in when:
        disk(tmp_path, int(when["fraction"] * bytes_of_a_run))
    else:
        disk(tmp_path, 1 << 40, **when)
    with pytest.raises(UserError) as info:
        runs.start(tiny.config(N), path, quiet=True)
    message = str(info.value)
    assert "\n" not in message and "the disk is full" in message and str(path) in message
    monkeypatch.undo()  # space is freed
    _assert_consistent(path)
    if (path / "config.yaml").is_file():
        assert f"evolve resume {path}" in message
        runs.resume(path, quiet=True)
    else:  # the disk filled before the run existed: start it again, in the same place
        assert "start the run again" in message
        runs.start(tiny.config(N), path, quiet=True)
    tiny.assert_same_run(reference, path)


def test_a_failing_device_while_resuming_is_one_line_and_status_2(
        reference, tmp_path, disk, monkeypatch, capsys):
    path = tmp_path / "run"
    runs.start(tiny.config(4), path, quiet=True)
    disk(path, 5000, errno.EIO)  # the disk itself fails part way
    assert cli.main(["resume", str(path), "--generations", str(N), "--quiet"]) == 2
    assert "Input/output error" in _one_line_error(capsys)
    monkeypatch.undo()
    _assert_consistent(path)
    runs.resume(path, quiet=True)
    tiny.assert_same_run(reference, path)


# -- a read-only run directory ---------------------------------------------------------------
def test_a_read_only_run_directory_is_refused_and_left_alone(
        reference, tmp_path, read_only, monkeypatch, capsys):
    path = tmp_path / "run"
    runs.start(tiny.config(6), path, quiet=True)
    before = _snapshot(path)
    read_only(path)
    for argv in (["resume", str(path), "--generations", str(N), "--quiet"],
                 ["verify", str(path), "--limit", "1", "--quiet"]):
        assert cli.main(argv) == 2
        err = _one_line_error(capsys)
        assert "read-only" in err and "make it writable" in err
    monkeypatch.undo()
    assert _snapshot(path) == before
    runs.resume(path, N, quiet=True)
    tiny.assert_same_run(reference, path)


def test_a_read_only_place_for_a_new_run(tmp_path, read_only, monkeypatch, capsys):
    read_only(tmp_path)
    argv = ["run", *tiny.cli_args(2), "--run-dir", str(tmp_path / "new")]
    assert cli.main(argv) == 2
    assert "read-only" in _one_line_error(capsys)
    monkeypatch.undo()
    assert not (tmp_path / "new").exists()


# -- a missing device ------------------------------------------------------------------------
def test_a_missing_device_is_one_line_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    def no_backend(*args, **kwargs):
        raise RuntimeError("Unable to initialize backend 'cuda': no CUDA-capable device")

    monkeypatch.setattr(runs.jax, "devices", no_backend)
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    argv = ["run", *tiny.cli_args(2), "--run-dir", str(tmp_path / "new")]
    assert cli.main(argv) == 2
    err = _one_line_error(capsys)
    assert "JAX cannot start a device backend (JAX_PLATFORMS='cuda')" in err
    assert "unset JAX_PLATFORMS" in err
    assert not (tmp_path / "new").exists()


def test_a_missing_device_in_a_real_process(tmp_path, reference):
    env = {**os.environ, "JAX_PLATFORMS": "cuda"}  # this machine has no CUDA backend
    path = tmp_path / "run"
    shutil.copytree(reference, path)
    before = _snapshot(path)
    proc = subprocess.run([sys.executable, "-m", "evolve", "resume", str(path),
                           "--generations", str(N + 3)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode == 0:
        pytest.skip("this machine has a CUDA device")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("evolve: error: JAX cannot start a device backend")
    assert proc.stderr.count("\n") == 1
    assert _snapshot(path) == before


# -- a lock held by another process ----------------------------------------------------------
HOLD = """
import fcntl, os, sys, time
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
f.seek(0); f.truncate(); f.write(f"{os.getpid()}\\n"); f.flush()
print("held", flush=True)
time.sleep(120)
"""


def test_a_lock_held_by_another_process(reference, tmp_path, capsys):
    path = tmp_path / "run"
    runs.start(tiny.config(6), path, quiet=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path / "lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        before = _snapshot(path)
        assert cli.main(["resume", str(path), "--generations", str(N), "--quiet"]) == 2
        err = _one_line_error(capsys)
        assert f"in use by another evolve process (pid {holder.pid})" in err
        assert _snapshot(path) == before
    finally:
        holder.kill()
        holder.wait()
    runs.resume(path, N, quiet=True)  # the other process is gone: its lock went with it
    tiny.assert_same_run(reference, path)
