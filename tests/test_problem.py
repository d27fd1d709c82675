"""Problems: declared data, found by name or path, ULP convention and cost model."""

import numpy as np
import pytest

from evolve.catalog import list_problems, load_problem
from evolve.errors import UserError
from evolve.problem import ulp32
from evolve.text import parse_program


def test_ulp32_matches_float32_spacing():
    y = np.array([1.0, 1.5, 2.0, 0.75, 3.0e-3, 1e30])
    want = [np.spacing(np.float32(v)) for v in y]
    np.testing.assert_array_equal(ulp32(y), want)


def test_exp2_problem_targets_and_scale():
    p = load_problem("exp2")
    x = p.grid(5)
    y, scale = p.targets(x)
    np.testing.assert_allclose(y, np.exp2(x[:, 0].astype(np.float64)))
    assert scale[0] == 2.0**23 and scale[-1] == 2.0**22  # 2^1 = 2 lies in the next binade
    assert x.dtype == np.float32 and x[0, 0] == 0 and x[-1, 0] == 1


def test_cost_counts_only_used_input_dependent_instructions():
    p = load_problem("exp2")
    prog = parse_program("""
        r2 = 0.5
        r3 = mul(r2, r2)      # constant: free
        r4 = div(r0, r0)      # dead code: free
        r5 = fma(r0, r3, r2)  # 1
        r1 = div(r5, r0)      # 4
        return r1
    """)
    assert p.cost(prog) == 5.0


def test_problems_are_listed_and_found_by_name():
    names = [p.name for p in list_problems()]
    assert "exp2" in names


def test_unknown_problem_says_did_you_mean():
    with pytest.raises(UserError, match="did you mean .*exp2"):
        load_problem("exp3")


def test_user_problem_file_by_path(tmp_path):
    f = tmp_path / "cube.py"
    f.write_text(
        "import numpy as np\nfrom evolve.problem import Problem\n"
        "PROBLEM = Problem(name='cube', description='x^3', reference=lambda x: x[:, 0] ** 3,\n"
        "                  domain=((-1, 1),), ops=('mul', 'add'), error='rmse')\n")
    p = load_problem(str(f))
    assert p.name == "cube" and p.error == "rmse"
    with pytest.raises(UserError, match="does not exist"):
        load_problem(str(tmp_path / "missing.py"))
