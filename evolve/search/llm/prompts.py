"""Prompts for LLM edits, built from data, and the parsing of the model's replies.

A prompt is two chat messages. The system message holds what does not change in a run:
the problem (its description, inputs, domain, error measure, target), the ops table (for
the allowed ops: name, arity, meaning, cost) and the grammar of the text form. The user
message holds the current Pareto front of the population (error and cost of up to eight
points: where the search stands now, since replies arrive while it goes on), the parents
in text form with their objectives, the outcomes of this run's recent LLM edits (which improved on their parent, which did not, and why, parse errors
included), and the task: a mutation of one program, or a crossover of two or three.

A reply is either SEARCH/REPLACE blocks applied to the first parent's text,

    <<<<<<< SEARCH
    r3 = mul(r0, r2)
    =======
    r3 = fma(r0, r2, r1)
    >>>>>>> REPLACE

or a whole program (in a fenced block, or the whole reply). Both end in
``evolve.text.parse_program`` with the problem's registers, ops and length: the reply is
data, never run. A reply that yields no program raises ``ReplyError`` with kind "edit" (a
SEARCH that does not match) or "parse" (no valid program), and a message that is fed back
to the model in later prompts.
"""

from __future__ import annotations

import math
import re

from evolve.ops import OPS
from evolve.problem import Problem
from evolve.program import Program
from evolve.text import ParseError, format_program, parse_program

ANSWERS = ("either", "program", "edits")

_ERROR_NAMES = {"max_ulp": "maximum error in float32 ULPs of the exact value",
                "max_abs": "maximum absolute error", "rmse": "root-mean-square error"}


