"""Discovery campaign: search each function problem for a wall-time budget, certify the
front over every float32 of the domain, export C, time it, and write one record a problem.

For each problem (default: the 10 function problems, exp2 exp log2 erf tanh and their
``_nofma`` twins):

1. search: ``evolve run PROBLEM`` as a subprocess (its own run directory under
   ``--runs-dir``) with ``search.starts`` and ``search.population`` as given and the
   end-of-run certificate off; at ``--seconds`` it gets SIGTERM, checkpoints and stops
   cleanly, so the run can be continued later with ``evolve resume RUN_DIR --generations N``
   (the record carries that command);
2. certify (``evolve.results.certify.certify``, every float32 of the domain): the front's
   rows meeting the target (sampled), cheapest first, until one is certified under the
   target or ``--certify`` rows were tried; if none is, the most accurate row as well. The
   certificates go into the run's front.csv (``certified_max_ulp`` ...), as ``evolve verify``
   writes them;
3. choose: the cheapest row certified under the target, else the certified row with the
   lowest certified error; where no row of the front is certified under the target, the
   programs generation 0 began with (the problem's own starts, then Sollya's programs
   recorded under the target) are certified too, in that order, and chosen the same way
   (``chosen_from``: "front" or "start"): a search can lose its best start to a cheaper
   variant whose sampled error is under the target and whose certificate is not;
4. time it as C (``scripts/bench_numerics.py``'s harness: exported C, checked bit for bit
   against ``run_numpy``, timed round robin against Sollya's cheapest < 1 ULP polynomial,
   or its most accurate where none is under 1 ULP, and libm), with ``--cflags``;
5. write one JSON object (``discovery_record``) to ``--out`` and stdout.

With ``--rounds R`` steps 1-2 run R times on one run, ``--seconds / R`` of search each (the
first round ``evolve run``, the others ``evolve resume``), and step 3 chooses among every
row certified in any round. With ``--teach`` each failed certificate's worst input joins
the run's hard points (``certify.teach``): the rounds after train on it, so that programs
whose sampled error is under the target while their certificate is not lose their place.

    python scripts/discover.py [--problems exp2,log2] [--seconds 120] [--starts both]
        [--population 256] [--seed 0] [--certify 3] [--rounds 1] [--teach]
        [--out docs/results/discovery.jsonl]
    python scripts/discover.py --best docs/results/discovery*.jsonl   # best row a problem

Records: problem, program (text), ops (weighted op count, the problem's cost), op_counts,
certified_max_ulp, under_target, sollya_name, sollya_ops, sollya_max_ulp (Sollya's cheapest
< 1 ULP baseline; null where there is none), verdict, c_speed_vs_sollya, c_speed_vs_libm
(CPU-time speed ratios, above 1 is faster), seconds (search wall time), certify_seconds,
generations, device, population, starts, seed, cflags, rounds (per round: generation reached,
certified errors, hard points), teach, chosen_round, chosen_from, run_dir, command,
continue_command,
date.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_numerics  # noqa: E402

from evolve.catalog import load_problem  # noqa: E402
from evolve.errors import UserError  # noqa: E402
from evolve.problem import Problem  # noqa: E402
from evolve.results.certify import (  # noqa: E402
    Certificate,
    certificate_cells,
    certify,
    read_front,
    record_certificate,
    teach_points,
    write_front,
)
from evolve.runs import hard_points  # noqa: E402
from evolve.runs.files import Lock  # noqa: E402
from evolve.search.engine import STARTS, start_programs  # noqa: E402
from evolve.text import format_program, parse_program  # noqa: E402

FUNCTION_PROBLEMS = bench_numerics.PROBLEMS
CFLAGS = "-O2 -ffp-contract=off -march=native"  # FMA as one instruction where the CPU has it


# -- search ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Search:
    """How a problem's search went."""

    run_dir: Path
    seconds: float  # wall time of the `evolve run` subprocess
    generations: int  # generations reached (the last checkpoint's)
    command: list[str]


def run_command(problem: str, run_dir: Path, seed: int, population: int, starts: str,
                generations: int, settings: tuple[str, ...] = ()) -> list[str]:
    """The `evolve run` command line of one search (end-of-run certificate off: this
    script certifies); ``settings``: more ``KEY=VALUE`` for its ``--set``."""
    extra = [a for kv in settings for a in ("--set", kv)]
    return [sys.executable, "-m", "evolve", "run", problem, "--seed", str(seed),
            "--generations", str(generations), "--run-dir", str(run_dir), "--quiet",
            "--set", f"search.population={population}", "--set", f"search.starts={starts}",
            *extra, "--set", "certify.count=0"]


