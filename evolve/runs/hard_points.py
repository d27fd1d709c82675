"""Hard points: inputs where a program of the run failed its certificate, kept in the run
directory so that the generations after join them to their training points.

With ``certify.teach`` on, ``evolve verify`` and the end-of-run certificate add the worst
input of every program whose certificate misses the target to ``hard_points.json``, to
apply from the generation after the run's newest checkpoint. A run (``evolve resume``)
then measures generation g on the problem's training points plus every hard point whose
``from_generation`` is at most g; where that set grows between two generations the
population's errors are measured again and the equivalence cache starts empty (its
errors were measured on other points). The file is data: a run that resumes from any
checkpoint meets the same points at the same generations, so resume stays exact.

``hard_points.json``::

    {"format": "evolve-hard-points-1",
     "points": [{"x": ["0x1.dd5ea6p-1"], "from_generation": 301, "why": "..."}, ...]}

``x`` holds one float (in ``float.hex`` form) per input of the problem; it is read with
``float.fromhex``, never evaluated.

One concept, the run's hard points: their file, and which apply at a generation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from evolve.errors import UserError
from evolve.runs.checkpoint import atomic_write, list_checkpoints

FILE = "hard_points.json"
FORMAT = "evolve-hard-points-1"


@dataclass(frozen=True)
class HardPoint:
    x: tuple[float, ...]  # one value an input
    from_generation: int  # the first generation whose training points include it
    why: str = ""  # what failed there, for people reading the file


def load(run_dir: Path, n_inputs: int | None = None) -> list[HardPoint]:
    """The hard points of ``run_dir`` (none without the file); ``UserError`` naming the
    fix when the file is not one this module wrote."""
    path = Path(run_dir) / FILE
    if not path.is_file():
        return []
    where = f"{str(path)!r}"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{where} is not readable JSON ({e}); restore it or delete it (the "
                        "run then trains on the problem's points only)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(
            data.get("points"), list):
        raise UserError(f"{where} is not a hard-points file of format {FORMAT!r}; restore it "
                        "or delete it")
    out = []
    for i, p in enumerate(data["points"]):
        try:
            x = tuple(float.fromhex(v) for v in p["x"])
            g = p["from_generation"]
            if not (isinstance(g, int) and g >= 1 and x and all(map(math.isfinite, x))):
                raise ValueError("from_generation must be an integer >= 1 and x finite")
            if n_inputs is not None and len(x) != n_inputs:
                raise ValueError(f"x has {len(x)} values for {n_inputs} inputs")
            out.append(HardPoint(x, g, str(p.get("why", ""))))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: point {i} is damaged ({e}); fix or delete it") from None
    return out


def active(points: list[HardPoint], generation: int) -> tuple[tuple[float, ...], ...]:
    """The inputs of ``points`` that generation ``generation`` trains on, in file order."""
    return tuple(p.x for p in points if p.from_generation <= generation)


def add(run_dir: Path, xs: list[tuple[float, ...]], why: str) -> list[HardPoint]:
    """Append the inputs ``xs`` (one tuple of values each) to the hard points of
    ``run_dir``, from the generation after its newest checkpoint; return their points (an
    input already there is not added twice: its point comes back as it was). The caller
    holds the run's lock."""
    points = load(run_dir)
    found = list_checkpoints(Path(run_dir) / "checkpoints")
    start = (found[-1][0] if found else 0) + 1
    known = {p.x: p for p in points}
    out = []
    for x in xs:
        point = HardPoint(tuple(float(v) for v in x), start, why)
        if point.x not in known:
            known[point.x] = point
            points.append(point)
        out.append(known[point.x])
    data = {"format": FORMAT, "points": [
        {"x": [v.hex() for v in p.x], "from_generation": p.from_generation, "why": p.why}
        for p in points]}
    atomic_write(Path(run_dir) / FILE, (json.dumps(data, indent=1) + "\n").encode())
    return out
