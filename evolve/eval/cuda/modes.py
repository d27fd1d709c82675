"""The CUDA kernel's "smem" register file (``evolve.eval.cuda.kernel``'s ``registers``):
registers in shared memory, an access per operand and point. It is the fallback where the
default "acc" (``evolve.eval.cuda.acc``) cannot address the registers or the programs are
longer than its plan takes (``evolve.eval.cuda.kernel.fitted``). ``parts`` gives its
pieces of ``evolve.eval.cuda.kernel.source``'s kernel template, by name, as
``evolve.eval.cuda.acc.parts`` does for "acc".
"""

from __future__ import annotations

from evolve.eval.cuda.acc import expression
from evolve.ops import CONST, OPS


def parts(ops: list[int], E: int) -> dict[str, str]:
    """The "smem" pieces of ``evolve.eval.cuda.kernel.source``'s kernel template for the
    op set ``ops`` (with CONST) and E points a thread. Each instruction is packed once a
    block into two int4: the byte offsets of registers a, b and d in ``s_reg`` (CONST: its
    value in a's place) and the op, then c's offset; an instruction with op
    ``max(ops) + 1`` after the last ends the loop, which keeps no count."""
    stop = max(ops) + 1  # the op of the instruction after the last
    cases = []
    for o in ops:
        if o == CONST:  # the constant in place of the first operand
            body = ("float* const pd = AT(w.z); const float k = __int_as_float(w.x); "
                    "for (int e = 0; e < E; ++e) pd[e * THREADS] = k;")
        else:  # byte offsets: point e of a register is e * THREADS on
            names = list(zip("abc", ("w.x", "w.y", "q[1].x")))[: OPS[o].arity]
            pointers = "".join(f"const float* const p{n} = AT({off}); " for n, off in names)
            operands = "".join(f"const float {n} = p{n}[e * THREADS]; " for n, _ in names)
            body = (f"{pointers}float* const pd = AT(w.z); for (int e = 0; e < E; ++e) "
                    f"{{ {operands}pd[e * THREADS] = {expression(o)}; }}")
        cases.append(f"            case {o}: {{ {body} break; }}")
    step = f"""        switch (w.w) {{
{chr(10).join(cases)}
            case {stop}: goto done;  // the instruction after the last
            default: break;
        }}"""
    final = """        done:
        float out[E];
        for (int e = 0; e < E; ++e) out[e] = S(outreg, e);"""
    # two int4 an instruction and a stop; this thread's point 0
    decl = """    float* s_reg = (float*)(s_prog + 2 * (L + 1));  // [R][THREADS * E]
    unsigned char* const s_thread = (unsigned char*)(s_reg + threadIdx.x);"""
    # byte offsets of the registers (CONST: the value for a); an op outside the set
    # numbered like the stop runs as none
    case = f"o == {stop} ? -1 : o" if stop < len(OPS) else "o"
    pack = f"""    for (int i = threadIdx.x; i < n; i += THREADS) {{
        const int64_t g = p * L + i;
        const int o = op[g];
        const int k = ARITY[o];
        const int a = k >= 1 ? args[3 * g] : 0, b = k >= 2 ? args[3 * g + 1] : 0;
        const int c = k >= 3 ? args[3 * g + 2] : 0;
        const int first = o == {CONST} ? __float_as_int(cst[g]) : a * (THREADS * E * 4);
        s_prog[2 * i] = make_int4(first, b * (THREADS * E * 4), dst[g] * (THREADS * E * 4),
                                  {case});
        s_prog[2 * i + 1] = make_int4(c * (THREADS * E * 4), 0, 0, 0);
    }}
    if (threadIdx.x == 0) s_prog[2 * n] = make_int4(0, 0, 0, {stop});  // the stop
    __syncthreads();"""
    loop = """for (const int4* q = s_prog;; q += 2) {
            const int4 w = q[0];"""
    fill = """        #pragma unroll
        for (int r = 0; r < R; ++r)
            #pragma unroll
            for (int e = 0; e < E; ++e) {
                const int64_t j = j0 + e * PSTEP;
                S(r, e) = (r < n_inputs && j < n_points) ? x[r * n_points + j] : 0.0f;
            }"""
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
    return dict(at="#define AT(off) ((float*)(s_thread + (off)))\n", tables="", kernels="",
                params="", prog_comment="The program, two int4 an instruction (packed "
                "below), then a stop.", prog="[L + 1][2]: a, b, d, op; c (byte offsets)",
                decl=decl, pack=pack, fill=fill, loop=loop, step=step, final=final,
                errors=errors, tail="", prog_bytes="(L + 1) * 32", handler_params="",
                results="", pre_launch="", launch_args="", binds="", rets="", min_blocks="")
