"""The files of a run directory: front.csv, metrics.csv, events.log and the lock.

  front.csv     the Pareto front of (error, cost) of the population: columns error, cost,
                length, program (text form); sorted by cost, then error, then text; floats
                written by ``repr``, so the same state gives the same bytes
  metrics.csv   a header from the first row's keys, then one row per generation (the row
                ``Engine.step`` returns); on resume it is cut back to the checkpoint
  events.log    human-readable lines, each with a UTC timestamp
  lock          an exclusive ``fcntl.flock`` held by the process writing the run
"""

from __future__ import annotations

import csv
import datetime as _dt
import fcntl
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evolve.checkpoint import atomic_write
from evolve.engine import State
from evolve.errors import UserError
from evolve.selection import front_indices
from evolve.text import format_program

FRONT_COLUMNS = ("error", "cost", "length", "program")


def is_wall_clock(column: str) -> bool:
    """Whether a metrics column measures time (named ``*_seconds``): the only columns in
    which two runs of one configuration, stopped and resumed or not, may differ."""
    return column.endswith("_seconds")


def _cell(value) -> str:
    """A CSV cell written the same way every time: floats by repr (round-trips exactly)."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def front_rows(state: State) -> list[tuple[float, float, int, str]]:
    """The Pareto front of (error, cost) of ``state``: sorted by cost, error, program."""
    if not state.programs:
        return []
    idx = front_indices(np.stack([state.error, state.cost], axis=1))
    rows = [(float(state.error[i]), float(state.cost[i]), len(state.programs[i]),
             format_program(state.programs[i]).rstrip("\n")) for i in idx]
    return sorted(rows, key=lambda r: (r[1], r[0], r[3]))


def front_csv(state: State) -> str:
    """front.csv's text for ``state`` (byte-deterministic)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(FRONT_COLUMNS)
    writer.writerows([_cell(v) for v in row] for row in front_rows(state))
    return buf.getvalue()


class Metrics:
    """metrics.csv: a header from the first row's keys, then one line per generation."""

    def __init__(self, path: Path):
        self.path = path
        self._columns: list[str] | None = None

    def columns(self) -> list[str] | None:
        if self._columns is None and self.path.exists():
            with open(self.path, newline="") as f:
                self._columns = next(csv.reader(f), None)
        return self._columns

    def append(self, row: dict) -> None:
        columns = self.columns()
        lines = []
        if columns is None:
            columns = list(row)
            lines.append(",".join(columns))
        elif columns != list(row):
            raise UserError(f"{self.path} has columns {columns}, but this version of evolve "
                            f"writes {list(row)}; finish the run with the version that began it")
        lines.append(",".join(_cell(row[c]) for c in columns))
        with open(self.path, "a") as f:
            f.write("\n".join(lines) + "\n")
        self._columns = columns

    def sync(self) -> None:
        if self.path.exists():
            with open(self.path, "rb+") as f:
                os.fsync(f.fileno())

    def truncate(self, generation: int) -> tuple[int, list[int]]:
        """Keep the rows up to ``generation``; return (rows dropped, generations missing)."""
        self._columns = None
        if not self.path.exists():
            return 0, list(range(1, generation + 1))
        lines = self.path.read_text().splitlines(keepends=True)
        if not lines or not lines[0].endswith("\n"):
            self.path.unlink()
            return 0, list(range(1, generation + 1))
        at = lines[0].rstrip("\n").split(",").index("generation")
        kept, seen = [lines[0]], []
        for line in lines[1:]:
            fields = line.rstrip("\n").split(",")
            if line.endswith("\n") and fields[at].isdigit() and int(fields[at]) <= generation:
                kept.append(line)
                seen.append(int(fields[at]))
        missing = sorted(set(range(1, generation + 1)) - set(seen))
        if len(kept) != len(lines):
            atomic_write(self.path, "".join(kept).encode())
        return len(lines) - len(kept), missing


class Lock:
    """An exclusive ``flock`` on ``run_dir/lock``, so one process writes a run at a time."""

    def __init__(self, run_dir: Path):
        self.file = open(run_dir / "lock", "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            pid = self.file.read().strip() or "?"
            self.file.close()
            raise UserError(f"run directory {str(run_dir)!r} is in use by another evolve "
                            f"process (pid {pid}); wait for it to end, or stop it with "
                            f"kill -INT {pid} and resume the run") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{os.getpid()}\n")
        self.file.flush()

    def release(self) -> None:
        if not self.file.closed:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()


@dataclass
class RunDir:
    """The paths of a run directory, its metrics and its event log."""

    path: Path

    def __post_init__(self):
        self.metrics = Metrics(self.path / "metrics.csv")

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def log(self, message: str) -> None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(self.path / "events.log", "a") as f:
            f.write(f"{stamp}  {message}\n")

    def write_front(self, state: State) -> None:
        tmp = self.path / f".front.csv.tmp-{os.getpid()}"
        tmp.write_text(front_csv(state))
        os.replace(tmp, self.path / "front.csv")
