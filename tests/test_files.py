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


def test_front_csv_labels_errors_against_the_target():
    from evolve.runs.files import meets_target

    assert meets_target(0.99, None, 1.0) == "sampled only"  # never "yes" on samples alone
    assert meets_target(0.99, "1.189", 1.0) == "no"  # the certificate decides
    assert meets_target(0.99, 0.97, 1.0) == "certified"
    assert meets_target(1.5, None, 1.0) == "no" and meets_target(0.5, None, None) == ""
    out = front_csv(_state([DEAD, LIVE], [0.5, 1.0], [2.0, 1.0]), target=0.75)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["meets_target"] for r in rows] == ["no", "sampled only"]


def test_rewriting_the_front_keeps_the_certificates_of_its_programs(tmp_path):
    from evolve.runs.files import CERTIFIED_COLUMNS, RunDir, read_certificates

    run = RunDir(tmp_path)
    state = _state([DEAD, LIVE], [0.5, 1.0], [2.0, 1.0])
    run.write_front(state, 0.75)
    plain = (tmp_path / "front.csv").read_bytes()
    assert read_certificates(tmp_path / "front.csv") == {}
    rows = list(csv.DictReader(io.StringIO(plain.decode())))
    cells = {"certified_max_ulp": "0.625", "certified_worst_x": "0.5",
             "certified_over_1ulp": "0"}
    text = format_program(Program(DEAD.instructions[1:2] + DEAD.instructions[3:], 1)).rstrip()
    with open(tmp_path / "front.csv", "w", newline="") as f:  # what `evolve verify` leaves
        w = csv.DictWriter(f, [*FRONT_COLUMNS, *CERTIFIED_COLUMNS], lineterminator="\n",
                           restval="")
        w.writeheader()
        w.writerows({**r, **(cells if r["program"] == text else {})} for r in rows)
    run.write_front(state, 0.75)  # the next generation, or a resume
    again = list(csv.DictReader(open(tmp_path / "front.csv", newline="")))
    kept = {r["program"]: r for r in again}
    assert {c: kept[text][c] for c in CERTIFIED_COLUMNS} == cells
    assert kept[text]["meets_target"] == "certified"
    assert [r["certified_max_ulp"] for r in again if r["program"] != text] == [""]
    run.write_front(_state([LIVE], [1.0], [1.0]), 0.75)  # the certified program left
    assert (tmp_path / "front.csv").read_text().splitlines()[0] == ",".join(FRONT_COLUMNS)
