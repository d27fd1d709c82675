"""evolve.program: ``pruned``, the program people read, without dead instructions."""

import numpy as np
from hypothesis import given, settings

from evolve.eval.evaluator import run_numpy
from evolve.ops import OPCODE
from evolve.program import Instruction, Program, live, pruned, used
from strategies import programs


def test_pruned_drops_what_cannot_reach_the_output():
    p = Program((Instruction(OPCODE["const"], 2, (), 1.5),       # dead: r2 overwritten
                 Instruction(OPCODE["mul"], 2, (0, 0)),
                 Instruction(OPCODE["add"], 3, (0, 0)),           # dead: r3 never read
                 Instruction(OPCODE["add"], 1, (2, 0))), output=1)
    q = pruned(p)
    assert [i.op for i in q.instructions] == [OPCODE["mul"], OPCODE["add"]]
    assert q.output == 1 and all(used(q))


@settings(max_examples=50, deadline=None)
@given(programs())
def test_pruned_computes_the_same_function(p):
    x = np.linspace(-2, 2, 17, dtype=np.float32)[:, None]
    q = pruned(p)
    assert list(q.instructions) == live(p)
    np.testing.assert_array_equal(run_numpy(p, x, 8), run_numpy(q, x, 8))
