"""Problems: what to discover, declared as data.

A problem names a target function (a float64 or mpmath reference), its input domain and
dtype, the points to train on, the ops and registers programs may use, the error
measure, the cost model and an optional error target. Problems live in ``problems/``, one
module each exposing ``PROBLEM``; a user's own file is accepted by path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from evolve.errors import UserError
from evolve.ops import OPCODE, OPS
from evolve.program import Program, input_dependent, used

ERRORS = ("max_ulp", "max_abs", "rmse", "nmse")
SAMPLINGS = ("grid", "uniform")
# The share of a float32 ULP problem's points drawn uniformly in the bit pattern when the
# problem does not say (``Problem.per_binade``): half per binade, half uniform in value.
PER_BINADE = 0.5
ZERO_GRID = 4097  # points on which Problem.zeros looks for sign changes of the reference
COST_MODELS = ("weighted", "size")
REPRESENTATIONS = ("linear", "tree")  # the genomes a search evolves (Problem.representation)


def ulp32(y: np.ndarray) -> np.ndarray:
    """The float32 ULP of the exact values ``y``: 2^(floor(log2|y|) - 23), float64.

    This is the convention of every ULP figure we report (see docs/numerics.md).
    Values below the smallest normal float32 use the subnormal spacing 2^-149.
    """
    y = np.abs(np.asarray(y, np.float64))
    _, ex = np.frexp(y)  # y = m * 2^ex with m in [0.5, 1), so floor(log2 y) = ex - 1
    e = np.where(y > 0, ex - 1, -126).astype(np.float64)
    return np.exp2(np.maximum(e - 23, -149))


@dataclass(frozen=True)
class Problem:
    """A discovery problem. Everything the engine needs to know, as data.

    reference: maps float64 points [N, n_inputs] to float64 targets [N].
    jax_reference: the same in jax.numpy (float64), optional: lets certification compute
        the targets on the device (checked against ``reference`` on samples).
    domain: one (low, high) pair per input.
    error: "max_ulp" (max error in float32 ULPs of the exact value), "max_abs", "rmse" or
        "nmse" (mean squared error over the variance of the training targets: 1 - R^2).
    linear_scaling: for "nmse" only: the error of a program ``f`` is that of ``a*f + b``
        with ``a, b`` the least-squares fit on the points the error is measured on
        (``evolve.scaling``); the model a program stands for is then ``a*f + b``.
    target: the error to reach (e.g. 1.0 for "max ULP < 1"), or None.
    n_train: training points (``points``).
    n_probe: probe points for functional-equivalence hashing.
    baselines: known programs to compare with, e.g. minimax polynomials:
        dicts with "name", "error", "cost" and optionally "program" (text form).
    starts: programs (text form) a search may start from (``search.starts``): structures
        the mathematics suggests, e.g. x + x*q(x^2) for an odd function.
    hard_points: inputs (one value an input each) that join the training and fitting
        points: where programs of a run failed their certificates (``certify.teach``,
        ``evolve.runs.hard_points``).

    For symbolic regression (data rather than a function to approximate everywhere):
    sampling: training points evenly spaced ("grid") or drawn uniformly from the domain
        with ``data_seed`` ("uniform": a fixed design, the first n points of one stream).
    n_test, test_domain, test_sampling: held-out test points (``test_data``), noise-free,
        drawn from their own stream; ``test_domain`` defaults to ``domain``.
    noise: Gaussian noise added to the targets (``targets``), with a standard deviation
        of ``noise`` times that of the noise-free training targets; 0 for none.
    cost_model: "weighted" (the ops table's weights of input-dependent instructions) or
        "size" (the node count of the expression the program computes).
    formula: the true formula, ``formula(x, m)`` of a list of inputs and a module (numpy or
        sympy), for recovery checks; None when there is none.
    representation: the genomes a run evolves unless its config says otherwise (config
        field ``search.representation``, null by default): "linear" programs, or "tree"s
        (DEAP expression trees compiled to programs: what the symbolic-regression problems
        of ``problems/_sr.py`` ask for; docs/symbolic-regression.md measures the two).
    per_binade: the share (0..1) of the training, check and probe points (``points``,
        ``sample``) drawn uniformly in the float32 bit pattern (``float32_from_keys``), so
        every binade of the domain gets as many points as any other; the rest are drawn as
        ``sampling`` says, uniform in value. None: ``PER_BINADE`` for float32 "max_ulp"
        problems (what a certificate measures: every float32 counts once), 0 for others.
        A run records the share it used (config field ``sampling.per_binade``).
    near_zeros: whether half of those per-binade points are drawn around the zeros of the
        reference inside the domain (``zeros``; problems of one input): uniform in the bit
        pattern of the distance to the zero, on each side. Near a zero the result's binades
        shrink with it, and a certificate counts each of its float32 inputs once (log2 at
        x = 1: evenly spaced points never come near log2(x) = 1e-6). None: on for float32
        "max_ulp" problems. A run records the rule it used (``sampling.near_zeros``).
    """

    name: str
    description: str
    reference: Callable[[np.ndarray], np.ndarray]
    domain: tuple[tuple[float, float], ...]
    ops: tuple[str, ...]
    dtype: str = "float32"
    error: str = "max_ulp"
    target: float | None = None
    n_registers: int = 8
    max_length: int = 24
    n_train: int = 16384
    n_probe: int = 64
    n_verify: int = 1_000_000
    baselines: tuple[dict, ...] = ()
    starts: tuple[str, ...] = ()
    hard_points: tuple[tuple[float, ...], ...] = ()
    notes: str = ""
    jax_reference: Callable | None = None
    sampling: str = "grid"
    n_test: int = 0
    test_domain: tuple[tuple[float, float], ...] | None = None
    test_sampling: str = "uniform"
    noise: float = 0.0
    data_seed: int = 0
    cost_model: str = "weighted"
    formula: Callable | None = None
    linear_scaling: bool = False
    representation: str = "linear"
    per_binade: float | None = None
    near_zeros: bool | None = None
    opcodes: tuple[int, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "domain", tuple(tuple(map(float, d)) for d in self.domain))
        bad = [o for o in self.ops if o not in OPCODE]
        if bad:
            raise UserError(f"problem {self.name!r}: unknown ops {bad}; known: {', '.join(OPCODE)}")
        if "const" not in self.ops:
            object.__setattr__(self, "ops", (*self.ops, "const"))
        object.__setattr__(self, "opcodes", tuple(OPCODE[o] for o in self.ops))
        if self.error not in ERRORS:
            raise UserError(f"problem {self.name!r}: error must be one of {ERRORS}, "
                            f"got {self.error!r}")
        if self.linear_scaling and self.error != "nmse":
            raise UserError(f"problem {self.name!r}: linear_scaling applies to error='nmse' "
                            f"only, got error={self.error!r}; set linear_scaling=False")
        if self.n_inputs >= self.n_registers:
            raise UserError(f"problem {self.name!r}: needs more registers than inputs")
        for name, value, allowed in (("sampling", self.sampling, SAMPLINGS),
                                     ("test_sampling", self.test_sampling, SAMPLINGS),
                                     ("cost_model", self.cost_model, COST_MODELS),
                                     ("representation", self.representation,
                                      REPRESENTATIONS)):
            if value not in allowed:
                raise UserError(f"problem {self.name!r}: {name} must be one of {allowed}, "
                                f"got {value!r}")
        if self.test_domain is not None:
            test_domain = tuple(tuple(map(float, d)) for d in self.test_domain)
            if len(test_domain) != self.n_inputs:
                raise UserError(f"problem {self.name!r}: test_domain needs one (low, high) "
                                f"per input ({self.n_inputs}), got {len(test_domain)}")
            object.__setattr__(self, "test_domain", test_domain)
        if not (self.noise >= 0 and self.n_test >= 0):
            raise UserError(f"problem {self.name!r}: noise and n_test must be >= 0")
        share = self.per_binade
        if share is not None and (isinstance(share, bool) or not 0 <= share <= 1):
            raise UserError(f"problem {self.name!r}: per_binade must be a number in [0, 1] "
                            f"or None (the default), got {share!r}")
        if share and self.dtype != "float32":
            raise UserError(f"problem {self.name!r}: per_binade draws float32 bit patterns; "
                            f"a {self.dtype} problem needs per_binade=0 or None")
        if self.near_zeros not in (None, True, False):
            raise UserError(f"problem {self.name!r}: near_zeros must be True, False or None "
                            f"(the default), got {self.near_zeros!r}")

    @property
    def n_inputs(self) -> int:
        return len(self.domain)

    @property
    def output(self) -> int:
        """The register programs return: the first one after the inputs."""
        return self.n_inputs

    @property
    def np_dtype(self):
        return np.dtype(self.dtype).type

    def grid(self, n: int) -> np.ndarray:
        """``n`` evenly spaced points of the domain (per input; a product grid for >1
        inputs is not built: inputs are spaced independently), rounded to the dtype,
        endpoints included: [n, n_inputs]."""
        cols = [np.linspace(lo, hi, n).astype(self.np_dtype) for lo, hi in self.domain]
        return np.stack(cols, axis=1)

    @property
    def binade_share(self) -> float:
        """``per_binade`` resolved: the share of points drawn uniformly in the bit pattern."""
        if self.per_binade is not None:
            return float(self.per_binade)
        return PER_BINADE if self.error == "max_ulp" and self.dtype == "float32" else 0.0

    @property
    def near_zeros_on(self) -> bool:
        """``near_zeros`` resolved."""
        if self.near_zeros is not None:
            return bool(self.near_zeros)
        return self.error == "max_ulp" and self.dtype == "float32"

    @functools.cached_property
    def zeros(self) -> tuple[float, ...]:
        """The zeros of the reference strictly inside the domain of a one-input problem,
        but not 0 (the input's own binades reach it), in float64: sign changes on 4,097
        evenly spaced points, each narrowed by bisection to adjacent float64 values."""
        if self.n_inputs != 1:
            return ()
        lo, hi = self.domain[0]

        def f(v):
            return np.asarray(self.reference(np.asarray(v, np.float64).reshape(-1, 1)),
                              np.float64)

        g = np.linspace(lo, hi, ZERO_GRID)
        with np.errstate(all="ignore"):
            y = np.sign(f(g))
        found = set(g[1:-1][y[1:-1] == 0].tolist())
        for i in np.flatnonzero(y[:-1] * y[1:] < 0):
            a, b = float(g[i]), float(g[i + 1])
            for _ in range(200):
                m = 0.5 * (a + b)
                if not a < m < b:
                    break
                if np.sign(f([m])[0]) == y[i]:
                    a = m
                else:
                    b = m
            found.add(a if abs(f([a])[0]) <= abs(f([b])[0]) else b)
        tiny = float(np.finfo(np.float32).tiny)  # zeros this close to 0 are 0's
        return tuple(sorted(z for z in found if abs(z) >= tiny and lo < z < hi))

    def _split(self, n: int) -> tuple[int, int]:
        """(points uniform in value, points uniform in the bit pattern) of ``n``."""
        n_bits = int(n * self.binade_share)
        return n - n_bits, n_bits

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random points of the domain, [n, n_inputs] in the dtype: uniform in value,
        then (``binade_share`` of them) uniform in the float32 bit pattern."""
        n_value, n_bits = self._split(n)
        x = _uniform(rng, self.domain, n_value).astype(self.np_dtype)
        if not n_bits:
            return x
        return np.concatenate([x, self._bit_points(n_bits, rng)])

    def points(self, n: int) -> np.ndarray:
        """The problem's ``n`` training points: ``grid`` or the first points of its seeded
        uniform design (``sampling``), then ``binade_share`` of them evenly spaced
        (``grid``) or uniform (``uniform``) in the float32 bit pattern. Fewer points of a
        uniform design are a subset of more."""
        n_value, n_bits = self._split(n)
        if self.sampling == "grid":
            x = self.grid(n_value)
        else:
            rng = np.random.default_rng([self.data_seed, 0])
            x = _uniform(rng, self.domain, n_value).astype(self.np_dtype)
        if not n_bits:
            return x
        rng = None if self.sampling == "grid" else np.random.default_rng([self.data_seed, 2])
        return np.concatenate([x, self._bit_points(n_bits, rng, design=rng is not None)])

    def _bit_points(self, n: int, rng: np.random.Generator | None,
                    design: bool = False) -> np.ndarray:
        """``n`` float32 points of the domain uniform in the bit pattern (each input on its
        own): evenly spaced in ``float32_order_keys`` without ``rng``, else drawn. With
        ``near_zeros`` and ``zeros``, half of them uniform in the bit pattern of the distance
        to a zero instead (``_near_zero_points``)."""
        zeros = self.zeros if self.near_zeros_on else ()
        if zeros:  # a domain of a few float32 values has no room around its zeros
            k_lo, k_hi = float32_order_keys(np.array(self.domain[0]), inward=True)
            zeros = zeros if k_hi - k_lo >= 2 else ()
        if zeros and n >= 2:
            inputs = self._bit_points_of_inputs(n - n // 2, rng)
            near = self._near_zero_points(n // 2, zeros, rng, design)
            return np.concatenate([inputs, near])
        return self._bit_points_of_inputs(n, rng)

    def _near_zero_points(self, n: int, zeros: tuple[float, ...],
                          rng: np.random.Generator | None, design: bool) -> np.ndarray:
        """``n`` float32 points z - d and z + d around the ``zeros`` (one input), d uniform
        in the float32 bit pattern from the ULP of z to the domain's end on that side;
        evenly spaced without ``rng``. With ``design`` (the points of a uniform design) each
        side is drawn from a stream of its own, so that fewer points are a subset of more."""
        lo, hi = self.domain[0]
        sides = [(z, s, (z - lo) if s < 0 else (hi - z)) for z in zeros for s in (-1.0, 1.0)]
        out = []
        for j, (z, s, width) in enumerate(sides):
            m = n // len(sides) + (j < n % len(sides))
            k_lo, k_hi = float32_order_keys(np.array([ulp32(np.array([z]))[0], width]),
                                            inward=True)
            k_hi = max(k_hi, k_lo)  # a zero a few ULPs from the domain's end
            if design:
                rng_j = np.random.default_rng([self.data_seed, 3, j])
                keys = rng_j.integers(k_lo, k_hi, m, endpoint=True, dtype=np.int64)
            elif rng is None:
                keys = np.round(np.linspace(k_lo, k_hi, m)).astype(np.int64)
            else:
                keys = rng.integers(k_lo, k_hi, m, endpoint=True, dtype=np.int64)
            d = float32_from_keys(keys).astype(np.float64)
            out.append(np.clip(z + s * d, lo, hi))
        x = np.concatenate(out).astype(np.float32)
        # inside the domain after rounding to float32
        lo32, hi32 = (float32_from_keys(float32_order_keys(np.array([lo, hi]), inward=True)))
        return np.clip(x, lo32, hi32).reshape(-1, 1).astype(self.np_dtype)

    def _bit_points_of_inputs(self, n: int, rng: np.random.Generator | None) -> np.ndarray:
        """``n`` points uniform in the bit pattern of each input (see ``_bit_points``)."""
        cols = []
        for lo, hi in self.domain:
            k_lo, k_hi = float32_order_keys(np.array([lo, hi], np.float64), inward=True)
            if k_lo > k_hi:  # no float32 inside: the one nearest, as points in value get
                k_lo = k_hi = float32_order_keys(np.array([lo]))[0]
            if rng is None:
                keys = np.round(np.linspace(k_lo, k_hi, n)).astype(np.int64)
            else:
                keys = rng.integers(k_lo, k_hi, n, endpoint=True, dtype=np.int64)
            cols.append(float32_from_keys(keys))
        return np.stack(cols, axis=1).astype(self.np_dtype)

    def test_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The held-out test points [n_test, n_inputs] and their noise-free targets."""
        domain = self.test_domain or self.domain
        if self.test_sampling == "grid":
            x = np.stack([np.linspace(lo, hi, self.n_test) for lo, hi in domain], axis=1)
        else:
            x = _uniform(np.random.default_rng([self.data_seed, 1]), domain, self.n_test)
        x = x.astype(self.np_dtype)
        return x, self.targets(x, noise=False)[0]

    def targets(self, x: np.ndarray, noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Reference values (float64) at points ``x`` and the per-point error scale.

        The scale turns |out - y| into the problem's error unit (1/ulp for max_ulp). With
        ``noise`` (and ``self.noise > 0``) the values carry the problem's measurement
        noise: a fixed function of each point (seeded by ``data_seed``), so a point has
        the same measured value in every set it appears in.
        """
        x = np.asarray(x, np.float64)
        y = np.asarray(self.reference(x), np.float64).reshape(-1)
        if noise and self.noise > 0:
            y = y + self.noise * self._clean_std * _point_normals(x, self.data_seed)
        scale = 1.0 / ulp32(y) if self.error == "max_ulp" else np.ones_like(y)
        return y, scale

    @functools.cached_property
    def _clean_std(self) -> float:
        x = self.points(self.n_train).astype(np.float64)
        return float(np.std(np.asarray(self.reference(x), np.float64)))

    @functools.cached_property
    def target_variance(self) -> float:
        """The variance of the training targets (``n_train`` points, noise included): the
        denominator of the "nmse" error (1 if it is 0)."""
        y, _ = self.targets(self.points(self.n_train))
        v = float(np.var(y))
        return v if v > 0 and np.isfinite(v) else 1.0

    def error_value(self, stats: dict[str, np.ndarray]) -> np.ndarray:
        """The problem's error from the evaluator's reduced statistics (per program)."""
        if self.error == "max_ulp":
            e = stats["max_scaled"]
        elif self.error == "max_abs":
            e = stats["max_abs"]
        elif self.error == "nmse":
            e = stats["scaled_mse" if self.linear_scaling else "mse"] / self.target_variance
        else:
            e = np.sqrt(stats["mse"])
        return np.where(np.isfinite(e), e, np.inf)

    def cost(self, program: Program) -> float:
        """The program's cost under ``cost_model``.

        "weighted": the weighted op count of the instructions that use an input and reach
        the output. "size": the node count of the expression the returned value is, as a
        tree compiled to a program has it: each live instruction is a node, and each of its
        arguments that no earlier live instruction wrote (an input, or a zero register) is
        a leaf; a value used twice is counted once. A bare input is 1.
        """
        live = used(program)
        if self.cost_model == "size":
            written: set[int] = set()
            size = 0
            for ins, u in zip(program.instructions, live):
                if u:
                    size += 1 + sum(a not in written for a in ins.args)
                    written.add(ins.dst)
            return float(size if program.output in written else 1)
        dep = input_dependent(program, self.n_inputs)
        return float(sum(OPS[ins.op].cost for ins, u, d in zip(program.instructions, live, dep)
                         if u and d))

    def meets_target(self, error: float) -> bool:
        return self.target is not None and error < self.target


def float32_order_keys(x: np.ndarray, inward: bool = False) -> np.ndarray:
    """The positions (int64) of the float32 values ``x`` among all float32 values in
    order: +0 is 0, positive values follow their bit patterns, -0 is -1 and negative
    values go down, so consecutive float32 values have consecutive keys. With ``inward``
    the float64 ``x`` are first rounded toward the middle of ``[x[0], x[-1]]`` (for an
    interval's ends: the smallest float32 >= the low end and the largest <= the high end).
    """
    x64 = np.asarray(x, np.float64)
    f = x64.astype(np.float32)
    if inward:
        up = np.nextafter(f, np.float32(np.inf))
        down = np.nextafter(f, np.float32(-np.inf))
        f = f.copy()
        f[0] = up[0] if float(f[0]) < x64[0] else f[0]
        f[-1] = down[-1] if float(f[-1]) > x64[-1] else f[-1]
    bits = f.view(np.uint32).astype(np.int64)
    return np.where(bits < 0x80000000, bits, -(bits & 0x7FFFFFFF) - 1)


def float32_from_keys(keys: np.ndarray) -> np.ndarray:
    """The float32 values at order keys ``keys`` (the inverse of ``float32_order_keys``)."""
    keys = np.asarray(keys, np.int64)
    bits = np.where(keys >= 0, keys, (-keys - 1) | 0x80000000)
    return bits.astype(np.uint32).view(np.float32)


def _uniform(rng: np.random.Generator, domain, n: int) -> np.ndarray:
    lo = np.array([d[0] for d in domain])
    hi = np.array([d[1] for d in domain])
    return lo + (hi - lo) * rng.random((n, len(domain)))


def _point_normals(x: np.ndarray, seed: int) -> np.ndarray:
    """One standard normal value per row of ``x``: a hash of the row's float64 bits and
    ``seed`` (splitmix64 steps) turned into a normal by Box-Muller."""
    with np.errstate(over="ignore"):
        h = np.full(x.shape[0], np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15), np.uint64)
        for col in np.ascontiguousarray(x, np.float64).view(np.uint64).T:
            h = _mix64(h ^ col)
        a, b = _mix64(h ^ np.uint64(1)), _mix64(h ^ np.uint64(2))
    u1 = ((a >> np.uint64(11)).astype(np.float64) + 1.0) / 2.0**53  # (0, 1]
    u2 = (b >> np.uint64(11)).astype(np.float64) / 2.0**53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _mix64(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