def search(problem: str, run_dir: Path, seconds: float, seed: int, population: int,
           starts: str, generations: int = 10**9, settings: tuple[str, ...] = ()) -> Search:
    """Run `evolve run` until ``generations`` or ``seconds`` of wall time, whichever comes
    first; at the deadline it gets SIGTERM and checkpoints before it exits. ``settings``:
    more configuration (``KEY=VALUE``, as `evolve run --set`), kept by the run's resumes."""
    return _until(run_command(problem, run_dir, seed, population, starts, generations,
                              settings), run_dir, seconds)


def resume(run_dir: Path, seconds: float, generations: int = 10**9) -> Search:
    """Continue the run with `evolve resume` for ``seconds`` of wall time, as ``search``
    (the run's hard points, if any, join its training points: ``certify.teach``)."""
    cmd = [sys.executable, "-m", "evolve", "resume", str(run_dir), "--generations",
           str(generations), "--quiet"]
    return _until(cmd, run_dir, seconds)


def _until(cmd: list[str], run_dir: Path, seconds: float) -> Search:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=600)  # the current generation, a checkpoint
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed (exit {proc.returncode}):\n{err[-2000:]}")
    return Search(run_dir, wall, last_generation(run_dir), cmd)


def last_generation(run_dir: Path) -> int:
    """The generation of the run's newest checkpoint."""
    gens = [int(p.name.removeprefix("gen-")) for p in (run_dir / "checkpoints").glob("gen-*")
            if p.name.removeprefix("gen-").isdigit()]
    if not gens:
        raise UserError(f"{str(run_dir)!r} has no checkpoint: the search did not get past "
                        "generation 0; give it more --seconds")
    return max(gens)


# -- certify and choose ------------------------------------------------------------------------
def certification_plan(rows: list[dict[str, str]], problem: Problem, limit: int) -> list[int]:
    """Rows to certify, in order: those meeting the target on the run's points, cheapest
    first (at most ``limit``), then the most accurate row (the fallback when none of them
    is certified under the target). Take them in order and stop at the first certified
    under the target (``certify_front``)."""
    meets = sorted((i for i, r in enumerate(rows) if problem.meets_target(float(r["error"]))),
                   key=lambda i: (float(rows[i]["cost"]), float(rows[i]["error"])))[:limit]
    best = min(range(len(rows)), key=lambda i: (float(rows[i]["error"]),
                                                float(rows[i]["cost"])))
    return meets + ([best] if best not in meets else [])


def certify_front(run_dir: Path, problem: Problem, limit: int,
                  certifier=certify, teach: bool = False) -> dict[int, Certificate]:
    """Certify the rows of ``certification_plan`` until one is certified under the target;
    write each certificate into the run's front.csv (under the run's lock) as it comes.
    ``certifier(program, problem)`` is ``certify`` (every float32 of the domain).
    ``teach``: the worst input of each certificate over the target joins the run's hard
    points (``certify.teach``), for the generations after its newest checkpoint."""
    header, rows = read_front(run_dir)
    plan = certification_plan(rows, problem, limit)
    done: dict[int, Certificate] = {}
    lock = Lock(run_dir)
    try:
        for i in plan:
            program = parse_program(rows[i]["program"], n_registers=problem.n_registers)
            cert = certifier(program, problem)
            done[i] = cert
            record_certificate(rows[i], cert, problem)
            write_front(run_dir, header, rows)
            if problem.meets_target(cert.max_ulp):
                break
            if teach:
                teach_points(run_dir, rows[i], cert, problem)
    finally:
        lock.release()
    return done


def choose_row(rows: list[dict[str, str]], problem: Problem) -> int | None:
    """The cheapest row certified under the target, else the certified row with the lowest
    certified error; None when no row is certified."""
    certified = [i for i, r in enumerate(rows) if r.get("certified_max_ulp")]
    if not certified:
        return None
    ulp = {i: float(rows[i]["certified_max_ulp"]) for i in certified}
    under = [i for i in certified if problem.meets_target(ulp[i])]
    if under:
        return min(under, key=lambda i: (float(rows[i]["cost"]), ulp[i]))
    return min(certified, key=lambda i: (ulp[i], float(rows[i]["cost"])))


# -- Sollya and the record ---------------------------------------------------------------------
def sollya_reference(problem: Problem) -> dict:
    """Sollya's cheapest baseline under the target: name, ops (its cost), max_ulp; all None
    when no baseline is under it."""
    under = [b for b in problem.baselines if b.get("program") and problem.meets_target(b["error"])]
    if not under:
        return {"sollya_name": None, "sollya_ops": None, "sollya_max_ulp": None}
    b = min(under, key=lambda b: (b["cost"], b["error"]))
    return {"sollya_name": b["name"], "sollya_ops": float(b["cost"]),
            "sollya_max_ulp": float(b["error"])}


