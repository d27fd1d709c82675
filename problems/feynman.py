"""Twenty equations of the AI Feynman database (Udrescu & Tegmark 2020, "AI Feynman: a
physics-inspired method for symbolic regression", Science Advances 6, eaay2631), built
from their formulas and variable ranges as the database's FeynmanEquations.csv lists them.

Nothing is downloaded: 256 training points and 1000 held-out test points are drawn
uniformly from the ranges with a fixed seed. Inputs are x0, x1, ... in the order the
table names the variables (each problem's description gives the names). Chosen: the
equations of at most five variables whose formulas need only + - x / sin cos exp log
sqrt and constants (pi included).
"""

from evolve.problems._sr import sr_problem

# (id, variables, formula(x, m), ranges, text)
_TABLE = (
    ("I.6.2a", "theta", lambda x, m: m.exp(-x[0] ** 2 / 2) / m.sqrt(2 * m.pi),
     ((1, 3),), "exp(-theta^2/2)/sqrt(2 pi)"),
    ("I.6.2", "sigma theta",
     lambda x, m: m.exp(-(x[1] / x[0]) ** 2 / 2) / (m.sqrt(2 * m.pi) * x[0]),
     ((1, 3), (1, 3)), "exp(-(theta/sigma)^2/2)/(sqrt(2 pi) sigma)"),
    ("I.8.14", "x1 x2 y1 y2", lambda x, m: m.sqrt((x[1] - x[0]) ** 2 + (x[3] - x[2]) ** 2),
     ((1, 5),) * 4, "sqrt((x2-x1)^2+(y2-y1)^2)"),
    ("I.10.7", "m_0 v c", lambda x, m: x[0] / m.sqrt(1 - x[1] ** 2 / x[2] ** 2),
     ((1, 5), (1, 2), (3, 10)), "m_0/sqrt(1-v^2/c^2)"),
    ("I.12.1", "mu Nn", lambda x, m: x[0] * x[1], ((1, 5),) * 2, "mu Nn"),
    ("I.12.4", "q1 epsilon r", lambda x, m: x[0] / (4 * m.pi * x[1] * x[2] ** 2),
     ((1, 5),) * 3, "q1/(4 pi epsilon r^2)"),
    ("I.14.3", "m g z", lambda x, m: x[0] * x[1] * x[2], ((1, 5),) * 3, "m g z"),
    ("I.14.4", "k_spring x", lambda x, m: x[0] * x[1] ** 2 / 2, ((1, 5),) * 2,
     "k_spring x^2/2"),
    ("I.18.4", "m1 m2 r1 r2", lambda x, m: (x[0] * x[2] + x[1] * x[3]) / (x[0] + x[1]),
     ((1, 5),) * 4, "(m1 r1 + m2 r2)/(m1 + m2)"),
    ("I.25.13", "q C", lambda x, m: x[0] / x[1], ((1, 5),) * 2, "q/C"),
    ("I.27.6", "d1 d2 n", lambda x, m: 1 / (1 / x[0] + x[2] / x[1]), ((1, 5),) * 3,
     "1/(1/d1 + n/d2)"),
    ("I.29.4", "omega c", lambda x, m: x[0] / x[1], ((1, 10),) * 2, "omega/c"),
    ("I.34.27", "omega h", lambda x, m: x[1] / (2 * m.pi) * x[0], ((1, 5),) * 2,
     "h/(2 pi) omega"),
    ("I.37.4", "I1 I2 delta",
     lambda x, m: x[0] + x[1] + 2 * m.sqrt(x[0] * x[1]) * m.cos(x[2]), ((1, 5),) * 3,
     "I1 + I2 + 2 sqrt(I1 I2) cos(delta)"),
    ("I.39.22", "n T V kb", lambda x, m: x[0] * x[3] * x[1] / x[2], ((1, 5),) * 4,
     "n kb T/V"),
    ("I.43.31", "mob T kb", lambda x, m: x[0] * x[2] * x[1], ((1, 5),) * 3, "mob kb T"),
    ("II.3.24", "Pwr r", lambda x, m: x[0] / (4 * m.pi * x[1] ** 2), ((1, 5),) * 2,
     "Pwr/(4 pi r^2)"),
    ("II.8.31", "epsilon Ef", lambda x, m: x[0] * x[1] ** 2 / 2, ((1, 5),) * 2,
     "epsilon Ef^2/2"),
    ("II.27.16", "epsilon c Ef", lambda x, m: x[0] * x[1] * x[2] ** 2, ((1, 5),) * 3,
     "epsilon c Ef^2"),
    ("II.38.14", "Y sigma", lambda x, m: x[0] / (2 * (1 + x[1])), ((1, 5),) * 2,
     "Y/(2(1 + sigma))"),
)

PROBLEMS = [
    sr_problem(f"feynman-{eq}", f"Feynman {eq}: {text}; inputs {', '.join(names.split())}",
               formula, ranges, n_train=256, n_test=1000, notes=__doc__)
    for eq, names, formula, ranges, text in _TABLE
]
