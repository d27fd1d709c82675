"""The problem catalog: problems by name from the library (``evolve.problems``), or from a
user's own Python file by path.

Kept apart from ``evolve.problem`` (what a problem is), which the library's modules import:
the catalog imports them, so neither needs the other at import time.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.machinery
import importlib.util
import pkgutil
import sys
import traceback
from pathlib import Path
from typing import Sequence

import numpy as np

from evolve import problems
from evolve.errors import UserError
from evolve.problem import Problem


def _problem_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(problems.__path__) if not m.name.startswith("_"))


def list_problems() -> list[Problem]:
    """Every problem in ``problems/``, sorted by name."""
    out = []
    for name in _problem_modules():
        out.extend(_problems_in(importlib.import_module(f"evolve.problems.{name}")))
    return sorted(out, key=lambda p: p.name)


def _problems_in(module) -> Sequence[Problem]:
    if hasattr(module, "PROBLEMS"):
        return list(module.PROBLEMS)
    if hasattr(module, "PROBLEM"):
        return [module.PROBLEM]
    return []


def _user_error(path: Path, e: BaseException) -> UserError:
    """What went wrong executing the problem file ``path``, with its line, on one line."""
    if isinstance(e, SyntaxError):
        where = f", line {e.lineno}" if e.lineno else ""
        what = f"a syntax error ({e.msg})"
    else:
        lines = [f.lineno for f in traceback.extract_tb(e.__traceback__)
                 if Path(f.filename) == path]
        where = f", line {lines[-1]}" if lines else ""
        what = f"{type(e).__name__}: {e}"
    what = " ".join(what.split())
    return UserError(f"problem file {str(path)!r}{where} failed to load: "
                     f"{what[:300]}; fix the file and try again")


def check_problem(problem: object, origin: str) -> Problem:
    """``problem`` if it is a usable ``Problem``, else ``UserError`` naming the field.

    Checks what a problem file can get wrong that the dataclass does not: the types and
    ranges of the sizes, the domain, the target, and that ``reference`` gives one number
    per point of a few points of the domain.
    """
    if not isinstance(problem, Problem):
        raise UserError(f"{origin} must define PROBLEM = Problem(...), not a "
                        f"{type(problem).__name__}")
    name = f"problem {problem.name!r} ({origin})"
    if not isinstance(problem.name, str) or not problem.name:
        raise UserError(f"{origin}: Problem.name must be a non-empty string")
    for field_name, low in (("n_registers", 2), ("max_length", 1), ("n_train", 2),
                            ("n_probe", 1), ("n_verify", 1)):
        value = getattr(problem, field_name)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise UserError(f"{name}: {field_name} must be a whole number >= {low}, "
                            f"got {value!r}")
    if problem.n_registers > 4096 or problem.max_length > 4096:
        raise UserError(f"{name}: n_registers and max_length must be at most 4096")
    if problem.dtype not in ("float32", "float64"):
        raise UserError(f"{name}: dtype must be 'float32' or 'float64', got {problem.dtype!r}")
    if not problem.domain or not all(len(d) == 2 and np.isfinite(d).all() and d[0] <= d[1]
                                     for d in problem.domain):
        raise UserError(f"{name}: domain must be one (low, high) pair of finite numbers per "
                        f"input, low <= high, got {problem.domain!r}")
    target = problem.target
    if target is not None and (not isinstance(target, (int, float, np.floating)) or
                               isinstance(target, bool) or not target >= 0):
        raise UserError(f"{name}: target must be a number >= 0 or None, got {target!r}")
    if not callable(problem.reference):
        raise UserError(f"{name}: reference must be a function of the points [N, n_inputs]")
    x = problem.grid(3)
    try:
        y = np.asarray(problem.reference(x.astype(np.float64)), np.float64)
    except Exception as e:  # the user's code: any failure is theirs to fix
        what = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        raise UserError(f"{name}: reference fails on 3 points of the domain ({what})") from None
    if y.size != len(x):
        raise UserError(f"{name}: reference must give one value per point: 3 points gave "
                        f"shape {y.shape}")
    return problem


def load_problem(name_or_path: str) -> Problem:
    """A problem by name (from ``problems/``) or from a user's Python file by path.

    The file must define ``PROBLEM = Problem(...)`` (or ``PROBLEMS = [...]`` with one).
    A file that fails to run, or defines no usable problem, is a ``UserError`` naming
    the file and the line.
    """
    path = Path(name_or_path)
    if name_or_path.endswith(".py") or path.is_file():
        if not path.is_file():
            raise UserError(f"problem file {name_or_path!r} does not exist")
        # An explicit source loader: a name without ".py" would get no loader otherwise.
        loader = importlib.machinery.SourceFileLoader(f"evolve_user_problem_{path.stem}",
                                                      str(path))
        module = importlib.util.module_from_spec(
            importlib.util.spec_from_loader(loader.name, loader, origin=str(path)))
        sys.modules[loader.name] = module  # as an import does: dataclasses look it up
        try:
            loader.exec_module(module)
            found = _problems_in(module)
        except (Exception, SystemExit) as e:  # the user's code; KeyboardInterrupt goes on
            sys.modules.pop(loader.name, None)
            raise _user_error(path, e) from None
        if len(found) != 1:
            raise UserError(f"{name_or_path} must define PROBLEM = Problem(...) "
                            f"(found {len(found)} problems)")
        return check_problem(found[0], name_or_path)
    by_name = {p.name: p for p in list_problems()}
    if name_or_path in by_name:
        return by_name[name_or_path]
    close = difflib.get_close_matches(name_or_path, list(by_name), n=3)
    hint = f" did you mean {' or '.join(close)}?" if close else ""
    raise UserError(f"unknown problem {name_or_path!r};{hint} `evolve problems` lists them, "
                    "or pass the path of a .py file that defines PROBLEM")
