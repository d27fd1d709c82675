"""Certification: a program's max float32 ULP error over EVERY float32 of its interval.

``certify(program, problem)`` runs the program on all float32 values between the
endpoints of the problem's (one-input) domain, in chunks of ``CHUNK`` points, and measures
each output against the problem's float64 reference in the project's ULP convention
(``evolve.problem.ulp32``: |approx - f(x)| / 2^(floor(log2|f(x)|) - 23)). [0, 1] holds
1,065,353,217 float32 values. The points of a chunk are made on the device from their
position in the interval (no host-to-device transfer); the outputs come back and the
reference is evaluated on the host, since a problem's reference is numpy code.

What makes the figure a certificate:

- Every float32 of the interval is evaluated (``stride=1``). A ``stride`` K > 1 evaluates
  every K-th one: a quick sampled check, reported as such, never a certificate.
- XLA's excess precision is off (``--xla_allow_excess_precision=false``, which importing
  ``evolve`` sets), checked in the environment and by a probe; otherwise ``certify``
  refuses (``UserError``).
- The evaluator's outputs are cross-checked against the plain numpy reference interpreter
  (``run_numpy``) on a sample of every chunk, the chunk's worst point included: for
  programs of exactly rounded ops they must agree bit for bit (``CertificationError``
  otherwise). For ops that are not exactly rounded (exp2, sin, ...) the two may differ in
  the last bit; the mismatches are counted in ``Certificate.sample_mismatches`` and the
  figure is that of the evaluator's semantics. XLA on CPUs flushes subnormal float32
  values to zero, numpy does not: a disagreement there also refuses the certificate, and
  ``Certificate.flushes_subnormals`` says whether the device does it.
- The reference is trusted in float64: its own error (about 1e-16 relative for a good
  float64 function) is negligible against a float32 ULP (2^-24 relative, and more), so it
  moves the ULP figure by less than 1e-8 ULP.

``verify_run`` certifies the Pareto front of a run directory and adds the columns
``certified_max_ulp``, ``certified_worst_x`` and ``certified_over_1ulp`` to its
``front.csv`` (written atomically).

One concept over 400 lines: the exhaustive float32 certificate, from the device function
that sweeps an interval to the front.csv columns that record it.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec

from evolve import excess_precision_off
from evolve.errors import UserError
from evolve.ops import OPS
from evolve.problem import Problem, float32_from_keys, float32_order_keys
from evolve.program import Program, bucket, f32_bits, to_arrays, validate
from evolve.runs import hard_points
from evolve.runs.files import CERTIFIED_COLUMNS, meets_target

CHUNK = 1 << 24  # points per device call
CHUNK_DEVICE_REFERENCE = 1 << 27  # the same, when the reference is computed on the GPU
REFERENCE_TOLERANCE = 2.0 ** -44  # device against host float64 reference, relative
WORST_INPUTS = 4  # inputs a failed certificate teaches (certify.teach), from its worst chunks
SAMPLE = 256  # outputs of each chunk and device cross-checked against the numpy reference
_HOST_BLOCK = 1 << 20  # points processed at once on the host
_LAX_TILE = 8192


class CertificationError(RuntimeError):
    """The evaluator disagreed with the numpy reference interpreter: an engine bug."""


# -- excess precision -----------------------------------------------------------------
@lru_cache(maxsize=8)
def _rounding_probe(devices: tuple) -> bool:
    """Whether a float64 product rounded to float32 stays rounded on ``devices``."""

    def f(a, b):
        exact = a.astype(jnp.float64) * b.astype(jnp.float64)
        return exact.astype(jnp.float32).astype(jnp.float64) - exact

    a = np.float32(1 + 2 ** -20)
    b = np.float32(1 + 2 ** -21)
    got = jax.jit(f)(jax.device_put(a, devices[0]), jax.device_put(b, devices[0]))
    return float(got) == float(np.float64(np.float32(np.float64(a) * b)) - np.float64(a) * b)


@lru_cache(maxsize=8)
def flushes_subnormals(devices: tuple) -> bool:
    """Whether float32 arithmetic on ``devices`` flushes subnormal values to zero (XLA on
    CPUs does, numpy does not)."""
    x = jax.device_put(np.float32(2.0 ** -140), devices[0])
    return float(jax.jit(lambda v: v * jnp.float32(3.0))(x)) == 0.0


def check_excess_precision(devices) -> None:
    """Refuse (``UserError``) unless float32 roundings are kept: the flag and a probe."""
    if not excess_precision_off():
        raise UserError(
            "XLA excess precision is on, so float32 roundings may be skipped and ULP errors "
            "read low; certify only with XLA_FLAGS=--xla_allow_excess_precision=false set "
            "before JAX starts (importing evolve sets it unless EVOLVE_NO_XLA_FLAGS is set)")
    if not _rounding_probe(tuple(devices)):
        raise UserError(
            "XLA skipped a float32 rounding although XLA_FLAGS asks it not to (was JAX "
            "started before evolve was imported?); start a new process with "
            "XLA_FLAGS=--xla_allow_excess_precision=false")


# -- float32 values in order ----------------------------------------------------------
def float32_interval(lo: float, hi: float) -> tuple[np.float32, np.float32]:
    """The smallest float32 >= ``lo`` and the largest float32 <= ``hi``."""
    a, b = np.float32(lo), np.float32(hi)
    if float(a) < lo:
        a = np.nextafter(a, np.float32(np.inf))
    if float(b) > hi:
        b = np.nextafter(b, np.float32(-np.inf))
    return a, b


def order_key(x: float) -> int:
    """The position of float32 ``x`` among all float32 values (NaN excluded): +0 is 0, the
    positive values follow their bit patterns, -0 is -1, and negative values go down
    (``evolve.problem.float32_order_keys`` of one value)."""
    return int(float32_order_keys(np.array([x], np.float32))[0])


from_keys = float32_from_keys  # the float32 values at order keys (inverse of order_key)


def domain_points(problem: Problem) -> int:
    """The number of float32 values in the problem's (one-input) domain."""
    lo, hi = float32_interval(*problem.domain[0])
    return max(order_key(hi) - order_key(lo) + 1, 0)


