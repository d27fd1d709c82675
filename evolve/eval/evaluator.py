"""Running programs: a plain numpy reference and the batched, jitted JAX evaluator.

The evaluator runs P programs on N points in one jitted call. Points are cut into tiles
of ``tile`` points so that a program's register file (``R x tile`` floats) stays in
cache; each instruction branches on its opcode (``lax.switch``) and computes one vector
operation over the tile. The population is sharded across the devices of the backend
(the CPU cores, or the GPUs), one slice of programs a device.

Two results are offered: ``outputs`` (the P x N values) and ``errors`` (per-program
error statistics reduced inside the loop, so P x N values never exist at once).

The inner loop is one replaceable function (``_tile_program``). On GPUs a fused Pallas
kernel (``evolve.eval.pallas``) takes the place of the whole loop nest: ``backend="auto"``
picks it when the devices are GPUs and this portable ``lax`` path otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec

from evolve.eval import pallas as kernels
from evolve.ops import CONST, OPCODE, OPS
from evolve.program import Program, ProgramBatch, bucket
from evolve.scaling import scaled_mse

DTYPES = {"float32": np.float32, "float64": np.float64}


def _as_points(x: np.ndarray, n_inputs: int, dtype) -> np.ndarray:
    x = np.asarray(x, dtype)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != n_inputs:
        raise ValueError(f"points must have shape [N, {n_inputs}] (or [N] for one input), "
                         f"got {x.shape}")
    return x


def run_numpy(program: Program, x: np.ndarray, n_registers: int, dtype=np.float32) -> np.ndarray:
    """The reference interpreter: ``program`` on points ``x`` ([N] or [N, n_inputs]).

    Plain numpy, one instruction at a time, every result rounded to ``dtype``.
    """
    dtype = np.dtype(dtype).type
    x = np.asarray(x, dtype)
    if x.ndim == 1:
        x = x[:, None]
    regs = np.zeros((n_registers, x.shape[0]), dtype)
    regs[: x.shape[1]] = x.T
    for ins in program.instructions:
        if ins.op == CONST:
            regs[ins.dst] = dtype(ins.value)
        else:
            regs[ins.dst] = np.asarray(OPS[ins.op].np_fn(*(regs[a] for a in ins.args)), dtype)
    return regs[program.output].copy()


def run_numpy_batch(batch: ProgramBatch, x: np.ndarray, n_registers: int,
                    dtype=np.float32) -> np.ndarray:
    """The reference interpreter on every program of a batch: [P, N]."""
    from evolve.program import from_arrays

    return np.stack([run_numpy(p, x, n_registers, dtype) for p in from_arrays(batch)])


def _branches():
    """One function per opcode: (regs, a, b, c, k) -> the op's value over the tile.

    Each branch reads only the registers its op needs, inside the branch, so XLA fuses
    the reads into the op's loop instead of copying three registers per instruction.
    """

    def const(regs, a, b, c, k):
        return jnp.full(regs.shape[1:], k, regs.dtype)

    def make(fn, arity):
        def apply(regs, a, b, c, k):
            return fn(*(regs[a], regs[b], regs[c])[:arity]).astype(regs.dtype)

        return apply

    return [const if i == CONST else make(op.jax_fn, op.arity) for i, op in enumerate(OPS)]


def _tile_program(op, args, dst, const, length, output, xt, n_registers, opset=None):
    """One program on one tile of points: xt [n_inputs, T] -> output values [T].

    ``op args dst const`` are one program's rows; instructions at or past ``length``
    are not run. ``opset`` (sorted opcodes, CONST among them): the only ops the program
    uses, so the switch has a branch for each of them only (less to compile); an op
    outside it must not occur.
    """
    n_inputs, T = xt.shape
    regs = jnp.zeros((n_registers, T), xt.dtype).at[:n_inputs].set(xt)
    branches = _branches()
    index = op
    if opset is not None:
        table = np.zeros(len(OPS), np.int32)
        table[list(opset)] = np.arange(len(opset), dtype=np.int32)
        branches = [branches[o] for o in opset]
        index = jnp.asarray(table)[op]

    def step(i, regs):
        v = lax.switch(index[i], branches, regs, args[i, 0], args[i, 1], args[i, 2],
                       const[i].astype(xt.dtype))
        return lax.dynamic_update_index_in_dim(regs, v, dst[i], 0)

    regs = lax.fori_loop(0, length, step, regs)
    return regs[output]


def _program_errors(prog, xt, y, scale, mask, n_registers):
    """Per-program error statistics over all tiles: (max |out-y|*scale, max |out-y|, sum sq).

    A NaN or infinite output counts as an infinite error.
    """

    def tile(carry, data):
        xt_i, y_i, s_i, m_i = data
        out = _tile_program(*prog, xt_i, n_registers).astype(jnp.float64)
        err = jnp.abs(out - y_i)
        err = jnp.where(jnp.isnan(err), jnp.inf, err)
        err = jnp.where(m_i, err, 0.0)
        mx_s, mx, sq = carry
        return (jnp.maximum(mx_s, kernels.nan_max(err * s_i)), jnp.maximum(mx, jnp.max(err)),
                sq + jnp.sum(err * err)), None

    zero = jnp.zeros((), jnp.float64)
    (mx_s, mx, sq), _ = lax.scan(tile, (zero, zero, zero), (xt, y, scale, mask))
    return mx_s, mx, sq


def _program_outputs(prog, xt, n_registers):
    def tile(_, xt_i):
        return None, _tile_program(*prog, xt_i, n_registers)

    _, out = lax.scan(tile, None, xt)
    return out.reshape(-1)


def _native_available() -> bool:
    from evolve.eval.cpu import kernel as native

    return native.available()


def _cuda_available() -> bool:
    from evolve.eval.cuda import kernel as cuda

    return cuda.available()


class Stats(Mapping):
    """Per-program error statistics: the kernel's reductions, and ``scaled_mse`` (the mean
    squared error after linear scaling, ``evolve.scaling``), computed from the programs'
    outputs on first use, since few problems need it."""

    def __init__(self, reduced: dict[str, np.ndarray], outputs: Callable[[], np.ndarray],
                 y: np.ndarray):
        self._values = dict(reduced)
        self._outputs, self._y = outputs, y

    def __getitem__(self, key: str) -> np.ndarray:
        if key == "scaled_mse" and key not in self._values:
            self._values[key] = scaled_mse(self._outputs(), self._y)
        return self._values[key]

    def __iter__(self):
        return iter((*self._values, *(("scaled_mse",) if "scaled_mse" not in self._values
                                       else ())))

    def __len__(self) -> int:
        return len(self._values) + ("scaled_mse" not in self._values)


BACKENDS = ("auto", "native", "cuda", "pallas", "lax")
NATIVE_MATHS = ("libmvec", "own", "own32")  # evolve.eval.cpu.source.MATHS


@dataclass(frozen=True)
class EvalParams:
    """How programs are evaluated (the ``search.evaluator`` part of the run configuration).

    Both change output bits (a transcendental op's last bits, an error's rounding), so a
    run's config.yaml records them and a resume uses them."""

    backend: str = "auto"  # Evaluator.backend
    native_math: str = "own32"  # Evaluator.native_math


