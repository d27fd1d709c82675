"""The CUDA kernel's "smem" register file (evolve.eval.cuda.modes): its pieces of the kernel
template (tests/test_cuda_kernel.py compiles whole sources where nvcc exists)."""

from evolve.eval.cuda import acc as cuda_acc
from evolve.eval.cuda import modes as cuda_modes
from evolve.ops import CONST, OPCODE

OPS_SET = sorted({OPCODE[n] for n in ("add", "mul", "div")} | {CONST})


def test_smem_fills_the_same_slots_of_the_template_as_acc():
    parts = cuda_modes.parts(OPS_SET, 4)
    assert set(parts) == set(cuda_acc.parts(OPS_SET, 4, 128))
    # only "acc" adds kernels, FFI operands or results
    assert all(parts[k] == "" for k in ("kernels", "params", "results", "binds", "rets"))


def test_smem_ends_its_loop_at_the_op_after_the_last():
    smem = cuda_modes.parts(OPS_SET, 4)
    assert f"case {max(OPS_SET) + 1}: goto done;" in smem["step"]
    assert "ev_div(a, b)" in smem["step"]
