"""Checkpoints: the search state written out as plain arrays and JSON, and read back.

A checkpoint is a directory ``checkpoints/gen-XXXXXX/`` holding

  state.npz       every array of the state (``np.savez``; read with ``allow_pickle=False``):
                  ``key`` (uint32, ``jax.random.key_data`` of the run's key), the
                  population as a ProgramBatch (``programs.op``, ``.args``, ``.dst``,
                  ``.const``, ``.length``, ``.output``), ``error`` and ``cost`` (float64),
                  ``fingerprints`` (uint8 [n, 16]) and the arrays of both caches
                  (``cache.*``, ``structures.*``, from ``FECache.to_state``);
  state.json      the rest: format, generation, each State field's kind and JSON data
                  (key implementation, counters, the caches' scalars; for the tree
                  representation the trees as text and the ``random.Random`` state DEAP
                  draws from), and the caller's ``meta``;
  checksums.json  the sha256 of each of the other files, checked when the checkpoint is read.

A run of islands (``evolve.runs.islands.core``) has the same three files: each island's arrays
under ``island.<i>.``, the caches the islands share under ``shared.<name>.``, and in
state.json an "islands" entry (``islands_to_data``).

It is written to a temporary directory, every file and the directory fsynced, then
renamed into place, so a crash leaves either the whole checkpoint or none. Nothing is
pickled: reading a checkpoint never runs code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from evolve.batch import Programs
from evolve.program import Program, ProgramBatch, from_arrays, to_arrays
from evolve.search.fec import FECache
from evolve.search.shared_cache import SharedCacheView
from evolve.search.state import IslandsState, State

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
    if isinstance(value, SharedCacheView):
        return "shared"
    if isinstance(value, FECache):
        return "cache"
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        return "key"
    if isinstance(value, np.ndarray):
        return "array"
    if isinstance(value, Programs) and len(value):
        return "programs"
    if isinstance(value, list) and all(isinstance(v, Program) for v in value) and value:
        return "programs"
    if isinstance(value, list) and all(isinstance(v, bytes) for v in value):
        return "bytes"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "strings"
    if isinstance(value, random.Random):
        return "random"
    if value is None or isinstance(value, (bool, int, float, str)):
        return "json"
    raise TypeError(f"evolve.runs.checkpoint cannot save a {type(value).__name__} "
                    "(State fields must be arrays, programs, fingerprints, caches, keys or "
                    "JSON scalars); teach state_to_data about it")


def state_to_data(state: State, prefix: str = ""
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays (by name) and the JSON scalars of ``state``.

    Arrays of field ``f`` are named ``prefix + f`` or ``prefix + f.<part>`` (islands use
    ``island.<i>.``); ``scalars["fields"]`` maps each field to its kind and JSON data. A
    cache shared by islands (kind "shared") is saved once with the islands, not here.
    """
    arrays: dict[str, np.ndarray] = {}
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(State):
        value, name = getattr(state, f.name), f.name
        kind = _kind(value)
        data: Any = None
        if kind == "shared":
            data = value.name
        elif kind == "cache":
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
            batch = value.batch if isinstance(value, Programs) else to_arrays(value)
            for part, a in zip(ProgramBatch._fields, batch):
                arrays[f"{name}.{part}"] = np.asarray(a)
            data = len(value)
        elif kind == "bytes":
            width = len(value[0]) if value else 0
            if any(len(v) != width for v in value):
                raise ValueError(f"State.{name}: byte strings of different lengths")
            arrays[name] = np.frombuffer(b"".join(value), np.uint8).reshape(len(value), width)
        elif kind == "strings":
            data = list(value)
        elif kind == "random":
            version, internal, gauss = value.getstate()
            data = [version, list(internal), gauss]
        else:
            data = value
        fields[name] = {"kind": kind, "data": data}
    arrays = {prefix + k: v for k, v in arrays.items()}
    return arrays, {"format": FORMAT, "generation": int(state.generation), "fields": fields}


