"""Linear scaling (Keijzer 2003): a model's error is that of ``a * f + b``, with ``a`` and
``b`` the least-squares fit of its outputs ``f`` to the targets ``y``.

The search then does not spend nodes or generations on the output's scale and offset:
``f = sin(x)`` scores as ``3 sin(x) + 2`` would. Everything here is a pure function of
outputs and targets (float64, two-pass: centred sums, so that near-exact fits keep their
digits), and ``scaled`` turns a program and its ``a, b`` into the program of the scaled
model, so that every exporter, the reference interpreter and the recovery check see the
model that was scored. A constant ``f`` (zero variance) gets ``a = 0, b = mean(y)``.
"""

from __future__ import annotations

import numpy as np

from evolve.ops import CONST, OPCODE
from evolve.program import Instruction, Program


def linear_fit(out: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares ``a, b`` of ``a * out + b`` against ``y`` for each row of ``out``
    ([N] or [P, N]): float64 arrays of shape [] or [P]. Rows with a non-finite output or
    zero variance get ``a = 0, b = mean(y)``."""
    f = np.asarray(out, np.float64)
    y = np.asarray(y, np.float64).reshape(-1)
    with np.errstate(all="ignore"):
        f_mean = np.mean(f, axis=-1, keepdims=True)
        fc = f - f_mean
        yc = y - np.mean(y)
        var = np.sum(fc * fc, axis=-1)
        a = np.sum(fc * yc, axis=-1) / var
        ok = np.isfinite(a) & (var > 0)
        a = np.where(ok, a, 0.0)
        b = np.mean(y) - np.where(ok, a * f_mean[..., 0], 0.0)
    return a, b


def scaled_mse(out: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The mean squared error of the best ``a * out + b`` against ``y``, for each row of
    ``out`` [P, N] (float64 [P]); inf where an output is NaN or infinite."""
    f = np.asarray(out, np.float64)
    y = np.asarray(y, np.float64).reshape(-1)
    a, b = linear_fit(f, y)
    with np.errstate(all="ignore"):
        r = y - (a[..., None] * f + b[..., None])
        mse = np.mean(r * r, axis=-1)
    finite = np.all(np.isfinite(f), axis=-1) & np.isfinite(mse)
    return np.where(finite, mse, np.inf)


def scaled(program: Program, a: float, b: float, n_registers: int) -> Program:
    """The program of ``a * program + b``, its literals rounded to float32: ``rK = a;
    rO = mul(rO, rK); rK = b; rO = add(rO, rK)`` appended, with ``rK`` a register other
    than the output ``rO``. As Operon writes a scaled model, ``a`` is left out where it
    is 1 and ``b`` where it is 0; ``a = 0`` gives the constant ``b``."""
    a32, b32 = float(np.float32(a)), float(np.float32(b))
    out, spare = program.output, (program.output + 1) % n_registers
    if a32 == 0.0:
        return Program((Instruction(CONST, out, (), b32),), out)
    tail = []
    if a32 != 1.0:
        tail += [Instruction(CONST, spare, (), a32), Instruction(OPCODE["mul"], out, (out, spare))]
    if b32 != 0.0:
        tail += [Instruction(CONST, spare, (), b32), Instruction(OPCODE["add"], out, (out, spare))]
    return Program(program.instructions + tuple(tail), out)


def standardized(out: np.ndarray, bits: int = 16) -> np.ndarray:
    """Outputs [P, N] as linear scaling sees them, for fingerprints: each row centred,
    divided by its standard deviation, its sign chosen so that the first value that is
    not ~0 is positive, and rounded to multiples of 2^-bits (float32). ``f`` and
    ``a * f + b`` (a != 0) then share their values (up to float32 rounding of ``f``'s
    arithmetic, which the rounding absorbs but at the edges of its steps); every
    constant row becomes zeros. Rows with a NaN or an infinity are returned as they are."""
    f = np.asarray(out, np.float64)
    with np.errstate(all="ignore"):
        z = f - np.mean(f, axis=-1, keepdims=True)
        sd = np.sqrt(np.mean(z * z, axis=-1, keepdims=True))
        z = np.where(sd > 0, z / np.where(sd > 0, sd, 1.0), 0.0)
        q = np.round(z * 2.0**bits) / 2.0**bits
    first = np.argmax(np.abs(q) > 0, axis=-1)
    sign = np.where(np.take_along_axis(q, first[..., None], -1) < 0, -1.0, 1.0)
    finite = np.all(np.isfinite(f), axis=-1, keepdims=True)
    return np.where(finite, (q * sign) + 0.0, f).astype(np.float32)
