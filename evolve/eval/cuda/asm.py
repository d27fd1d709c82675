"""The "asm" register file of the CUDA kernel (``evolve.eval.cuda.kernel``, ``registers="asm"``): a
thread's registers stay in the chip's registers ``v[R][E]``, named only by PTX jump
tables (``brx.idx``), since a run-time index cannot name a register.

An instruction is two jumps. The first, on (op, arguments), computes the result into the
temporaries ``t[E]`` straight from the argument registers for the ops with a PTX spelling
(add, sub, mul, neg, abs, sqrt) and the literal; for the others (fma, division, min, max,
the transcendental ops) it copies the arguments into ``ta``, ``tb`` and the op runs in C++
(fma's third argument is a third, smaller table). The second jump, on the destination,
moves ``t`` into it. An add over 4 points is about 28 warp instructions in the SASS (nvcc 13,
sm_90), against about 43 with the earlier tables.

The first table's case for an instruction is computed once, when a block loads its
program: ``BASE[op] + a * R + b`` (two arguments), ``BASE[op] + a`` (one), ``BASE[op]``
(the literal), with the cases laid out by ``layout``.
"""

from __future__ import annotations

from evolve.ops import CONST, OPS

# PTX spelling of the exactly rounded ops computed in the first table (d, a, b: operands)
PTX_OPS: dict[str, str] = {
    "add": "add.rn.f32 {d}, {a}, {b};",
    "sub": "sub.rn.f32 {d}, {a}, {b};",
    "mul": "mul.rn.f32 {d}, {a}, {b};",
    "neg": "neg.f32 {d}, {a};",
    "abs": "abs.f32 {d}, {a};",
    "sqrt": "sqrt.rn.f32 {d}, {a};",
}

# flags of the third word of an instruction in the "asm" kernel: its low byte is argument
# c, its high half the op; FMA takes the third table, CPP the C++ switch
ASM_FMA, ASM_CPP = 0x100, 0x200


def _jump(index: int, targets: list[list[str]]) -> list[str]:
    """PTX lines of a jump table: ``brx.idx`` on operand ``index`` to ``targets``, each a
    list of instructions that ends by going to the join."""
    names = [f"L{k}" for k in range(len(targets))]
    lines = ["{", f"ts: .branchtargets {', '.join(names)};", f"brx.idx %{index}, ts;"]
    for name, body in zip(names, targets):
        lines += [f"{name}:", *body, "bra.uni DONE;"]
    return lines + ["DONE:", "}"]


def _asm(lines: list[str], outputs: list[str], inputs: list[str]) -> str:
    text = "".join(f'"{line}\\n\\t"\n                ' for line in lines)
    return (f"asm volatile({text}: {', '.join(outputs)}\n                : {', '.join(inputs)});")


def in_cpp(o: int) -> bool:
    """Whether op ``o`` is computed after the first table (its arguments copied out)."""
    return o != CONST and OPS[o].name not in PTX_OPS


def layout(ops: list[int], R: int, tables: int = 2) -> tuple[list[int], int]:
    """(BASE, cases): the first case of each op of ``ops`` in the table on the op
    (indexed by opcode; 0 for ops outside the set) and the table's size.

    tables=2, the table on (op, arguments): ops with a PTX spelling get their own R * R
    (binary) or R (unary) cases, the literal one; the ops computed in C++ share R * R
    cases copying a pair of arguments and R copying one.
    tables=3, the table on (op, second argument), after a table on the first: a binary
    op with a PTX spelling gets R cases, a unary one or the literal one; the ops computed
    in C++ share R cases copying the second argument and one copying nothing."""
    per = {2: R * R, 1: R} if tables == 2 else {2: R, 1: 1}
    base = [0] * len(OPS)
    n = 0
    for o in ops:
        if not in_cpp(o):
            base[o] = n
            n += 1 if o == CONST else per[OPS[o].arity]
    pair, single = n, n + per[2]
    for o in ops:
        if in_cpp(o):
            base[o] = pair if OPS[o].arity >= 2 else single
    return base, single + per[1]


