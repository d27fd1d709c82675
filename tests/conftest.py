"""Suite-wide settings: JAX made strict, hypothesis profiles.

``evolve`` is imported before any test starts a JAX backend: it sets XLA_FLAGS (excess
precision off), which XLA reads when the backend starts, and enables float64. Compiled
functions are cached on disk across test processes (``evolve.use_compilation_cache``).

JAX is strict here, as in equinox's suite: implicit rank promotion raises, and dtype
promotion is "strict" (no implicit float32/float64 or int/float mixing), so an
accidental upcast in the evaluator fails a test instead of changing a ULP figure.

Hypothesis profiles: "default" (50 examples, no deadline: the first call of a jitted
function compiles) and "ci" (more examples; .ci/run selects it). Pick one with the
environment variable HYPOTHESIS_PROFILE.

``scripts/`` is on ``sys.path``, so tests import the benchmark scripts by name.
"""

import os
import sys
from pathlib import Path

import jax
from hypothesis import settings

import evolve  # (XLA flags, float64)

evolve.use_compilation_cache()

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

settings.register_profile("default", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=300, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
