#!/usr/bin/env python3
"""Kill a run with SIGKILL again and again, resume it each time, damage checkpoints, and
check that nothing is lost: the end result must equal an uninterrupted run's.

    python scripts/fault_inject.py [--problem exp2] [--kills 50] [--corruptions 5]
                                   [--seed 0] [--generations 400] [--set NAME=VALUE ...]
                                   [--work DIR] [--out docs/fault_inject.json]

Every leg of the run is its own process (``python -m evolve run``, then ``resume``). Each
leg is killed at a moment drawn from a seeded numpy Generator (``--seed``), in one of
three ways:

  startup     at a random time after the process starts (loading the problem, compiling,
              reading and setting aside checkpoints, truncating metrics.csv);
  generation  once the leg has run j more generations (j drawn so that the kills spread
              over the run), at a random time within the next generation (variation,
              evaluation, appending metrics, writing front.csv, writing or pruning a
              checkpoint);
  checkpoint  targeted: when the k-th temporary checkpoint directory of the leg appears,
              after a random delay of 0 to 8 ms (a write takes about 10 ms here).

Before some legs (``--corruptions``) the newest checkpoint is damaged (truncated, a byte
flipped, a file deleted); the next leg must report it, set it aside and resume from the
one before. After every leg the generation it resumed from is checked against the newest
checkpoint that was complete and undamaged when it started: anything older is data lost.
At the end the run goes to completion and is compared with an uninterrupted run of the
same configuration: front.csv byte for byte, metrics.csv apart from wall-clock columns
(the exact-resume contract). One JSON object is printed (and written to ``--out``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ["search.population=32", "search.children=32", "search.n_train=1024",
            "search.fit_points=64", "checkpoint_every=2", "keep_checkpoints=3"]
MODES = ("startup", "generation", "checkpoint")
MODE_P = (0.15, 0.55, 0.30)
DAMAGES = ("truncate state.npz", "flip a byte of state.npz", "flip a byte of state.json",
           "truncate checksums.json", "delete state.json")
_CKPT = re.compile(r"^gen-(\d{6,})$")
LEG_TIMEOUT = 300.0


def evolve_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "evolve", *args]


def checkpoints(run: Path) -> list[int]:
    """Generations of the checkpoints under their own names (complete by construction)."""
    d = run / "checkpoints"
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir() if (m := _CKPT.match(p.name)))


def temporaries(run: Path) -> list[str]:
    d = run / "checkpoints"
    try:
        return [e.name for e in os.scandir(d) if e.name.startswith((".tmp-", ".old-"))]
    except FileNotFoundError:
        return []


def last_generation(run: Path) -> int:
    """The generation of metrics.csv's last whole row (-1 if none)."""
    try:
        with open(run / "metrics.csv", "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return -1
    lines = tail.split("\n")[:-1]  # what follows the last newline is torn
    for line in reversed(lines):
        head = line.split(",", 1)[0]
        if head.isdigit():
            return int(head)
    return -1


def log_of(run: Path) -> str:
    try:
        return (run / "events.log").read_text(errors="replace")
    except FileNotFoundError:
        return ""


def damage(ckpt: Path, kind: str, rng: np.random.Generator) -> None:
    name = kind.rsplit(" ", 1)[1]
    path = ckpt / name
    if kind.startswith("truncate"):
        data = path.read_bytes()
        path.write_bytes(data[: int(rng.integers(0, max(1, len(data))))])
    elif kind.startswith("flip"):
        data = bytearray(path.read_bytes())
        i = int(rng.integers(0, len(data)))
        data[i] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(data))
    else:
        path.unlink()


def metrics_rows(run: Path) -> list[list[str]]:
    from evolve.runs.files import is_wall_clock

    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, c in enumerate(rows[0]) if not is_wall_clock(c)]
    return [[r[i] for i in keep] for r in rows]


