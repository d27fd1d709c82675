"""evolve: evolutionary program discovery with batched JAX evaluation.

Importing evolve configures JAX before its backends start:

- ``--xla_allow_excess_precision=false``: XLA otherwise may skip float32 roundings
  (see the README, "Numerics"), which would make our ULP figures false.
- float64 is enabled (``jax_enable_x64``): the evaluator's float64 mode and the
  single-rounding float32 ``fma`` need it. All our arrays carry explicit dtypes.
- on a CPU-only host, one XLA host device per core (``--xla_force_host_platform_device_count``),
  so the evaluator can shard a population across cores as it does across GPUs.

Set ``EVOLVE_NO_XLA_FLAGS=1`` to leave ``XLA_FLAGS`` untouched. Compiled functions are
cached on disk under ``~/.cache/evolve/jax`` (``EVOLVE_CACHE_DIR``; turn off with
``EVOLVE_NO_COMPILATION_CACHE=1``).
"""

from __future__ import annotations

import os

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


_configure_xla()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
if not os.environ.get("EVOLVE_NO_COMPILATION_CACHE"):
    # Compiled evaluators are reused across processes (runs, resumes, tests).
    _cache = os.environ.get("EVOLVE_CACHE_DIR",
                            os.path.join(os.path.expanduser("~"), ".cache", "evolve", "jax"))
    jax.config.update("jax_compilation_cache_dir", _cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
