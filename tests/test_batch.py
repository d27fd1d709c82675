"""evolve.batch: analysis and cost of a whole batch equal the per-program functions, and
``Programs`` reads like the list of programs it views."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evolve.batch as batch_module
from evolve.batch import (
    Programs,
    costs,
    has_literal,
    input_dependent_mask,
    lengths_live,
    program_at,
    row_codes,
    used_mask,
)
from evolve.catalog import load_problem
from evolve.ops import CONST, OPS
from evolve.problem import Problem
from evolve.program import (
    Instruction,
    Program,
    ProgramBatch,
    from_arrays,
    input_dependent,
    to_arrays,
    used,
)
from evolve.search.variation import Space, random_program
from evolve.text import format_program
from strategies import programs


def _problem(n_inputs: int, n_registers: int, cost_model: str) -> Problem:
    return Problem(name="t", description="", reference=lambda x: x[:, 0],
                   domain=((0.0, 1.0),) * n_inputs, ops=("add",), n_registers=n_registers,
                   cost_model=cost_model)


@st.composite
def batches(draw: st.DrawFn) -> tuple[ProgramBatch, int, int]:
    """(batch, n_registers, n_inputs): a few programs padded to a length and a size at
    least theirs, so the batch has padding positions and padding rows."""
    n_registers = draw(st.sampled_from((2, 3, 8, 33, 300)))
    max_length = draw(st.sampled_from((0, 1, 5, 12, 40)))
    progs = draw(st.lists(programs(n_registers=n_registers, max_length=max_length),
                          max_size=6))
    longest = max((len(p) for p in progs), default=0)
    length = draw(st.integers(max(longest, 1), max(longest, 1) + 3))
    size = len(progs) + draw(st.integers(0, 2))
    n_inputs = draw(st.integers(1, n_registers - 1))
    return to_arrays(progs, length, size), n_registers, n_inputs


def _padded(row_mask: np.ndarray, flags: list[bool]) -> bool:
    n = len(flags)
    return row_mask[:n].tolist() == flags and not row_mask[n:].any()


def _check_all(b: ProgramBatch, n_registers: int, n_inputs: int) -> None:
    progs = from_arrays(b)
    u, d = used_mask(b), input_dependent_mask(b, n_inputs)
    assert u.shape == d.shape == b.op.shape and u.dtype == d.dtype == bool
    for p, prog in enumerate(progs):
        assert _padded(u[p], used(prog)), p
        assert _padded(d[p], input_dependent(prog, n_inputs)), p
    assert has_literal(b).tolist() == [any(i.op == CONST for i in p.instructions)
                                       for p in progs]
    live = lengths_live(b)
    assert live.dtype == np.int32 and live.tolist() == [sum(used(p)) for p in progs]
    for model in ("weighted", "size"):
        problem = _problem(n_inputs, n_registers, model)
        got = costs(b, problem)
        want = np.array([problem.cost(p) for p in progs], np.float64)
        assert got.dtype == np.float64 and got.shape == (len(progs),)
        assert got.view(np.uint64).tolist() == want.view(np.uint64).tolist(), model
        assert costs(b, problem, used=u).view(np.uint64).tolist() == got.view(
            np.uint64).tolist()


@settings(max_examples=60, deadline=None)
@given(batches())
def test_every_function_equals_its_per_program_counterpart(case):
    _check_all(*case)


@settings(max_examples=25, deadline=None)
@given(batches(), st.integers(0, 2**32 - 1))
def test_padding_positions_are_ignored_whatever_they_hold(case, seed):
    b, n_registers, n_inputs = case
    rng = np.random.default_rng(seed)
    pad = np.arange(b.op.shape[1])[None, :] >= b.length[:, None]
    noisy = ProgramBatch(
        np.where(pad, rng.integers(0, len(OPS), b.op.shape), b.op).astype(np.int32),
        np.where(pad[..., None], rng.integers(0, n_registers, b.args.shape),
                 b.args).astype(np.int32),
        np.where(pad, rng.integers(0, n_registers, b.dst.shape), b.dst).astype(np.int32),
        np.where(pad, np.float32(1.5), b.const), b.length, b.output)
    assert from_arrays(noisy) == from_arrays(b)
    _check_all(noisy, n_registers, n_inputs)


@settings(max_examples=15, deadline=None)
@given(batches())
def test_chunks_of_rows_give_the_same_answers(case):
    b, n_registers, n_inputs = case
    whole = (used_mask(b), input_dependent_mask(b, n_inputs),
             costs(b, _problem(n_inputs, n_registers, "size")))
    old = batch_module._CHUNK_CELLS
    batch_module._CHUNK_CELLS = 1  # one row a chunk
    try:
        chunked = (used_mask(b), input_dependent_mask(b, n_inputs),
                   costs(b, _problem(n_inputs, n_registers, "size")))
    finally:
        batch_module._CHUNK_CELLS = old
    for a, c in zip(whole, chunked):
        np.testing.assert_array_equal(a, c)


def test_random_exp2_programs():
    problem = load_problem("exp2")
    rng = np.random.default_rng(0)
    space = Space.from_problem(problem)
    progs = [random_program(rng, space, int(rng.integers(1, problem.max_length + 1)))
             for _ in range(300)]
    b = to_arrays(progs, size=310)
    _check_all(b, problem.n_registers, problem.n_inputs)
    size_problem = dataclasses.replace(problem, cost_model="size")
    assert costs(b, size_problem)[:300].tolist() == [size_problem.cost(p) for p in progs]


def test_cost_examples():
    add, mul, exp2 = (next(i for i, o in enumerate(OPS) if o.name == n)
                      for n in ("add", "mul", "exp2"))
    p = Program((Instruction(CONST, 2, (), 3.0),        # constant: weight not counted
                 Instruction(exp2, 3, (2,)),           # constant too
                 Instruction(mul, 4, (0, 3)),          # input-dependent, live: 1
                 Instruction(exp2, 5, (0,)),           # dead
                 Instruction(exp2, 1, (4,))), output=1)  # 10
    b = to_arrays([p, Program((), 0), Program((Instruction(add, 2, (0, 0)),), 3)])
    np.testing.assert_array_equal(costs(b, _problem(1, 8, "weighted")), [11.0, 0.0, 0.0])
    # size: exp2(mul(x, exp2(3))) is 5 nodes; a bare input, 1; a zero register, 1
    np.testing.assert_array_equal(costs(b, _problem(1, 8, "size")), [5.0, 1.0, 1.0])
    np.testing.assert_array_equal(lengths_live(b), [4, 0, 0])
    np.testing.assert_array_equal(has_literal(b), [True, False, False])


# Programs: a list's behaviour


@pytest.fixture
def listed() -> list[Program]:
    rng = np.random.default_rng(1)
    space = Space.from_problem(load_problem("exp2"))
    return [random_program(rng, space, int(rng.integers(1, 9))) for _ in range(7)]


def test_programs_reads_like_its_list(listed):
    view = Programs(to_arrays(listed, size=10), len(listed))
    assert len(view) == 7 and bool(view) and view.batch.op.shape[0] == 10
    assert view == listed and listed == view and not view != listed
    assert [view[i] for i in range(7)] == listed
    assert view[-1] == listed[-1] and view[-7] == listed[0]
    for bad in (7, -8):
        with pytest.raises(IndexError):
            view[bad]
    assert view[np.int64(2)] == listed[2]
    for s in (slice(None), slice(2, 5), slice(None, None, -1), slice(1, None, 3),
              slice(5, 2), slice(-3, None), slice(6, 0, -2)):
        part = view[s]
        assert isinstance(part, Programs) and part == listed[s] and list(part) == listed[s]
    assert list(view) == listed and list(reversed(view)) == listed[::-1]
    assert listed[3] in view and view.index(listed[3]) == listed.index(listed[3])
    assert view.count(listed[0]) == listed.count(listed[0])
    assert view + listed[:2] == listed + listed[:2]
    assert listed[:2] + view == listed[:2] + listed
    assert view + view == listed + listed and isinstance(view + view, list)
    assert view != listed[:-1] and view != [*listed[:-1], listed[0]]
    assert view != tuple(listed)  # as a list is not equal to a tuple
    assert Programs(view.batch, 0) == [] and len(Programs(view.batch)) == 10
    with pytest.raises(TypeError):
        hash(view)


def test_programs_builds_each_program_once_and_keeps_the_given_ones(listed):
    view = Programs(to_arrays(listed))
    first = view[4]
    assert view[4] is first and view[-3] is first and view[4:5][0] is first
    given_ = Programs.from_list(listed, length=16)
    assert given_.batch.op.shape == (7, 16)
    assert all(a is b for a, b in zip(given_, listed))
    assert program_at(given_.batch, 3) == listed[3]
    assert Programs.from_list([]) == []


def test_programs_rejects_a_count_outside_the_batch(listed):
    with pytest.raises(ValueError):
        Programs(to_arrays(listed), 8)


def test_programs_rejects_arrays_that_disagree_in_rows(listed):
    # a damaged checkpoint: one array of the batch with no rows, or none at all
    batch = to_arrays(listed)
    for bad in (np.zeros(0, np.int32), np.array(7)):
        with pytest.raises(ValueError, match="disagree in their rows"):
            Programs(batch._replace(length=bad))


@settings(max_examples=25, deadline=None)
@given(batches(), st.integers(0, 2**32 - 1))
def test_row_codes_tell_programs_apart_and_ignore_padding(case, seed):
    b, n_registers, _ = case
    codes = row_codes(b)
    assert codes.dtype == np.uint64 and codes.shape == b.length.shape
    texts = [format_program(p) for p in from_arrays(b)]
    for i in range(len(texts)):  # equal codes exactly where the programs are equal
        for j in range(len(texts)):
            assert (codes[i] == codes[j]) == (texts[i] == texts[j])
    rng = np.random.default_rng(seed)
    pad = np.arange(b.op.shape[1])[None, :] >= b.length[:, None]
    noisy = b._replace(const=np.where(pad, np.float32(rng.normal()), b.const),
                       dst=np.where(pad, rng.integers(0, n_registers, b.dst.shape), b.dst))
    assert row_codes(noisy).tolist() == codes.tolist()
    live = np.flatnonzero((b.op == CONST) & ~pad)  # one bit of one literal changes the code
    if len(live):
        r, c = np.unravel_index(live[0], b.op.shape)
        const = b.const.copy()
        const[r, c] = np.nextafter(const[r, c], np.float32(np.inf))
        assert row_codes(b._replace(const=const))[r] != codes[r]