def verdict(ops: float, certified: float, under: bool, sollya: dict,
            speed_vs_sollya: float | None) -> str:
    """How a row compares with Sollya's cheapest < 1 ULP polynomial (the issue's bar):
    "beats: fewer ops", "beats: under 1 ULP where Sollya has none", "beats: >= 1.2x speed at
    equal ops", "ties", or "short: ..."."""
    if not under:
        return f"short: certified {certified:.5g} ULP, not under the target"
    if sollya["sollya_ops"] is None:
        return "beats: under 1 ULP where Sollya has none"
    if ops < sollya["sollya_ops"]:
        return "beats: fewer ops"
    if ops == sollya["sollya_ops"]:
        if speed_vs_sollya is not None and speed_vs_sollya >= 1.2:
            return "beats: >= 1.2x speed at equal ops"
        return "ties: equal ops"
    return f"short: {ops:g} ops against Sollya's {sollya['sollya_ops']:g}"


def discovery_record(problem: Problem, row: dict[str, str], found: Search, sollya: dict,
                     speeds: dict, settings: dict) -> dict:
    """The JSON record of one problem (see the module docstring)."""
    program = parse_program(row["program"], n_registers=problem.n_registers)
    ops = problem.cost(program)
    certified = float(row["certified_max_ulp"])
    under = problem.meets_target(certified)
    return {
        "problem": problem.name, "program": row["program"], "ops": ops,
        "op_counts": bench_numerics.op_counts(program, problem),
        "certified_max_ulp": certified, "under_target": under,
        "certified_worst_x": float(row.get("certified_worst_x") or "nan"),
        **sollya,
        "verdict": verdict(ops, certified, under, sollya, speeds.get("c_speed_vs_sollya")),
        "c_speed_vs_sollya": speeds.get("c_speed_vs_sollya"),
        "c_speed_vs_libm": speeds.get("c_speed_vs_libm"),
        "c_sollya_timed": speeds.get("c_sollya_timed"),
        "seconds": round(found.seconds, 1), "generations": found.generations,
        **settings, "run_dir": str(found.run_dir),
        "continue_command": (f"evolve resume {shlex.quote(str(found.run_dir))} --generations "
                             f"{2 * max(found.generations, 1)}"),
    }


def c_speeds(problem: Problem, row: dict[str, str], cflags: str, calls: int, repeats: int,
             points: int) -> dict:
    """Speed of the row's exported C against Sollya's and libm (``bench_numerics``'s
    harness; ratios of CPU-time calls per second, above 1 is faster)."""
    program = parse_program(row["program"], n_registers=problem.n_registers)
    ulp = float(row["certified_max_ulp"])
    evolved = bench_numerics.Candidate("evolved", f"evolved_{problem.name}", "discover",
                                       program, ulp, "exhaustive", ulp < 1)
    sollya = bench_numerics.sollya_candidate(problem)
    host = {"machine": platform.machine(), "cores": os.cpu_count(),
            "cpu": bench_numerics.cpu_model()}
    lines = bench_numerics._c_lines([(problem, (evolved, sollya))], [cflags], calls, repeats,
                                    points, 4096, host)
    out = {"c_sollya_timed": sollya.label}
    for line in lines:
        case = line["case"]
        if line["metric"] == "gcalls_per_s" and case["impl"] == "evolved" and line["baseline"]:
            key = "c_speed_vs_sollya" if line["baseline"].startswith("sollya") else "c_speed_vs_libm"
            out[key] = round(line["ratio"], 3)
    return out


def device() -> str:
    """This machine in words (its accelerator where JAX has one, CPU model, cores, load)."""
    import jax

    gpu = [d.device_kind for d in jax.devices() if d.platform != "cpu"]
    return ((f"{len(gpu)} x {gpu[0]}, " if gpu else "")
            + f"CPU {bench_numerics.cpu_model()}, {os.cpu_count()} cores, "
            f"1-min load {os.getloadavg()[0]:.1f} at the end")


def start_candidates(problem: Problem, starts: str) -> list:
    """The generation-0 programs of ``search.starts`` = ``starts`` worth certifying when the
    search's front has no certified row under the target: the problem's own starts, then
    its baselines whose recorded (dense, not exhaustive) error is under the target; each
    once, in that order."""
    if starts == "random":
        return []
    texts = {format_program(q): q for q in start_programs(problem, starts)}  # each once
    own = [format_program(parse_program(t)) for t in problem.starts]
    good = [format_program(parse_program(b["program"])) for b in problem.baselines
            if b.get("program") and problem.meets_target(b["error"])]
    return list({t: texts[t] for t in own + good if t in texts}.values())


