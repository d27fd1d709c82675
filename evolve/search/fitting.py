"""Constant fitting: the literals of a batch of programs fitted at once on the device.

For each program, the values of its ``const`` instructions are fitted in float64 on a
set of fitting points by Levenberg-Marquardt steps on the scaled residual (for ULP
problems, the error in ULPs), with Lawson's iteratively reweighted least squares
turning the least-squares fit into an approximation of the minimax fit. The Jacobian
comes from ``jax.jacfwd`` through the same interpreter loop the evaluator runs. The
fitted values are rounded to float32 by the caller, which then evaluates the programs
exactly as usual; the best iterate by max scaled error is kept.

With ``linear_scaling`` (problems whose error is that of ``a*f + b``, ``evolve.scaling``)
the residual is that of the scaled model, ``a`` and ``b`` re-fitted by least squares at
every evaluation (variable projection): the literals are fitted for the error the search
scores, and none of them is spent on the output's scale or offset.

On CPUs programs run one after another (``lax.map``), so each instruction is one real
branch on its opcode; on GPUs they run side by side (``vmap``). The batch is sharded
across devices like the evaluator's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec

from evolve.eval.evaluator import _tile_program
from evolve.ops import CONST, OPCODE, OPS
from evolve.program import ProgramBatch, bucket


@dataclass(frozen=True)
class FitParams:
    """How constants are fitted."""

    iterations: int = 12  # Levenberg-Marquardt steps
    lawson: bool = True  # reweight towards the minimax fit
    damping: float = 1e-8  # initial Levenberg-Marquardt damping (columns scaled to 1)
    linear_scaling: bool = False  # fit a*f + b, a and b by least squares (Problem's option)


def _fit_one(op, args, dst, const, length, output, slots, n_slots, xt, y, scale, *,
             n_registers, params: FitParams, opset=None):
    """Fit ``const[slots[:n_slots]]`` of one program; returns (const, max scaled error)."""
    K = slots.shape[0]
    active = jnp.arange(K, dtype=n_slots.dtype) < n_slots

    def residual(c):
        full = const.at[slots].set(c, mode="drop")  # padding slots point past the end
        out = _tile_program(op, args, dst, full, length, output, xt, n_registers, opset)
        if params.linear_scaling:
            out = _scaled(out, y)
        return (out - y) * scale

    def max_err_of(r):  # the max scaled error of a residual vector
        e = jnp.abs(r)
        return jnp.where(jnp.all(jnp.isfinite(e)), jnp.max(e), jnp.inf)

    c0 = jnp.take(const, slots, mode="fill", fill_value=0.0)
    M = y.shape[0]

    def step(carry, _):
        c, r, w, lam, best_c, best_err = carry
        J = jnp.where(active[None, :], jax.jacfwd(residual)(c), 0.0)
        sw = jnp.sqrt(w)
        Jw, rw = J * sw[:, None], r * sw
        # Scaled columns and a QR/SVD solve of the damped system keep ill-conditioned
        # bases (monomials on [0, 1]) accurate, where normal equations would not be.
        norms = jnp.sqrt(jnp.sum(Jw * Jw, axis=0))
        norms = jnp.where(active & (norms > 0), norms, 1.0)
        Js = Jw / norms[None, :]
        aug = jnp.concatenate([Js, jnp.sqrt(lam) * jnp.eye(K)], axis=0)
        rhs = jnp.concatenate([rw, jnp.zeros(K)])
        # The damped system has full rank (its last K rows are sqrt(lam) I, on columns of
        # norm 1 or 0), so a Householder QR solves it as accurately as an SVD, for half
        # the time of the whole fit's SVDs.
        q, rq = jnp.linalg.qr(aug)
        delta = lax.linalg.triangular_solve(rq, (q.T @ rhs)[:, None], left_side=True,
                                            lower=False)[:, 0] / norms
        new_c = c - jnp.where(active, delta, 0.0)
        old_obj = jnp.sum(rw * rw)
        new_r = residual(new_c)
        new_obj = jnp.sum(new_r * new_r * w)
        ok = jnp.isfinite(new_obj) & (new_obj <= old_obj) & jnp.all(jnp.isfinite(new_c))
        c = jnp.where(ok, new_c, c)
        lam = jnp.where(ok, lam * 0.3, lam * 10.0)
        r = jnp.where(ok, new_r, r)
        if params.lawson:
            a = jnp.abs(r)
            w_new = w * (a / jnp.maximum(jnp.max(a), 1e-300))
            w_new = w_new / jnp.maximum(jnp.sum(w_new), 1e-300) * M
            w = jnp.where(jnp.all(jnp.isfinite(w_new)) & ok, jnp.maximum(w_new, 1e-12), w)
        err = max_err_of(r)  # r is residual(c): computed once, carried to the next step
        better = err < best_err
        return (c, r, w, lam, jnp.where(better, c, best_c),
                jnp.where(better, err, best_err)), None

    r0 = residual(c0)
    init = (c0, r0, jnp.ones(M), jnp.asarray(params.damping), c0, max_err_of(r0))
    (_, _, _, _, best_c, best_err), _ = lax.scan(step, init, None, length=params.iterations)
    return const.at[slots].set(best_c, mode="drop"), best_err


def _scaled(out, y):
    """``a * out + b`` with ``a, b`` the least-squares fit to ``y`` (``a = 0`` for a
    constant ``out``), differentiable: the variable-projection residual's model."""
    fc = out - jnp.mean(out)
    var = jnp.sum(fc * fc)
    ok = var > 0
    a = jnp.where(ok, jnp.sum(fc * (y - jnp.mean(y))) / jnp.where(ok, var, 1.0), 0.0)
    return a * fc + jnp.mean(y)