class Leg:
    """One process of the run: started, watched, killed (or left to finish)."""

    def __init__(self, argv: list[str], logs: Path, index: int):
        self.out = open(logs / f"leg-{index:03d}.out", "wb")
        self.err_path = logs / f"leg-{index:03d}.err"
        self.err = open(self.err_path, "wb")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=self.out, stderr=self.err)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def kill(self) -> bool:
        """SIGKILL it; whether it was still running."""
        was = self.alive()
        if was:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.wait()
        return was

    def wait(self) -> int:
        rc = self.proc.wait()
        self.out.close()
        self.err.close()
        return rc

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")


def wait_until(cond, leg: Leg, poll: float) -> bool:
    """Poll ``cond`` until true (True) or the leg ends or times out (False)."""
    while not cond():
        if not leg.alive() or leg.elapsed() > LEG_TIMEOUT:
            return False
        time.sleep(poll)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problem", default="exp2")
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--corruptions", type=int, default=5,
                    help="legs before which the newest checkpoint is damaged")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments and the run")
    ap.add_argument("--generations", type=int, default=400)
    ap.add_argument("--set", action="append", default=[], dest="sets", metavar="NAME=VALUE",
                    help="config overrides, after the small defaults: " + " ".join(SETTINGS))
    ap.add_argument("--work", type=Path, help="where the runs go (default: a temporary "
                                              "directory, removed at the end)")
    ap.add_argument("--out", type=Path, help="also write the JSON summary here")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="fault_inject-"))
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    ref, run = work / "reference", work / "killed"
    for d in (ref, run):
        if d.exists():
            shutil.rmtree(d)
    sets = [a for s in [*SETTINGS, *args.sets] for a in ("--set", s)]
    run_args = [args.problem, "--seed", str(args.seed), "--generations", str(args.generations),
                "--quiet", *sets]
    t_start = time.monotonic()

    # The uninterrupted run, also the measure of a generation's time.
    t0 = time.monotonic()
    leg = Leg(evolve_cmd("run", *run_args, "--run-dir", str(ref)), logs, 0)
    if leg.wait() != 0:
        print(leg.stderr(), file=sys.stderr)
        return 1
    reference_seconds = time.monotonic() - t0
    with open(ref / "metrics.csv", newline="") as f:
        walls = [float(r["wall_seconds"]) for r in csv.DictReader(f)]
    gen_time = max(float(np.median(walls)), 0.01) * 1.3  # with checkpoints and the log
    startup = max(reference_seconds - sum(walls), 1.0)

    stats = {m: 0 for m in MODES}
    kills = resumes = data_lost = failed = 0
    in_checkpoint_write = in_prune = torn_metrics = in_front_write = 0
    damaged: dict[int, int] = {}  # generation -> length of events.log when damaged
    corruptions: list[dict] = []
    unexpected: set[int] = set()
    corrupt_at = set(rng.choice(np.arange(1, max(args.kills, 2)),
                                min(args.corruptions, max(args.kills - 1, 0)),
                                replace=False).tolist())
    problems: list[str] = []
    finished = False
    index = 0
    while failed <= 3:
        index += 1
        present = checkpoints(run)
        if index - 1 in corrupt_at:
            usable = [g for g in present if g not in damaged]
            if len(usable) >= 2:  # damage the newest; the one before must be used
                kind = DAMAGES[len(corruptions) % len(DAMAGES)]
                damage(run / "checkpoints" / f"gen-{usable[-1]:06d}", kind, rng)
                damaged[usable[-1]] = len(log_of(run))
                corruptions.append({"generation": usable[-1], "damage": kind})
        expected = max((g for g in present if g not in damaged), default=None)
        fresh = not (run / "config.yaml").is_file()  # killed before the run existed
        argv = (evolve_cmd("run", *run_args, "--run-dir", str(run)) if fresh
                else evolve_cmd("resume", str(run), "--quiet"))
        leg = Leg(argv, logs, index)
        pid, start_gen = leg.proc.pid, expected or 0
        resumes += not fresh

        def generating(pid=pid, start_gen=start_gen):
            return f"pid {pid})" in log_of(run) and last_generation(run) > start_gen

        if kills < args.kills:
            mode = MODES[int(rng.choice(len(MODES), p=MODE_P))]
            if mode == "startup":
                time.sleep(float(rng.uniform(0, startup)))
            elif mode == "generation":  # j generations in, at a random time in the next
                share = (args.generations - start_gen) / max(args.kills - kills, 1)
                j = int(rng.integers(0, max(1, int(0.8 * share)) + 1))
                delay = float(rng.uniform(0, gen_time))

                def reached(pid=pid, at=start_gen + 1 + j):
                    return f"pid {pid})" in log_of(run) and last_generation(run) >= at

                if wait_until(reached, leg, 0.005):
                    time.sleep(delay)
            else:
                k, delay = int(rng.integers(1, 4)), float(rng.uniform(0, 0.008))
                if wait_until(generating, leg, 0.01):
                    seen: set[str] = set()

                    def kth_write(seen=seen, k=k):
                        seen.update(n for n in temporaries(run) if n.startswith(".tmp-"))
                        return len(seen) >= k

                    if wait_until(kth_write, leg, 0.0005):
                        time.sleep(delay)
            if leg.elapsed() > LEG_TIMEOUT:
                problems.append(f"leg {index} hung (over {LEG_TIMEOUT:.0f} s)")
                failed += 1
            if leg.kill():
                kills += 1
                stats[mode] += 1
                left = temporaries(run)
                in_checkpoint_write += any(n.startswith(".tmp-") for n in left)
                in_prune += any(n.startswith(".old-") for n in left)
                in_front_write += run.is_dir() and any(
                    p.name.startswith(".front.csv.tmp-") for p in run.iterdir())
                metrics = run / "metrics.csv"
                torn_metrics += metrics.exists() and not metrics.read_bytes().endswith(b"\n")
            rc = leg.proc.returncode
        else:
            rc = leg.wait()
        if rc not in (0, -signal.SIGKILL):
            failed += 1
            problems.append(f"leg {index} exited with {rc}: {leg.stderr()[-500:]}")
        # The generation the leg resumed from (if it got that far): the newest checkpoint
        # that was complete and undamaged when it started, or something was lost.
        log = log_of(run)
        m = re.search(rf"resumed from gen-(\d+) .*pid {pid}\)", log)
        if m or re.search(rf"resumed with no usable checkpoint.*pid {pid}\)", log):
            got = int(m.group(1)) if m else None
            if got != expected:
                data_lost += 1
                problems.append(f"leg {index} resumed from {got}, expected {expected}")
        for g, since in list(damaged.items()):
            if f"gen-{g:06d} is corrupt" in log[since:]:
                next(c for c in corruptions if c["generation"] == g)["detected"] = True
                del damaged[g]
        ours = {c["generation"] for c in corruptions}
        for found in re.findall(r"checkpoint \S*gen-(\d+) is corrupt", log):
            if int(found) not in ours and int(found) not in unexpected:
                unexpected.add(int(found))
                problems.append(f"checkpoint gen-{found} found corrupt, not damaged by us")
        if rc == 0:
            finished = True
            break

    front_identical = finished and (ref / "front.csv").read_bytes() == \
        (run / "front.csv").read_bytes()
    metrics_identical = finished and metrics_rows(ref) == metrics_rows(run)
    summary = {
        "problem": args.problem, "seed": args.seed, "generations": args.generations,
        "settings": [*SETTINGS, *args.sets],
        "kills": kills, "kills_by_mode": stats,
        "kills_inside_a_checkpoint_write": in_checkpoint_write,
        "kills_inside_a_prune": in_prune,
        "kills_inside_a_front_write": in_front_write,
        "kills_leaving_a_torn_metrics_row": torn_metrics,
        "resumes": resumes, "legs_failed": failed,
        "corruptions": len(corruptions),
        "corruptions_detected": sum(bool(c.get("detected")) for c in corruptions),
        "unexpected_corrupt_checkpoints": len(unexpected),
        "data_lost": data_lost, "finished": finished,
        "front_identical": front_identical, "metrics_identical": metrics_identical,
        "identical": bool(front_identical and metrics_identical),
        "reference_seconds": round(reference_seconds, 1),
        "seconds": round(time.monotonic() - t_start, 1),
        "problems": problems[:20],
    }
    text = json.dumps(summary, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    ok = summary["identical"] and not data_lost and not failed and not unexpected and \
        summary["corruptions_detected"] == summary["corruptions"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