def certify_starts(problem: Problem, starts: str, limit: int, certifier=certify
                   ) -> list[dict[str, str]]:
    """Rows (program, cost, certificate cells, round "0") of ``start_candidates``, certified
    in order until one is under the target, at most ``limit``: the fallback when the
    search's front has none (a search can lose its best start to a cheaper variant whose
    sampled error is under the target and whose certificate is not)."""
    rows = []
    for program in start_candidates(problem, starts)[:limit]:
        cert = certifier(program, problem)
        rows.append({"program": format_program(program).rstrip("\n"),
                     "cost": repr(problem.cost(program)), "error": "", "round": "0",
                     **certificate_cells(cert)})
        if problem.meets_target(cert.max_ulp):
            break
    return rows


# -- the campaign ------------------------------------------------------------------------------
def discover(name: str, args: argparse.Namespace, command: str) -> dict:
    """Search, certify, choose, time and record one problem: ``--rounds`` rounds of search
    (the first ``evolve run``, the others ``evolve resume``) and certification, each with
    ``--seconds / --rounds`` of search; with ``--teach`` the failed certificates' worst
    inputs join the training points of the rounds after. The choice is made among every
    row certified in any round (a later round's front may have lost an earlier winner)."""
    problem = load_problem(name)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = args.runs_dir / f"{name}-{args.starts}-{args.seed}-{stamp}"
    per_round = args.seconds / args.rounds
    certified: dict[str, dict[str, str]] = {}  # program text -> its certified row
    known: dict = {}  # Program -> Certificate: a row still on the front is certified once

    def certifier(program, problem):
        if program not in known:
            known[program] = certify(program, problem)
        return known[program]

    searched, certify_seconds, rounds = 0.0, 0.0, []
    for r in range(args.rounds):
        found = (search(name, run_dir, per_round, args.seed, args.population, args.starts,
                        settings=tuple(args.set))
                 if r == 0 else resume(run_dir, per_round))
        searched += found.seconds
        t0 = time.perf_counter()
        certs = certify_front(run_dir, problem, args.certify, certifier, teach=args.teach)
        certify_seconds += time.perf_counter() - t0
        _, rows = read_front(run_dir)
        for row in rows:
            if row.get("certified_max_ulp"):
                certified.setdefault(row["program"], {**row, "round": str(r + 1)})
        rounds.append({"generation": found.generations,
                       "certified": sorted(round(c.max_ulp, 4) for c in certs.values()),
                       "hard_points": len(hard_points.load(run_dir))})
    rows = list(certified.values())
    i = choose_row(rows, problem)
    if i is None or not problem.meets_target(float(rows[i]["certified_max_ulp"])):
        t0 = time.perf_counter()
        rows += certify_starts(problem, args.starts, args.certify, certifier)
        certify_seconds += time.perf_counter() - t0
        i = choose_row(rows, problem)
    if i is None:
        raise UserError(f"{name}: no row of {str(run_dir / 'front.csv')!r} was certified")
    speeds = c_speeds(problem, rows[i], args.cflags, args.calls, args.repeats, args.points)
    settings = {"device": device(), "population": args.population, "starts": args.starts,
                "set": list(args.set),
                "seed": args.seed, "cflags": args.cflags,
                "certify_seconds": round(certify_seconds, 1), "rounds": rounds,
                "teach": args.teach, "chosen_round": int(rows[i]["round"]),
                "chosen_from": "front" if int(rows[i]["round"]) else "start",
                "date": _dt.date.today().isoformat(), "command": command}
    found = Search(run_dir, searched, found.generations, found.command)
    return discovery_record(problem, rows[i], found, sollya_reference(problem), speeds,
                            settings)


def best_records(paths: list[Path]) -> dict[str, tuple[dict, str]]:
    """The best record of each function problem among the records in ``paths`` (JSON
    lines), with the file it came from: the cheapest certified under the target (lower
    certified error breaks ties), else the one with the lowest certified error."""
    best: dict[str, tuple[dict, str]] = {}
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            key = (not r["under_target"], r["ops"] if r["under_target"] else 0.0,
                   r["certified_max_ulp"])
            have = best.get(r["problem"])
            if have is None or key < (not have[0]["under_target"],
                                      have[0]["ops"] if have[0]["under_target"] else 0.0,
                                      have[0]["certified_max_ulp"]):
                best[r["problem"]] = (r, Path(path).name)
    return best


