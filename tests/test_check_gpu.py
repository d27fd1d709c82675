"""scripts/check_gpu.py off the GPU (CHECK_SMALL=1): the stages that can run on the CPU
(Pallas in interpret mode) print their lines, and the CUDA ones stop at the evaluator's
"needs CUDA GPUs" refusal, not at a bug in the script, which CI otherwise never runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_gpu.py"


def run(*argv: str) -> list[dict]:
    env = {**os.environ, "CHECK_SMALL": "1"}
    done = subprocess.run([sys.executable, str(SCRIPT), *argv], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_stages_run_on_the_cpu_or_stop_at_the_cuda_refusal():
    lines = run("--stages", "multi,cuda_trees,cuda_calls,cuda,ncu_cuda", "--backend", "pallas",
                "--configs", "acc+fold,4,256,32", "--registers", "9", "--modes", "acc+fold")
    errors = [line for line in lines if "error" in line]
    assert errors and all("needs CUDA GPUs" in line["error"] for line in errors), errors
    stages = {line["stage"] for line in lines if "stage" in line and "seconds" in line}
    assert stages == {"multi", "cuda_trees", "cuda_calls", "cuda", "ncu_cuda"}
    # multi: the whole batch on one device and on all, and each half on one
    multi = [line for line in lines if line.get("bench") == "multi_gpu"]
    whole = [line for line in multi if "programs" not in line]
    assert {line["devices"] for line in whole} == {1, os.cpu_count() or 1}  # a device a core
    halves = [line for line in multi if "programs" in line]
    assert len(halves) == 1 and len(halves[0]["seconds"]) == 2
    assert halves[0]["two_device_bound"] > 0
    # cuda_trees: Pallas timed on each workload at the registers asked
    trees = [line for line in lines if line.get("bench") == "trees_errors"]
    assert trees and all(line["backend"] == "pallas" for line in trees)
    assert {line["workload"] for line in trees} <= {"random", "trees"}
    assert "random" in {line["workload"] for line in trees}
    assert all(line["case"]["n_registers"] == 9 and line["value"] > 0 for line in trees)
