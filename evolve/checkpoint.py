"""Checkpoints: the search state written out as plain arrays and JSON, and read back.

A checkpoint is a directory ``checkpoints/gen-XXXXXX/`` holding

  state.npz       every array of the state (``np.savez``; read with ``allow_pickle=False``):
                  ``key`` (uint32, ``jax.random.key_data`` of the run's key), the
                  population as a ProgramBatch (``programs.op``, ``.args``, ``.dst``,
                  ``.const``, ``.length``, ``.output``), ``error`` and ``cost`` (float64),
                  ``fingerprints`` (uint8 [n, 16]) and the arrays of both caches
                  (``cache.*``, ``structures.*``, from ``FECache.to_state``);
  state.json      the rest: format, generation, each State field's kind and JSON data
                  (key implementation, counters, the caches' scalars), and the caller's
                  ``meta``;
  checksums.json  the sha256 of each of the other files, checked when the checkpoint is read.

It is written to a temporary directory, every file and the directory fsynced, then
renamed into place, so a crash leaves either the whole checkpoint or none. Nothing is
pickled: reading a checkpoint never runs code.
"""

from __future__ import annotations

import dataclasses
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
from evolve.program import Program, ProgramBatch, from_arrays, to_arrays

FORMAT = "evolve-checkpoint-1"
_NAME = re.compile(r"^gen-(\d{6,})$")


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
# Each field of State is saved by the kind of its value, so a field the engine adds is
# saved too if it is of a known kind (and refused with a clear error if not).
def _kind(value: Any) -> str:
    if isinstance(value, FECache):
        return "cache"
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        return "key"
    if isinstance(value, np.ndarray):
        return "array"
    if isinstance(value, list) and all(isinstance(v, Program) for v in value) and value:
        return "programs"
    if isinstance(value, list) and all(isinstance(v, bytes) for v in value):
        return "bytes"
    if value is None or isinstance(value, (bool, int, float, str)):
        return "json"
    raise TypeError(f"evolve.checkpoint cannot save a {type(value).__name__} "
                    "(State fields must be arrays, programs, fingerprints, caches, keys or "
                    "JSON scalars); teach state_to_data about it")


def state_to_data(state: State) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays (by name) and the JSON scalars of ``state``.

    Arrays of field ``f`` are named ``f`` or ``f.<part>``; ``scalars["fields"]`` maps each
    field to its kind and JSON data.
    """
    arrays: dict[str, np.ndarray] = {}
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(State):
        value, name = getattr(state, f.name), f.name
        kind = _kind(value)
        data: Any = None
        if kind == "cache":
            data = {}
            for k, v in value.to_state().items():
                if isinstance(v, np.ndarray):
                    arrays[f"{name}.{k}"] = v
                else:
                    data[k] = v
        elif kind == "key":
            arrays[name] = np.asarray(jax.random.key_data(value))
            data = str(jax.random.key_impl(value))
        elif kind == "array":
            arrays[name] = value
        elif kind == "programs":
            for part, a in zip(ProgramBatch._fields, to_arrays(value)):
                arrays[f"{name}.{part}"] = np.asarray(a)
            data = len(value)
        elif kind == "bytes":
            width = len(value[0]) if value else 0
            if any(len(v) != width for v in value):
                raise ValueError(f"State.{name}: byte strings of different lengths")
            arrays[name] = np.frombuffer(b"".join(value), np.uint8).reshape(len(value), width)
        else:
            data = value
        fields[name] = {"kind": kind, "data": data}
    return arrays, {"format": FORMAT, "generation": int(state.generation), "fields": fields}


def state_from_data(arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> State:
    """The ``State`` that ``state_to_data`` wrote (raises KeyError/ValueError if damaged)."""
    if scalars.get("format") != FORMAT:
        raise ValueError(f"format is {scalars.get('format')!r}, expected {FORMAT!r}")
    kwargs = {}
    for f in dataclasses.fields(State):
        name = f.name
        if name not in scalars["fields"]:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise KeyError(f"State.{name} is not in the checkpoint")
            continue  # a field added since: its default
        kind, data = scalars["fields"][name]["kind"], scalars["fields"][name]["data"]
        if kind == "cache":
            prefix = name + "."
            kwargs[name] = FECache.from_state(
                {**data, **{k[len(prefix):]: v for k, v in arrays.items()
                            if k.startswith(prefix)}})
        elif kind == "key":
            kwargs[name] = jax.random.wrap_key_data(np.asarray(arrays[name], np.uint32),
                                                    impl=data)
        elif kind == "array":
            kwargs[name] = arrays[name]
        elif kind == "programs":
            programs = from_arrays(ProgramBatch(*(arrays[f"{name}.{part}"]
                                                  for part in ProgramBatch._fields)))
            if len(programs) != data:
                raise ValueError(f"State.{name}: {len(programs)} programs, expected {data}")
            kwargs[name] = programs
        elif kind == "bytes":
            kwargs[name] = [row.tobytes() for row in np.asarray(arrays[name], np.uint8)]
        elif kind == "json":
            kwargs[name] = data
        else:
            raise ValueError(f"State.{name} has unknown kind {kind!r}")
    state = State(**kwargs)
    n = len(state.programs)
    if state.error.shape != (n,) or state.cost.shape != (n,) or len(state.fingerprints) != n:
        raise ValueError("population arrays disagree in length")
    return state


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
