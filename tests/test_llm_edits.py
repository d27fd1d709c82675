"""LLM edits: the chat client, prompts and reply parsing, and runs with LLM variation, all
against a real HTTP server on 127.0.0.1 that answers from a script (tests/chat_server.py)."""

import hashlib
import json
import math
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import tiny
from chat_server import Answer, ChatServer, free_port
from evolve.catalog import load_problem
from evolve.errors import UserError
from evolve.runs import driver as runs
from evolve.runs.checkpoint import list_checkpoints, load_checkpoint
from evolve.runs.config import build_config
from evolve.search.llm import chat
from evolve.search.llm.edits import REPLIES, LLMParams, ReplyLog, open_llm
from evolve.search.llm.prompts import ReplyError, messages, parse_reply
from evolve.text import format_program, parse_program

PROBLEM = load_problem("exp2")
PARENT = parse_program("r2 = 0.5\nr3 = mul(r0, r2)\nr1 = fma(r3, r0, r0)\nreturn r1\n")
HORNER = ("r1 = {c}\nr2 = 0.6576363\nr1 = fma(r1, r0, r2)\nr2 = 1.0\n"
          "r1 = fma(r1, r0, r2)\nreturn r1\n")


def _body(text="hi"):
    return {"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 16}


# -- the chat client ---------------------------------------------------------------------
def test_complete_sends_the_protocol_and_reads_usage():
    with ChatServer([Answer("r1 = add(r0, r0)\nreturn r1", usage=(12, 7))]) as server:
        reply = chat.complete(server.url, _body(), api_key="sk-test", timeout=5)
    assert reply.error is None and reply.content.startswith("r1 = add")
    assert (reply.tokens_in, reply.tokens_out, reply.attempts) == (12, 7, 1)
    assert server.requests == [_body()]
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


def test_retries_429_and_5xx_with_backoff():
    script = [Answer(status=429, body=b"{}", headers={"Retry-After": "0"}),
              Answer(status=503, body=b"busy"), Answer("ok")]
    with ChatServer(script) as server:
        reply = chat.complete(server.url, _body(), timeout=5, retries=3, backoff=0.01)
    assert (reply.content, reply.attempts, len(server.requests)) == ("ok", 3, 3)


def test_gives_up_when_retries_are_spent_or_status_is_final():
    with ChatServer([Answer(status=500, body=b"down")]) as server:
        reply = chat.complete(server.url, _body(), timeout=5, retries=2, backoff=0.01)
        assert (reply.error, reply.attempts, len(server.requests)) == ("http", 3, 3)
        assert "HTTP 500" in reply.detail
    with ChatServer([Answer(status=400, body=b"bad request")]) as server:
        reply = chat.complete(server.url, _body(), timeout=5, retries=3, backoff=0.01)
        assert (reply.error, reply.attempts) == ("http", 1)
    with ChatServer([Answer(status=429, body=b"{}", headers={"Retry-After": "30"})]) as server:
        start = time.monotonic()
        reply = chat.complete(server.url, _body(), timeout=2, retries=3)
        assert reply.error == "http" and "no time left" in reply.detail
        assert time.monotonic() - start < 1.5  # does not sleep past its deadline


@pytest.mark.parametrize("answer", [Answer("late", delay=30),
                                    Answer("x" * 400, trickle=0.05)],
                         ids=["silent", "trickle"])
def test_timeout_really_ends_the_request(answer):
    with ChatServer([answer]) as server:
        start = time.monotonic()
        reply = chat.complete(server.url, _body(), timeout=0.6, retries=3)
        took = time.monotonic() - start
    assert reply.error == "timeout" and reply.content is None
    assert took < 1.5, f"the request took {took:.2f} s against a 0.6 s timeout"


def test_too_long_and_bad_responses():
    with ChatServer([Answer("r" * 200_000)]) as server:
        reply = chat.complete(server.url, _body(), timeout=5, max_bytes=1 << 16)
        assert reply.error == "too_long"
    for answer in (Answer(body=b"<html>not json</html>"), Answer(None),
                   Answer(body=b'{"choices": []}')):
        with ChatServer([answer]) as server:
            assert chat.complete(server.url, _body(), timeout=5).error == "bad_response"


def test_network_errors_are_retried_then_reported():
    server = ChatServer([Answer("x")])
    url = server.url
    server.stop()  # nothing listens there now
    reply = chat.complete(url, _body(), timeout=5, retries=2, backoff=0.01)
    assert reply.error == "network" and reply.attempts == 3


# -- prompts and replies ---------------------------------------------------------------------
def test_prompt_is_built_from_data():
    history = [{"generation": 3, "kind": "mutation", "result": "failed",
                "why": "parse: line 1, column 6: unknown op 'pow'"},
               {"generation": 3, "kind": "crossover", "result": "improved",
                "parent": [12.5, 7.0], "child": [3.25, 6.0], "program": "r1 = add(r0, r0)\n"
                                                                       "return r1\n"},
               {"generation": 4, "kind": "mutation", "result": "worse", "parent": [3.0, 5.0],
                "child": [None, 5.0]}]
    system, user = (m["content"] for m in messages(PROBLEM, "crossover", [
        (PARENT, 12.5, 3.0), (PARENT, None, 3.0)], history, front=[(0.875, 6.0), (12.5, 3.0)]))
    assert PROBLEM.description in system
    for op in ("add", "sub", "mul", "div", "fma(a, b, c)", "LITERAL"):
        assert op in system
    assert "r0..r3" in system and "at most 24 instructions" in system and "SEARCH" in system
    assert format_program(PARENT) in user and "Program B" in user
    assert "error 12.5, cost 3" in user and "inf" in user
    assert "unknown op 'pow'" in user and "12.5 -> 3.25" in user and "r1 = add(r0, r0)" in user
    assert "not better" in user
    assert "current Pareto front (error, cost), most accurate first: (0.875, 6), (12.5, 3)" in user


def test_replies_give_programs_by_text_or_by_edits():
    whole = "Here you go:\n```text\nr1 = mul(r0, r0)  # square\nreturn r1\n```\nEnjoy."
    assert parse_reply(whole, PARENT, PROBLEM) == parse_program("r1 = mul(r0, r0)\nreturn r1")
    bare = "r1 = 0x1p-1\nreturn r1\n"
    assert parse_reply(bare, PARENT, PROBLEM).instructions[0].value == 0.5
    edit = ("Change the literal.\n<<<<<<< SEARCH\nr2 =   0.5\n=======\nr2 = 0.25\n>>>>>>> REPLACE\n"
            "<<<<<<< SEARCH\nr1 = fma(r3,r0,r0)\n=======\nr1 = fma(r3, r0, r2)\n"
            ">>>>>>> REPLACE")
    edited = parse_reply(edit, PARENT, PROBLEM)
    assert format_program(edited) == "r2 = 0.25\nr3 = mul(r0, r2)\nr1 = fma(r3, r0, r2)\nreturn r1\n"


@pytest.mark.parametrize("reply, kind, words", [
    ("r1 = pow(r0, r0)\nreturn r1", "parse", "unknown op 'pow'"),
    ("r1 = sin(r0)\nreturn r1", "parse", "not allowed"),
    ("r7 = add(r0, r0)\nreturn r7", "parse", "out of range"),
    ("I think the program is fine as it is.", "parse", "line 1"),
    ("", "parse", "return"),
    ("r1 = add(r0, r0)\n" * 30 + "return r1", "parse", "max_length"),
    ("<<<<<<< SEARCH\nr9 = nothing\n=======\nr1 = r0\n>>>>>>> REPLACE", "edit", "not in program A"),
    ("<<<<<<< SEARCH\n=======\nr1 = add(r0, r0)\n>>>>>>> REPLACE", "edit", "empty"),
])
def test_malformed_replies_name_what_is_wrong(reply, kind, words):
    with pytest.raises(ReplyError) as e:
        parse_reply(reply, PARENT, PROBLEM)
    assert e.value.kind == kind and words in str(e.value)


def test_hostile_replies_are_data(tmp_path):
    marker = tmp_path / "pwned"
    for reply in (f"```python\nimport os\nos.system('touch {marker}')\nreturn r1\n```",
                  f"r1 = __import__('os').system('touch {marker}')\nreturn r1",
                  f"$(touch {marker})\nreturn r1", f"r1 = add(r0, r0); touch {marker}\nreturn r1"):
        with pytest.raises(ReplyError) as e:
            parse_reply(reply, PARENT, PROBLEM)
        assert e.value.kind == "parse"
    assert not marker.exists()


def test_reply_log_survives_a_cut_line(tmp_path):
    path = tmp_path / REPLIES
    log = ReplyLog(path)
    log.append({"key": "a", "content": "x"})
    log.append({"key": "b", "content": "y"})
    with open(path, "a") as f:
        f.write('{"key": "c", "cont')  # a kill in the middle of a line
    again = ReplyLog(path)
    assert set(again.entries) == {"a", "b"}
    again.append({"key": "d", "content": "z"})
    assert set(ReplyLog(path).entries) == {"a", "b", "d"}


def test_config_checks(monkeypatch):
    assert not LLMParams().enabled and tiny.config(1).llm == LLMParams()
    with pytest.raises(UserError, match="llm.models"):
        build_config(sets=["llm.rate=0.1"], overrides={"problem": "exp2"})
    with pytest.raises(UserError, match="one per model"):
        build_config(sets=["llm.rate=0.1", "llm.models=[a, b]", "llm.model_weights=[1]"],
                     overrides={"problem": "exp2"})
    with pytest.raises(UserError, match="not an http"):
        build_config(sets=["llm.base_url=localhost:8000"], overrides={"problem": "exp2"})
    with pytest.raises(UserError, match="'llm.answer'"):
        build_config(sets=["llm.answer=poem"], overrides={"problem": "exp2"})
    monkeypatch.delenv("EVOLVE_TEST_KEY", raising=False)
    config = build_config(sets=["llm.rate=0.1", "llm.models=m", "llm.api_key_env=EVOLVE_TEST_KEY"],
                          overrides={"problem": "exp2"})
    with pytest.raises(UserError, match="EVOLVE_TEST_KEY"):
        runs.start(config, Path("/nonexistent/never-made"), quiet=True)


# -- runs with LLM edits -------------------------------------------------------------------------
def _parent_text(request: dict) -> str:
    user = request["messages"][1]["content"]
    return user.split("```\n", 1)[1].split("```", 1)[0]


class Scripted:
    """Answers as a function of the request alone (whatever the order they come in): valid
    programs, SEARCH/REPLACE edits, malformed and hostile text, a 429 first, silence."""

    def __init__(self, marker: Path):
        self.marker = marker
        self.seen: set[str] = set()
        self.down = False

    def __call__(self, request: dict, n: int) -> Answer:
        if self.down:
            return Answer(status=500, body=b"down")
        digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).digest()
        case, tweak = digest[0] % 16, digest[1]
        if case < 4:
            c = 0.3371894 * (1 + tweak / 1e3)
            return Answer("A better one:\n```\n" + HORNER.format(c=c) + "```")
        if case < 8:
            first = _parent_text(request).splitlines()[0]
            return Answer(f"<<<<<<< SEARCH\n{first}\n=======\n{first}\n"
                          f"r{2 + tweak % 2} = mul(r0, r0)\n>>>>>>> REPLACE")
        if case < 10:
            return Answer("r1 = pow(r0, 2)\nreturn r1")
        if case < 12:
            return Answer(f"```python\nimport os\nos.system('touch {self.marker}')\n```")
        if case < 14:
            key = json.dumps(request, sort_keys=True)
            if key not in self.seen:  # the first time: rate-limited
                self.seen.add(key)
                return Answer(status=429, body=b"{}", headers={"Retry-After": "0"})
            return Answer("r1 = fma(r0, r0, r0)\nreturn r1", usage=None)
        if case < 15:
            return Answer("r1 = add(r0, r0)\n" * 5000 + "return r1")  # too long a program
        return Answer("never in time", delay=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    script = Scripted(tmp_path_factory.mktemp("marker") / "pwned")
    with ChatServer(script) as s:
        yield s


def _sets(url, *extra):
    return [*tiny.SETS, "llm.rate=0.5", "llm.models=[scripted, other]",
            f"llm.base_url={url}", "llm.timeout=0.5", "llm.backoff=0.01",
            "llm.crossover_rate=0.3", "llm.inspirations=3", "llm.max_in_flight=4",
            "llm.price_in=1.5", "llm.price_out=6", "llm.breaker.cooldown=0.2", *extra]


def _config(url, generations, *extra):
    return build_config(sets=_sets(url, *extra),
                        overrides={"problem": tiny.PROBLEM, "generations": generations})


N = 12


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory):
    path = tmp_path_factory.mktemp("llm") / "reference"
    assert runs.start(_config(server.url, N), path, quiet=True).state.generation == N
    return path


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / REPLIES).read_text().splitlines()]