class ReplyError(ValueError):
    """A reply that gives no program: ``kind`` is "edit" or "parse"."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


def number(value: float | None) -> str:
    """An objective as the prompt shows it: 6 significant digits; inf for no value."""
    if value is None or not math.isfinite(value):
        return "inf (NaN or overflow somewhere)"
    return f"{value:.6g}"


# -- the system message -------------------------------------------------------------------
def describe_problem(problem: Problem) -> str:
    """The problem, its inputs and its objectives, in words."""
    inputs = ", ".join(f"r{i} in [{lo:g}, {hi:g}]" for i, (lo, hi) in enumerate(problem.domain))
    lines = [f"Problem {problem.name}: {problem.description}",
             f"Inputs: {inputs} ({problem.dtype}). Every other register starts at 0.",
             f"Error: {_ERROR_NAMES[problem.error]} against the exact function, "
             "over the whole domain.",
             "Cost: the summed cost of the instructions that depend on an input and reach "
             "the returned value (literals cost nothing)."]
    if problem.target is not None:
        lines.append(f"Goal: error below {problem.target:g} at the lowest cost.")
    else:
        lines.append("Goal: the lowest error, then the lowest cost.")
    if problem.notes:
        lines.append(f"Notes: {problem.notes}")
    return "\n".join(lines)


def describe_ops(problem: Problem) -> str:
    """The allowed ops as a table: call, meaning, cost."""
    letters = "abc"
    rows = []
    for code in problem.opcodes:
        op = OPS[code]
        if op.arity == 0:
            rows.append(f"  rD = LITERAL        {op.doc} (cost 0)")
            continue
        call = f"{op.name}({', '.join(letters[: op.arity])})"
        rows.append(f"  rD = {call:<14} {op.doc} (cost {op.cost:g})")
    return "Allowed operations:\n" + "\n".join(rows)


def describe_grammar(problem: Problem) -> str:
    """The text form: what a line may be and the limits that apply."""
    last = problem.n_registers - 1
    return "\n".join([
        "Program text: one instruction per line, then a return line:",
        "  rD = op(rA, rB, ...)   an operation of registers (exactly its number of arguments)",
        "  rD = LITERAL           a float literal, decimal (0.693147) or hex (0x1.62e43p-1)",
        f"  return rK              the result (the last line; usually return r{problem.output})",
        f"Registers r0..r{last}; literals are rounded to float32; at most "
        f"{problem.max_length} instructions; '#' starts a comment.",
        "Only this language is accepted: no Python, no other functions, no loops.",
    ])


def system_message(problem: Problem, answer: str = "either") -> str:
    """The first message: the role, the problem, the ops, the grammar, the answer format."""
    formats = {
        "program": "Answer with the whole new program in one ``` fenced block.",
        "edits": ("Answer with one or more SEARCH/REPLACE blocks that edit the first program:\n"
                  "<<<<<<< SEARCH\n(lines copied exactly from the program)\n=======\n"
                  "(the lines that replace them)\n>>>>>>> REPLACE"),
    }
    formats["either"] = (formats["program"] + "\nOr answer with SEARCH/REPLACE blocks that "
                         "edit the first program:\n<<<<<<< SEARCH\n(lines copied exactly "
                         "from the program)\n=======\n(the lines that replace them)\n"
                         ">>>>>>> REPLACE")
    return "\n\n".join([
        "You improve straight-line programs found by an evolutionary search. A program is "
        "a list of register instructions in the small language below.",
        describe_problem(problem), describe_ops(problem), describe_grammar(problem),
        formats[answer] + "\nKeep any explanation short and outside the program.",
    ])


# -- the user message ---------------------------------------------------------------------
def describe_outcome(entry: dict) -> str:
    """One line (or a few) about an earlier LLM edit, from its history record."""
    head = f"- generation {entry['generation']}, {entry['kind']}: "
    result = entry["result"]
    parent = entry.get("parent") or [None, None]
    child = entry.get("child") or [None, None]
    if result == "failed":
        return head + f"failed ({entry['why']})"
    change = (f"error {number(parent[0])} -> {number(child[0])}, "
              f"cost {number(parent[1])} -> {number(child[1])}")
    if result == "improved":
        text = head + f"improved on its parent: {change}"
        if entry.get("program"):
            text += "\n  " + entry["program"].rstrip("\n").replace("\n", "\n  ")
        return text
    if result == "same":
        return head + f"no new behaviour ({entry['why']})"
    return head + f"not better than its parent: {change}"


def user_message(kind: str, parents: list[tuple[Program, float, float]],
                 history: list[dict], front: list[tuple] | None = None) -> str:
    """The second message: recent outcomes, the current front, the parents with
    objectives, the task."""
    parts = []
    if history:
        parts.append("Outcomes of recent LLM edits in this run (oldest first); learn from "
                     "them:\n" + "\n".join(describe_outcome(e) for e in history))
    if front:
        parts.append("The search's current Pareto front (error, cost), most accurate first: "
                     + ", ".join(f"({number(e)}, {number(c)})" for e, c in front))
    names = "ABC"
    for name, (program, error, cost) in zip(names, parents):
        parts.append(f"Program {name} (error {number(error)}, cost {number(cost)}):\n```\n"
                     f"{format_program(program)}```")
    if kind == "mutation":
        parts.append("Task: write one changed version of program A that you expect to have "
                     "a lower error, or the same error at a lower cost.")
    else:
        listed = " and ".join(names[: len(parents)])
        parts.append(f"Task: programs {listed} are inspirations. Write one new program that "
                     "combines their best ideas, expected to have a lower error than each, "
                     "or the same error at a lower cost. Edits apply to program A.")
    return "\n\n".join(parts)


def messages(problem: Problem, kind: str, parents: list[tuple[Program, float, float]],
             history: list[dict], answer: str = "either",
             front: list[tuple] | None = None) -> list[dict]:
    """The chat messages of one request."""
    return [{"role": "system", "content": system_message(problem, answer)},
            {"role": "user", "content": user_message(kind, parents, history, front)}]


# -- replies --------------------------------------------------------------------------------
_BLOCK = re.compile(r"^[ \t]*<{5,}[ \t]*SEARCH[ \t]*\n(.*?)^[ \t]*={5,}[ \t]*\n(.*?)"
                    r"^[ \t]*>{5,}[ \t]*REPLACE[ \t]*$", re.MULTILINE | re.DOTALL)
_FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)


def _norm(line: str) -> str:
    """A line as edits match it: no comment, no whitespace."""
    return re.sub(r"\s+", "", line.split("#", 1)[0])


def _lines(text: str) -> list[str]:
    return [ln for ln in text.split("\n") if _norm(ln)]


def apply_edits(text: str, reply: str) -> str | None:
    """``text`` with the reply's SEARCH/REPLACE blocks applied in order; None if the reply
    has none. Lines match ignoring whitespace and comments; ``ReplyError("edit")`` if a
    SEARCH is empty or matches nowhere."""
    blocks = _BLOCK.findall(reply)
    if not blocks:
        return None
    lines = _lines(text)
    for n, (search, replace) in enumerate(blocks, 1):
        want = [_norm(ln) for ln in _lines(search)]
        if not want:
            raise ReplyError("edit", f"SEARCH/REPLACE block {n} has an empty SEARCH part")
        have = [_norm(ln) for ln in lines]
        at = next((i for i in range(len(have) - len(want) + 1)
                   if have[i: i + len(want)] == want), None)
        if at is None:
            first = _lines(search)[0].strip()
            raise ReplyError("edit", f"the SEARCH part of block {n} (first line {first[:80]!r}) "
                                     "is not in program A; copy lines from it exactly")
        lines[at: at + len(want)] = _lines(replace)
    return "\n".join(lines) + "\n"


def program_text(reply: str) -> str:
    """The program part of a reply: the first fenced block with a ``return`` line, else the
    first fenced block, else the whole reply."""
    blocks = _FENCE.findall(reply)
    for block in blocks:
        if re.search(r"^\s*return\b", block, re.MULTILINE):
            return block
    return blocks[0] if blocks else reply


def parse_reply(reply: str, parent: Program, problem: Problem) -> Program:
    """The program a reply gives: its edits applied to ``parent``, or the program it holds.

    Checked against the problem's registers, ops and length; ``ReplyError`` otherwise.
    """
    edited = apply_edits(format_program(parent), reply)
    text = edited if edited is not None else program_text(reply)
    try:
        return parse_program(text, problem.n_registers, problem.opcodes, problem.max_length)
    except ParseError as e:
        what = "the edited program" if edited is not None else "the program"
        raise ReplyError("parse", f"{what}, line {e.line}, column {e.column}: {e.detail} "
                                  f"in {e.source.strip()[:100]!r}") from None
