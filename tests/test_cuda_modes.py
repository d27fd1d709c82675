"""The CUDA kernel's register files other than "acc" (evolve.eval.cuda.modes): their pieces of
the kernel template (tests/test_cuda_kernel.py compiles whole sources where nvcc exists)."""

import pytest

from evolve.eval.cuda import acc as cuda_acc
from evolve.eval.cuda import modes as cuda_modes
from evolve.eval.cuda.kernel import CUDA_OPS
from evolve.ops import CONST, OPCODE

OPS_SET = sorted({OPCODE[n] for n in ("add", "mul", "div")} | {CONST})


@pytest.mark.parametrize("registers", ["smem", "smem4", "regs", "asm", "asm3"])
def test_every_mode_fills_the_same_slots_of_the_template_as_acc(registers):
    parts = cuda_modes.parts(registers, OPS_SET, 4, 4, CUDA_OPS)
    assert set(parts) == set(cuda_acc.parts(OPS_SET, 4, 128, CUDA_OPS))
    # only "acc" adds kernels, FFI operands or results
    assert all(parts[k] == "" for k in ("kernels", "params", "results", "binds", "rets"))


def test_smem_ends_its_loop_at_the_op_after_the_last_and_regs_switch_on_registers():
    smem = cuda_modes.parts("smem", OPS_SET, 4, 4, CUDA_OPS)
    assert f"case {max(OPS_SET) + 1}: goto done;" in smem["step"]
    assert "__fdiv_rn" in smem["step"] or "ev_div(a, b)" in smem["step"]
    regs = cuda_modes.parts("regs", OPS_SET, 4, 4, CUDA_OPS)
    assert regs["step"].count("switch (ia)") == 1 and "default: {" in regs["step"]
