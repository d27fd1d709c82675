"""The files of a run directory (evolve.runs.files): front.csv shows programs without their
dead instructions, while the state (and so the checkpoint) keeps the full genome."""

import csv
import io

import jax
import numpy as np

from evolve.ops import OPCODE
from evolve.program import Instruction, Program
from evolve.runs.files import FRONT_COLUMNS, front_csv, front_rows
from evolve.search.fec import FECache
from evolve.search.state import State
from evolve.text import format_program, parse_program

DEAD = Program((Instruction(OPCODE["const"], 3, (), 2.5),        # dead: r3 never read
                Instruction(OPCODE["mul"], 2, (0, 0)),
                Instruction(OPCODE["sub"], 4, (2, 0)),            # dead: r4 never read
                Instruction(OPCODE["add"], 1, (2, 0))), output=1)
LIVE = Program((Instruction(OPCODE["mul"], 1, (0, 0)),), output=1)


def _state(programs, error, cost):
    return State(3, jax.random.key(0), list(programs), np.array(error, np.float64),
                 np.array(cost, np.float64), [bytes([i]) for i in range(len(programs))],
                 FECache(8), FECache(8))


def test_front_shows_programs_without_dead_code():
    state = _state([DEAD, LIVE], [0.5, 1.0], [2.0, 1.0])
    rows = front_rows(state)
    shown = {r[3]: r for r in rows}
    text = format_program(Program(DEAD.instructions[1:2] + DEAD.instructions[3:], 1)).rstrip()
    assert text in shown and shown[text][2] == 2  # length counts what is shown
    assert len(state.programs[0]) == 4  # the state keeps the genome, dead code included
    for r in rows:
        assert "2.5" not in r[3] and "sub" not in r[3]


def test_front_csv_parses_back_to_programs():
    out = front_csv(_state([DEAD, LIVE], [0.5, 1.0], [2.0, 1.0]))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == FRONT_COLUMNS
    for r in rows:
        assert len(parse_program(r["program"])) == int(r["length"])


def test_non_finite_errors_are_never_on_the_front():
    rows = front_rows(_state([DEAD, LIVE], [np.nan, 1.0], [0.0, 1.0]))
    assert [r[0] for r in rows] == [1.0]
