"""The end-of-run certificate (evolve.results.autocertify): what it certifies, what it
leaves to `evolve verify` and says so, and what it writes into front.csv."""

import csv
import itertools
from pathlib import Path

from evolve.results import autocertify
from evolve.results.autocertify import candidates, certify_end_of_run, domain_points, takes_part
from evolve.results.certify import WORST_INPUTS
from evolve.runs.config import CertifyParams
from evolve.runs.files import read_certificates
from test_certify import CONSTANT, LINEAR, QUADRATIC, TINY_DOMAIN, make_run, tiny_problem


def rows(run: Path) -> list[dict]:
    with open(run / "front.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_the_cheapest_under_target_programs_are_certified_into_front_csv(tmp_path, monkeypatch):
    monkeypatch.setattr(autocertify, "chunk_plan", lambda problem: (1024, 8))
    # LINEAR claims 0.95 on sampled points: a certificate, not the claim, decides
    front = [(1000.0, 0.0, CONSTANT), (0.95, 2.0, LINEAR), (0.9, 3.0, QUADRATIC)]
    run = make_run(tmp_path, front=front)
    problem = tiny_problem()
    assert candidates(rows(run), problem, 3) == [1, 2] and domain_points(problem) == 8193
    out = certify_end_of_run(run, problem, CertifyParams(seconds=60.0, count=3))
    got = rows(run)
    assert [i for i, _ in out.certified] == [2] and [i for i, _ in out.skipped] == [1]
    assert "a sampled check of every 9th float32 finds" in out.skipped[0][1]  # LINEAR caught
    assert got[2]["meets_target"] == "certified" and float(got[2]["certified_max_ulp"]) < 1
    assert got[1]["certified_max_ulp"] == "" and got[1]["meets_target"] == "sampled only"
    assert any(n.startswith("certified: front row 2") for n in out.notes)
    assert not any("evolve verify" in n for n in out.notes)  # nothing left for want of time
    # certified rows are not certified again
    again = certify_end_of_run(run, problem, CertifyParams(seconds=60.0, count=3))
    assert not again.certified and set(read_certificates(run / "front.csv")) == {
        QUADRATIC.rstrip("\n")}


def test_what_does_not_fit_the_budget_is_left_to_verify_and_named(tmp_path, monkeypatch):
    # as if the domain took 8 device calls of 1024 points: timed on one call's worth
    monkeypatch.setattr(autocertify, "chunk_plan", lambda problem: (1024, 8))
    run = make_run(tmp_path)
    ticks = itertools.count(step=0.5)  # every call seems to take 0.5 s
    out = certify_end_of_run(run, tiny_problem(), CertifyParams(seconds=5.0, count=3),
                             clock=lambda: next(ticks))
    assert not out.certified and [i for i, _ in out.skipped] == [2]
    # 0.5 s a call, 8 calls: 4 s; 1.5 s of the 5 went on the two timing calls
    assert "would take about 4 s, more than the 3.5 s left of certify.seconds = 5" \
        in out.notes[0]
    assert out.notes[-1].startswith(f"to certify what was left: evolve verify {run} --limit 1")
    assert "certified_max_ulp" not in rows(run)[0]  # front.csv untouched
    off = certify_end_of_run(run, tiny_problem(), CertifyParams(seconds=0.0, count=3))
    assert not off.certified and "certify.seconds is 0" in off.notes[0]


def test_only_ulp_problems_of_one_float32_input_with_a_target_take_part():
    from dataclasses import replace

    problem = tiny_problem()
    assert takes_part(problem) and problem.domain[0] == TINY_DOMAIN
    assert not takes_part(replace(problem, target=None))
    assert not takes_part(replace(problem, error="rmse"))
    assert not takes_part(replace(problem, domain=(TINY_DOMAIN, TINY_DOMAIN)))


def test_a_domain_of_one_call_is_certified_by_the_timing_call(tmp_path):
    run = make_run(tmp_path)  # 8,193 float32: less than one device call
    out = certify_end_of_run(run, tiny_problem(), CertifyParams(seconds=60.0, count=1))
    (i, cert), = out.certified
    assert i == 2 and cert.exhaustive and cert.total == 8193
    assert rows(run)[2]["certified_max_ulp"] == repr(cert.max_ulp)


def test_the_verify_command_named_reaches_the_programs_left(tmp_path):
    # the cheapest under-target program is certified already: verify's order counts it
    front = [(1000.0, 0.0, CONSTANT), (0.95, 2.0, LINEAR), (0.9, 3.0, QUADRATIC)]
    run = make_run(tmp_path, front=front)
    problem = tiny_problem()
    lines = (run / "front.csv").read_text().splitlines()
    lines[0] += ",certified_max_ulp"
    lines = [lines[0]] + [line + ("," if n != 2 else ",1.5") for n, line in
                          enumerate(lines[1:], 1)]
    (run / "front.csv").write_text("\n".join(lines) + "\n")
    out = certify_end_of_run(run, problem, CertifyParams(seconds=0.0, count=3))
    assert out.notes[0].endswith(f"evolve verify {run} --limit 2")


def test_a_failed_certificate_teaches_the_run_with_certify_teach(tmp_path):
    from evolve.runs import hard_points

    front = [(1000.0, 0.0, CONSTANT), (0.95, 2.0, LINEAR), (0.9, 3.0, QUADRATIC)]
    run = make_run(tmp_path, front=front)
    out = certify_end_of_run(run, tiny_problem(), CertifyParams(seconds=60.0, count=3))
    assert not hard_points.load(run)  # teach off: nothing learnt
    failed = {i: c for i, c in out.certified if c.max_ulp >= 1}
    assert list(failed) == [1]  # LINEAR's sampled 0.95 does not hold
    (tmp_path / "taught").mkdir()
    run = make_run(tmp_path / "taught", front=front)
    out = certify_end_of_run(run, tiny_problem(),
                             CertifyParams(seconds=60.0, count=3, teach=True))
    points = hard_points.load(run, n_inputs=1)
    cert = failed[1]  # its worst input first, then the worst of other chunks over the target
    assert [p.x[0] for p in points] == [cert.worst_x] + [
        x for x, u in cert.worst_inputs[1:] if u >= 1][: WORST_INPUTS - 1]
    assert all(p.from_generation == 1 for p in points)
    assert any("the training points from generation 1" in n for n in out.notes)
