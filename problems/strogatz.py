"""The Strogatz ODE problems: the right-hand sides of seven two-state systems from
Strogatz's "Nonlinear Dynamics and Chaos" (La Cava et al. 2016), the ground-truth set
SRBench has besides AI Feynman. Each system gives two problems, one a state derivative:
``strogatz-<system>-1`` is dx/dt, ``strogatz-<system>-2`` is dy/dt, over the inputs
(x0, x1) = (x, y).

SRBench fits them on states sampled along simulated trajectories; nothing is simulated
or downloaded here: 256 training and 1000 held-out test points are drawn uniformly (fixed
seed) from a box around the region those trajectories visit, kept clear of the
singularities (glider: v >= 1; shear flow: 0.3 <= phi <= pi - 0.3). The recovery check
is the same as for the other sets; the target derivatives are exact (noise-free unless a
noise level is set).
"""

from evolve.problems._sr import sr_problem

_PI = 3.141592653589793

# (system, equation, formula(x, m), domain, text)
_TABLE = (
    ("bacres", 1, lambda x, m: 20 - x[0] - x[0] * x[1] / (1 + 0.5 * x[0] ** 2),
     ((0.5, 10.0), (1.0, 15.0)), "bacterial respiration: 20 - x - x y/(1 + x^2/2)"),
    ("bacres", 2, lambda x, m: 10 - x[0] * x[1] / (1 + 0.5 * x[0] ** 2),
     ((0.5, 10.0), (1.0, 15.0)), "bacterial respiration: 10 - x y/(1 + x^2/2)"),
    ("barmag", 1, lambda x, m: 0.5 * m.sin(x[0] - x[1]) - m.sin(x[0]),
     ((0.0, 2 * _PI),) * 2, "bar magnets: sin(x - y)/2 - sin(x)"),
    ("barmag", 2, lambda x, m: 0.5 * m.sin(x[1] - x[0]) - m.sin(x[1]),
     ((0.0, 2 * _PI),) * 2, "bar magnets: sin(y - x)/2 - sin(y)"),
    ("glider", 1, lambda x, m: -0.05 * x[0] ** 2 - m.sin(x[1]),
     ((1.0, 7.0), (-1.5, 1.5)), "glider: -v^2/20 - sin(theta)"),
    ("glider", 2, lambda x, m: x[0] - m.cos(x[1]) / x[0],
     ((1.0, 7.0), (-1.5, 1.5)), "glider: v - cos(theta)/v"),
    ("lv", 1, lambda x, m: 3 * x[0] - 2 * x[0] * x[1] - x[0] ** 2,
     ((0.0, 8.0), (0.0, 3.0)), "Lotka-Volterra: 3x - 2xy - x^2"),
    ("lv", 2, lambda x, m: 2 * x[1] - x[0] * x[1] - x[1] ** 2,
     ((0.0, 8.0), (0.0, 3.0)), "Lotka-Volterra: 2y - xy - y^2"),
    ("predprey", 1, lambda x, m: x[0] * (4 - x[0] - x[1] / (1 + x[0])),
     ((0.1, 6.0), (0.1, 12.0)), "predator-prey: x (4 - x - y/(1 + x))"),
    ("predprey", 2, lambda x, m: x[1] * (x[0] / (1 + x[0]) - 0.075 * x[1]),
     ((0.1, 6.0), (0.1, 12.0)), "predator-prey: y (x/(1 + x) - 0.075 y)"),
    ("shearflow", 1, lambda x, m: m.cos(x[1]) / m.sin(x[1]) * m.cos(x[0]),
     ((-_PI, _PI), (0.3, _PI - 0.3)), "shear flow: cot(phi) cos(theta)"),
    ("shearflow", 2, lambda x, m: (m.cos(x[1]) ** 2 + 0.1 * m.sin(x[1]) ** 2) * m.sin(x[0]),
     ((-_PI, _PI), (0.3, _PI - 0.3)), "shear flow: (cos^2 phi + sin^2 phi/10) sin(theta)"),
    ("vdp", 1, lambda x, m: 10 * (x[1] - (x[0] ** 3 - x[0]) / 3),
     ((-2.5, 2.5), (-1.5, 1.5)), "van der Pol: 10 (y - (x^3 - x)/3)"),
    ("vdp", 2, lambda x, m: -0.1 * x[0], ((-2.5, 2.5), (-1.5, 1.5)), "van der Pol: -x/10"),
)

PROBLEMS = [
    sr_problem(f"strogatz-{system}-{k}", f"Strogatz {text}; inputs x0, x1 = the two states",
               formula, domain, n_train=256, n_test=1000, notes=__doc__)
    for system, k, formula, domain, text in _TABLE
]
