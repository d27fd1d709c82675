"""The "asm" register file of the CUDA kernel (``evolve.cuda``, ``registers="asm"``): a
thread's registers stay in the chip's registers, and each instruction is two PTX jump
tables (``brx.idx``), one on the pair of argument registers (copying their values into
the operand temporaries) and one on (op, destination) (computing the result straight into
the destination). The ops without a PTX spelling are computed in C++ first and moved by
the second table. Slower than the shared-memory register file on the H200 (README).
"""

from __future__ import annotations

from evolve.ops import CONST, OPS

# PTX spelling of the exactly rounded ops (d, a, b, c: operand names); the other ops are
# computed in C++ into the temporaries t and moved into place.
PTX_OPS: dict[str, str] = {
    "add": "add.rn.f32 {d}, {a}, {b};",
    "sub": "sub.rn.f32 {d}, {a}, {b};",
    "mul": "mul.rn.f32 {d}, {a}, {b};",
    "fma": "fma.rn.f32 {d}, {a}, {b}, {c};",
    "neg": "neg.f32 {d}, {a};",
    "abs": "abs.f32 {d}, {a};",
    "sqrt": "sqrt.rn.f32 {d}, {a};",
}

# flags of the third word of an instruction in the "asm" kernel (its low bits: argument c)
ASM_THIRD, ASM_CPP = 0x100, 0x200


def _jump(index: int, targets: list[str]) -> list[str]:
    """PTX lines of a jump table: ``brx.idx`` on operand ``index`` to ``targets``, each a
    list of instructions that ends by going to the join."""
    names = [f"L{k}" for k in range(len(targets))]
    lines = ["{", f"ts: .branchtargets {', '.join(names)};", f"brx.idx %{index}, ts;"]
    for name, body in zip(names, targets):
        lines += [f"{name}:", *body, "bra.uni DONE;"]
    return lines + ["DONE:", "}"]


def _asm(lines: list[str], outputs: list[str], inputs: list[str]) -> str:
    text = "".join(f'"{line}\\n\\t"\n                ' for line in lines)
    return (f"asm({text}: {', '.join(outputs)}\n                : {', '.join(inputs)});")


def asm_step(ops: list[int], R: int, E: int, cuda_ops: dict[str, str]) -> str:
    """The body of the instruction loop for registers="asm": PTX jump tables move the
    arguments out of and the result into the registers ``v[R][E]``, which stay in the
    chip's registers because only the jump tables name them. ``cuda_ops``: the CUDA
    spelling of each op, for the ops without a PTX one."""
    RE = R * E
    v_names = [f"v[{r}][{e}]" for r in range(R) for e in range(E)]
    # 1. the arguments: a pair (index a * R + b), one argument (R * R + a) or none.
    vin = [f'"f"({n})' for n in v_names]
    reads = []
    for k in range(R * R + R + 1):
        if k < R * R:
            ra, rb = divmod(k, R)
            reads.append([f"mov.f32 %{e}, %{2 * E + ra * E + e};" for e in range(E)]
                         + [f"mov.f32 %{E + e}, %{2 * E + rb * E + e};" for e in range(E)])
        elif k < R * R + R:
            reads.append([f"mov.f32 %{e}, %{2 * E + (k - R * R) * E + e};" for e in range(E)])
        else:
            reads.append([])
    read_ab = _asm(_jump(2 * E + RE, reads),
                   [f'"=f"(ra[{e}])' for e in range(E)] + [f'"=f"(rb[{e}])' for e in range(E)],
                   vin + ['"r"(w.x)'])
    read_c = _asm(_jump(E + RE, [[f"mov.f32 %{e}, %{E + r * E + e};" for e in range(E)]
                                 for r in range(R)]),
                  [f'"=f"(rc[{e}])' for e in range(E)], vin + [f'"r"(w.z & {ASM_THIRD - 1})'])
    # 2. the op and destination (slot * R + d): the result straight into v[d].
    A, B, C, T, K = RE, RE + E, RE + 2 * E, RE + 3 * E, RE + 4 * E
    writes = []
    for o in ops:
        for d in range(R):
            if o == CONST:
                writes.append([f"mov.b32 %{d * E + e}, %{K};" for e in range(E)])
                continue
            ptx = PTX_OPS.get(OPS[o].name)
            writes.append([(ptx.format(d=f"%{d * E + e}", a=f"%{A + e}", b=f"%{B + e}",
                                       c=f"%{C + e}") if ptx else
                            f"mov.f32 %{d * E + e}, %{T + e};") for e in range(E)])
    write = _asm(_jump(T + E + 1, writes), [f'"+f"({n})' for n in v_names],
                 [f'"f"({x}[{e}])' for x in ("ra", "rb", "rc", "t") for e in range(E)]
                 + ['"r"(w.w)', '"r"(w.y)'])
    # the ops without a PTX spelling: computed into t first, then moved by the table
    cases = "\n".join(
        f"                    case {o}: {{ for (int e = 0; e < E; ++e) {{ "
        f"const float a = ra[e], b = rb[e]; (void)a; (void)b; "
        f"t[e] = {cuda_ops[OPS[o].name]}; }} break; }}" for o in cpp_ops(ops))
    return f"""            {read_ab}
            if (w.z & {ASM_THIRD}) {{  // a third argument
                {read_c}
            }}
            if (w.z & {ASM_CPP}) {{  // an op computed here
                switch (OPS_OF[(unsigned)w.y / R]) {{
{cases}
                    default: break;
                }}
            }}
            {write}"""


def cpp_ops(ops: list[int]) -> list[int]:
    """The ops of the "asm" kernel that C++ computes (no PTX spelling, not a literal)."""
    return [o for o in ops if o != CONST and OPS[o].name not in PTX_OPS]
