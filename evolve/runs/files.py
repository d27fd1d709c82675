"""The files of a run directory: front.csv, metrics.csv, events.log and the lock.

  front.csv     the Pareto front of (error, cost) of the population's programs with a
                finite error (NaN and Inf never appear on it): columns error (the max
                error on the run's sampled points: training points, and check points for
                programs under the target there), cost, length, program (text form),
                meets_target (``meets_target``: "certified", "sampled only", "no", or empty
                without a target) and, once a program is certified (``evolve verify`` or the
                end of a run), the certified_* columns; sorted by cost, then error, then
                text; floats written by ``repr``, so the same state gives the same bytes.
                Certificates are kept when the front is rewritten, for the programs still
                on it
  metrics.csv   a header from the first row's keys, then one row per generation (the row
                ``Engine.step`` returns; a run of islands: a row per island, then one
                for the run, told apart by the ``island`` column); on resume it is cut
                back to the checkpoint
  events.log    human-readable lines, each with a UTC timestamp
  lock          an exclusive ``fcntl.flock`` held by the process writing the run
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import fcntl
import io
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evolve.errors import UserError
from evolve.program import pruned
from evolve.runs.checkpoint import atomic_write
from evolve.search.selection import front_indices
from evolve.search.state import State
from evolve.text import format_program

FRONT_COLUMNS = ("error", "cost", "length", "program", "meets_target")
# Written by certification (``evolve.results.certify``): the max ULP error over every
# float32 of the domain, the (first) input where it is reached, the inputs over 1 ULP.
CERTIFIED_COLUMNS = ("certified_max_ulp", "certified_worst_x", "certified_over_1ulp")


_CAUSES = {errno.ENOSPC: ("the disk is full", "free some space"),
           errno.EDQUOT: ("the disk quota is exceeded", "free some space"),
           errno.EROFS: ("the file system is read-only", "make it writable"),
           errno.EACCES: ("permission denied", "make it writable"),
           errno.EPERM: ("operation not permitted", "make it writable")}


def disk_error(run_dir: Path, e: OSError) -> UserError:
    """The one-line ``UserError`` for a failed read or write in ``run_dir``: the cause, the
    file, and how to go on (a run with a config.yaml resumes from its last checkpoint)."""
    what, fix = _CAUSES.get(e.errno, (e.strerror or str(e), "check the disk"))
    where = f" ({e.filename})" if e.filename else ""
    if (Path(run_dir) / "config.yaml").is_file():
        then = (f"then continue with `evolve resume {shlex.quote(str(run_dir))}` (it goes on "
                "from the last checkpoint)")
    else:
        then = "then start the run again"
    return UserError(f"cannot write run directory {str(run_dir)!r}: {what}{where}; {fix}, "
                     f"{then}")


@contextlib.contextmanager
def writing(run_dir: Path) -> Iterator[None]:
    """Turn an ``OSError`` (disk full, read-only, a device gone) into ``disk_error``."""
    try:
        yield
    except OSError as e:
        if e.errno is None:
            raise
        raise disk_error(run_dir, e) from None


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
    """The Pareto front of (error, cost) of ``state``: sorted by cost, error, program.

    Programs whose error is not finite (NaN, Inf: a division by zero, an overflow) are
    never on it, however cheap: they are the worst, not a trade-off. Programs are shown
    without their dead instructions (``length`` counts what is shown).
    """
    finite = np.flatnonzero(np.isfinite(np.asarray(state.error, np.float64)))
    if not len(finite):
        return []
    idx = finite[front_indices(np.stack([state.error[finite], state.cost[finite]], axis=1))]
    shown = {i: pruned(state.programs[i]) for i in idx}  # checkpoints keep the dead code
    rows = [(float(state.error[i]), float(state.cost[i]), len(shown[i]),
             format_program(shown[i]).rstrip("\n")) for i in idx]
    return sorted(rows, key=lambda r: (r[1], r[0], r[3]))


def meets_target(error: float, certified: str | float | None, target: float | None) -> str:
    """front.csv's ``meets_target`` label of a program: "certified" (its certified error,
    over every float32 of the domain, is below ``target``), "sampled only" (no certificate,
    but its error on the sampled points is below it), "no", or "" without a target."""
    if target is None:
        return ""
    if certified not in (None, ""):
        return "certified" if float(certified) < target else "no"
    return "sampled only" if error < target else "no"


def front_csv(state: State, target: float | None = None,
              certificates: dict[str, dict[str, str]] | None = None) -> str:
    """front.csv's text for ``state`` (byte-deterministic): labelled against ``target``,
    with the ``certificates`` (program text: certified_* cells) of its programs."""
    certificates = certificates or {}
    rows = front_rows(state)
    certified = any(r[3] in certificates for r in rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(FRONT_COLUMNS + (CERTIFIED_COLUMNS if certified else ()))
    for row in rows:
        cells = certificates.get(row[3], {})
        label = meets_target(row[0], cells.get("certified_max_ulp"), target)
        extra = [cells.get(c, "") for c in CERTIFIED_COLUMNS] if certified else []
        writer.writerow([_cell(v) for v in row] + [label] + extra)
    return buf.getvalue()


def read_certificates(path: Path) -> dict[str, dict[str, str]]:
    """The certified_* cells of the certified rows of the front.csv at ``path``, by
    program text; {} if there is none (or the file is not a readable CSV file)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    return {r["program"]: {c: r.get(c) or "" for c in CERTIFIED_COLUMNS} for r in rows
            if isinstance(r.get("program"), str) and r.get("certified_max_ulp")}


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
        """Keep the rows up to ``generation``; return (rows dropped, generations missing).

        Torn, garbled or repeated rows are dropped; a file without a header naming the
        generation column is set aside as ``metrics.csv.corrupt``.
        """
        self._columns = None
        every = list(range(1, generation + 1))
        if not self.path.exists():
            return 0, every
        lines = [_decoded(b) for b in self.path.read_bytes().splitlines(keepends=True)]
        header = lines[0] if lines else None
        columns = header.rstrip("\n").split(",") if header and header.endswith("\n") else []
        if "generation" not in columns:
            if header and header.endswith("\n"):  # a whole line, not ours: keep it to look at
                os.replace(self.path, self.path.with_name(self.path.name + ".corrupt"))
            else:  # empty, or a header torn by a kill
                self.path.unlink()
            return 0, every
        at = columns.index("generation")
        # A run of islands has a row per island (and one for the run) per generation.
        island = columns.index("island") if "island" in columns else None
        kept, seen, rows = [header], set(), set()
        for line in lines[1:]:
            fields = line.rstrip("\n").split(",") if line and line.endswith("\n") else []
            g = fields[at] if len(fields) == len(columns) else ""
            row = (g, None if island is None or not g else fields[island])
            if g.isascii() and g.isdigit() and int(g) <= generation and row not in rows:
                kept.append(line)
                seen.add(int(g))
                rows.add(row)
        missing = sorted(set(every) - seen)
        if len(kept) != len(lines):
            atomic_write(self.path, "".join(kept).encode())
        return len(lines) - len(kept), missing


