"""evolve: evolutionary program discovery with batched JAX evaluation.

Importing evolve changes two process-wide settings, both needed for correct figures and
both only possible (or only safe) before JAX starts a backend:

- ``XLA_FLAGS`` gets ``--xla_allow_excess_precision=false`` (unless it already mentions
  the flag): XLA otherwise may keep float32 intermediates wider than float32, which
  makes float32 errors read too low, so every ULP figure depends on it (docs/numerics.md).
  XLA reads ``XLA_FLAGS`` once, when its backend starts: this cannot wait until the
  evaluator is used. ``excess_precision_off`` says whether it is in effect; ``evolve run``
  and ``evolve resume`` warn when it is not, and certification refuses.
- ``XLA_FLAGS`` also gets ``--xla_force_host_platform_device_count=<CPU cores>`` (unless
  it already mentions the flag): one XLA host device per core, so the evaluator can
  shard a population across cores as it does across GPUs. Throughput only (a program's
  outputs do not depend on the shard it runs in), but read at backend start like the
  other flag, so it is set here too.
- ``jax_enable_x64`` is turned on for the whole process. The evaluator's error
  statistics are float64 (the C++ and CUDA kernels return float64 through the FFI), the
  single-rounding float32 ``fma`` is computed through float64, constant fitting and the
  problems' JAX references work in float64. It stays global: with a scoped
  ``enable_x64`` around the evaluator's calls, a jitted function called outside the scope
  (a fitter, a certificate's reference, a user's own call) is traced again with float32
  defaults, silently changing dtypes and results. All of evolve's
  arrays carry explicit dtypes; other code in the process that relies on JAX's float32
  defaults sees float64 instead.

Set ``EVOLVE_NO_XLA_FLAGS=1`` before the import to leave ``XLA_FLAGS`` untouched (then set
``--xla_allow_excess_precision=false`` yourself for true float32 figures).

Not done at import: the persistent compilation cache (compiled evaluators reused across
processes) is a speed-up, not a correctness matter, so the entry points that want it
(the ``evolve`` command, Ray island actors, the test suite) call
``use_compilation_cache()``.
"""

from __future__ import annotations

import os
import re

__version__ = "0.1.0"


def _configure_xla() -> None:
    if os.environ.get("EVOLVE_NO_XLA_FLAGS"):
        return
    flags = os.environ.get("XLA_FLAGS", "")
    extra = []
    if "xla_allow_excess_precision" not in flags:
        extra.append("--xla_allow_excess_precision=false")
    if "xla_force_host_platform_device_count" not in flags:
        extra.append(f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")
    if extra:
        os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()


def excess_precision_off(flags: str | None = None) -> bool:
    """Whether ``XLA_FLAGS`` (or ``flags``) turns XLA's excess precision off (the last
    setting wins): float32 results are rounded to float32 at every op."""
    flags = os.environ.get("XLA_FLAGS", "") if flags is None else flags
    found = re.findall(r"--xla_allow_excess_precision(?:=(\S*))?", flags)
    return bool(found) and found[-1].lower() in ("false", "0")


def use_compilation_cache() -> None:
    """Cache compiled functions on disk, under ``EVOLVE_CACHE_DIR`` or
    ``~/.cache/evolve/jax``, for those that took 0.5 s or more to compile (JAX's
    persistent compilation cache, a process-wide setting); ``EVOLVE_NO_COMPILATION_CACHE=1``
    leaves it off. Changes no result."""
    if os.environ.get("EVOLVE_NO_COMPILATION_CACHE"):
        return
    cache = os.environ.get("EVOLVE_CACHE_DIR",
                           os.path.join(os.path.expanduser("~"), ".cache", "evolve", "jax"))
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


_configure_xla()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