def best_table(paths: list[Path]) -> str:
    """``best_records`` as a markdown table in FUNCTION_PROBLEMS order, then a tally of the
    issue's bar: rows under 1 ULP, rows that beat Sollya, rows above Sollya's ops + 1."""
    best = best_records(paths)
    lines = ["| problem | ops | certified max ULP | Sollya: ops, max ULP | verdict | "
             "C speed vs Sollya | record | device | search s |", "|---|" * 1 + "---|" * 8]
    under = beats = over = 0
    for name in [n for n in FUNCTION_PROBLEMS if n in best]:
        r, source = best[name]
        sollya = ("—" if r["sollya_ops"] is None else
                  f"{r['sollya_ops']:g}, {r['sollya_max_ulp']:.4f}")
        speed = r.get("c_speed_vs_sollya")
        where = r["device"].split(", 1-min")[0]
        where = where.split(", CPU")[0] if " x " in where else where  # GPU: the card
        lines.append(f"| {name} | {r['ops']:g} | {r['certified_max_ulp']:.4f} | {sollya} | "
                     f"{r['verdict']} | {'' if speed is None else f'{speed:.2f}x'} "
                     f"({r.get('c_sollya_timed', '')}) | {source} | {where} | "
                     f"{r['seconds']:g} |")
        under += bool(r["under_target"])
        beats += r["verdict"].startswith("beats")
        over += r["sollya_ops"] is not None and r["ops"] > r["sollya_ops"] + 1
    lines.append("")
    lines.append(f"{under} of {len(best)} problems certified under the target; {beats} beat "
                 f"Sollya; {over} above Sollya's ops + 1.")
    return "\n".join(lines)


def _count(text: str) -> int:
    return int(float(text))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", default=",".join(FUNCTION_PROBLEMS),
                    help="comma-separated (default: all 10 function problems)")
    ap.add_argument("--seconds", type=float, default=120.0, help="search wall time a problem")
    ap.add_argument("--starts", choices=STARTS, default="both",
                    help="search.starts: generation 0 from random programs, the problem's "
                         "Sollya baselines, its starts, or both")
    ap.add_argument("--population", type=_count, default=256, help="search.population")
    ap.add_argument("--seed", type=_count, default=0)
    ap.add_argument("--certify", type=_count, default=3,
                    help="rows meeting the target (sampled) certified at most, cheapest first")
    ap.add_argument("--rounds", type=_count, default=1,
                    help="search and certify this many times, --seconds shared among them")
    ap.add_argument("--teach", action="store_true",
                    help="failed certificates' worst inputs join the training points of the "
                         "rounds after (certify.teach)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="more run configuration, as `evolve run --set` (repeatable; e.g. "
                         "search.early_exit=128); the rounds after the first keep it")
    ap.add_argument("--cflags", default=CFLAGS, help="gcc flags of the C timing")
    ap.add_argument("--calls", type=_count, default=20_000_000, help="C calls per repeat")
    ap.add_argument("--points", type=_count, default=1_000_000, help="distinct C inputs")
    ap.add_argument("--repeats", type=_count, default=3, help="C timings; the minimum is kept")
    ap.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "discover")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "discovery.jsonl",
                    help="records are appended here")
    ap.add_argument("--best", nargs="+", type=Path, metavar="FILE.jsonl",
                    help="print the best record of each problem among these files (a "
                         "markdown table and the tally of the bar) and exit")
    args = ap.parse_args(argv)
    if args.best:
        print(best_table(args.best))
        return 0
    command = shlex.join(["python", "scripts/discover.py", *(sys.argv[1:] if argv is None
                                                             else argv)])
    names = [n.strip() for n in args.problems.split(",") if n.strip()]
    bad = [n for n in names if n not in FUNCTION_PROBLEMS]
    if bad:
        sys.exit(f"discover: error: --problems: {bad} are not function problems; choose from "
                 f"{', '.join(FUNCTION_PROBLEMS)}")
    if "-ffp-contract=off" not in shlex.split(args.cflags) or "-ffast-math" in args.cflags:
        sys.exit(f"discover: error: --cflags {args.cflags!r}: add -ffp-contract=off and leave "
                 "out -ffast-math, or the C will not compute what the program does")
    if args.rounds < 1:
        sys.exit(f"discover: error: --rounds {args.rounds}: give 1 or more")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        try:
            record = discover(name, args, command)
        except (UserError, RuntimeError) as e:
            print(f"discover: {name}: {e}", file=sys.stderr)
            continue
        text = json.dumps(record) + "\n"
        sys.stdout.write(text)
        sys.stdout.flush()
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