def _saved_llm(path: Path) -> dict:
    _, last = list_checkpoints(path / "checkpoints")[-1]
    return load_checkpoint(last)[1]["llm"]


def test_llm_run_records_metrics_and_replies(server, reference):
    metrics = pd.read_csv(reference / "metrics.csv")
    for column in ("llm_requests", "llm_replies", "llm_in_flight", "llm_programs",
                   "llm_fail_parse", "llm_fail_edit", "llm_fail_timeout", "llm_improved",
                   "llm_accepted", "llm_tokens_in", "llm_tokens_out", "llm_cost",
                   "llm_cost_total", "llm_acceptance", "llm_lag", "llm_skipped_busy",
                   "llm_skipped_paused", "llm_paused", "llm_breaker_failures",
                   "llm_next_probe_seconds", "llm_wait_seconds"):
        assert column in metrics.columns
    totals = metrics.sum()
    assert totals["llm_requests"] > 0 and totals["llm_replies"] > 0
    assert totals["llm_programs"] > 0 and totals["llm_fail_parse"] > 0
    assert totals["llm_skipped_busy"] > 0  # more candidates than places: never queued
    assert (metrics["llm_in_flight"] <= 4).all()
    # every request is absorbed once, or still out at the end
    assert totals["llm_requests"] == totals["llm_replies"] + metrics["llm_in_flight"].iloc[-1]
    assert totals["llm_replies"] == totals["llm_programs"] + sum(
        totals[c] for c in metrics.columns if c.startswith("llm_fail_"))
    assert (metrics["llm_lag"].dropna() >= 1).all()  # absorbed after the generation that asked
    assert math.isclose(metrics["llm_cost_total"].iloc[-1], totals["llm_cost"])
    assert math.isclose(totals["llm_cost"], (totals["llm_tokens_in"] * 1.5
                                            + totals["llm_tokens_out"] * 6) / 1e6)
    log = _log(reference)
    replies = [e for e in log if "key" in e]
    absorbed = [k for e in log if "boundary" in e for k in e["absorbed"]]
    assert len(absorbed) == len(set(absorbed)) == totals["llm_replies"]
    assert set(absorbed) <= {e["key"] for e in replies}
    assert all(e["generation"] >= 1 and len(e["key"]) == 64 for e in replies)
    saved = _saved_llm(reference)
    assert saved["requests"] == totals["llm_requests"]
    assert len(saved["pending"]) == metrics["llm_in_flight"].iloc[-1]
    assert not server.script.marker.exists()  # hostile replies were never run


