"""scripts/bench_search.py: its records and options (tiny sizes; no timing is asserted)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import bench_search  # noqa: E402


def test_each_backend_gives_its_own_records_named_by_the_evaluator(capsys):
    bench_search.main(["--populations", "32", "--generations", "1", "--warmup", "0",
                       "--seeds", "1", "--discovery-population", "32",
                       "--discovery-seconds", "0.5", "--backends", "native,lax"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    cases = [line for line in lines if line["bench"] == "search"]
    runs = [line for line in lines if line["bench"] == "search_discovery"]
    assert [line["evaluator"] for line in cases] == ["native/own32", "lax"]
    assert [line["evaluator"] for line in runs] == ["native/own32", "lax"]
    for line in cases:  # no part counted twice: "other" (the rest) is not negative
        shares = line["shares"]
        assert set(shares) >= {"evaluator", "fitting", "variation", "other"}
        assert all(v >= 0 for v in shares.values()), shares
