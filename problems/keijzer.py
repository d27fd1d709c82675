"""Keijzer-4, -6 and -11 (Keijzer 2003, "Improving symbolic regression with interval
arithmetic and linear scaling"), with the published training and test designs.

- Keijzer-4: x^3 e^-x cos(x) sin(x) (sin^2(x) cos(x) - 1), trained on the grid 0:0.05:10
  (201 points), tested on 0.05:0.05:10.05.
- Keijzer-6: the harmonic number sum_{i=1}^{x} 1/i, trained on x = 1..50, tested on
  x = 1..120 (extrapolation). Between integers the reference is the harmonic number of a
  real x (mpmath.harmonic); no finite formula over the op set is exact.
- Keijzer-11: x y + sin((x - 1)(y - 1)), 20 training points from U[-3, 3]^2; tested on
  1000 uniform points of the same square (the paper uses the 0.01 grid).
"""

import mpmath
import numpy as np
from evolve.problems._sr import sr_problem


def _harmonic(x: np.ndarray) -> np.ndarray:
    return np.array([float(mpmath.harmonic(float(v))) for v in x[:, 0]], np.float64)


def _harmonic_formula(x, m):
    return m.harmonic(x[0]) if hasattr(m, "harmonic") else np.array(
        [float(mpmath.harmonic(float(v))) for v in np.ravel(x[0])])


PROBLEMS = [
    sr_problem("keijzer-4", "Keijzer-4: x^3 e^-x cos x sin x (sin^2 x cos x - 1), grid [0, 10]",
               lambda x, m: (x[0] ** 3 * m.exp(-x[0]) * m.cos(x[0]) * m.sin(x[0])
                             * (m.sin(x[0]) ** 2 * m.cos(x[0]) - 1)),
               ((0.0, 10.0),), n_train=201, sampling="grid", n_test=201,
               test_domain=((0.05, 10.05),), test_sampling="grid", notes=__doc__),
    sr_problem("keijzer-6", "Keijzer-6: harmonic number H(x), x = 1..50, tested on 1..120",
               _harmonic_formula, ((1.0, 50.0),), n_train=50, sampling="grid", n_test=120,
               test_domain=((1.0, 120.0),), test_sampling="grid", reference=_harmonic,
               notes=__doc__),
    sr_problem("keijzer-11", "Keijzer-11: x y + sin((x - 1)(y - 1)) from 20 points, U[-3, 3]^2",
               lambda x, m: x[0] * x[1] + m.sin((x[0] - 1) * (x[1] - 1)),
               ((-3.0, 3.0), (-3.0, 3.0)), n_train=20, notes=__doc__),
]
