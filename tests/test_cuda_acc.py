"""The code of the CUDA kernel's "acc" mode (evolve.eval.cuda.acc): its structure, checked on
the CPU (tests/test_cuda_kernel.py compiles it where nvcc exists; scripts/check_gpu.py --stages
cuda runs it on a GPU against the Pallas kernel). Its plan is tests/test_cuda_plan.py."""

import numpy as np
import pytest

from evolve.eval.cuda import kernel as cuda
from evolve.eval.cuda import plan as cuda_plan
from evolve.ops import OPCODE, OPS

ARITH = tuple(sorted(OPCODE[n] for n in ("add", "sub", "mul", "div", "fma")))


def test_acc_source_jumps_to_a_case_for_each_variant():
    src = cuda.source(ARITH, 8, cuda.CudaShape(points=8, threads=128))
    _, stop = cuda_plan.layout(list(ARITH))
    # two instructions a turn (words w and v), each with its copy of the jump table
    assert f"L{stop}:" in src and f"L{stop + 1}:" not in src and src.count("brx.idx") == 2
    assert f"if (w.w == {stop}) goto done;" in src and f"if (v.w == {stop}) goto done;" in src
    assert '"r"(q + 16)' in src and "q += 32" in src
    # half the variants store, 8 points a thread in two 16-byte accesses 2,048 bytes apart
    assert src.count("st.shared.v4.f32") == 2 * (stop // 2 * 2) and "[x_d+2048]" in src
    assert src.count("add.rn.f32") == 2 * 18 * 8 and src.count("div.rn.f32") == 2 * 18 * 8
    # a constant: one value for all points, from the table
    assert "add.u32 x_k, %13, %8;" in src and "ld.shared.f32 x_bk, [x_k];" in src
    assert "shr.u32 x_c" in src and "and.b32 x_b" in src  # fma's b and c share a word
    assert "pend" not in src  # every op of the set has a PTX spelling


def test_acc_runs_ops_without_ptx_in_cpp():
    ops = tuple(sorted(OPCODE[n] for n in ("add", "min", "sin")))
    src = cuda.source(ops, 8, cuda.CudaShape(points=4, threads=256))
    assert "if (pend) {" in src and "ev_min(a, b)" in src and "sinf(a)" in src
    base, _ = cuda_plan.layout(list(ops))
    # min's variant 1 (store) hands C++ its op and the store bit
    assert f"mov.u32 %{3 * 4}, {(OPCODE['min'] + 1) << 1 | 1};" in src


def test_the_default_falls_back_to_smaller_blocks_then_smem():
    def fitted(n, points, threads, registers="acc", length=0):
        got = cuda.fitted(n, cuda.CudaShape(points, threads, 16, registers), length)
        return got.registers, got.points, got.threads

    assert cuda.SHAPE.registers == "acc" and cuda.acc_fits(8, 128, 4)
    assert not cuda.acc_fits(31, 128, 4)  # past the 30 register bits of init
    assert not cuda.acc_fits(16, 256, 4)  # c's byte offset past 16 bits
    assert not cuda.acc_fits(8, 128, 2)  # points in fours
    assert fitted(8, 4, 256) == ("acc", 4, 256)
    assert fitted(16, 4, 256) == ("acc", 4, 128)  # 16 x 128 x 16 bytes fit
    assert fitted(30, 4, 256) == ("acc", 4, 128)
    assert fitted(31, 4, 256) == ("smem", 4, 256)
    assert fitted(40, 8, 256, "smem") == ("smem", 8, 256)  # smem as asked
    # the default, 8 points a thread: 64 threads reach 30 registers
    assert fitted(8, 8, 128) == ("acc", 8, 128)
    assert fitted(16, 8, 128) == ("acc", 8, 64)
    assert fitted(30, 8, 128) == ("acc", 8, 64)
    assert fitted(31, 8, 128) == ("smem", 4, 128)
    # programs too long for the table's 16-bit offsets
    assert fitted(8, 4, 256, "acc", cuda_plan.MAX_LENGTH) == ("acc", 4, 256)
    assert fitted(8, 8, 128, "acc", cuda_plan.MAX_LENGTH + 1) == ("smem", 4, 128)
    assert (3 * cuda_plan.MAX_LENGTH - 1) * 4 <= 0xFFFF < (3 * cuda_plan.MAX_LENGTH + 2) * 4
    # the shape's other fields are kept
    assert cuda.fitted(16, cuda.CudaShape(8, 128, 3, fold=False)) == cuda.CudaShape(8, 64, 3, fold=False)


def test_op_sets_with_ops_in_cpp_take_their_own_block_shape():
    shape = lambda s: (s.points, s.threads, s.tiles)  # noqa: E731
    assert shape(cuda.SHAPE) == (8, 128, 16) and shape(cuda.LIBM_SHAPE) == (4, 256, 32)
    assert cuda.default_shape(ARITH) == cuda.SHAPE
    assert cuda.default_shape(ARITH + (OPCODE["const"], OPCODE["sqrt"], OPCODE["neg"])) == cuda.SHAPE
    for name in ("sin", "exp", "log", "min"):  # computed in C++
        assert cuda.default_shape(ARITH + (OPCODE[name],)) == cuda.LIBM_SHAPE
    assert cuda.default_shape(tuple(range(len(OPS)))) == cuda.LIBM_SHAPE  # every op


def test_the_fold_kernel_computes_constants_with_the_ops_own_code():
    src = cuda.source(ARITH, 8)
    fold = src.split("__global__ void evolve_fold(")[1].split("__global__")[0]
    for name, spelling in (("add", "__fadd_rn(a, b)"), ("div", "ev_div(a, b)"),
                           ("fma", "__fmaf_rn(a, b, c)")):
        assert f"case {OPCODE[name]}: {{" in fold and spelling in fold
    assert "t[3 * i + j] = cv[r];" in fold and "t[3 * L] = cv[out];" in fold
    # the handler runs it, a thread a program, before the kernel copies its row in
    assert "evolve_fold<<<(unsigned)((P + 127) / 128), 128, 0, stream>>>" in src
    assert "s_konst[i] = kp[i];" in src and ".Ret<ffi::Buffer<ffi::F32>>()" in src
    assert cuda.SHAPE.fold is True  # equal to the Pallas kernel on the H200 (docs/h200/cuda_acc_skip.jsonl)


def test_acc_refuses_register_files_it_cannot_address():
    with pytest.raises(ValueError, match="registers"):
        cuda.source(ARITH, 40)
    with pytest.raises(ValueError, match="points"):
        cuda.source(ARITH, 8, cuda.CudaShape(points=2))


def test_the_mask_is_skipped_where_its_prefix_of_ones_covers_a_tile():
    def prefix(m):
        return int(cuda.point_facts(np.asarray(m, bool), np.ones(np.shape(m)))[0])

    assert prefix([1, 1, 1, 0, 0]) == 3 and prefix([1, 1, 1]) == 3
    assert prefix([1, 0, 1]) == 0 and prefix([0, 0]) == 0 and prefix(np.ones((2, 4))) == 8
    src = cuda.source(ARITH, 8)
    assert "if (base + THREADS * E <= dense_end) {" in src and ".Arg<ffi::Buffer<ffi::S64>>()" in src
    # 4 points a thread: 40 registers at most (6 blocks of 256 threads an SM) where no op
    # calls into C++; the default 8 points a thread takes what ptxas gives (48, no spills)
    four = cuda.source(ARITH, 8, cuda.CudaShape(points=4, threads=256))
    assert "__launch_bounds__(THREADS, 6)" in four and "__launch_bounds__(THREADS)" in src
    everything = cuda.source(tuple(range(len(OPS))), 8, cuda.CudaShape(points=4, threads=256))
    assert "__launch_bounds__(THREADS)" in everything


def test_the_scale_is_skipped_where_it_is_one_at_every_point_of_the_mask():
    def unit_end(scale, mask=(1, 1, 1, 0)):  # the prefix where the scale is also 1, or 0
        return int(cuda.point_facts(np.asarray(mask, bool), np.asarray(scale, np.float64))[1])

    # the Evaluator pads the scale with zeros past the points: outside the mask, ignored
    assert unit_end([1.0, 1.0, 1.0, 0.0]) == 3 and unit_end([1.0, 1.0, 1.0, 7.0]) == 3
    assert unit_end([1.0, 2.0, 1.0, 0.0]) == 0 and unit_end([1.0, 1.0, np.nan, 1.0]) == 0
    assert unit_end([1.0, 1.0, 1.0], mask=(1, 0, 1)) == 0  # the mask is no prefix
    src = cuda.source(ARITH, 8)
    # those tiles load no scale; after them the scaled max is the max, and a NaN error
    # (which leaves the max and makes the sum NaN) makes both infinite
    tiles = src[src.index("if (base + THREADS * E <= unit_end) {"):src.index("} else if (base + THREADS * E <= dense_end)")]
    assert "sb[" not in tiles and "sq += d * d;" in tiles
    assert "if (isnan(sq)) { mx = (double)INFINITY; sq = (double)INFINITY; }" in src
    assert src.index("mxs = mx;") < src.index("__shfl_down_sync")

