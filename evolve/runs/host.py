"""The machine a run computes on, as its checkpoints record it.

A run resumes exactly on the machine it ran on (the exact-resume contract). On another
machine the same code, seed and checkpoint can compute other bits: JAX compiles its CPU
code for the host's vector instructions, and the C++ kernel is built with -march=native.
Seen on 2026-12-07: `evolve run exp2 --generations 300`, seed 0, found a 6-op program
under 1 ULP on an Intel Xeon with AVX-512 and none yet on an AMD EPYC with AVX2, with the
same commit. So a checkpoint records the machine (``describe``), and a resume elsewhere
says so (``moved``) instead of promising what it cannot.

One concept, the host of a run: how it is described, and what a resume on another says.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

import jax


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def describe() -> str:
    """This machine in words: CPU model, the widest vector instruction set the compiler
    targets here, and JAX's default device, e.g. "AMD EPYC (avx2), cpu"."""
    from evolve.eval.cpu.kernel import host_isa

    device = jax.devices()[0]
    where = device.platform if device.platform == "cpu" else device.device_kind
    return f"{cpu_model()} ({host_isa()}), {where}"


def moved(recorded: str | None, here: str | None = None) -> str | None:
    """The warning for a resume on another machine than the one a checkpoint names (None:
    the same machine, or a checkpoint that names none)."""
    here = describe() if here is None else here
    if recorded is None or recorded == here:
        return None
    return (f"the run's checkpoints were made on {recorded}; this resume runs on {here}: "
            "the generations from here on can differ from an uninterrupted run there (a "
            "resume is exact on the machine the run ran on)")