@dataclass
class ConstantFitter:
    """Fits the literals of batches of programs to targets on fitting points."""

    n_registers: int
    n_inputs: int = 1
    params: FitParams = field(default_factory=FitParams)
    devices: list | None = None
    chunk: int = 32  # programs per device per compiled call
    ops: tuple[str, ...] | None = None  # the ops programs may use (default: every op):
    #                                     the compiled fit has a branch for each only
    trace_count: int = field(default=0, init=False)

    def __post_init__(self):
        self.devices = list(self.devices or jax.devices())
        self._opset = (None if self.ops is None
                       else tuple(sorted({OPCODE[o] for o in self.ops} | {CONST})))
        self._vectorize = all(d.platform == "gpu" for d in self.devices)
        mesh = Mesh(np.array(self.devices), ("programs",))
        spec = PartitionSpec("programs")
        self._fit = jax.jit(jax.shard_map(
            self._impl, mesh=mesh, in_specs=(spec,) * 8 + (PartitionSpec(),) * 3,
            out_specs=(spec, spec), check_vma=False))

    def _impl(self, op, args, dst, const, length, output, slots, n_slots, xt, y, scale):
        self.trace_count += 1
        f = partial(_fit_one, xt=xt, y=y, scale=scale, n_registers=self.n_registers,
                    params=self.params, opset=self._opset)
        programs = (op, args, dst, const, length, output, slots, n_slots)
        if self._vectorize:  # GPUs: all programs at once (each op computed, one selected)
            return jax.vmap(f)(*programs)

        def fit_or_skip(p):  # the chunk's padding rows (no slots) skip the fit's steps
            n_slots, const = p[7], p[3]
            return lax.cond(n_slots > 0, lambda: f(*p),
                            lambda: (const.astype(xt.dtype), jnp.asarray(jnp.inf, xt.dtype)))

        return lax.map(fit_or_skip, programs)  # CPUs: one real branch per instruction

    def _fit_rows(self, batch: ProgramBatch, rows: np.ndarray, is_const: np.ndarray, K: int,
                  x: np.ndarray, y: np.ndarray, scale: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """The fit of the programs ``rows`` of ``batch`` with ``K`` literal slots each:
        (const float64 [len(rows), L], max scaled error [len(rows)])."""
        P, L = len(rows), batch.op.shape[1]
        lit = is_const[rows]
        n_slots = lit.sum(1).astype(np.int32)
        # each row's literal positions in order, then L (past the end: dropped by the fit)
        k = min(K, L)
        slots = np.full((P, K), L, np.int32)
        slots[:, :k] = np.argsort(~lit, axis=1, kind="stable")[:, :k]
        slots[np.arange(K)[None, :] >= n_slots[:, None]] = L
        n_dev = len(self.devices)
        chunk = self.chunk * n_dev
        size = -(-P // chunk) * chunk
        Lb = bucket(L, minimum=8)

        def pad(a, columns=False):
            widths = [(0, size - P)] + [(0, 0)] * (a.ndim - 1)
            if columns:
                widths[1] = (0, Lb - L)
            return np.pad(a, widths)

        x = np.asarray(x, np.float64)
        x = x[:, None] if x.ndim == 1 else x
        data = (x.T.copy(), np.asarray(y, np.float64), np.asarray(scale, np.float64))
        arrays = (pad(batch.op[rows], True), pad(batch.args[rows], True),
                  pad(batch.dst[rows], True), pad(batch.const[rows].astype(np.float64), True),
                  pad(batch.length[rows]), pad(batch.output[rows]), pad(slots), pad(n_slots))
        parts = [self._fit(*(a[i: i + chunk] for a in arrays), *data)
                 for i in range(0, size, chunk)]
        const = np.concatenate([np.asarray(c) for c, _ in parts])
        err = np.concatenate([np.asarray(e) for _, e in parts])
        return const[:P, :L], err[:P]

    def fit(self, batch: ProgramBatch, x: np.ndarray, y: np.ndarray,
            scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fitted literals for every program of ``batch``.

        Returns ``const`` (float32 [P, L], the batch's const array with literals replaced
        by their fitted values rounded to float32) and the float64 max scaled error of
        the fit on the fitting points (inf where fitting failed).
        """
        P, L = batch.op.shape
        live = np.arange(L)[None, :] < batch.length[:, None]
        if self._opset is not None:
            stray = np.setdiff1d(batch.op[live], self._opset)
            if len(stray):
                raise ValueError(f"the batch uses ops {[OPS[int(o)].name for o in stray]} "
                                 f"outside this fitter's ops {list(self.ops)}")
        is_const = (batch.op == CONST) & live
        n_slots = is_const.sum(1).astype(np.int32)
        # Few shapes, few compilations: slots in {8, 16, ...}, programs in fixed chunks.
        # Each program is fitted with its own bucket of slots (most need 8): one program
        # with 9 literals must not make the whole batch pay for 16.
        width = np.array([bucket(int(k), minimum=8) for k in range(L + 1)])[n_slots]
        const = np.zeros((P, L))
        err = np.full(P, np.inf)
        for K in np.unique(width):
            rows = np.flatnonzero(width == K)
            const[rows], err[rows] = self._fit_rows(batch, rows, is_const, int(K), x, y,
                                                    scale)
        with np.errstate(over="ignore", invalid="ignore"):
            fitted = np.where(is_const, const, batch.const).astype(np.float32)
        finite = np.isfinite(fitted).all(1)
        fitted[~finite] = batch.const[~finite]
        return fitted, np.where(finite, err, np.inf)
