"""LLM requests (evolve/search/llm/requests.py): keys, checkpoint and reply-log forms."""

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from evolve.catalog import load_problem
from evolve.search.llm import chat
from evolve.search.llm.requests import Request, logged_reply, request_key
from evolve.text import format_program, parse_program

PROBLEM = load_problem("exp2")
PARENT = parse_program("r2 = 0.693147182\nr1 = mul(r0, r2)\nreturn r1", PROBLEM.n_registers,
                       PROBLEM.opcodes, PROBLEM.max_length)
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.8,
        "max_tokens": 16, "seed": 7, "stream": False}
URL = "http://127.0.0.1:9/v1"

floats = st.floats(allow_nan=True, allow_infinity=True)


def _request(error=0.5, cost=3.0, fps=(b"\x00\x01",), worst=(100, 0.25)) -> Request:
    return Request(4, 2, "crossover", PARENT, error, cost, list(fps), "m", URL, BODY,
                   request_key(4, 2, URL, BODY), worst)


def test_the_key_is_pinned_so_old_reply_logs_still_replay():
    """The key of a request is the SHA-256 of its generation, slot, endpoint and body, as
    every ``llm-replies.jsonl`` written so far has it: a change here breaks their replay."""
    key = "9a3528f02a78e5da3962c3aa65da24b36c9047b7e2927cb52991076d6b65644d"
    assert request_key(3, 5, URL, BODY) == key
    assert request_key(3, 5, URL + "/", BODY) == key  # the same endpoint
    assert request_key(3, 6, URL, BODY) != key and request_key(4, 5, URL, BODY) != key
    assert request_key(3, 5, URL, {**BODY, "seed": 8}) != key


def test_the_checkpoint_form_keeps_its_fields_in_order():
    d = _request().to_dict()
    assert list(d) == ["generation", "slot", "kind", "parent", "parent_error", "parent_cost",
                       "parent_fps", "model", "url", "body", "key", "worst"]
    assert d["parent"] == format_program(PARENT)  # text: parsed on resume, never run
    assert d["parent_fps"] == ["0001"] and d["worst"] == [100, 0.25]


@given(floats, floats, st.lists(st.binary(min_size=1, max_size=16), max_size=3),
       st.integers(0, 10**9), st.floats(0, 1e6))
def test_a_checkpointed_request_reads_back_the_same(error, cost, fps, tokens, money):
    r = _request(error, cost, fps, (tokens, money))
    text = json.dumps(r.to_dict(), allow_nan=False)  # inf and nan as strings: strict JSON
    back = Request.from_dict(json.loads(text), PROBLEM)
    assert back.to_dict() == r.to_dict()
    assert back.parent == PARENT and back.parent_fps == list(fps)
    assert back.parent_error == error or (math.isnan(error) and math.isnan(back.parent_error))
    assert back.reply is None and back.started is None and not back.replayed


@given(st.one_of(st.none(), st.text()), st.sampled_from([None, *chat.FAILURES]),
       st.one_of(st.none(), st.integers(0, 10**6)), st.floats(0, 1e4))
def test_a_logged_reply_reads_back_as_the_reply(content, error, tokens, seconds):
    reply = chat.Reply(content, error, "why", tokens, tokens, 2, seconds)
    entry = json.loads(json.dumps(_request().log_entry(reply), sort_keys=True))
    assert entry["key"] == _request().key and entry["generation"] == 4 and entry["slot"] == 2
    back = logged_reply(entry)
    assert back == chat.Reply(content, error, "why", tokens, tokens, 2, round(seconds, 3))


def test_the_prompt_is_the_text_of_the_messages():
    r = _request()
    r.body = {**BODY, "messages": [{"role": "system", "content": "a"},
                                   {"role": "user", "content": "bc"}]}
    assert r.prompt == "abc"
