"""Model choice: which member of a regression run's Pareto front of (loss, size) to report.

A symbolic-regression run ends with a front, from a constant to the largest model that
fits the training points best. What `evolve export` and `evolve run`'s summary hand the
user is one member of it, picked by a rule (PySR's ``model_selection``, Operon's choice
of model): ``RULES``, judged on held-out points by ``scripts/bench_sr.py --summary``
(docs/symbolic-regression.md, "Model choice").

- "bic" (the default): the lowest Bayesian information criterion ``n log(loss) +
  size log(n)``, ``n`` the training points, each node a parameter.
- "accurate": the smallest model within 1.5x of the lowest training loss.
- "best" (PySR's rule): among those, the one with the largest drop of log-loss per
  added node.
- "lowest": the lowest training loss (the smallest of equals): overfits noisy data.

Losses are floored at ``LOSS_FLOOR`` (1e-12: under float32 evaluation, all losses below
it are exact fits), so exact fits compete on size alone under every rule.
Problems whose error is not "nmse" keep their own choice: the cheapest program meeting
the target (``evolve.results.export.choose_row``).
"""

from __future__ import annotations

import numpy as np

RULES = ("accurate", "best", "lowest", "bic")
# The default of "nmse" problems: chosen on the benchmark run of 2026-12-08, where
# on the same fronts it recovered as many cells as "accurate" without noise and more at
# noise 0.01, with smaller models (docs/symbolic-regression.md, "Model choice")
REGRESSION_RULE = "bic"
LOSS_FLOOR = 1e-12


def choose_model(errors, sizes, rule: str = REGRESSION_RULE, n: int | None = None) -> int:
    """The index into ``errors``/``sizes`` (a front's training losses and model sizes) of
    the model ``rule`` picks; ``n``, the number of training points, for "bic". NaN or
    infinite losses are never picked while a finite one exists."""
    if rule not in RULES:
        raise ValueError(f"unknown model choice {rule!r}; choose from {', '.join(RULES)}")
    errors = np.asarray(errors, np.float64)
    sizes = np.asarray(sizes, np.float64)
    if errors.ndim != 1 or errors.shape != sizes.shape or errors.size == 0:
        raise ValueError(f"errors and sizes must be two 1-d arrays of one nonzero length, "
                         f"got shapes {errors.shape} and {sizes.shape}")
    order = np.lexsort((errors, sizes))  # by size, then loss
    loss = np.where(np.isnan(errors), np.inf, np.maximum(errors, LOSS_FLOOR))[order]
    size = sizes[order]
    best_loss = loss.min()
    if not np.isfinite(best_loss):
        return int(order[0])
    if rule == "accurate":
        return int(order[np.flatnonzero(loss <= 1.5 * best_loss)[0]])
    if rule == "lowest":
        return int(order[np.flatnonzero(loss == best_loss)[0]])
    if rule == "bic":
        if n is None or n < 1:
            raise ValueError("model choice 'bic' needs n, the number of training points (>= 1)")
        with np.errstate(all="ignore"):
            bic = np.where(np.isfinite(loss), n * np.log(loss) + size * np.log(n), np.inf)
        return int(order[int(np.argmin(bic))])
    # "best": walk the front by size; the score of a model is the drop of log-loss from
    # the previous finite one over the nodes added
    best, best_score, prev = int(order[0]), -np.inf, None
    for k in range(len(order)):
        if not np.isfinite(loss[k]):
            continue
        score = 0.0 if prev is None else -(np.log(loss[k]) - np.log(loss[prev])) / max(
            size[k] - size[prev], 1.0)
        prev = k
        if loss[k] <= 1.5 * best_loss and score > best_score:
            best, best_score = int(order[k]), score
    return best
