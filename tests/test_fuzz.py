"""Fuzzing the edges where input comes in: program text, configuration, problem files.

The contract: any input either loads, or fails with our own error (``ParseError`` for
program text, ``UserError`` for the rest) carrying a message; never another exception.
Example counts come from the hypothesis profile in conftest.py ("ci" runs more).
"""

from __future__ import annotations

import itertools
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evolve.catalog import load_problem
from evolve.errors import UserError
from evolve.ops import OPCODE
from evolve.problem import Problem
from evolve.program import Program, validate
from evolve.runs.config import FIELDS, GROUPS, RunConfig, build_config, dump_config, load_config
from evolve.text import ParseError, format_program, parse_program

_FILES = itertools.count()
_fixtures = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _file(directory: Path, name: str, data: str | bytes) -> Path:
    path = directory / f"{next(_FILES)}-{name}"
    path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return path


def _message_of(error: Exception) -> str:
    message = str(error)
    assert message.strip(), f"{type(error).__name__} without a message"
    return message


# ---------------------------------------------------------------------------- program text
# Tokens of the language and near misses, so that examples get past the first token.
_NUMBERS = st.one_of(
    st.floats().map(repr), st.floats(width=32).map(str), st.integers().map(str),
    st.sampled_from(["0x1.62e43p-1", "0x1p128", "0x1p-150", "0x.p1", "0x", "0xp3", "1e",
                     "1e99999999999", "-1e-99999999999", "1" * 450, "0." + "0" * 400 + "1",
                     "inf", "-Infinity", "nan", "+NaN", ".", "-.5e-3", "1.2.3", "1e+", "1_0",
                     "0x1p99999999999999999", "3.4028235e38", "3.4028236e38", "1e-46"]))
_TOKENS = st.one_of(
    _NUMBERS,
    st.integers(0, 2**40).map(lambda i: f"r{i}"),
    st.sampled_from([*OPCODE, "return", "=", "(", ")", ",", "#", "r", "R1", "r-1", "r01",
                     "mull", "__import__", "eval", "\t", "\r", "\x00", "\u00a0", "\u2028",
                     "é", "１", "r\u0661"]),
    st.text(max_size=3),
)
_LINES = st.lists(_TOKENS, max_size=8).map(" ".join)
_PROGRAM_TEXT = st.one_of(st.text(), st.lists(_LINES, max_size=6).map("\n".join))


def _check_parse(text: str, n_registers, allowed, max_length) -> None:
    try:
        program = parse_program(text, n_registers=n_registers, allowed_ops=allowed,
                                max_length=max_length)
    except ParseError as e:
        _message_of(e)
        assert e.line >= 1 and e.column >= 1 and e.expected
        return
    assert isinstance(program, Program)
    if n_registers is not None:
        validate(program, n_registers)
    assert parse_program(format_program(program)) == program


@given(_PROGRAM_TEXT, st.one_of(st.none(), st.integers(1, 12)),
       st.one_of(st.none(), st.sets(st.sampled_from(list(OPCODE)))),
       st.one_of(st.none(), st.integers(0, 6)))
def test_program_text_parses_or_is_a_parse_error(text, n_registers, allowed, max_length):
    _check_parse(text, n_registers, allowed, max_length)


@given(st.lists(st.tuples(st.integers(0, 9), st.sampled_from(list(OPCODE)),
                          st.lists(st.integers(0, 9), max_size=4), _NUMBERS), max_size=6),
       st.integers(0, 9))
def test_near_valid_programs_parse_or_are_parse_errors(lines, output):
    rows = [f"r{d} = {n}" if op == "const" else f"r{d} = {op}({', '.join(f'r{a}' for a in args)})"
            for d, op, args, n in lines]
    _check_parse("\n".join([*rows, f"return r{output}"]), 8, None, None)


# ---------------------------------------------------------------------------- configuration
_NAMES = st.one_of(st.sampled_from([*FIELDS, *GROUPS]), st.text(max_size=12),
                   st.sampled_from(["search.populaton", "search..population", ".", "",
                                    "search.variation.mutation_weights.nope", "seed.x"]))
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
    st.sampled_from(["2001-02-30", "2001-01-01", "1e400", ".inf", "-.nan", "0x1F", "1_000",
                     "0o17", "~", "yes", "[1, 2", "{a: 1}", "!!binary zz", "&a [*a]",
                     "!!python/object/apply:os.system ['true']", "[[[[[[[[[[]]]]]]]]]]"]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_NAMES, inner, max_size=3)), max_leaves=8)


def _check_config(make) -> None:
    try:
        config = make()
    except UserError as e:
        message = _message_of(e)
        assert "\n" not in message, message  # one line, as the command line prints it
        return
    assert isinstance(config, RunConfig)


@given(st.dictionaries(_NAMES, _VALUES, max_size=5))
@_fixtures
def test_config_files_of_fuzzed_fields(scratch, data):
    try:
        text = yaml.safe_dump(data, default_flow_style=False)
    except yaml.YAMLError:
        return
    path = _file(scratch, "c.yaml", text)
    _check_config(lambda: build_config(path, overrides={"problem": "exp2"}))


@given(st.one_of(st.text(), st.binary(),
                 st.lists(st.sampled_from(["search:", "  population: 4", "seed: 2001-02-30",
                                           "- 1", "? [a]", ": b", "!!python/name:os.system",
                                           "a: &x 1", "b: *x", "*y", "%YAML 1.1", "---", "...",
                                           "{", "[", "\t", "c: !!timestamp 'x'", "\x00"]),
                          max_size=6).map("\n".join)))