def asm_step(ops: list[int], R: int, E: int, cuda_ops: dict[str, str],
             tables: int = 2) -> str:
    """The body of the instruction loop for registers="asm" (``tables=2``) or "asm3"
    (``tables=3``). The instruction word ``w``: for 2 tables, the (op, arguments) case,
    the destination, argument c and flags (op above), the literal's bits; for 3 tables,
    the first argument's case, the (op, second argument) case, c and flags (op, then the
    destination, above), the literal's bits. ``cuda_ops``: the CUDA spelling of each op,
    for the ops computed in C++."""
    RE = R * E
    v_in = [f'"f"(v[{r}][{e}])' for r in range(R) for e in range(E)]
    any_cpp = any(in_cpp(o) for o in ops)
    # operand numbers: t and the copied-out arguments (in-out), then v[R][E], the literal
    # and the table's index; with 3 tables ta is an input, filled by the table before
    T, V = 0, 3 * E
    A, B = (E, 2 * E) if tables == 2 else (2 * E, E)
    K = V + RE

    def v(r, e):
        return f"%{V + r * E + e}"

    # the first argument: a register of the case (2 tables) or ta (3 tables)
    firsts = ([lambda e, a=a: v(a, e) for a in range(R)] if tables == 2
              else [lambda e: f"%{A + e}"])
    cases: list[list[str]] = []
    for o in ops:
        if in_cpp(o):
            continue
        if o == CONST:
            cases.append([f"mov.f32 %{T + e}, %{K};" for e in range(E)])
            continue
        ptx = PTX_OPS[OPS[o].name]
        cases += [[ptx.format(d=f"%{T + e}", a=first(e), b=v(b, e)) for e in range(E)]
                  for first in firsts for b in range(R if OPS[o].arity == 2 else 1)]
    if any_cpp:  # copy the arguments out for the ops computed in C++
        copy_a = ([[f"mov.f32 %{A + e}, {v(a, e)};" for e in range(E)] for a in range(R)]
                  if tables == 2 else [[]])
        cases += [ca + [f"mov.f32 %{B + e}, {v(b, e)};" for e in range(E)]
                  for ca in copy_a for b in range(R)]
        cases += copy_a
    if tables == 2:
        first = _asm(_jump(K + 1, cases),
                     [f'"+f"({x}[{e}])' for x in ("t", "ta", "tb") for e in range(E)],
                     v_in + ['"f"(__int_as_float(w.w))', '"r"(w.x)'])
        dest = "w.y"
    else:  # the first argument into ta first (R cases, and one copying nothing)
        pre = _asm(_jump(E + RE, [[f"mov.f32 %{e}, %{E + a * E + e};" for e in range(E)]
                                  for a in range(R)] + [[]]),
                   [f'"+f"(ta[{e}])' for e in range(E)], v_in + ['"r"(w.x)'])
        first = pre + "\n            " + _asm(
            _jump(K + 1, cases), [f'"+f"({x}[{e}])' for x in ("t", "tb") for e in range(E)],
            [f'"f"(ta[{e}])' for e in range(E)] + v_in
            + ['"f"(__int_as_float(w.w))', '"r"(w.y)'])
        dest = "w.z >> 24"
    assert not any_cpp or len(cases) == layout(ops, R, tables)[1]
    special = ""
    fma = [o for o in ops if OPS[o].name == "fma"]
    cpp = [o for o in ops if in_cpp(o) and OPS[o].name != "fma"]
    if fma:  # t = fma(ta, tb, v[c]): a table on c
        third = _asm(_jump(3 * E + RE, [[f"fma.rn.f32 %{e}, %{E + e}, %{2 * E + e}, "
                                         f"%{3 * E + c * E + e};" for e in range(E)]
                                        for c in range(R)]),
                     [f'"+f"(t[{e}])' for e in range(E)],
                     [f'"f"({x}[{e}])' for x in ("ta", "tb") for e in range(E)] + v_in
                     + ['"r"(w.z & 255u)'])
        special += f"""
                if (w.z & {ASM_FMA}) {{  // fma: the third argument
                    {third}
                }}"""
    if cpp:
        body = "\n".join(
            f"                    case {o}: {{ for (int e = 0; e < E; ++e) {{ "
            f"const float a = ta[e], b = tb[e]; (void)a; (void)b; "
            f"t[e] = {cuda_ops[OPS[o].name]}; }} break; }}" for o in cpp)
        special += f"""
                if (w.z & {ASM_CPP}) {{  // an op computed here
                    switch ((w.z >> 16) & 255u) {{
{body}
                        default: break;
                    }}
                }}"""
    if special:
        special = f"""
            if (w.z & {ASM_FMA | ASM_CPP}) {{{special}
            }}"""
    last = _asm(_jump(RE + E, [[f"mov.f32 %{d * E + e}, %{RE + e};" for e in range(E)]
                               for d in range(R)]),
                [f'"+f"(v[{r}][{e}])' for r in range(R) for e in range(E)],
                [f'"f"(t[{e}])' for e in range(E)] + [f'"r"({dest})'])
    return f"""            {first}{special}
            {last}"""
