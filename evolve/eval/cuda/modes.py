"""The CUDA kernel's register files other than "acc" (``evolve.eval.cuda.kernel``'s ``registers``):
"smem" and "smem4" (shared memory, an access per operand and point), "regs" (the chip's
registers, a ``switch`` on every register index) and "asm"/"asm3" (the chip's registers,
PTX jump tables from ``evolve.eval.cuda.asm``). ``parts`` gives a mode's pieces of
``evolve.eval.cuda.kernel.source``'s kernel template, by name, as ``evolve.eval.cuda.acc.parts`` does for
"acc"; ``evolve.eval.cuda.kernel.source`` describes each mode and checks the options.
"""

from __future__ import annotations

from evolve.eval.cuda.asm import ASM_CPP, ASM_FMA, asm_step, in_cpp, layout
from evolve.ops import CONST, OPS


def _switch(index: str, body, n: int, indent: str) -> str:
    """``switch (index) { case r: body(r) break; ... }`` for r < n (the last is default)."""
    lines = [f"{indent}switch ({index}) {{"]
    for r in range(n):
        label = "default" if r == n - 1 else f"case {r}"
        lines.append(f"{indent}{label}: {{ {body(r)} break; }}")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def parts(registers: str, ops: list[int], R: int, E: int,
          cuda_ops: dict[str, str]) -> dict[str, str]:
    """The pieces of ``evolve.eval.cuda.kernel.source``'s kernel template for ``registers`` (not "acc"),
    for the op set ``ops`` (with CONST), R registers and E points a thread."""
    jumps = registers in ("asm", "asm3")  # PTX jump tables
    in_regs = jumps or registers == "regs"

    def read(name):
        return lambda r: f"for (int e = 0; e < E; ++e) {name}[e] = v[{r}][e];"

    stop = max(ops) + 1  # "smem": the op of the instruction after the last
    cases = []
    for o in ops:
        if o == CONST and registers == "smem":  # the constant in place of the first operand
            body = ("float* const pd = AT(w.z); const float k = __int_as_float(w.x); "
                    "for (int e = 0; e < E; ++e) pd[e * THREADS] = k;")
        elif o == CONST:
            body = ("const float k = s_const[i]; for (int e = 0; e < E; ++e) "
                    + ("t[e] = k;" if registers == "regs" else "S(d, e) = k;"))
        elif registers == "smem4":  # four points a shared-memory access (float4)
            names = list(zip("abc", "ABC", ("ia", "ib", "ic")))[: OPS[o].arity]
            loads = "".join(f"const float4 {V} = SV({i}, q); " for _, V, i in names)
            comps = "".join(
                "{ " + "".join(f"const float {n} = {V}.{c}; " for n, V, _ in names)
                + f"T.{c} = {cuda_ops[OPS[o].name]}; }} " for c in "xyzw")
            body = f"for (int q = 0; q < E / 4; ++q) {{ {loads}float4 T; {comps}SV(d, q) = T; }}"
        elif registers == "regs":
            body = (f"for (int e = 0; e < E; ++e) {{ const float a = ra[e], b = rb[e], "
                    f"c = rc[e]; (void)a; (void)b; (void)c; t[e] = {cuda_ops[OPS[o].name]}; }}")
        elif registers == "smem":  # byte offsets: point e of a register is e * THREADS on
            names = list(zip("abc", ("w.x", "w.y", "q[1].x")))[: OPS[o].arity]
            pointers = "".join(f"const float* const p{n} = AT({off}); " for n, off in names)
            operands = "".join(f"const float {n} = p{n}[e * THREADS]; " for n, _ in names)
            body = (f"{pointers}float* const pd = AT(w.z); for (int e = 0; e < E; ++e) "
                    f"{{ {operands}pd[e * THREADS] = {cuda_ops[OPS[o].name]}; }}")
        if not jumps:
            cases.append(f"            case {o}: {{ {body} break; }}")
    if jumps:
        step = asm_step(ops, R, E, cuda_ops, tables=3 if registers == "asm3" else 2)
    elif registers == "regs":
        step = f"""        const unsigned u = w.x;
        const int o = w.y, ia = u & 255u, ib = (u >> 8) & 255u, ic = (u >> 16) & 255u;
        const int d = u >> 24, k = ARITY[o];
        float ra[E], rb[E], rc[E], t[E];
        if (k >= 1) {{
{_switch("ia", read("ra"), R, "            ")}
        }}
        if (k >= 2) {{
{_switch("ib", read("rb"), R, "            ")}
        }}
        if (k >= 3) {{
{_switch("ic", read("rc"), R, "            ")}
        }}
        const float kc = __int_as_float(w.w);
        switch (o) {{
{chr(10).join(cases).replace("s_const[i]", "kc")}
            default: {{ for (int e = 0; e < E; ++e) t[e] = 0.0f; break; }}
        }}
{_switch("d", lambda r: f"for (int e = 0; e < E; ++e) v[{r}][e] = t[e];", R, "        ")}"""
    elif registers == "smem":  # w: byte offsets of a, b (a: CONST's value) and d; the op
        step = f"""        switch (w.w) {{
{chr(10).join(cases)}
            case {stop}: goto done;  // the instruction after the last
            default: break;
        }}"""
    else:
        step = f"""        const unsigned u = w.x;
        const int o = w.y, ia = u & 255u, ib = (u >> 8) & 255u, ic = (u >> 16) & 255u;
        const int d = u >> 24;
        (void)ia; (void)ib; (void)ic;
        switch (o) {{
{chr(10).join(cases).replace("s_const[i]", "__int_as_float(w.w)")}
            default: break;
        }}"""
    if in_regs:
        init = "v[r][e]"
        final = f"""        float out[E];
{_switch("outreg", read("out"), R, "        ")}"""
        decl = "    float v[R][E];"
        if jumps:  # the jump tables' operands, defined on every path
            decl += "\n    float ta[E] = {}, tb[E] = {}, t[E] = {};"
    else:
        init = "S(r, e)"
        final = """        float out[E];
        for (int e = 0; e < E; ++e) out[e] = S(outreg, e);"""
        decl = "    float* s_reg = (float*)(s_prog + L);  // [R][THREADS * E]"
        if registers == "smem":  # two int4 an instruction and a stop; this thread's point 0
            decl = """    float* s_reg = (float*)(s_prog + 2 * (L + 1));  // [R][THREADS * E]
    unsigned char* const s_thread = (unsigned char*)(s_reg + threadIdx.x);"""
            final = "        done:\n" + final
    tables = ""
    if jumps:  # the jump tables' cases (evolve.eval.cuda.asm), c, flags, the op
        base, _ = layout(ops, R, 3 if registers == "asm3" else 2)
        tables = f"__constant__ int BASE[{len(OPS)}] = {{{', '.join(map(str, base))}}};\n"
        fma = " || ".join(f"o == {o}" for o in ops if OPS[o].name == "fma") or "false"
        cpp = " || ".join(f"o == {o}" for o in ops if in_cpp(o) and OPS[o].name != "fma")
        flags = f"c | ({fma} ? {ASM_FMA} : 0) | ({cpp or 'false'} ? {ASM_CPP} : 0) | o << 16"
        if registers == "asm":
            pack = f"""        s_prog[i] = make_int4(BASE[o] + (k >= 2 ? a * R + b : k == 1 ? a : 0), dst[g],
                              {flags}, __float_as_int(cst[g]));"""
        else:
            pack = f"""        s_prog[i] = make_int4(k >= 1 ? a : R, BASE[o] + (k >= 2 ? b : 0),
                              {flags} | dst[g] << 24, __float_as_int(cst[g]));"""
    elif registers == "smem":  # byte offsets of the registers (CONST: the value for a)
        # an op outside the set numbered like the stop runs as none, as other modes do
        case = f"o == {stop} ? -1 : o" if stop < len(OPS) else "o"
        pack = f"""        const int first = o == {CONST} ? __float_as_int(cst[g]) : a * (THREADS * E * 4);
        s_prog[2 * i] = make_int4(first, b * (THREADS * E * 4), dst[g] * (THREADS * E * 4),
                                  {case});
        s_prog[2 * i + 1] = make_int4(c * (THREADS * E * 4), 0, 0, 0);"""
    else:  # the register numbers a byte each, and the op
        pack = """        s_prog[i] = make_int4(a | b << 8 | c << 16 | dst[g] << 24, o, 0,
                              __float_as_int(cst[g]));"""
    # the program's shared memory: s_prog's bytes, its layout; what follows the packing loop
    prog_bytes, prog, stop_pack = "L * 16", "[L]", ""
    prog_comment = "The program, one int4 an instruction (packed below), its last word the constant."
    loop = """for (int i = 0; i < n; ++i) {
            const int4 w = s_prog[i];"""
    if registers == "smem":  # two int4 an instruction and a stop after them, by pointer
        prog_bytes, prog = "(L + 1) * 32", "[L + 1][2]: a, b, d, op; c (byte offsets)"
        prog_comment = "The program, two int4 an instruction (packed below), then a stop."
        stop_pack = f"""    if (threadIdx.x == 0) s_prog[2 * n] = make_int4(0, 0, 0, {stop});  // the stop
"""
        loop = """for (const int4* q = s_prog;; q += 2) {
            const int4 w = q[0];"""
    # "smem": a register's point 0 for this thread, by the register's byte offset
    at = "#define AT(off) ((float*)(s_thread + (off)))\n" if registers == "smem" else ""
    fill = f"""        #pragma unroll
        for (int r = 0; r < R; ++r)
            #pragma unroll
            for (int e = 0; e < E; ++e) {{
                const int64_t j = j0 + e * PSTEP;
                {init} = (r < n_inputs && j < n_points) ? x[r * n_points + j] : 0.0f;
            }}"""
    errors = """        #pragma unroll
        for (int e = 0; e < E; ++e) {
            const int64_t j = j0 + e * PSTEP;
            if (j < n_points && mask[j]) {
                double err = fabs((double)out[e] - y[j]);
                if (isnan(err)) err = INFINITY;
                mxs = nan_max(mxs, err * scale[j]);
                mx = nan_max(mx, err);
                sq += err * err;
            }
        }"""
    pack = f"""    for (int i = threadIdx.x; i < n; i += THREADS) {{
        const int64_t g = p * L + i;
        const int o = op[g];
        const int k = ARITY[o];
        const int a = k >= 1 ? args[3 * g] : 0, b = k >= 2 ? args[3 * g + 1] : 0;
        const int c = k >= 3 ? args[3 * g + 2] : 0;
{pack}
    }}
{stop_pack}    __syncthreads();"""
    return dict(at=at, tables=tables, kernels="", params="", prog_comment=prog_comment,
                prog=prog, decl=decl, pack=pack, fill=fill, loop=loop, step=step, final=final,
                errors=errors, tail="", prog_bytes=prog_bytes, handler_params="", results="",
                pre_launch="", launch_args="", binds="", rets="", min_blocks="")