@_fixtures
def test_config_files_of_fuzzed_text(scratch, text):
    path = _file(scratch, "c.yaml", text)
    _check_config(lambda: build_config(path, overrides={"problem": "exp2"}))


@given(st.lists(st.one_of(st.text(max_size=20),
                          st.tuples(_NAMES, _SCALARS.map(str)).map("=".join)), max_size=4))
def test_set_overrides(items):
    _check_config(lambda: build_config(sets=items, overrides={"problem": "exp2"}))


@given(st.dictionaries(st.sampled_from(list(FIELDS)), _SCALARS, max_size=4))
@_fixtures
def test_a_config_that_loads_writes_and_reads_back(scratch, values):
    try:
        config = build_config(overrides={"problem": "exp2", **{k: v for k, v in values.items()
                                                               if v is not None}})
    except UserError:
        return
    path = _file(scratch, "config.yaml", dump_config(config))
    assert load_config(path) == config


# ---------------------------------------------------------------------------- problem files
_ARGUMENTS = {
    "name": ["'cube'", "''", "3", "None"],
    "description": ["'x^3'", "None", "[1]"],
    "reference": ["lambda x: x[:, 0] ** 3", "None", "3", "lambda x: 1 / 0", "lambda: 0",
                  "lambda x: 'text'", "lambda x: x", "lambda x: x[:2, 0]", "print"],
    "domain": ["((-1, 1),)", "((1, -1),)", "((0, float('inf')),)", "((0, float('nan')),)",
               "()", "(1, 2)", "5", "((0, 1, 2),)", "(('a', 'b'),)", "((-1, 1), (0, 1))"],
    "ops": ["('add', 'mul')", "('mull',)", "'add'", "()", "(3,)", "None"],
    "error": ["'rmse'", "'max_ulp'", "'ulp'", "None"],
    "target": ["None", "1e-6", "-1.0", "float('nan')", "'small'"],
    "dtype": ["'float32'", "'float64'", "'float16'", "int"],
    "n_registers": ["4", "1", "0", "-3", "2.5", "'4'", "10**9"],
    "max_length": ["16", "0", "-1", "None", "1.5"],
    "n_train": ["64", "1", "0", "-5", "'many'"],
    "n_probe": ["16", "0", "-1"],
    "n_verify": ["1000", "0"],
    "baselines": ["()", "({'name': 'b', 'error': 1.0, 'cost': 2.0},)", "5", "('x',)"],
}
_REQUIRED = ("name", "description", "reference", "domain", "ops")


@st.composite
def _problem_sources(draw) -> str:
    names = draw(st.sets(st.sampled_from(list(_ARGUMENTS))) | st.just(set(_REQUIRED)))
    args = ", ".join(f"{n}={draw(st.sampled_from(_ARGUMENTS[n]))}" for n in sorted(names))
    head = "import numpy as np\nfrom evolve.problem import Problem\n"
    body = draw(st.sampled_from([
        f"PROBLEM = Problem({args})\n",
        f"PROBLEMS = [Problem({args})]\n",
        f"PROBLEMS = [Problem({args}), Problem({args})]\n",
        "PROBLEM = 3\n", "PROBLEMS = []\n", "PROBLEMS = 7\n", "PROBLEMS = [None]\n", "\n",
        "import no_such_module_here\n", "raise SystemExit(3)\n", "1 / 0\n",
        "def f(:\n", "PROBLEM = Problem(\n", "x = \x00\n", "PROBLEM = Problem(**{'bad': 1})\n",
    ]))
    return head + body


def _check_problem(path: Path) -> None:
    try:
        problem = load_problem(str(path))
    except UserError as e:
        message = _message_of(e)
        assert "\n" not in message, message
        return
    assert isinstance(problem, Problem)


@given(_problem_sources())
@_fixtures
def test_problem_files_of_fuzzed_arguments(scratch, source):
    _check_problem(_file(scratch, "problem.py", source))


@given(st.one_of(st.text(), st.binary(max_size=64),
                 st.text(string.printable, max_size=40)),
       st.sampled_from(["p.py", "p.txt", "p", "p.py.py", "p .py"]))
@_fixtures
def test_problem_files_of_fuzzed_text(scratch, text, name):
    _check_problem(_file(scratch, name, text))


def test_odd_problem_paths(scratch):
    for path in (scratch, scratch / "missing.py", scratch / "dir.py"):
        (scratch / "dir.py").mkdir(exist_ok=True)
        with pytest.raises(UserError):
            load_problem(str(path))


def test_a_problem_file_with_a_dataclass_and_postponed_annotations(scratch):
    path = _file(scratch, "dc.py", "from __future__ import annotations\n"
                 "from dataclasses import dataclass\n"
                 "from evolve.problems.exp2 import PROBLEM\n"
                 "@dataclass\nclass Settings:\n    degree: int = 3\n")
    assert load_problem(str(path)).name == "exp2"


def test_a_failing_problem_file_names_its_line(scratch):
    path = _file(scratch, "bad.py", "x = 1\n\nraise RuntimeError('no data here')\n")
    with pytest.raises(UserError, match=r"line 3 failed to load: RuntimeError: no data here"):
        load_problem(str(path))