def _decoded(line: bytes) -> str | None:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Lock:
    """An exclusive ``flock`` on ``run_dir/lock``, so one process writes a run at a time."""

    def __init__(self, run_dir: Path):
        try:
            self.file = open(run_dir / "lock", "a+")
        except OSError as e:
            raise disk_error(run_dir, e) from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            words = self.file.read(64).split()  # shown to be pasted: digits only
            pid = words[0] if words and words[0].isascii() and words[0].isdigit() else "?"
            self.file.close()
            raise UserError(f"run directory {str(run_dir)!r} is in use by another evolve "
                            f"process (pid {pid}); wait for it to end, or stop it with "
                            f"kill -INT {pid} and resume the run") from None
        try:
            self.file.seek(0)
            self.file.truncate()
            self.file.write(f"{os.getpid()}\n")
            self.file.flush()
        except OSError as e:  # the disk is full: give the lock back, say so
            self.release()
            raise disk_error(run_dir, e) from None

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

    def write_front(self, state: State, target: float | None = None) -> None:
        """Rewrite front.csv from ``state`` (atomically), labelled against ``target``,
        keeping the certificates of the programs still on the front."""
        path = self.path / "front.csv"
        tmp = self.path / f".front.csv.tmp-{os.getpid()}"
        try:
            tmp.write_text(front_csv(state, target, read_certificates(path)))
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
