"""Building the generated C++/CUDA kernels into shared libraries for XLA's FFI.

One place for what ``evolve.eval.cpu.kernel`` and ``evolve.eval.cuda.kernel`` share: a library is named by the
hash of its source, its build key (flags, target) and the JAX version, kept in a cache
folder, built in a temporary folder and moved into place atomically (two processes that
build the same library at once do no harm); and the operands both kernels' FFI handlers
take, in the order they bind them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp


def build_library(src: str, suffix: str, out_dir: Path, key: str,
                  commands: Callable[[Path, Path], list[list[str]]]) -> Path:
    """The shared library of ``src`` in ``out_dir``, compiled if not there yet.

    commands(source_path, library_path) gives the compiler command lines to try in turn
    (a fallback after a failure, e.g. without an optional library); RuntimeError with the
    compiler's message when none succeeds."""
    tag = hashlib.sha256(f"{key}\n{jax.__version__}\n{src}".encode()).hexdigest()[:20]
    lib = Path(out_dir) / f"evolve_{tag}.so"
    if lib.is_file():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"kernel{suffix}"
        source.write_text(src)
        built = Path(tmp) / lib.name
        errors = []
        for cmd in commands(source, built):
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode == 0:
                os.replace(built, lib)
                return lib
            errors.append(f"{' '.join(cmd)}:\n{res.stderr[-3000:]}")
    raise RuntimeError("the kernel did not compile:\n" + "\n".join(errors))


def operands(op, args, dst, const, length, output, xt, y=None, scale=None, mask=None):
    """The FFI operands of a batch: the program rows (int32, constants float32), the
    points as [n_inputs, N] float32 from the tiled ``xt`` [n_tiles, n_inputs, T0], then,
    when given, the targets, scales (float64) and mask (int32) flattened to [N]."""
    n_tiles, n_inputs, T0 = xt.shape
    N = n_tiles * T0
    out = [op.astype(jnp.int32), args.astype(jnp.int32), dst.astype(jnp.int32),
           const.astype(jnp.float32), length.astype(jnp.int32), output.astype(jnp.int32),
           jnp.transpose(xt, (1, 0, 2)).reshape(n_inputs, N).astype(jnp.float32)]
    if y is not None:
        out += [y.reshape(N).astype(jnp.float64), scale.reshape(N).astype(jnp.float64),
                mask.reshape(N).astype(jnp.int32)]
    return out
