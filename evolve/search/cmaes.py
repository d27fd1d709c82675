"""Literals fitted to a program's own float32 error: a separable CMA-ES, many programs at once.

The Levenberg-Marquardt fit (``evolve.search.fitting``) works in float64 on a smooth
objective, where a float32 program's roundings do not exist: it fits the function, and
rounding its literals to float32 afterwards can cost an ULP, or move a constant that only
exists to make a product exact (a split, a power of two) to a value that breaks it.
AutoNumerics-Zero fits coefficients with CMA-ES on the max error of the program as it runs.
``polish`` does that after the LM fit: each program's literals start from the fitted ones
and are searched, in float32 and on the problem's own error measure, by a separable
CMA-ES (Ros and Hansen 2008: a diagonal covariance, so the update is elementwise and every
program of a generation is one batch of arrays); a program keeps its best literals, which
are never worse than the ones it started from.

Steps are relative: literal k moves by ``sigma * |c0_k|`` at first (``CMAParams.sigma``,
about 17 float32 ULPs), so a coefficient and a constant of 12288 are searched on their own
scales, and a literal of 0 stays 0.

One concept, the polishing search; the caller evaluates (``evaluate``: candidate literals
[P, lambda, K] -> errors [P, lambda]) and passes the random stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CMAParams:
    """How literals are polished (``search.fit_polish``)."""

    iterations: int = 16  # generations of the CMA-ES per program
    popsize: int = 8  # candidates a generation (lambda); the best half recombine
    sigma: float = 2e-6  # first step, relative to each literal's magnitude


def polish(evaluate: Callable[[np.ndarray], np.ndarray], c0: np.ndarray, active: np.ndarray,
           rng: np.random.Generator, params: CMAParams = CMAParams()
           ) -> tuple[np.ndarray, np.ndarray]:
    """The best literals found for each of P programs, and their errors.

    ``c0``: float32 [P, K], the literals to start from (each program's own, in its slots);
    ``active``: bool [P, K], which slots are literals (the others stay as they are);
    ``evaluate(c)``: float64 errors [P, n] of the programs with literals ``c`` float32
    [P, n, K] (NaN: the worst). Returns (float32 [P, K], float64 [P]): at most the error of
    ``c0`` for each program, ``c0`` itself where nothing was better."""
    c0 = np.asarray(c0, np.float32)
    P, K = c0.shape
    active = np.asarray(active, bool)
    best_c = c0.copy()
    best_e = _errors(evaluate, c0[:, None, :])[:, 0]
    if P == 0 or K == 0 or not active.any() or params.iterations <= 0:
        return best_c, best_e
    lam = max(int(params.popsize), 2)
    mu = lam // 2
    w = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    w /= w.sum()
    mueff = 1.0 / np.sum(w * w)
    n = np.maximum(active.sum(1), 1).astype(np.float64)  # [P]: each program's dimension
    cs = (mueff + 2) / (n + mueff + 5)
    ds = 1 + cs + 2 * np.maximum(0.0, np.sqrt((mueff - 1) / (n + 1)) - 1)
    chi = np.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
    cmu = np.minimum(1.0, mueff / ((n + 2) ** 2 + mueff) * (n + 2) / 3)  # separable rank-mu
    scale = np.where(active, np.abs(c0.astype(np.float64)), 0.0)
    mean = np.zeros((P, K))  # in steps of ``scale``: literal = c0 + scale * y
    sigma = np.full(P, float(params.sigma))
    diag = np.ones((P, K))
    path = np.zeros((P, K))
    for _ in range(params.iterations):
        z = rng.standard_normal((P, lam, K)) * active[:, None, :]
        y = mean[:, None, :] + sigma[:, None, None] * np.sqrt(diag)[:, None, :] * z
        cand = np.where(active[:, None, :], c0[:, None, :] + scale[:, None, :] * y,
                        c0[:, None, :]).astype(np.float32)
        e = _errors(evaluate, cand)
        order = np.argsort(e, axis=1, kind="stable")
        top = order[:, 0]
        better = e[np.arange(P), top] < best_e
        best_c[better] = cand[np.arange(P), top][better]
        best_e[better] = e[np.arange(P), top][better]
        chosen = np.take_along_axis(z, order[:, :mu, None], axis=1)  # [P, mu, K]
        zw = np.einsum("m,pmk->pk", w, chosen)
        mean = mean + sigma[:, None] * np.sqrt(diag) * zw
        path = (1 - cs)[:, None] * path + np.sqrt(cs * (2 - cs) * mueff)[:, None] * zw
        sigma = sigma * np.exp(np.minimum(1.0, (cs / ds) * (np.linalg.norm(path, axis=1) / chi
                                                             - 1)))
        diag = (1 - cmu)[:, None] * diag + cmu[:, None] * diag * np.einsum(
            "m,pmk->pk", w, chosen * chosen)
        diag = np.where(active, np.clip(diag, 1e-12, 1e12), 1.0)
    return best_c, best_e


def _errors(evaluate, cand: np.ndarray) -> np.ndarray:
    e = np.asarray(evaluate(cand), np.float64).reshape(cand.shape[:2])
    return np.where(np.isnan(e), np.inf, e)