def _replay_from(run: Path, to: Path, generation: int) -> Path:
    """A copy of ``run`` with its checkpoints after ``generation`` gone and a line of the
    reply log cut short: as if killed after that checkpoint."""
    shutil.copytree(run, to)
    for g, path in list_checkpoints(to / "checkpoints"):
        if g > generation:
            shutil.rmtree(path)
    with open(to / REPLIES, "a") as f:
        f.write('{"key": "cut sh')
    return to


def test_llm_run_resumes_exactly_with_the_server_down(server, reference, tmp_path):
    """The reference run, as if killed after its checkpoint of generation 6 (replies of
    later generations in the log, and a line cut short), resumed while the server is
    down: the logged replies are absorbed where the log says, none is asked again, and
    the run is the same."""
    path = _replay_from(reference, tmp_path / "run", 6)
    out_at_end = {json.dumps(r["body"], sort_keys=True) for r in _saved_llm(reference)["pending"]}
    asked = len(server.requests)
    server.script.down = True
    try:
        runs.resume(path, quiet=True)
    finally:
        server.script.down = False
    again = {json.dumps(r, sort_keys=True) for r in server.requests[asked:]}
    assert again <= out_at_end  # only requests the reference never had answered
    assert "replayed" in (path / "events.log").read_text()
    tiny.assert_same_run(reference, path)


