"""The host a run computes on (evolve/runs/host.py): recorded in checkpoints, and a resume
on another machine says so."""

import io
import shutil

import jax

from evolve.runs import driver as runs
from evolve.runs import host
from evolve.runs.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from evolve.runs.config import build_config


def test_describe_names_the_cpu_its_vector_instructions_and_the_device():
    here = host.describe()
    device = jax.devices()[0]
    assert here.startswith(host.cpu_model() + " (")
    assert here.endswith(", " + (device.platform if device.platform == "cpu"
                                 else device.device_kind))
    assert any(f"({isa})" in here for isa in ("avx512", "avx2", "generic"))


def test_moved_only_for_another_machine():
    assert host.moved(None, "A (avx2), cpu") is None  # a checkpoint from before this record
    assert host.moved("A (avx2), cpu", "A (avx2), cpu") is None
    message = host.moved("B (avx512), cpu", "A (avx2), cpu")
    assert "B (avx512), cpu" in message and "A (avx2), cpu" in message
    assert "exact on the machine the run ran on" in message


def test_checkpoints_record_the_host_and_a_resume_elsewhere_warns(tmp_path):
    config = build_config(sets=["search.population=8", "search.children=8",
                                "checkpoint_every=1"],
                          overrides={"problem": "exp2", "generations": 2})
    run_dir = runs.start(config, tmp_path / "run", quiet=True).run_dir
    _, path = list_checkpoints(run_dir / "checkpoints")[-1]
    assert load_checkpoint(path)[1]["host"] == host.describe()
    err = io.StringIO()
    runs.resume(run_dir, 3, quiet=True, err=err)
    assert "warning" not in err.getvalue()
    # the newest checkpoint as if made on another machine
    _, path = list_checkpoints(run_dir / "checkpoints")[-1]
    state, meta = load_checkpoint(path)
    shutil.rmtree(path)
    meta["host"] = "Another CPU (avx512), cpu"
    save_checkpoint(run_dir / "checkpoints", state, meta)
    err = io.StringIO()
    runs.resume(run_dir, 4, quiet=True, err=err)
    assert "made on Another CPU (avx512), cpu; this resume runs on" in err.getvalue()
    assert "Another CPU" in (run_dir / "events.log").read_text()
