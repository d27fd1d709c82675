"""scripts/check_vecmath.py: a sparse run gives a record per op, within the documented
bound, the same bits at every vector width of this host."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import check_vecmath  # noqa: E402

from evolve.eval.cpu import kernel as native  # noqa: E402


@pytest.mark.skipif(not native.available(), reason="no C++ compiler here")
def test_a_sparse_check_of_each_op(capsys, monkeypatch):
    monkeypatch.setattr(native, "host_isa", native.host_isa)  # the script sets it per ISA
    check_vecmath.main(["--stride", "1000003", "--ops", "sin,log,tanh"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["op"] for line in lines] == ["sin", "log", "tanh"]
    for line in lines:
        assert line["math"] == "own32" and line["points"] > 1000
        assert line["max_ulp"] < 1.5, line
        assert line["same_bits_across_isas"], line