@pytest.mark.slow
def test_llm_run_resumes_exactly_after_sigkill(tmp_path):
    """A real process, killed (SIGKILL) between checkpoints once the reply log records a
    generation past its first checkpoint, resumed while the server is down (nothing
    listens): the generations it had written come again the same, edits never asked again;
    and resuming that run's checkpoint once more repeats it byte for byte."""
    path = tmp_path / "run"
    script = Scripted(tmp_path / "pwned")
    server = ChatServer(script).start()
    sets = [a for s in _sets(server.url, "checkpoint_every=5") for a in ("--set", s)]
    run = subprocess.Popen([sys.executable, "-m", "evolve", "run", tiny.PROBLEM, "--quiet",
                            "--generations", "40", "--run-dir", str(path), *sets],
                           cwd=Path(__file__).resolve().parent.parent,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def recorded_past_checkpoint():
        saved = [g for g, _ in list_checkpoints(path / "checkpoints") if g > 0]
        if not saved or not (path / REPLIES).exists():
            return False
        for line in (path / REPLIES).read_text().splitlines():
            try:
                if json.loads(line).get("boundary", 0) > saved[0] + 1:
                    return True
            except ValueError:  # a line being written
                pass
        return False

    try:
        deadline = time.monotonic() + 240
        while not recorded_past_checkpoint():
            assert run.poll() is None, run.communicate()[1]
            assert time.monotonic() < deadline, "timed out waiting for the run"
            time.sleep(0.02)
        run.kill()
        run.communicate()
    finally:
        server.stop()
    killed = tiny.metrics_without_wall_clock(path)
    at = list_checkpoints(path / "checkpoints")[-1][0]
    assert at < 40 and len(killed) - 1 > at
    asked = len(server.requests)
    runs.resume(path, quiet=True)
    assert len(server.requests) == asked
    events = (path / "events.log").read_text()
    assert "replayed" in events and "paused" in events
    resumed = tiny.metrics_without_wall_clock(path)
    assert resumed[: len(killed)] == killed  # what the killed run wrote, made again
    again = _replay_from(path, tmp_path / "again", at)
    runs.resume(again, quiet=True)
    tiny.assert_same_run(path, again)
    assert not script.marker.exists()


def test_search_never_waits_for_replies(tmp_path):
    """A server that answers nothing until told to: the run goes through its generations
    with its requests out (none absorbed, no more sent); resumed once the server answers,
    it sends those requests again and absorbs their programs."""
    release = threading.Event()

    def script(request, n):
        release.wait(30)
        return Answer("r1 = mul(r0, r0)\nreturn r1")

    with ChatServer(script) as server:
        config = _config(server.url, 8, "llm.timeout=30")
        runs.start(config, tmp_path / "run", quiet=True)
        metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
        assert metrics["llm_requests"].sum() == 4 and metrics["llm_replies"].sum() == 0
        assert (metrics["llm_in_flight"] == 4).all()
        release.set()
        runs.resume(tmp_path / "run", 40, quiet=True)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics["llm_replies"].sum() > 4 and metrics["llm_programs"].iloc[8:].sum() > 0


def test_endpoint_down_then_up_pauses_then_resumes_edits(tmp_path):
    """Nothing listens at the endpoint: after a handful of refused requests its breaker
    pauses it (ordinary children fill the slots), probing now and then; a server starts
    there mid-run: the probe succeeds and LLM edits resume."""
    port = free_port()
    config = _config(f"http://127.0.0.1:{port}/v1", 10**6, "llm.breaker.failures=3",
                     "llm.breaker.cooldown=0.3", "llm.breaker.max_cooldown=0.3")
    problem = load_problem(tiny.PROBLEM)
    engine = runs.engine_for(config, problem)
    events = []
    llm = open_llm(config.llm, problem, tmp_path, log=events.append)
    state = engine.init(0)
    rows = []

    def step():
        nonlocal state
        state, _, row = engine.step(state, llm)
        rows.append(row)

    deadline = time.monotonic() + 60
    while not any("paused" in e for e in events):
        step()
        assert time.monotonic() < deadline
    before = sum(r["llm_requests"] for r in rows)
    assert before <= 2 + 4  # failures short of a pause, and those in flight
    for _ in range(20):  # paused: only probes are sent
        step()
    after = sum(r["llm_requests"] for r in rows) - before
    assert after == sum("probe sent" in e for e in events)
    assert sum(r["llm_skipped_paused"] for r in rows[-20:]) > 0
    assert rows[-1]["llm_paused"] == 1
    with ChatServer(lambda request, n: Answer("r1 = mul(r0, r0)\nreturn r1"), port):
        while not (rows and rows[-1]["llm_programs"] > 0):
            step()
            time.sleep(0.01)
            assert time.monotonic() < deadline + 60
    llm.close()
    assert any("back at generation" in e and "resume" in e for e in events)
    assert any("next probe in" in e for e in events)
    assert rows[-1]["llm_paused"] == 0 and rows[-1]["llm_breaker_failures"] == 0


def test_budget_stops_llm_variation_not_the_run(tmp_path, monkeypatch):
    def script(request, n):
        prompt = sum(len(m["content"].encode()) for m in request["messages"])
        return Answer("r1 = mul(r0, r0)\nreturn r1", usage=(prompt // 3, 256))

    monkeypatch.setenv("EVOLVE_TEST_KEY", "sk-secret-4711")
    with ChatServer(script) as server:
        config = _config(server.url, N, "llm.budget_tokens=15000", "llm.max_tokens=256",
                         "llm.api_key_env=EVOLVE_TEST_KEY")
        outcome = runs.start(config, tmp_path / "run", quiet=True)
    assert outcome.state.generation == N
    assert {h["Authorization"] for h in server.headers} == {"Bearer sk-secret-4711"}
    for file in (tmp_path / "run").rglob("*"):  # the key is sent, and written nowhere
        assert not file.is_file() or b"sk-secret" not in file.read_bytes()
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    spent = (metrics["llm_tokens_in"] + metrics["llm_tokens_out"]).sum()
    assert 0 < spent <= 15000
    assert metrics["llm_skipped_budget"].sum() > 0
    assert metrics["llm_requests"].iloc[0] > 0 and metrics["llm_requests"].iloc[-1] == 0
    assert "LLM budget spent" in (tmp_path / "run" / "events.log").read_text()


def test_no_llm_no_trace(tmp_path):
    runs.start(tiny.config(1), tmp_path / "run", quiet=True)
    assert not (tmp_path / "run" / REPLIES).exists()
    assert not any(c.startswith("llm_") for c in pd.read_csv(tmp_path / "run" / "metrics.csv"))
