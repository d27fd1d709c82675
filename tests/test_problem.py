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


# -- where the points lie: per binade as well as uniform in value -----------------------
from dataclasses import replace  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from evolve.problem import Problem, float32_from_keys, float32_order_keys  # noqa: E402


def _binades(x: np.ndarray) -> set[int]:
    return set(np.frexp(np.abs(x[x != 0].astype(np.float64)))[1].tolist())


def test_ulp_problems_draw_half_their_points_per_binade():
    p = load_problem("exp2")
    assert p.per_binade is None and p.binade_share == 0.5
    x = p.points(p.n_train)[:, 0]
    assert len(x) == p.n_train and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    # every binade of [0, 1]: the 126 normal ones below 1 (frexp exponents -125..0) and 1
    assert set(range(-125, 2)) <= _binades(x)
    old = replace(p, per_binade=0.0)  # the rule before: evenly spaced in value only
    assert len(_binades(old.points(p.n_train)[:, 0])) < 20
    np.testing.assert_array_equal(old.points(1000), old.grid(1000))
    np.testing.assert_array_equal(p.points(1000)[:500], p.grid(500))


def test_other_problems_keep_uniform_in_value():
    p = load_problem("nguyen-1")
    assert p.error != "max_ulp" and p.binade_share == 0.0
    rng = np.random.default_rng(3)
    sample = p.sample(np.random.default_rng(3), 50)
    lo, hi = p.domain[0]
    np.testing.assert_array_equal(sample, (lo + (hi - lo) * rng.random((50, 1))).astype(np.float32))


def test_uniform_designs_stay_nested_with_bit_points():
    p = Problem(name="u", description="", reference=lambda x: x[:, 0], domain=((-2.0, 3.0),),
                ops=("add",), sampling="uniform", per_binade=0.5)
    assert set(p.points(100)[:, 0].tolist()) <= set(p.points(400)[:, 0].tolist())


def test_the_genomes_a_problem_asks_for():
    assert load_problem("exp2").representation == "linear"  # the default
    for name in ("nguyen-1", "feynman-I.10.7", "keijzer-4", "strogatz-vdp-1"):
        assert load_problem(name).representation == "tree", name  # problems/_sr.py
    with pytest.raises(UserError, match="representation must be one of"):
        Problem(name="b", description="", reference=lambda x: x[:, 0], domain=((0, 1),),
                ops=("add",), representation="graph")


def test_per_binade_is_checked():
    with pytest.raises(UserError, match="per_binade must be a number in"):
        Problem(name="b", description="", reference=lambda x: x[:, 0], domain=((0, 1),),
                ops=("add",), per_binade=1.5)
    with pytest.raises(UserError, match="float32 bit patterns"):
        Problem(name="b", description="", reference=lambda x: x[:, 0], domain=((0, 1),),
                ops=("add",), dtype="float64", per_binade=0.5)


@settings(max_examples=60, deadline=None)
@given(lo=st.floats(-1e30, 1e30), width=st.floats(0, 1e30), share=st.floats(0, 1),
       n=st.integers(2, 300), seed=st.integers(0, 2**32 - 1))
def test_points_and_samples_lie_in_the_domain(lo, width, share, n, seed):
    hi = lo + width
    p = Problem(name="d", description="", reference=lambda x: x[:, 0], domain=((lo, hi),),
                ops=("add",), per_binade=share)
    k_lo, k_hi = float32_order_keys(np.array([lo, hi]), inward=True)
    for x in (p.points(n), p.sample(np.random.default_rng(seed), n)):
        assert x.shape == (n, 1) and x.dtype == np.float32
        n_bits = int(n * share)
        keys = float32_order_keys(x[n - n_bits:, 0])
        if k_lo <= k_hi:  # the interval holds a float32
            assert np.all((keys >= k_lo) & (keys <= k_hi))
        else:  # it does not: the float32 nearest its low end
            assert np.all(x[n - n_bits:, 0] == np.float32(lo))
    np.testing.assert_array_equal(p.sample(np.random.default_rng(seed), n),
                                  p.sample(np.random.default_rng(seed), n))


@given(st.integers(-(2**31) + 2**23, 2**31 - 2**23 - 1))
def test_order_keys_round_trip(key):
    x = float32_from_keys(np.array([key, key + 1]))
    assert float32_order_keys(x).tolist() == [key, key + 1]
    assert x[0] < x[1] or (x[0] == 0 and x[1] == 0)  # -0 then +0 at keys -1, 0


def test_zeros_inside_the_domain_are_found():
    assert load_problem("log2").zeros == (1.0,) and load_problem("log2_nofma").zeros == (1.0,)
    for name in ("exp2", "erf", "tanh"):  # no zero, or only at 0 (the input's binades reach it)
        assert load_problem(name).zeros == ()
    p = Problem(name="z", description="", reference=lambda x: np.cos(x[:, 0]),
                domain=((0.0, 7.0),), ops=("add",))
    np.testing.assert_allclose(p.zeros, [np.pi / 2, 3 * np.pi / 2], rtol=1e-15)
    two = Problem(name="z2", description="", reference=lambda x: x[:, 0] - x[:, 1],
                  domain=((0.0, 1.0), (0.0, 1.0)), ops=("add",))
    assert two.zeros == ()


def test_near_zero_points_reach_every_binade_of_the_distance():
    p = load_problem("log2_nofma")
    assert p.near_zeros_on and p.binade_share == 0.5
    for x in (p.points(4096)[:, 0], p.sample(np.random.default_rng(5), 4096)[:, 0]):
        d = np.abs(x.astype(np.float64) - 1.0)
        d = d[d > 0]
        binades = set(np.floor(np.log2(d)).astype(int).tolist())
        assert set(range(-23, -2)) <= binades  # 2^-23 <= |x - 1| < 2^-2: each binade
    off = replace(p, near_zeros=False)
    d = np.abs(off.points(4096)[:, 0].astype(np.float64) - 1.0)
    assert d[d > 0].min() > 1e-5  # what evenly spaced and per-input-binade points reach


@settings(max_examples=40, deadline=None)
@given(lo=st.floats(-1e6, 1e6), width=st.floats(1e-3, 1e6), at=st.floats(0.01, 0.99),
       n=st.integers(2, 300), seed=st.integers(0, 2**32 - 1), uniform=st.booleans())
def test_near_zero_points_lie_in_the_domain(lo, width, at, n, seed, uniform):
    hi = lo + width
    c = lo + at * width
    p = Problem(name="d", description="", reference=lambda x: x[:, 0] - c, domain=((lo, hi),),
                ops=("add",), sampling="uniform" if uniform else "grid")
    k_lo, k_hi = float32_order_keys(np.array([lo, hi]), inward=True)
    for x in (p.points(n), p.sample(np.random.default_rng(seed), n)):
        assert x.shape == (n, 1) and x.dtype == np.float32
        keys = float32_order_keys(x[n - int(n * p.binade_share):, 0])  # the bit points
        if k_lo <= k_hi:  # the interval holds a float32
            assert np.all((keys >= k_lo) & (keys <= k_hi))
    if uniform:
        assert set(p.points(n)[:, 0].tolist()) <= set(p.points(2 * n)[:, 0].tolist())