@dataclass
class Evaluator:
    """Runs batches of programs on points with one compiled function per size bucket.

    n_registers: registers per program; the first ``n_inputs`` hold the inputs.
    dtype: "float32" or "float64", the precision of every register and operation.
    tile: points per tile (the register file of a tile should fit in cache).
    devices: the devices to shard programs across (default: all of the default backend).
    backend: "auto" (the Pallas kernel on GPUs, the lax loop elsewhere), "lax" or "pallas"
        (off a GPU, the kernel runs in Pallas interpret mode: slow, for tests). The kernel
        takes tiles of at most ``kernels.TILE`` points, past which registers spill.
        "cuda": errors by the CUDA kernel of ``evolve.eval.cuda.kernel`` (built with nvcc on first
        use), outputs by the Pallas kernel; CUDA GPUs only. "native": the C++ kernel of
        ``evolve.eval.cpu.kernel`` (built with the C++ compiler on first use); CPUs only.
        "auto" takes "cuda" on GPUs and "native" on CPUs where they can be built, else
        "pallas" on GPUs and "lax" elsewhere (``kind`` says which it took).
    native_math: the C++ kernel's transcendental ops: "own32" (the default: ours in
        float32, inlined, within 1.5 ULP), "libmvec" (glibc's vector math) or "own" (ours,
        float64-evaluated: correctly rounded but for a few in 1e5); see
        ``evolve.eval.cpu.kernel``.
    ops: the names of the ops the programs may use (default: every op). The kernel is
        specialised to them (fewer branches, less code); a batch with another op is refused.
    """

    n_registers: int
    n_inputs: int = 1
    dtype: str = "float32"
    tile: int = 8192
    devices: list | None = None
    backend: str = "auto"
    ops: tuple[str, ...] | None = None
    native_math: str = "own32"
    # ``errors`` on the CUDA kernel pads the programs to at least this many rows: a search
    # sets its largest batch, so that one compiled shape serves every generation (each new
    # row count compiles the kernel's plan, seconds at 1e5 programs; padded rows are
    # skipped by the kernel, so they cost next to nothing).
    min_rows: int = 0
    trace_count: int = field(default=0, init=False)

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.n_inputs > self.n_registers:
            raise ValueError(f"n_inputs={self.n_inputs} needs at least as many registers, "
                             f"got n_registers={self.n_registers}")
        chosen = self.devices is not None
        self.devices = list(self.devices or jax.devices())
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, "
                             f"got {self.backend!r}")
        if self.native_math not in NATIVE_MATHS:
            raise ValueError(f"native_math must be one of {', '.join(map(repr, NATIVE_MATHS))}"
                             f", got {self.native_math!r}")
        on_gpu = all(d.platform == "gpu" for d in self.devices)
        if self.backend == "cuda" and (not on_gpu or self.dtype != "float32"):
            raise ValueError("backend='cuda' needs CUDA GPUs and float32; use 'auto'")
        # "cuda": errors by the CUDA kernel (evolve.eval.cuda.kernel), outputs by the Pallas kernel.
        # "auto" takes it on CUDA GPUs where nvcc can build it (on an H200 1.2 to 1.8
        # times the Pallas kernel's errors throughput on bench_eval's trees, side by side:
        # docs/gpu_kernels.md); backend "pallas" keeps the Pallas kernel.
        self._cuda = self.backend == "cuda" or (
            self.backend == "auto" and on_gpu and self.dtype == "float32"
            and _cuda_available())
        self._pallas = self.backend in ("pallas", "cuda") or (self.backend == "auto" and on_gpu)
        # "native": the C++ kernel of evolve.eval.cpu.kernel on the CPU; "auto" takes it on CPUs
        # where a C++ compiler builds it (backend "lax" keeps XLA's loop)
        on_cpu = all(d.platform == "cpu" for d in self.devices)
        if self.backend == "native" and (not on_cpu or self.dtype != "float32"):
            raise ValueError("backend='native' needs CPU devices and float32; use 'auto'")
        self._native = self.backend == "native" or (
            self.backend == "auto" and on_cpu and self.dtype == "float32" and _native_available())
        # The native kernel shares the programs out among threads of its own, as they
        # finish (XLA's host devices, one a core, each take a fixed half and wait for the
        # slower): without devices given, one device and a thread a core.
        self._threads = 1
        if self._native:
            # the cores this process may run on (a process pinned to one core: one thread)
            cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count() or 1)
            if not chosen:
                self.devices = self.devices[:1]
            self._threads = max(1, cores // len(self.devices))
        if self._pallas and self.n_registers > kernels.MAX_REGISTERS:
            raise ValueError(f"the Pallas kernel takes at most {kernels.MAX_REGISTERS} registers, "
                             f"got n_registers={self.n_registers}; use backend='lax'")
        unknown = sorted(set(self.ops or ()) - set(OPCODE))
        if unknown:
            raise ValueError(f"unknown ops {unknown}; the ops table has {sorted(OPCODE)}")
        self._opset = (None if self.ops is None
                       else tuple(sorted({OPCODE[o] for o in self.ops} | {CONST})))
        self._kernel_args = {"n_registers": self.n_registers, "interpret": not on_gpu,
                             "tile": 1 << (min(self.tile, kernels.TILE).bit_length() - 1),
                             "opset": self._opset}
        self._mesh = Mesh(np.array(self.devices), ("programs",))
        self._np_dtype = DTYPES[self.dtype]
        self._grower = None  # ``_grow``'s compiled function
        self._errors = jax.jit(self._sharded(self._errors_impl, n_data=4))
        self._outputs = jax.jit(self._sharded(self._outputs_impl, n_data=1))

    @property
    def kind(self) -> str:
        """The evaluator this one resolved to: "native" (with its math, e.g.
        "native/libmvec"), "cuda", "pallas" or "lax"."""
        if self._native:
            return f"native/{self.native_math}"
        return "cuda" if self._cuda else "pallas" if self._pallas else "lax"

    # -- compiled parts -------------------------------------------------------------
    def _sharded(self, fn, n_data):
        spec = PartitionSpec("programs")
        return jax.shard_map(fn, mesh=self._mesh,
                             in_specs=(spec,) * 6 + (PartitionSpec(),) * n_data,
                             out_specs=spec, check_vma=False)

    def _errors_impl(self, op, args, dst, const, length, output, xt, y, scale, mask):
        self.trace_count += 1
        if self._cuda:
            from evolve.eval.cuda import kernel as cuda

            return cuda.errors(op, args, dst, const, length, output, xt, y, scale, mask,
                               **self._kernel_args)
        if self._native:
            from evolve.eval.cpu import kernel as native

            return native.errors(op, args, dst, const, length, output, xt, y, scale, mask,
                                 n_registers=self.n_registers, opset=self._opset,
                                 threads=self._threads, math=self.native_math)
        if self._pallas:
            return kernels.errors(op, args, dst, const, length, output, xt, y, scale, mask,
                                  **self._kernel_args)
        f = partial(_program_errors, xt=xt, y=y, scale=scale, mask=mask,
                    n_registers=self.n_registers)
        mx_s, mx, sq = lax.map(f, (op, args, dst, const, length, output))
        return jnp.stack([mx_s, mx, sq], axis=1)

    def _outputs_impl(self, op, args, dst, const, length, output, xt):
        self.trace_count += 1
        if self._native:
            from evolve.eval.cpu import kernel as native

            return native.outputs(op, args, dst, const, length, output, xt,
                                  n_registers=self.n_registers, opset=self._opset,
                                  threads=self._threads, math=self.native_math)
        if self._pallas:
            return kernels.outputs(op, args, dst, const, length, output, xt,
                                   **self._kernel_args)
        f = partial(_program_outputs, xt=xt, n_registers=self.n_registers)
        return lax.map(f, (op, args, dst, const, length, output))

    # -- padding ----------------------------------------------------------------------
    def _grow(self, arrays: tuple) -> tuple:
        """``arrays`` (a padded batch, on the host) padded to ``min_rows`` rows on the
        device: only the batch's own rows cross to the device (a generation's smaller
        calls at 1e5 programs moved 100 MB of padding each), and the kernel still sees
        one shape. One small compilation per row bucket."""
        n_dev = len(self.devices)
        rows = -(-self.min_rows // n_dev) * n_dev
        if arrays[0].shape[0] >= rows:
            return arrays
        if self._grower is None:
            spec = jax.sharding.NamedSharding(self._mesh, PartitionSpec("programs"))

            def grow(*a):
                return tuple(jnp.pad(v, [(0, rows - v.shape[0])] + [(0, 0)] * (v.ndim - 1),
                                     constant_values=-1 if i == 4 else 0)  # length -1: skipped
                             for i, v in enumerate(a))

            self._grower = jax.jit(grow, out_shardings=(spec,) * 6)
        return self._grower(*arrays)

    def _pad_batch(self, batch: ProgramBatch) -> tuple[tuple, int]:
        P, L = batch.op.shape
        if self._opset is not None:
            live = np.arange(L)[None, :] < np.asarray(batch.length)[:, None]
            stray = np.setdiff1d(np.asarray(batch.op)[live], self._opset)
            if len(stray):
                raise ValueError(f"the batch uses ops {[OPS[int(o)].name for o in stray]} "
                                 f"outside this evaluator's ops {list(self.ops)}")
        n_dev = len(self.devices)
        per_device = max(-(-P // n_dev), 1)
        if self._pallas:  # padded programs still cost a block each: pad finely
            size = max(kernels.round_size(per_device), 8) * n_dev
        else:
            size = bucket(per_device, minimum=8) * n_dev
        length = bucket(L, minimum=8)

        def pad(a, value=0):
            widths = [(0, size - P), (0, length - L)][: a.ndim] + [(0, 0)] * max(a.ndim - 2, 0)
            return np.pad(a, widths, constant_values=value)

        # The native and CUDA kernels skip rows of length -1 (padding); the others run
        # them as empty programs.
        skip = -1 if (self._native or self._cuda) else 0
        arrays = (pad(batch.op), pad(batch.args), pad(batch.dst), pad(batch.const),
                  pad(batch.length, skip), pad(batch.output))
        return arrays, P

    def _tiles(self, x: np.ndarray) -> tuple[np.ndarray, int, int]:
        N = x.shape[0]
        if self._pallas:  # small tiles, padded finely: every padded point costs a full run
            T = min(self._kernel_args["tile"], bucket(N, minimum=128))
            n_tiles = kernels.round_size(-(-N // T))
        else:
            # N is fixed for a run, so tiles need no bucketing: as few tiles as fit in
            # ``tile`` points, evenly filled (a multiple of 128 points each).
            n_tiles = max(-(-N // self.tile), 1)
            per_tile = -(-N // n_tiles)
            T = -(-per_tile // 128) * 128
        xp = np.zeros((n_tiles * T, x.shape[1]), x.dtype)
        xp[:N] = x
        return xp.reshape(n_tiles, T, x.shape[1]).transpose(0, 2, 1).copy(), n_tiles, T

    # -- public ---------------------------------------------------------------------
    def outputs(self, batch: ProgramBatch, x: np.ndarray) -> np.ndarray:
        """Every program's value at every point: [P, N] in the evaluator's dtype."""
        x = _as_points(x, self.n_inputs, self._np_dtype)
        arrays, P = self._pad_batch(batch)
        xt, _, _ = self._tiles(x)
        out = self._outputs(*arrays, xt)
        return np.asarray(out)[:P, : x.shape[0]]

    def errors(self, batch: ProgramBatch, x: np.ndarray, y: np.ndarray,
               scale: np.ndarray | None = None) -> Stats:
        """Per-program error against targets ``y`` (float64), reduced in the loop.

        Returns float64 arrays of length P: ``max_abs`` (max |out - y|), ``mse`` (mean
        squared error) and ``max_scaled`` (max |out - y| * scale, e.g. scale = 1/ulp for
        ULP errors; equals ``max_abs`` without ``scale``), and ``scaled_mse`` (the mean
        squared error of the best ``a * out + b``; from ``outputs``, run when first read).
        NaN or Inf outputs give inf.
        """
        x = _as_points(x, self.n_inputs, self._np_dtype)
        N = x.shape[0]
        y = np.asarray(y, np.float64).reshape(-1)
        if y.shape[0] != N:
            raise ValueError(f"targets y have {y.shape[0]} values for {N} points")
        s = np.ones(N) if scale is None else np.asarray(scale, np.float64).reshape(-1)
        arrays, P = self._pad_batch(batch)
        if self._cuda and self.min_rows:
            arrays = self._grow(arrays)
        xt, n_tiles, T = self._tiles(x)

        def tiles(v, fill):
            out = np.full(n_tiles * T, fill, v.dtype)
            out[:N] = v
            return out.reshape(n_tiles, T)

        mask = tiles(np.ones(N, bool), False)
        res = np.asarray(self._errors(*arrays, xt, tiles(y, 0.0), tiles(s, 0.0), mask))[:P]
        with np.errstate(all="ignore"):
            mse = res[:, 2] / N
        return Stats({"max_scaled": res[:, 0], "max_abs": res[:, 1], "mse": mse},
                     lambda: self.outputs(batch, x)[:P], y)
