"""Where the training points lie, and what the certificate then says: per binade or not.

For each problem of ``--problems`` and each seed of ``--seeds``, runs ``evolve run PROBLEM
--generations G --seed S`` twice side by side, with ``sampling.per_binade`` = 0 (points
uniform in value only: the rule before per binade sampling) and = ``--share`` (that share
of the points uniform in the float32 bit pattern), then certifies the run's first program
in ``evolve verify --limit 1`` order (the cheapest meeting the target on sampled points,
else the most accurate) over every float32 of the domain. The end-of-run certificate is
off (``certify.seconds=0``), so both arms spend the same time.

One JSON object a line per run: problem, seed, share, the program's cost and sampled
error, its certified max ULP error and worst input, whether it is certified under the
target, and the run's and the certificate's seconds; then one summary line per problem
and share (medians, and how many seeds were certified under the target). Timings are of
this machine only.

    python scripts/bench_sampling.py --problems exp2,tanh --seeds 0,1,2 --generations 300
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_search import cpu_model  # noqa: E402  (one description of the machine)

EVOLVE = [sys.executable, "-m", "evolve"]


def one(problem: str, seed: int, share: float, generations: int, work: Path) -> dict:
    """Run, certify the first row of ``evolve verify --limit 1``, and read front.csv."""
    run_dir = work / f"{problem}-{seed}-{share}"
    t0 = time.perf_counter()
    subprocess.run([*EVOLVE, "run", problem, "--seed", str(seed), "--generations",
                    str(generations), "--run-dir", str(run_dir), "--quiet",
                    "--set", f"sampling.per_binade={share}", "--set", "certify.seconds=0"],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    t1 = time.perf_counter()
    subprocess.run([*EVOLVE, "verify", str(run_dir), "--limit", "1", "--quiet"], check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL)
    t2 = time.perf_counter()
    with open(run_dir / "front.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("certified_max_ulp")]
    row = rows[0]
    certified = float(row["certified_max_ulp"])
    return {"bench": "sampling", "problem": problem, "seed": seed, "per_binade": share,
            "generations": generations, "cost": float(row["cost"]),
            "sampled_error": float(row["error"]), "certified_max_ulp": certified,
            "certified_worst_x": float(row["certified_worst_x"]),
            "certified_over_1ulp": int(row["certified_over_1ulp"]),
            "certified_under_1ulp": certified < 1.0, "run_seconds": round(t1 - t0, 1),
            "verify_seconds": round(t2 - t1, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default="exp2,tanh")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--generations", type=int, default=300)
    ap.add_argument("--share", type=float, default=0.5)
    ap.add_argument("--out", help="also append the lines to this file")
    args = ap.parse_args(argv)
    out = open(args.out, "a") if args.out else None
    head = {"bench": "sampling_host", "cpu": cpu_model(), "cores": os.cpu_count(),
            "command": " ".join(["python", "scripts/bench_sampling.py", *(argv or sys.argv[1:])])}
    records = [head]

    def emit(record):
        line = json.dumps(record)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    emit(head)
    with tempfile.TemporaryDirectory() as tmp:
        for problem in args.problems.split(","):
            results = {0.0: [], args.share: []}
            for seed in map(int, args.seeds.split(",")):
                for share in results:  # side by side: both rules for each seed in turn
                    r = one(problem, seed, share, args.generations, Path(tmp))
                    results[share].append(r)
                    records.append(r)
                    emit(r)
            base = statistics.median(r["certified_max_ulp"] for r in results[0.0])
            for share, rs in results.items():
                med = statistics.median(r["certified_max_ulp"] for r in rs)
                emit({"bench": "sampling_summary", "problem": problem, "per_binade": share,
                      "seeds": len(rs), "median_certified_max_ulp": med,
                      "median_ratio_to_per_binade_0": med / base if base else None,
                      "certified_under_1ulp": sum(r["certified_under_1ulp"] for r in rs),
                      "median_cost": statistics.median(r["cost"] for r in rs)})
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