def state_from_data(arrays: dict[str, np.ndarray], scalars: dict[str, Any], prefix: str = "",
                    shared: dict[str, FECache] | None = None) -> State:
    """The ``State`` that ``state_to_data`` wrote (raises KeyError/ValueError if damaged);
    ``shared`` holds the caches that islands share, by name."""
    if scalars.get("format") != FORMAT:
        raise ValueError(f"format is {scalars.get('format')!r}, expected {FORMAT!r}")
    if prefix:
        arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    kwargs = {}
    for f in dataclasses.fields(State):
        name = f.name
        if name not in scalars["fields"]:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise KeyError(f"State.{name} is not in the checkpoint")
            continue  # a field added since: its default
        kind, data = scalars["fields"][name]["kind"], scalars["fields"][name]["data"]
        if kind == "shared":
            if not shared or data not in shared:
                raise KeyError(f"State.{name}: the shared cache {data!r} is not in the checkpoint")
            kwargs[name] = SharedCacheView(shared[data], data)
        elif kind == "cache":
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
            batch = ProgramBatch(*(np.asarray(arrays[f"{name}.{part}"])
                                   for part in ProgramBatch._fields))
            from_arrays(batch)  # every row must be a program (raises if damaged)
            programs = Programs(batch)
            if len(programs) != data:
                raise ValueError(f"State.{name}: {len(programs)} programs, expected {data}")
            kwargs[name] = programs
        elif kind == "bytes":
            kwargs[name] = [row.tobytes() for row in np.asarray(arrays[name], np.uint8)]
        elif kind == "json":
            kwargs[name] = data
        elif kind == "strings":
            if not (isinstance(data, list) and all(isinstance(v, str) for v in data)):
                raise ValueError(f"State.{name}: expected a list of strings")
            kwargs[name] = list(data)
        elif kind == "random":
            kwargs[name] = _random_from(data, name)
        else:
            raise ValueError(f"State.{name} has unknown kind {kind!r}")
    state = State(**kwargs)
    n = len(state.programs)
    if state.error.shape != (n,) or state.cost.shape != (n,) or len(state.fingerprints) != n:
        raise ValueError("population arrays disagree in length")
    return state


def _random_from(data: Any, name: str) -> random.Random:
    """The ``random.Random`` whose ``getstate()`` was saved as ``[version, [ints], gauss]``."""
    try:
        version, internal, gauss = data
        rng = random.Random()
        rng.setstate((int(version), tuple(int(v) for v in internal),
                      None if gauss is None else float(gauss)))
    except (TypeError, ValueError) as e:
        raise ValueError(f"State.{name}: not a saved random.Random state ({e})") from None
    return rng


