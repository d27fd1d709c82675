"""Checkpoints: the search state written out as plain arrays and JSON, and read back.

A checkpoint is a directory ``checkpoints/gen-XXXXXX/`` holding

  state.npz       every array of the state (``np.savez``; read with ``allow_pickle=False``):
                  ``key_data`` (uint32, ``jax.random.key_data`` of the run's key), the
                  population as a ProgramBatch (``op args dst const length output``),
                  ``error cost`` (float64), ``fingerprints`` (uint8 [n, 16]) and the arrays
                  of both caches (``cache.*``, ``structures.*``, from ``FECache.to_state``);
  state.json      the scalars: format, generation, key implementation, counters, the
                  caches' scalar fields, and what the caller adds (``meta``);
  checksums.json  the sha256 of each of the other files, checked when the checkpoint is read.

It is written to a temporary directory, every file and the directory fsynced, then
renamed into place, so a crash leaves either the whole checkpoint or none. Nothing is
pickled: reading a checkpoint never runs code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np

from evolve.engine import State
from evolve.fec import FECache
from evolve.program import ProgramBatch, from_arrays, to_arrays

FORMAT = "evolve-checkpoint-1"
_NAME = re.compile(r"^gen-(\d{6,})$")
_CACHES = ("cache", "structures")


class CheckpointError(Exception):
    """A checkpoint that cannot be read: missing files, a checksum mismatch, bad contents."""


def checkpoint_name(generation: int) -> str:
    return f"gen-{generation:06d}"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """The checkpoints under ``directory`` as (generation, path), oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        m = _NAME.match(path.name)
        if m and path.is_dir():
            found.append((int(m.group(1)), path))
    return sorted(found)


# -- the state as data ------------------------------------------------------------------
def state_to_data(state: State) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the JSON scalars of ``state``."""
    batch = to_arrays(state.programs)
    arrays: dict[str, np.ndarray] = {
        "key_data": np.asarray(jax.random.key_data(state.key)),
        **{name: np.asarray(a) for name, a in zip(ProgramBatch._fields, batch)},
        "error": np.asarray(state.error, np.float64),
        "cost": np.asarray(state.cost, np.float64),
        "fingerprints": np.frombuffer(b"".join(state.fingerprints), np.uint8).reshape(
            len(state.fingerprints), -1) if state.fingerprints else np.zeros((0, 16), np.uint8),
    }
    scalars: dict[str, Any] = {
        "format": FORMAT,
        "generation": int(state.generation),
        "key_impl": str(jax.random.key_impl(state.key)),
        "evaluations": int(state.evaluations),
        "fits": int(state.fits),
        "population": len(state.programs),
    }
    for name in _CACHES:
        cache_state = getattr(state, name).to_state()
        cache_scalars = {}
        for k, v in cache_state.items():
            if isinstance(v, np.ndarray):
                arrays[f"{name}.{k}"] = v
            else:
                cache_scalars[k] = v
        scalars[name] = cache_scalars
    return arrays, scalars


def state_from_data(arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> State:
    """The ``State`` that ``state_to_data`` wrote (raises KeyError/ValueError if damaged)."""
    if scalars.get("format") != FORMAT:
        raise ValueError(f"format is {scalars.get('format')!r}, expected {FORMAT!r}")
    key = jax.random.wrap_key_data(np.asarray(arrays["key_data"], np.uint32),
                                   impl=scalars["key_impl"])
    batch = ProgramBatch(*(arrays[name] for name in ProgramBatch._fields))
    programs = from_arrays(batch)
    fps = np.asarray(arrays["fingerprints"], np.uint8)
    n = len(programs)
    if n != scalars["population"] or arrays["error"].shape != (n,) or \
            arrays["cost"].shape != (n,) or fps.shape[0] != n:
        raise ValueError("population arrays disagree in length")
    caches = {}
    for name in _CACHES:
        data = dict(scalars[name])
        prefix = name + "."
        data.update({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        caches[name] = FECache.from_state(data)
    return State(int(scalars["generation"]), key, programs,
                 np.asarray(arrays["error"], np.float64), np.asarray(arrays["cost"], np.float64),
                 [row.tobytes() for row in fps], caches["cache"], caches["structures"],
                 int(scalars["evaluations"]), int(scalars["fits"]))


# -- files --------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (new, renamed, removed files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by a file holding ``data``, all or nothing."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write_file(tmp, data)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def save_checkpoint(directory: Path, state: State, meta: dict[str, Any] | None = None) -> Path:
    """Write ``state`` as ``directory/gen-XXXXXX`` atomically; return its path.

    ``meta`` (JSON-able) is stored in state.json under "meta". An existing checkpoint of
    the same generation is replaced.
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(state.generation)
    tmp = directory / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    arrays, scalars = state_to_data(state)
    scalars["meta"] = meta or {}
    with open(tmp / "state.npz", "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    write_file(tmp / "state.json", (json.dumps(scalars, indent=1, sort_keys=True) + "\n").encode())
    sums = {name: _sha256(tmp / name) for name in ("state.npz", "state.json")}
    write_file(tmp / "checksums.json", (json.dumps(sums, indent=1, sort_keys=True) + "\n").encode())
    fsync_dir(tmp)
    if final.exists():  # e.g. a corrupt one being rewritten after a resume from an older one
        old = directory / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    fsync_dir(directory)
    return final


def load_checkpoint(path: Path) -> tuple[State, dict[str, Any]]:
    """The state in checkpoint ``path`` and its meta; ``CheckpointError`` if unreadable."""
    try:
        sums = json.loads((path / "checksums.json").read_text())
    except FileNotFoundError:
        raise CheckpointError("checksums.json is missing") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checksums.json is unreadable ({e})") from None
    if not isinstance(sums, dict) or set(sums) != {"state.npz", "state.json"}:
        raise CheckpointError("checksums.json does not list state.npz and state.json")
    for name, expected in sums.items():
        if not (path / name).is_file():
            raise CheckpointError(f"{name} is missing")
        if _sha256(path / name) != expected:
            raise CheckpointError(f"{name} does not match its sha256 in checksums.json")
    try:
        scalars = json.loads((path / "state.json").read_text())
        with np.load(path / "state.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        state = state_from_data(arrays, scalars)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"contents are damaged ({type(e).__name__}: {e})") from None
    return state, scalars.get("meta", {})


def prune_checkpoints(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (and stale temporaries); return them."""
    removed = []
    for _, path in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(path)
        removed.append(path)
    if removed:
        fsync_dir(directory)
    return removed


def remove_temporaries(directory: Path) -> None:
    """Remove half-written checkpoints left by a process that was killed while writing."""
    if directory.is_dir():
        for path in directory.iterdir():
            if path.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(path, ignore_errors=True)
