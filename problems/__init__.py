"""Problems for evolve: one module a problem (exp2, exp, log2, erf, nguyen, ...).

``evolve run NAME`` looks NAME up here; a path to a user's own problem file works too.
"""