def _keys_range(start: int, stride: int, n: int) -> np.ndarray:
    """``from_keys(start + stride * arange(n))``, in uint32 arithmetic (fast)."""
    n_neg = min(n, -(start // stride)) if start < 0 else 0  # keys below 0: negative values
    i = np.arange(n, dtype=np.uint32)
    bits = np.empty(n, np.uint32)
    if n_neg:  # key k < 0 has bits 2^31 - 1 - k: descending
        np.subtract(np.uint32(2 ** 31 - 1 - start), i[:n_neg] * np.uint32(stride),
                    out=bits[:n_neg])
    if n > n_neg:
        first = start + stride * n_neg
        np.add(np.uint32(first), (i[n_neg:] - np.uint32(n_neg)) * np.uint32(stride),
               out=bits[n_neg:])
    return bits.view(np.float32)


def _from_keys_jax(keys):
    bits = jnp.where(keys >= 0, keys, (-keys - 1) | 0x80000000)
    return lax.bitcast_convert_type(bits.astype(jnp.uint32), jnp.float32)


# -- the device function ----------------------------------------------------------------
def _exact_f64(v):
    """float32 -> float64 keeping subnormal values (XLA on CPUs converts them to 0)."""
    bits = lax.bitcast_convert_type(v, jnp.int32)
    subnormal = (bits & 0x7F800000) == 0
    mant = (bits & 0x007FFFFF).astype(jnp.float64) * 2.0 ** -149
    tiny = jnp.where(bits < 0, -mant, mant)
    return jnp.where(subnormal, tiny, v.astype(jnp.float64))


def inverse_ulp32(y):
    """``1 / ulp32(y)`` for finite float64 ``y`` (a power of two), from the exponent bits,
    in JAX: the certificate's error in ULPs is ``err * inverse_ulp32(y)``, exactly."""
    e = (lax.bitcast_convert_type(y, jnp.int64) >> 52) & 0x7FF
    biased = jnp.minimum(2069 - e, 1023 + 149)
    return lax.bitcast_convert_type(biased << 52, jnp.float64)


@lru_cache(maxsize=8)
def _chunk_fn(n_registers: int, chunk: int, devices: tuple, pallas: bool,
              device_ref: Callable | None = None, native: bool = False) -> Callable:
    """The jitted certification of one chunk of ``chunk`` points: keys ``start + stride*i``,
    split across ``devices``.

    (program rows, start, stride, n_valid, y float64[chunk]) -> per device: max ULP error,
    its local index, inputs over 1 ULP, max abs error, the output at the worst point and
    the outputs at ``SAMPLE`` evenly spaced points (for the cross-check). Points at
    ``i >= n_valid`` (padding) are ignored.

    With ``device_ref`` (the problem's float64 JAX reference) the targets are computed on
    the device, ``y`` is not an argument, and the outputs end with the targets at the
    sampled points (checked against the host's reference).
    """
    from evolve.eval import pallas as kernels
    from evolve.eval.evaluator import _program_outputs

    n_dev = len(devices)
    per = chunk // n_dev
    n_sample = min(SAMPLE, per)
    interpret = not all(d.platform == "gpu" for d in devices)

    def local(op, args, dst, const, length, output, start, stride, n_valid, y=None):
        i = lax.axis_index("points").astype(jnp.int64) * per + jnp.arange(per, dtype=jnp.int64)
        x = _from_keys_jax(start + stride * i)
        if device_ref is not None:
            y = device_ref(x.astype(jnp.float64)[:, None]).reshape(per).astype(jnp.float64)
        if native:  # the C++ kernel: no subnormal flushing, as numpy
            from evolve.eval.cpu import kernel as native_kernel

            T = min(_LAX_TILE, per)
            out = native_kernel.outputs(op[None], args[None], dst[None], const[None],
                                        length[None], output[None], x.reshape(per // T, 1, T),
                                        n_registers=n_registers)[0]
        elif pallas:
            T = min(kernels.TILE, per)
            out = kernels.outputs(op[None], args[None], dst[None], const[None], length[None],
                                  output[None], x.reshape(per // T, 1, T),
                                  n_registers=n_registers, interpret=interpret)[0]
        else:
            T = min(_LAX_TILE, per)
            out = _program_outputs((op, args, dst, const, length, output),
                                   x.reshape(per // T, 1, T), n_registers)
        valid = i < n_valid
        err = jnp.abs(_exact_f64(out) - y)
        err = jnp.where(jnp.isnan(err), jnp.inf, err)  # NaN and Inf outputs: the worst
        ulps = jnp.where(valid, err * inverse_ulp32(y), -1.0)  # err / ulp32(y), exactly
        worst = jnp.argmax(ulps)
        stats = (ulps[worst], worst, jnp.sum(ulps > 1.0, dtype=jnp.int64),
                 jnp.max(jnp.where(valid, err, 0.0)), out[worst])
        sample = out[:: per // n_sample][:n_sample]
        extra = (y[:: per // n_sample][:n_sample],) if device_ref is not None else ()
        return tuple(v[None] for v in stats) + (sample,) + extra

    mesh = Mesh(np.array(devices), ("points",))
    spec = PartitionSpec("points")
    n_in, n_out = (9, 7) if device_ref is not None else (10, 6)
    fn = jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec(),) * 9 + (spec,) * (n_in - 9),
                       out_specs=(spec,) * n_out, check_vma=False)
    return jax.jit(fn)


# -- certify ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Certificate:
    """The result of ``certify``. ``exhaustive`` is True only for ``stride == 1``: then
    every float32 of ``interval`` was evaluated and the figures are a certificate."""

    max_ulp: float  # max error in float32 ULPs (ulp32 of the reference value); inf if NaN/Inf
    worst_x: float  # the (first) input with the largest error
    over_1ulp: int  # inputs with an error of more than 1 ULP
    max_abs: float  # max |approx - f(x)|
    points: int  # inputs evaluated
    total: int  # float32 values in the interval
    stride: int
    interval: tuple[float, float]  # float32 endpoints
    sample_checked: int  # outputs cross-checked against run_numpy
    sample_mismatches: int  # of those, not bit-identical (0 for exactly rounded ops)
    flushes_subnormals: bool  # the device flushes subnormal float32 to zero (CPU XLA)
    seconds: float
    device: str  # e.g. "2 x cpu (lax)"
    reference: str = "host"  # where f(x) was computed: "host", or "device" (sample-checked)
    # the worst input of each of the worst chunks (a device's share of a call), as
    # (x, error in ULP), largest error first, at most WORST_INPUTS: worst_x's region and
    # the next worst elsewhere in the domain (certify.teach adds those over the target)
    worst_inputs: tuple[tuple[float, float], ...] = ()

    @property
    def exhaustive(self) -> bool:
        return self.stride == 1

    def describe(self) -> str:
        """Two lines for people: the figures, and what kind of check this was."""
        lo, hi = self.interval
        head = (f"max error {self.max_ulp:.6g} ULP at x = {self.worst_x!r} "
                f"(bits {f32_bits(self.worst_x):#010x}), {self.over_1ulp:,} inputs over "
                f"1 ULP, max abs error {self.max_abs:.3e}")
        where = f"float32 in [{lo!r}, {hi!r}]"
        check = (f"{self.sample_checked:,} sampled outputs equal to the numpy reference "
                 "bit for bit" if not self.sample_mismatches else
                 f"{self.sample_mismatches:,} of {self.sample_checked:,} sampled outputs differ "
                 "from the numpy reference (ops that are not exactly rounded)")
        if self.flushes_subnormals:
            check += " (note: the device flushes subnormal float32 to zero, numpy does not)"
        if self.reference != "host":
            check += f"; reference f(x) computed {self.reference}"
        if self.exhaustive:
            kind = (f"CERTIFIED: exhaustive over all {self.total:,} {where}; excess precision "
                    f"off; {check}; {self.seconds:.1f} s on {self.device}")
        else:
            kind = (f"SAMPLED CHECK, NOT A CERTIFICATE: every {self.stride}th of the "
                    f"{self.total:,} {where} ({self.points:,} points); {check}; "
                    f"{self.seconds:.1f} s on {self.device}")
        return head + "\n" + kind


def _devices(devices, backend):
    devices = tuple(devices or jax.devices())
    if backend not in ("auto", "lax", "pallas", "native"):
        raise ValueError(f"backend must be 'auto', 'lax', 'pallas' or 'native', got {backend!r}")
    pallas = backend == "pallas" or (backend == "auto"
                                     and all(d.platform == "gpu" for d in devices))
    return devices, pallas


def _native(devices, backend) -> bool:
    """Whether to certify with the C++ CPU kernel (``evolve.eval.cpu.kernel``)."""
    if backend == "native" or (backend == "auto" and all(d.platform == "cpu" for d in devices)):
        from evolve.eval.cpu import kernel as native

        return native.available()
    return False


def _chunk_size(n: int, n_dev: int, chunk: int) -> int:
    size = bucket(n, minimum=128 * n_dev)
    return max(min(size, bucket(chunk, minimum=128 * n_dev)), 128 * n_dev)


def chunk_plan(problem: Problem, devices=None, backend: str = "auto",
               reference: str = "auto") -> tuple[int, int]:
    """(points per device call, device calls) of ``certify(program, problem)`` with these
    arguments: the shape of a full certificate's work, for estimating its time."""
    devices, pallas = _devices(devices, backend)
    on_device = reference == "device" or (reference == "auto" and pallas
                                          and problem.jax_reference is not None)
    chunk = CHUNK_DEVICE_REFERENCE if on_device and pallas else CHUNK
    total = max(domain_points(problem), 1)
    size = _chunk_size(total, len(devices), chunk)
    return size, -(-total // size)


def certify(program: Program, problem: Problem, *, stride: int = 1,
            interval: tuple[float, float] | None = None, chunk: int = CHUNK,
            devices=None, backend: str = "auto", reference: str = "auto",
            progress: Callable[[int, int], None] | None = None) -> Certificate:
    """Evaluate ``program`` on every float32 of the problem's interval (or of ``interval``)
    against the problem's float64 reference; return the max ULP error, the worst input and
    the count of inputs over 1 ULP (see the module docstring for what is checked).

    stride: evaluate every ``stride``-th float32 only (a sampled check, not a certificate).
    chunk: points per device call (a power of two; the last call is padded).
    devices, backend: as for ``Evaluator`` (default: all devices; the Pallas kernel on
        GPUs, the lax loop elsewhere). Points are split across the devices.
    progress: called as ``progress(points_done, points_total)`` after each chunk.
    reference: where the float64 reference f(x) is computed: "host" (the problem's numpy
        ``reference``), "device" (its ``jax_reference``, on the device next to the program;
        on every chunk its values at the sampled points must match the host's to 2^-44
        relative, else ``CertificationError``), or "auto": "device" on GPUs when the
        problem has a ``jax_reference``, else "host". The host reference is the slow part
        of a GPU certificate.

    The float64 reference is taken as exact: its error (~1e-16 relative) is negligible
    against float32 ULPs (2^-24 relative).
    """
    if problem.n_inputs != 1:
        raise UserError(f"problem {problem.name!r} has {problem.n_inputs} inputs; exhaustive "
                        "certification enumerates the float32 values of one input only")
    if problem.dtype != "float32":
        raise UserError(f"problem {problem.name!r} is in {problem.dtype}; certification "
                        "enumerates float32 inputs only")
    if stride < 1:
        raise UserError(f"stride must be at least 1, got {stride}")
    validate(program, problem.n_registers)
    devices, pallas = _devices(devices, backend)
    if reference not in ("auto", "host", "device"):
        raise UserError(f"reference must be 'auto', 'host' or 'device', got {reference!r}")
    if reference == "device" and problem.jax_reference is None:
        raise UserError(f"problem {problem.name!r} has no jax_reference; use reference='host'")
    on_device = reference == "device" or (reference == "auto" and pallas
                                          and problem.jax_reference is not None)
    device_ref = problem.jax_reference if on_device else None
    if on_device and chunk == CHUNK and pallas:
        chunk = CHUNK_DEVICE_REFERENCE
    check_excess_precision(devices)
    lo, hi = float32_interval(*(interval or problem.domain[0]))
    if not lo <= hi:
        raise UserError(f"the interval {interval or problem.domain[0]} holds no float32 value")
    k_lo, k_hi = order_key(lo), order_key(hi)
    total = k_hi - k_lo + 1
    n_points = -(-total // stride)
    size = _chunk_size(n_points, len(devices), chunk)
    native = not pallas and _native(devices, backend)
    fn = _chunk_fn(problem.n_registers, size, devices, pallas, device_ref, native)
    rows = to_arrays([program], length=bucket(len(program), minimum=8))
    rows = tuple(jnp.asarray(a[0]) for a in rows)
    exact = all(OPS[ins.op].exact for ins in program.instructions)

    t0 = time.perf_counter()
    starts = list(range(0, n_points, size))
    sharding = jax.sharding.NamedSharding(Mesh(np.array(devices), ("points",)),
                                          PartitionSpec("points"))
    buffers = [np.empty(size, np.float64) for _ in starts[:2]]
    stats = _Stats(program, problem, exact, devices, size, on_device, native)

    def launch(c):  # the reference on the host, then the chunk on the device (async)
        n = min(size, n_points - starts[c])
        if on_device:
            return fn(*rows, jnp.int64(k_lo + starts[c] * stride), jnp.int64(stride),
                      jnp.int64(n))
        y = buffers[c % 2]  # chunk c - 2, which used it, is finished
        for b in range(0, n, _HOST_BLOCK):  # blocks: big fresh arrays are slow to fault in
            x = _keys_range(k_lo + (starts[c] + b) * stride, stride, min(_HOST_BLOCK, n - b))
            y[b: b + len(x)] = problem.reference(x.astype(np.float64)[:, None]).reshape(-1)
        y[n:] = 0.0
        return fn(*rows, jnp.int64(k_lo + starts[c] * stride), jnp.int64(stride), jnp.int64(n),
                  jax.device_put(y, sharding))

    pending = launch(0)
    for c, first in enumerate(starts):
        nxt = launch(c + 1) if c + 1 < len(starts) else None  # overlaps the device's work
        stats.add(pending, k_lo + first * stride, stride, min(size, n_points - first))
        pending = nxt
        if progress is not None:
            progress(min(first + size, n_points), n_points)
    d = devices[0].platform
    return Certificate(
        max_ulp=stats.max_ulp, worst_x=stats.worst_x, over_1ulp=stats.over, max_abs=stats.max_abs,
        points=n_points, total=total, stride=stride, interval=(float(lo), float(hi)),
        sample_checked=stats.checked, sample_mismatches=stats.mismatches,
        flushes_subnormals=stats.flush, worst_inputs=stats.worst_inputs(),
        seconds=time.perf_counter() - t0,
        reference=(f"on the device ({stats.ref_checked:,} values checked against the host's, "
                   f"max relative difference {stats.ref_diff:.1e})" if on_device else "host"),
        device=f"{len(devices)} x {d} "
               f"({'Pallas kernel' if pallas else 'C++ kernel' if native else 'lax loop'})")


class _Stats:
    """The running maxima and counts over chunks, and the cross-check."""

    def __init__(self, program, problem, exact, devices, size, device_ref=False,
                 native=False):
        self.program, self.problem, self.exact = program, problem, exact
        self.device_ref = device_ref
        self.ref_checked, self.ref_diff = 0, 0.0
        self.flush = not native and flushes_subnormals(tuple(devices))
        self.per = size // len(devices)
        self.n_sample = min(SAMPLE, self.per)
        self.max_ulp, self.worst_x, self.max_abs = -1.0, float("nan"), 0.0
        self.over = self.checked = self.mismatches = 0
        self.chunk_worst: list[tuple[float, float]] = []  # (error, x) of each device's chunk

    def worst_inputs(self) -> tuple[tuple[float, float], ...]:
        """``Certificate.worst_inputs``: (x, error) of the ``WORST_INPUTS`` worst chunks."""
        top = sorted(self.chunk_worst, key=lambda e: -e[0])[:WORST_INPUTS]
        return tuple((x, u) for u, x in top)

    def add(self, result, start: int, stride: int, n: int) -> None:
        """Fold in one chunk's device results (keys ``start + stride * i``, ``i < n``)."""
        max_ulp, worst, over, max_abs, out_worst, sample = (np.asarray(r) for r in result[:6])
        base = np.arange(len(max_ulp), dtype=np.int64) * self.per
        d = int(np.argmax(max_ulp))  # the first device holding the max: the smallest key
        worst_i = base + worst
        if max_ulp[d] > self.max_ulp:
            self.max_ulp = float(max_ulp[d])
            self.worst_x = float(from_keys(start + stride * worst_i[d]))
        xs = from_keys(start + stride * worst_i)
        self.chunk_worst += [(float(u), float(x)) for u, x, i in zip(max_ulp, xs, worst_i)
                             if i < n and u > 0]
        if len(self.chunk_worst) > 4 * WORST_INPUTS:  # keep the list short
            self.chunk_worst = sorted(self.chunk_worst, key=lambda e: -e[0])[:WORST_INPUTS]
        self.over += int(over.sum())
        self.max_abs = max(self.max_abs, float(max_abs.max()))
        step = self.per // self.n_sample
        idx = (base[:, None] + step * np.arange(self.n_sample, dtype=np.int64)).reshape(-1)
        idx = np.concatenate([idx, worst_i])
        got = np.concatenate([sample.reshape(-1), out_worst])
        keep = idx < n
        self.cross_check(from_keys(start + stride * idx[keep]), got[keep])
        if self.device_ref:
            ys = np.asarray(result[6]).reshape(-1)
            keep = keep[: len(ys)]
            self.check_reference(from_keys(start + stride * idx[: len(ys)][keep]), ys[keep])

    def check_reference(self, x: np.ndarray, y_device: np.ndarray) -> None:
        """The device's float64 reference against the host's at sampled points."""
        y_host = np.asarray(self.problem.reference(x.astype(np.float64)[:, None]),
                            np.float64).reshape(-1)
        with np.errstate(all="ignore"):
            rel = np.abs(y_device - y_host) / np.abs(y_host)
        rel = np.where(y_device == y_host, 0.0, rel)
        worst = float(np.max(rel)) if len(rel) else 0.0
        self.ref_checked += len(x)
        self.ref_diff = max(self.ref_diff, worst)
        if not worst <= REFERENCE_TOLERANCE:
            i = int(np.argmax(np.where(np.isnan(rel), np.inf, rel)))
            raise CertificationError(
                f"the device's float64 reference of {self.problem.name!r} differs from the "
                f"host's at x = {float(x[i])!r}: {float(y_device[i])!r} against "
                f"{float(y_host[i])!r} (relative {worst:.2e} > {REFERENCE_TOLERANCE:.1e}); "
                "certify with reference='host' (`evolve verify --reference host`)")

    def cross_check(self, x: np.ndarray, got: np.ndarray) -> None:
        from evolve.eval.evaluator import run_numpy

        ref = run_numpy(self.program, x, self.problem.n_registers, np.float32)
        same = (ref.view(np.uint32) == got.view(np.uint32)) | (np.isnan(ref) & np.isnan(got))
        bad = np.flatnonzero(~same)
        self.checked += len(x)
        self.mismatches += len(bad)
        if self.exact and len(bad):
            i = bad[0]
            tiny = np.finfo(np.float32).tiny
            flushed = self.flush and bool(np.any((np.abs(x[bad]) < tiny) | (np.abs(ref[bad]) < tiny)))
            why = ("the device flushes subnormal float32 values to zero (XLA on CPUs does) and "
                   "numpy does not: certify on a GPU, or on an interval whose inputs and "
                   "results are not subnormal" if flushed else "this is a bug in evolve")
            raise CertificationError(
                f"the evaluator disagrees with the numpy reference interpreter at "
                f"{len(bad)} of {len(x)} sampled points, e.g. x = {float(x[i])!r}: "
                f"{float(got[i])!r} against {float(ref[i])!r}; {why}; no certificate is given")


# -- the front of a run ---------------------------------------------------------------------
def read_front(run_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    """front.csv of ``run_dir``: its header and rows; ``UserError`` if missing or empty."""
    path = Path(run_dir) / "front.csv"
    if not path.is_file():
        raise UserError(f"{str(path)!r} is missing: the run has no front yet; "
                        f"`evolve resume {run_dir}` runs it")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (csv.Error, UnicodeDecodeError) as e:
        raise UserError(f"{str(path)!r} is not a readable CSV file ({type(e).__name__}); "
                        "the run directory is damaged") from None
    missing = [c for c in ("error", "cost", "program") if c not in header]
    if missing:
        raise UserError(f"{str(path)!r} lacks the columns {missing}; it is not an evolve "
                        "front.csv")
    if not rows:
        raise UserError(f"{str(path)!r} has no programs (an empty front); run more "
                        f"generations with `evolve resume {run_dir} --generations N`")
    for i, row in enumerate(rows):
        for column in ("error", "cost", "certified_max_ulp"):
            cell = row.get(column)
            absent = cell is None and column != "certified_max_ulp"
            if absent or (cell and not _is_number(cell)):
                raise UserError(f"{str(path)!r} row {i}: {column} is {str(cell)[:40]!r}, not a "
                                "number; the run directory is damaged")
        if not isinstance(row.get("program"), str):
            raise UserError(f"{str(path)!r} row {i} has no program; the run directory is "
                            "damaged")
    return header, rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def row_error(row: dict[str, str], problem: Problem) -> float:
    """A front row's error: the certified max ULP where there is one (for max_ulp problems),
    else the training error."""
    certified = row.get("certified_max_ulp") or ""
    if problem.error == "max_ulp" and certified:
        return float(certified)
    return float(row["error"])


def certification_order(rows: list[dict[str, str]], problem: Problem) -> list[int]:
    """Rows to certify first: those meeting the target, cheapest first; then the others
    from the most accurate down."""
    meets = [i for i, r in enumerate(rows) if problem.meets_target(float(r["error"]))]
    meets.sort(key=lambda i: (float(rows[i]["cost"]), float(rows[i]["error"])))
    rest = sorted((i for i in range(len(rows)) if i not in set(meets)),
                  key=lambda i: (float(rows[i]["error"]), float(rows[i]["cost"])))
    return meets + rest


def write_front(run_dir: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    """Rewrite front.csv atomically (temporary file, fsync, rename)."""
    from evolve.runs.checkpoint import atomic_write

    columns = header + [c for c in ("meets_target", *CERTIFIED_COLUMNS) if c not in header]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(Path(run_dir) / "front.csv", buf.getvalue().encode())


def certificate_cells(c: Certificate) -> dict[str, str]:
    """The certified_* cells of a front row (floats by repr, as in front.csv)."""
    return {"certified_max_ulp": repr(float(c.max_ulp)), "certified_worst_x": repr(c.worst_x),
            "certified_over_1ulp": str(int(c.over_1ulp))}


def teaching(row: dict[str, str], cert: Certificate) -> str:
    """Why a hard point joins the training points: the program whose certificate missed
    there (``certify.teach``)."""
    return (f"certificate of the front program of cost {row.get('cost', '?')}: "
            f"{cert.max_ulp:.6g} ULP at this input")


def record_certificate(row: dict[str, str], cert: Certificate, problem: Problem) -> None:
    """Write ``cert`` into its front.csv ``row``: the certified_* cells and
    ``meets_target`` (the caller writes the file)."""
    row.update(certificate_cells(cert))
    row["meets_target"] = meets_target(float(row["error"]), cert.max_ulp, problem.target)


def teach_points(run_dir: Path, row: dict[str, str], cert: Certificate,
                 problem: Problem) -> list[hard_points.HardPoint]:
    """With ``certify.teach``: a certificate over the target adds its worst input, and the
    worst input of each other of its worst chunks that is over the target too (at most
    ``WORST_INPUTS`` in all: ``Certificate.worst_inputs``), to the run's hard points
    (``evolve.runs.hard_points``); the points added, none for a certificate under the
    target. The caller holds the run's lock."""
    if cert.max_ulp < problem.target:
        return []
    xs = [cert.worst_x] + [x for x, u in cert.worst_inputs
                           if u >= problem.target and x != cert.worst_x]
    return hard_points.add(run_dir, [(x,) for x in xs[:WORST_INPUTS]], teaching(row, cert))


def verify_run(run_dir: Path, limit: int | None = None, stride: int = 1,
               on_start: Callable[[int, dict, int, int], None] | None = None,
               progress: Callable[[int, int], None] | None = None,
               **kwargs) -> list[tuple[int, Certificate]]:
    """Certify the front of ``run_dir`` (the first ``limit`` rows of
    ``certification_order``); return (row index, Certificate) pairs in that order.

    With ``stride == 1`` the certified_* columns of front.csv are filled in for those rows
    (other rows keep what they had), atomically and under the run's lock. A ``stride`` > 1
    is a sampled check: front.csv is left alone. ``on_start(k, row, index, n)`` is called
    before the k-th of n rows; ``kwargs`` go to ``certify``.
    """
    from evolve.catalog import load_problem
    from evolve.runs.driver import check_devices, open_run
    from evolve.runs.files import Lock, writing
    from evolve.text import ParseError, parse_program

    run_dir = Path(run_dir)
    _, config = open_run(run_dir)
    check_devices()
    problem = load_problem(config.problem)
    header, rows = read_front(run_dir)
    order = certification_order(rows, problem)[: limit if limit is not None else None]
    lock = Lock(run_dir) if stride == 1 else None
    try:
        results = []
        for k, i in enumerate(order):
            try:
                program = parse_program(rows[i]["program"], n_registers=problem.n_registers)
            except ParseError as e:
                raise UserError(f"front.csv row {i} holds no valid program (line {e.line}, "
                                f"column {e.column}: {e.detail}); the run directory is "
                                "damaged") from None
            if on_start is not None:
                on_start(k, rows[i], i, len(order))
            cert = certify(program, problem, stride=stride, progress=progress, **kwargs)
            results.append((i, cert))
            if stride == 1:
                record_certificate(rows[i], cert, problem)
                with writing(run_dir):
                    write_front(run_dir, header, rows)  # after each row: a stop keeps it
                if config.certify.teach:
                    teach_points(run_dir, rows[i], cert, problem)
        return results
    finally:
        if lock is not None:
            lock.release()
