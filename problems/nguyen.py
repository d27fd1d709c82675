"""Nguyen-1 ... Nguyen-12: the standard symbolic-regression benchmarks (Uy et al. 2011).

Formulas as published; 20 training points drawn uniformly from the range each benchmark
names (the ranges of Petersen et al. 2021, "Deep symbolic regression", Table: U[-1, 1]
for Nguyen-1..6, U[0, 2] for Nguyen-7, U[0, 4] for Nguyen-8, U[0, 1]^2 for Nguyen-9..12),
and 1000 held-out test points from the same range. Recovery means the exact formula: with
20 points R^2 alone overstates it (a near fit of the points is not the formula).
"""

from evolve.problems._sr import sr_problem

_A, _B = (-1.0, 1.0), (0.0, 1.0)

# (number, formula(x, m), domain, text)
_TABLE = (
    (1, lambda x, m: x[0] ** 3 + x[0] ** 2 + x[0], (_A,), "x^3 + x^2 + x"),
    (2, lambda x, m: x[0] ** 4 + x[0] ** 3 + x[0] ** 2 + x[0], (_A,), "x^4 + x^3 + x^2 + x"),
    (3, lambda x, m: x[0] ** 5 + x[0] ** 4 + x[0] ** 3 + x[0] ** 2 + x[0], (_A,),
     "x^5 + x^4 + x^3 + x^2 + x"),
    (4, lambda x, m: x[0] ** 6 + x[0] ** 5 + x[0] ** 4 + x[0] ** 3 + x[0] ** 2 + x[0], (_A,),
     "x^6 + x^5 + x^4 + x^3 + x^2 + x"),
    (5, lambda x, m: m.sin(x[0] ** 2) * m.cos(x[0]) - 1, (_A,), "sin(x^2) cos(x) - 1"),
    (6, lambda x, m: m.sin(x[0]) + m.sin(x[0] + x[0] ** 2), (_A,), "sin(x) + sin(x + x^2)"),
    (7, lambda x, m: m.log(x[0] + 1) + m.log(x[0] ** 2 + 1), ((0.0, 2.0),),
     "log(x + 1) + log(x^2 + 1)"),
    (8, lambda x, m: m.sqrt(x[0]), ((0.0, 4.0),), "sqrt(x)"),
    (9, lambda x, m: m.sin(x[0]) + m.sin(x[1] ** 2), (_B, _B), "sin(x) + sin(y^2)"),
    (10, lambda x, m: 2 * m.sin(x[0]) * m.cos(x[1]), (_B, _B), "2 sin(x) cos(y)"),
    (11, lambda x, m: x[0] ** x[1], (_B, _B), "x^y"),
    (12, lambda x, m: x[0] ** 4 - x[0] ** 3 + x[1] ** 2 / 2 - x[1], (_B, _B),
     "x^4 - x^3 + y^2/2 - y"),
)

PROBLEMS = [
    sr_problem(f"nguyen-{k}", f"Nguyen-{k}: {text} from 20 points, U{list(domain[0])}"
               f"{'^2' if len(domain) > 1 else ''}", formula, domain, n_train=20, notes=__doc__)
    for k, formula, domain, text in _TABLE
]
