"""Fingerprints: quantization, the MurmurHash3 rule, stable values across processes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve.search.fingerprints import (
    FINGERPRINT_BYTES,
    NAN_TOKEN,
    _prefix,
    as_bytes,
    fingerprint_array,
    fingerprints,
    make_salt,
    quantize,
)

ROOT = Path(__file__).resolve().parents[1]


def _f32(bits: int) -> np.float32:
    return np.array(bits, np.uint32).view(np.float32)[()]


def _fp(bits_row: list[int], mantissa_bits: int = 12, salt: bytes = b"") -> bytes:
    row = np.array(bits_row, np.uint32).view(np.float32)[None, :]
    return fingerprints(row, mantissa_bits, salt)[0]


# -- quantization ----------------------------------------------------------------------
finite_bits = st.integers(0, 2**32 - 1).filter(lambda b: (b >> 23) & 0xFF != 0xFF)


@given(finite_bits, st.integers(0, 22), st.integers(0, 2**23 - 1), st.integers(0, 2**23 - 1))
def test_outputs_differing_only_in_dropped_bits_share_a_fingerprint(bits, m, r1, r2):
    drop = 23 - m
    half = 1 << (drop - 1)
    keep = bits & ~((1 << drop) - 1) & 0xFFFFFFFF
    # same kept bits and the same top dropped bit: both round the same way
    top = bits & half
    low1, low2 = r1 % half, r2 % half
    a, b = keep | top | low1, keep | top | low2
    assert quantize(np.array([_f32(a)]), m)[0] == quantize(np.array([_f32(b)]), m)[0]
    assert _fp([a, bits], m) == _fp([b, bits], m)


@given(finite_bits, st.integers(0, 23))
def test_real_differences_change_the_fingerprint(bits, m):
    drop = 23 - m
    x = bits & ~((1 << drop) - 1) & 0xFFFFFFFF  # already on the quantization grid
    y = x ^ (1 << drop)  # flip the lowest kept bit
    if (y >> 23) & 0xFF == 0xFF:  # flipped into Inf/NaN: not a finite value
        return
    if x & 0x7FFFFFFF == 0 and y & 0x7FFFFFFF == 0:
        return
    assert _fp([x], m) != _fp([y], m)


def test_rounds_to_nearest_not_truncates():
    one = 0x3F800000
    m = 12  # quantum 2**-12 at 1.0; the dropped bits are the low 11
    up = one | (1 << 10)  # 1 + 2**-13: exactly half a quantum, ties away from zero
    down = one | ((1 << 10) - 1)  # just under half a quantum
    assert quantize(np.array([_f32(up)]), m)[0] == one + (1 << 11)
    assert quantize(np.array([_f32(down)]), m)[0] == one
    neg = quantize(np.array([-_f32(up)]), m)[0]
    assert neg == (one + (1 << 11)) | 0x80000000  # symmetric in the sign


def test_carry_into_the_exponent_and_overflow_to_inf():
    below_two = 0x3FFFFFFF  # the largest float32 under 2.0
    assert quantize(np.array([_f32(below_two)]), 12)[0] == 0x40000000
    f32_max = np.finfo(np.float32).max
    assert quantize(np.array([f32_max, -f32_max]), 12).tolist() == [0x7F800000, 0xFF800000]


def test_zero_signs_and_nan_payloads_collapse():
    zeros = [0x00000000, 0x80000000, 0x80000001]  # +0, -0, the smallest negative subnormal
    nans = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FC12345, 0xFFFFFFFF]
    q = quantize(np.array(zeros + nans, np.uint32).view(np.float32), 12)
    assert q.tolist() == [0] * 3 + [NAN_TOKEN] * 5
    assert len({_fp([z, 0x3F800000]) for z in zeros}) == 1
    assert len({_fp([n, 0x3F800000]) for n in nans}) == 1


def test_inf_nan_and_finite_tokens_are_distinct():
    rows = [[0x7F800000], [0xFF800000], [0x7FC00000], [0x7F7FF000], [0]]
    assert len({_fp(r) for r in rows}) == len(rows)


def test_float64_outputs_hash_as_float32():
    x = np.array([[1.5, -2.25, np.nan, np.inf, -0.0, 1e300]])
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)  # 1e300 -> inf, as fingerprints rounds it
    assert fingerprints(x) == fingerprints(x32)


def test_salt_and_mantissa_bits_change_the_hash():
    x = np.linspace(-1, 1, 16, dtype=np.float32)[None]
    salt = make_salt("exp2", {"probes": 16, "seed": 0})
    assert fingerprints(x, salt=salt) != fingerprints(x)
    assert fingerprints(x, salt=salt) != fingerprints(x, salt=make_salt("exp2", {"probes": 17}))
    assert fingerprints(x, 12) != fingerprints(x, 13)
    assert make_salt("p", {"a": 1, "b": 2}) == make_salt("p", {"b": 2, "a": 1})


def test_fingerprint_shape_and_input_checks():
    fps = fingerprints(np.zeros((3, 5), np.float32))
    assert len(fps) == 3 and all(isinstance(f, bytes) and len(f) == 16 for f in fps)
    assert fingerprints(np.zeros((0, 5), np.float32)) == []
    with pytest.raises(ValueError, match=r"\[P, M\]"):
        fingerprints(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="mantissa_bits"):
        quantize(np.zeros(2, np.float32), 24)


@settings(max_examples=20, deadline=None)  # each width compiles once
@given(st.integers(1, 9), st.integers(1, 70), st.integers(0, 23), st.binary(max_size=40),
       st.integers(0, 2**32 - 1))
def test_fingerprints_are_murmur3_x86_128_of_prefix_and_quantized_words(p, m, bits, salt, seed):
    # The reference: the MurmurHash3 package (C), over the bytes the docstring names.
    mmh3 = pytest.importorskip("mmh3")
    x = np.random.default_rng(seed).standard_normal((p, m)).astype(np.float32) * 1e3
    x[0, 0] = np.nan
    words = quantize(x, bits).astype("<u4")
    prefix = _prefix(salt, bits, m).astype("<u4").tobytes()
    expected = [mmh3.hash_bytes(prefix + row.tobytes(), 0, x64arch=False) for row in words]
    assert fingerprints(x, bits, salt) == expected


def test_fingerprint_array_rows_do_not_depend_on_the_batch():
    import jax.numpy as jnp

    x = np.random.default_rng(1).standard_normal((300, 17)).astype(np.float32)
    whole = fingerprint_array(x, 23, b"s")
    assert whole.shape == (300, FINGERPRINT_BYTES) and whole.dtype == np.uint8
    assert (fingerprint_array(x[:1], 23, b"s") == whole[:1]).all()  # padded differently
    assert (fingerprint_array(jnp.asarray(x), 23, b"s") == whole).all()  # a device array
    assert as_bytes(whole) == fingerprints(x, 23, b"s")


_STABILITY_VALUES = [[0.0, -0.0, 1.0, math.nan, math.inf, -math.inf, 3.14159],
                     [1e-3, 2e-3, -5.0, 7.5, 0.1, 0.2, 0.3]]
_STABILITY_SALT = {"problem": "exp2", "budget": {"probes": 64}}
_STABILITY_SCRIPT = """
import json, sys
import numpy as np
from evolve.search.fingerprints import fingerprints, make_salt
values, salt = json.loads(sys.argv[1]), json.loads(sys.argv[2])
fps = fingerprints(np.array(values, np.float32), 12, make_salt(salt["problem"], salt["budget"]))
print(",".join(f.hex() for f in fps))
"""
# The fingerprints of _STABILITY_VALUES: if this changes, old checkpoints' caches are void.
_KNOWN = "23536e47d7782489beacea918f89b36d,cb161e72af6956edeb7f063dd881f345"


def _stability_fps() -> str:
    x = np.array(_STABILITY_VALUES, np.float32)
    salt = make_salt(_STABILITY_SALT["problem"], _STABILITY_SALT["budget"])
    return ",".join(f.hex() for f in fingerprints(x, 12, salt))


def test_fingerprints_match_known_values():
    assert _stability_fps() == _KNOWN


@pytest.mark.parametrize("hashseed", ["0", "12345"])
def test_fingerprints_are_stable_across_processes(hashseed):
    env = dict(os.environ, PYTHONHASHSEED=hashseed, EVOLVE_NO_XLA_FLAGS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _STABILITY_SCRIPT,
                          json.dumps(_STABILITY_VALUES), json.dumps(_STABILITY_SALT)],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=120)
    assert out.stdout.strip() == _stability_fps()