# -- islands --------------------------------------------------------------------------------
# An island run's checkpoint: each island's state under the prefix ``island.<i>.``, the
# caches the islands share under ``shared.<name>.``, the run's root key as ``key``, and in
# state.json an "islands" entry: the islands' scalars, the shared caches' scalars and the
# run's own fields (``IslandsState.run_scalars``).
def islands_to_data(state: IslandsState) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and JSON scalars of a run of islands (its islands' data from
    ``state.data()``, wherever they live)."""
    datas, shared = state.data()
    arrays = {"key": np.asarray(jax.random.key_data(state.key))}
    shared_json: dict[str, Any] = {}
    for a, _ in datas:
        arrays.update(a)
    for name, cache_state in shared.items():
        shared_json[name] = {}
        for k, v in cache_state.items():
            if isinstance(v, np.ndarray):
                arrays[f"shared.{name}.{k}"] = v
            else:
                shared_json[name][k] = v
    islands = {"count": len(datas), "key": str(jax.random.key_impl(state.key)),
               "states": [s for _, s in datas], "shared": shared_json,
               "run": state.run_scalars()}
    return arrays, {"format": FORMAT, "generation": int(state.generation), "islands": islands}


def islands_from_data(arrays: dict[str, np.ndarray], scalars: dict[str, Any]) -> IslandsState:
    """The ``IslandsState`` that ``islands_to_data`` wrote, with every island's state."""
    if scalars.get("format") != FORMAT:
        raise ValueError(f"format is {scalars.get('format')!r}, expected {FORMAT!r}")
    info = scalars["islands"]
    shared = {}
    for name, data in info["shared"].items():
        prefix = f"shared.{name}."
        shared[name] = FECache.from_state(
            {**data, **{k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}})
    states = [state_from_data(arrays, s, prefix=f"island.{i}.", shared=shared)
              for i, s in enumerate(info["states"])]
    if len(states) != info["count"] or any(s.generation != scalars["generation"]
                                           for s in states):
        raise ValueError("the islands disagree with the checkpoint in number or generation")
    key = jax.random.wrap_key_data(np.asarray(arrays["key"], np.uint32), impl=info["key"])
    return IslandsState.from_islands(int(scalars["generation"]), key, info["run"], states,
                                     shared or None, lambda: states_data(states, shared or None))


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
    try:
        write_file(tmp, data)
        os.replace(tmp, path)
    except OSError:  # e.g. the disk is full: leave no half-written file behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def save_checkpoint(directory: Path, state: State | IslandsState, meta: dict[str, Any] | None = None) -> Path:
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
    try:
        arrays, scalars = (state_to_data(state) if isinstance(state, State)
                           else islands_to_data(state))
        scalars["meta"] = meta or {}
        with open(tmp / "state.npz", "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        write_file(tmp / "state.json",
                   (json.dumps(scalars, indent=1, sort_keys=True) + "\n").encode())
        sums = {name: _sha256(tmp / name) for name in ("state.npz", "state.json")}
        write_file(tmp / "checksums.json",
                   (json.dumps(sums, indent=1, sort_keys=True) + "\n").encode())
        fsync_dir(tmp)
    except OSError:  # e.g. the disk is full: the previous checkpoints stay as they were
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # e.g. a corrupt one being rewritten after a resume from an older one
        old = directory / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    fsync_dir(directory)
    return final


def load_checkpoint(path: Path) -> tuple[State | IslandsState, dict[str, Any]]:
    """The state in checkpoint ``path`` (an ``IslandsState`` for a run of islands) and its
    meta; ``CheckpointError`` if unreadable."""
    try:
        sums = json.loads((path / "checksums.json").read_text())
    except FileNotFoundError:
        raise CheckpointError("checksums.json is missing") from None
    except (OSError, ValueError, RecursionError) as e:
        raise CheckpointError(f"checksums.json is unreadable ({type(e).__name__})") from None
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
        state = (islands_from_data(arrays, scalars) if "islands" in scalars
                 else state_from_data(arrays, scalars))
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError,
            OverflowError, RecursionError, EOFError, zipfile.BadZipFile) as e:
        # Decoding errors of files that passed their checksums: written so by hand (or
        # by a bug), never by save_checkpoint. The message is cut: it may quote the data.
        raise CheckpointError(f"contents are damaged ({type(e).__name__}: "
                              f"{' '.join(str(e).split())[:200]})") from None
    return state, scalars.get("meta", {})


def prune_checkpoints(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (and stale temporaries); return them."""
    removed = []
    for _, path in list_checkpoints(directory)[:-keep]:
        # Renamed first, so a kill during the deletion leaves a temporary, never a
        # half-deleted checkpoint under its own name.
        doomed = directory / f".old-{path.name}-{os.getpid()}"
        os.replace(path, doomed)
        shutil.rmtree(doomed)
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


def states_data(states: list[State], shared: dict[str, FECache] | None) -> tuple[list, dict]:
    """The checkpoint data of islands in this process: each island's (arrays, scalars),
    and the shared caches' ``to_state``."""
    datas = [state_to_data(s, prefix=f"island.{i}.") for i, s in enumerate(states)]
    return datas, {name: c.to_state() for name, c in (shared or {}).items()}
