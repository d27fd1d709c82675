"""Building generated kernels (evolve.eval.ffibuild): cached by source, fallbacks tried in
turn, a clear error when nothing compiles."""

import shutil
import sys

import pytest

from evolve.eval.ffibuild import build_library


def test_cached_and_fallback(tmp_path):
    calls = []

    def commands(source, out):
        calls.append(source.read_text())
        fail = [sys.executable, "-c", "import sys; sys.exit(1)"]
        ok = [sys.executable, "-c", f"open({str(out)!r}, 'w').write('lib')"]
        return [fail, ok]

    lib = build_library("source A", ".cc", tmp_path, "k", commands)
    assert lib.read_text() == "lib" and calls == ["source A"]
    assert build_library("source A", ".cc", tmp_path, "k", commands) == lib  # cached
    assert len(calls) == 1
    assert build_library("source B", ".cc", tmp_path, "k", commands) != lib


def test_nothing_compiles(tmp_path):
    def commands(source, out):
        return [[sys.executable, "-c", "import sys; print('boom', file=sys.stderr); "
                 "sys.exit(3)"]]

    with pytest.raises(RuntimeError, match="boom"):
        build_library("x", ".cc", tmp_path, "k", commands)


@pytest.mark.skipif(shutil.which("g++") is None, reason="no g++")
def test_a_real_library(tmp_path):
    lib = build_library('extern "C" int f() { return 7; }', ".cc", tmp_path, "g++",
                        lambda s, o: [["g++", "-shared", "-fPIC", str(s), "-o", str(o)]])
    import ctypes

    assert ctypes.cdll.LoadLibrary(str(lib)).f() == 7
