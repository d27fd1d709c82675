"""The "acc" register file of the CUDA kernel (``evolve.cuda``, ``registers="acc"``, the
default): registers in shared memory, as in "smem", but the last instruction's result
stays in the chip's registers (the accumulator) and goes to shared memory only when a
later instruction other than the next reads it.

Shared-memory bandwidth is what bounds the "smem" kernel: two loads and a store a point
and instruction. In ``scripts/check_gpu.py``'s benchmark 12 % of the arguments are the
previous result, 33 % are registers no instruction has written yet (zero: no load at
all), and only 45 % of the results need storing.

``plan`` decides, before the kernel runs and for every instruction, where each argument
is and whether the result is stored (its *variant*, below), and which registers a program
reads from shared memory before writing them (only those are set at the start of each
tile, to the inputs or zero). It is a backward pass over the program, vectorised over the
population in JAX, so the kernel only follows flags. ``step`` writes the kernel's
instruction loop: a PTX jump table with code for each op and variant, a thread's four
points of a register one 16-byte shared-memory access; ``parts`` the mode's other pieces of
``evolve.cuda.source``'s template; ``fold`` the optional constant folding.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from evolve.ops import CONST, MAX_ARITY, OPS

# an instruction's variant: STORE + 2 * (source of a + 3 * source of b + 9 * source of c)
STORE = 1  # write the result to shared memory (a later instruction reads it there)
SMEM, ACC, ZERO = 0, 1, 2  # where an argument is: shared memory, the accumulator (the
# previous result), or nowhere: a register never written, past the inputs, holds zero
OUT_FROM_ACC = 1 << 31  # bit of ``init``: the output is the last result, in the accumulator
MAX_REGISTERS = 31  # registers a bit each in ``init``, below OUT_FROM_ACC


def sources(variant: int, arity: int) -> list[int]:
    """Where each argument of an instruction of this variant is (SMEM, ACC or ZERO)."""
    s = variant >> 1
    return [s // 3 ** j % 3 for j in range(arity)]


def layout(ops: list[int]) -> tuple[list[int], int, int]:
    """(BASE, NOP, STOP): the first case of each op of ``ops`` (indexed by opcode, -1 for
    ops outside the set), the case of an op outside the set (it does nothing) and the
    case that ends the program. An op of arity k has 2 * 3 ** k variants."""
    base = [-1] * len(OPS)
    n = 0
    for o in sorted(set(ops) | {CONST}):
        base[o] = n
        n += 2 * 3 ** OPS[o].arity
    return base, n, n + 1


@partial(jax.jit, static_argnames=("runs", "n_inputs"))
def plan(op, args, dst, length, output, runs: tuple[bool, ...], n_inputs: int):
    """Variants [P, L] (int32, see STORE) and init [P] (int32: bit r, register r is read
    from shared memory before it is written; OUT_FROM_ACC) of a batch of programs.

    runs: a bool for each op of the table, whether the kernel runs it (an op outside the set does
    nothing: it neither writes its destination nor the accumulator). Registers from
    ``n_inputs`` on start at zero: reading one that no instruction has written yet is
    reading ZERO."""
    arity = jnp.asarray([o.arity for o in OPS], jnp.int32)
    runs = jnp.asarray(runs, bool)
    op, args, dst = (jnp.asarray(a, jnp.int32) for a in (op, args, dst))
    length, output = jnp.asarray(length, jnp.int32), jnp.asarray(output, jnp.int32)
    P, L = op.shape
    k = arity[op]
    writes = runs[op]
    one = jnp.uint32(1)
    # the previous instruction's destination, when it left its result in the accumulator
    prev = jnp.concatenate([jnp.full((P, 1), -1, jnp.int32),
                            jnp.where(writes, dst, -1)[:, :-1]], axis=1)[:, :L]
    last = jnp.clip(length - 1, 0, max(L - 1, 0))
    rows = jnp.arange(P)
    if L:
        out_acc = (length >= 1) & writes[rows, last] & (dst[rows, last] == output)
    else:
        out_acc = jnp.zeros(P, bool)
    inputs = (one << jnp.uint32(n_inputs)) - one
    steps = jnp.arange(L, dtype=jnp.int32)

    def written(done, xs):  # registers holding something else than zero before each one
        i, d, w = xs
        now = done | jnp.where((i < length) & w, one << d.astype(jnp.uint32), jnp.uint32(0))
        return now, done

    # both passes unrolled (32 steps a turn): a few fused kernels on a GPU, not a loop of
    # small ones
    unroll = max(1, min(L, 32))
    _, before = jax.lax.scan(written, jnp.full(P, inputs, jnp.uint32),
                             (steps, dst.T, writes.T), unroll=unroll)
    need0 = jnp.where(out_acc, jnp.uint32(0), one << output.astype(jnp.uint32))

    def step(need, xs):
        i, o_k, a3, d, pv, w, nonzero = xs
        live = i < length
        bit = one << d.astype(jnp.uint32)
        store = live & w & ((need & bit) != 0)
        need = jnp.where(live & w, need & ~bit, need)
        variant = store.astype(jnp.int32)
        for j in range(MAX_ARITY):
            has = live & w & (o_k > j)
            r = a3[:, j].astype(jnp.uint32)
            zero = ((nonzero >> r) & one) == 0
            src = jnp.where(a3[:, j] == pv, ACC, jnp.where(zero, ZERO, SMEM))
            variant = variant + jnp.where(has, 2 * 3 ** j * src, 0)
            need = jnp.where(has & (src == SMEM), need | (one << r), need)
        return need, variant

    xs = (steps, k.T, jnp.transpose(args, (1, 0, 2)), dst.T, prev.T, writes.T, before)
    need, variants = jax.lax.scan(step, need0, xs, reverse=True, unroll=unroll)
    init = need | jnp.where(out_acc, jnp.uint32(OUT_FROM_ACC), jnp.uint32(0))
    return variants.T, jax.lax.bitcast_convert_type(init, jnp.int32)


# PTX of the ops the cases compute themselves, elementwise on f32 registers d, a, b, c
PTX_OPS: dict[str, list[str]] = {
    "add": ["add.rn.f32 {d}, {a}, {b};"],
    "sub": ["sub.rn.f32 {d}, {a}, {b};"],
    "mul": ["mul.rn.f32 {d}, {a}, {b};"],
    "fma": ["fma.rn.f32 {d}, {a}, {b}, {c};"],
    "neg": ["neg.f32 {d}, {a};"],
    "abs": ["abs.f32 {d}, {a};"],
    "sqrt": ["sqrt.rn.f32 {d}, {a};"],
    # IEEE division; zero, infinite and NaN operands by rule, as ev_div in evolve.cuda
    # does: the product of the special operand (the divisor's reciprocal) and the other's
    # sign, the division itself run on 1 / 1 for them
    "div": ["abs.f32 x_n, {a};", "setp.geu.f32 x_pa, x_n, 0f7F800000;",  # inf, NaN
            "setp.eq.or.f32 x_pa, {a}, 0f00000000, x_pa;",  # or zero
            "abs.f32 x_n, {b};", "setp.geu.f32 x_pb, x_n, 0f7F800000;",
            "setp.eq.or.f32 x_pb, {b}, 0f00000000, x_pb;", "or.pred x_ps, x_pa, x_pb;",
            "selp.f32 x_n, 0f3F800000, {a}, x_ps;", "selp.f32 x_q, 0f3F800000, {b}, x_ps;",
            "div.rn.f32 x_q, x_n, x_q;",
            "and.b32 x_m, {a}, 0x80000000;", "or.b32 x_m, x_m, 0x3f800000;",
            "selp.b32 x_n, {a}, x_m, x_pa;",
            "rcp.approx.ftz.f32 x_r, {b};",
            "and.b32 x_m, {b}, 0x80000000;", "or.b32 x_m, x_m, 0x3f800000;",
            "selp.b32 x_r, x_r, x_m, x_pb;",
            "mul.rn.f32 x_n, x_n, x_r;", "selp.f32 {d}, x_n, x_q, x_ps;"],
}


def in_ptx(o: int) -> bool:
    """Whether the case of op ``o`` computes it (else it copies the arguments out for C++)."""
    return o == CONST or OPS[o].name in PTX_OPS


def step(ops: list[int], E: int, threads: int, cuda_ops: dict[str, str]) -> str:
    """The body of the instruction loop (CUDA C++ around PTX jump tables), two
    instructions a turn (words ``w`` and ``v``): a ``brx.idx`` on the instruction's case
    to code for that op and variant, which takes each argument from ``acc``, shared memory
    (a 16-byte load for four points) or zero, leaves the result in ``acc`` and stores it
    when the variant says so. A word: byte offsets of a (the literal's bits for CONST), b
    (c's in the high half), d; the case. Ops without a PTX spelling here (min, max, the
    transcendental ones) copy their arguments out and run in C++.

    nvcc lowers a ``switch`` to a tree of compares (six levels for 50 cases), which is
    why the jump is written in PTX."""
    base, nop, stop = layout(ops)
    cpp = [o for o in sorted(set(ops)) if not in_ptx(o)]
    out = [f"acc[{e}]" for e in range(E)]
    if cpp:
        out += [f"t{n}[{e}]" for n in "ab" for e in range(E)] + ["pend"]
    A0, TA, TB, PEND = 0, E, 2 * E, 3 * E  # operand numbers of acc, ta, tb, pend
    W = len(out)  # then the word's x, y, z, w, the thread's shared-memory address
    WX, WY, WZ, WW, BASE_ = (f"%{W + i}" for i in range(5))
    chunk = threads * 16  # bytes between a thread's groups of four points

    def load(name, offset, regs):
        lines = [f"add.u32 x_{name}, {BASE_}, {offset};"]
        for q in range(E // 4):
            imm = f"+{q * chunk}" if q else ""
            lines.append(f"ld.shared.v4.f32 {{{', '.join(regs[4 * q:4 * q + 4])}}}, "
                         f"[x_{name}{imm}];")
        return lines

    acc = [f"%{A0 + e}" for e in range(E)]
    targets: list[list[str]] = [[] for _ in range(stop)]
    for o in sorted(set(ops) | {CONST}):
        k = OPS[o].arity
        for v in range(2 * 3 ** k):
            body = []
            if o == CONST:
                body += [f"mov.b32 {acc[e]}, {WX};" for e in range(E)]
            else:
                regs = []
                for (j, n), src in zip(enumerate("abc"[:k]), sources(v, k)):
                    if src != SMEM:
                        if src == ZERO and ["x_z"] * E not in regs:
                            body.append("mov.f32 x_z, 0f00000000;")
                        regs.append(acc if src == ACC else ["x_z"] * E)
                        continue
                    r = [f"x_{n}{e}" for e in range(E)]
                    if j == 0:
                        off = WX
                    elif j == 1 and k < 3:
                        off = WY  # c is zero: b's offset is the whole word
                    elif j == 1:
                        body.append(f"and.b32 x_b, {WY}, 65535;")
                        off = "x_b"
                    else:
                        body.append(f"shr.u32 x_c, {WY}, 16;")
                        off = "x_c"
                    body += load(n, off, r)
                    regs.append(r)
                if in_ptx(o):
                    for e in range(E):
                        names = dict(zip("abc", (r[e] for r in regs)), d=acc[e])
                        body += [line.format(**names) for line in PTX_OPS[OPS[o].name]]
                else:  # copied out; C++ computes acc and stores it
                    for n, r in zip("ab", regs):
                        body += [f"mov.f32 %{(TA if n == 'a' else TB) + e}, {r[e]};"
                                 for e in range(E)]
                    body.append(f"mov.u32 %{PEND}, {o + 1 << 1 | (v & STORE)};")
            if v & STORE and (o == CONST or in_ptx(o)):
                body.append(f"add.u32 x_d, {BASE_}, {WZ};")
                for q in range(E // 4):
                    imm = f"+{q * chunk}" if q else ""
                    body.append(f"st.shared.v4.f32 [x_d{imm}], "
                                f"{{{', '.join(acc[4 * q:4 * q + 4])}}};")
            targets[base[o] + v] = body
    targets[nop] = []
    regs_decl = [".reg .pred x_pa, x_pb, x_ps;",
                 ".reg .b32 x_a, x_b, x_c, x_d, x_m;",
                 ".reg .f32 x_n, x_q, x_r, x_z;",
                 f".reg .f32 {', '.join(f'x_{n}{e}' for n in 'abc' for e in range(E))};"]
    names = [f"L{i}" for i in range(len(targets))]
    lines = ["{", *regs_decl, f"ts: .branchtargets {', '.join(names)};", f"brx.idx {WW}, ts;"]
    for name, body in zip(names, targets):
        lines += [f"{name}:", *body, "bra.uni DONE;"]
    lines += ["DONE:", "}"]
    text = "".join(f'"{line}\\n\\t"\n                ' for line in lines)
    outputs = ", ".join(f'"+f"({x})' if x != "pend" else '"+r"(pend)' for x in out)
    cpp_body = "\n".join(
        f"            case {o + 1}: {{ for (int e = 0; e < E; ++e) {{ const float a = ta[e], "
        f"b = tb[e]; (void)a; (void)b; acc[e] = {cuda_ops[OPS[o].name]}; }} break; }}"
        for o in cpp)
    code = ""
    # two instructions a turn, in words w and v, so that loading the next one into the
    # other word (before this one runs: volatile asm keeps the order) needs no copy
    for word, other, at in (("w", "v", "q"), ("v", "w", "q + 16")):
        code += f"""        asm volatile("ld.shared.v4.u32 {{%0, %1, %2, %3}}, [%4];"
                     : "=r"({other}.x), "=r"({other}.y), "=r"({other}.z), "=r"({other}.w)
                     : "r"({at}));
        if ({word}.w == {stop}) goto done;  // the instruction after the last
"""
        if cpp:
            code += "        pend = 0;\n"
        inputs = (f'"r"({word}.x), "r"({word}.y), "r"({word}.z), "r"({word}.w), '
                  '"r"(s_base)')
        code += f"""        asm volatile({text}: {outputs}
                : {inputs});
"""
        if cpp:
            code += f"""        if (pend) {{  // an op computed here
            switch (pend >> 1) {{
{cpp_body}
                default: break;
            }}
            if (pend & 1u) ST({word}.z, acc);
        }}
"""
    return code.rstrip("\n")


def fold(ops: list[int], cuda_ops: dict[str, str]) -> str:
    """CUDA C++ run by one thread of a block after the program is packed: constant folding.
    An instruction whose arguments are all constant (literals, registers past the inputs
    not written yet, and results computed from those alone) gives every point the same
    value; it is computed here once, by the op's own CUDA code, and its word becomes the
    literal's (the CONST case of the same store bit), so the plan's variants stay right.
    Our CPU kernel (``evolve.native``) folds the same way. Off by default
    (``evolve.cuda.FOLD``): built and compiled, not yet run on a GPU."""
    base, _, _ = layout(ops)
    cases = "\n".join(
        f"                case {o}: {{ const float a = ra, b = rb, c = rc; (void)a; (void)b; "
        f"(void)c; v = {cuda_ops[OPS[o].name]}; break; }}"
        for o in sorted(set(ops)) if o != CONST)
    return f"""    if (threadIdx.x == 0) {{  // constant folding (cuda_acc.fold)
        float cv[R];  // the constant registers' values
        #pragma unroll
        for (int r = 0; r < R; ++r) cv[r] = 0.0f;
        unsigned isc = (R >= 32 ? ~0u : (1u << R) - 1u) & ~((1u << n_inputs) - 1u);
        for (int i = 0; i < n; ++i) {{
            const int64_t g = row + i;
            const int o = op[g], d = dst[g], k = ARITY[o];
            if (o == {CONST}) {{ cv[d] = cst[g]; isc |= 1u << d; continue; }}
            if (BASE[o] < 0) continue;  // an op outside the set does nothing
            const int a = k >= 1 ? args[3 * g] : 0, b = k >= 2 ? args[3 * g + 1] : 0;
            const int c = k >= 3 ? args[3 * g + 2] : 0;
            const unsigned reads = (k >= 1 ? 1u << a : 0u) | (k >= 2 ? 1u << b : 0u)
                                   | (k >= 3 ? 1u << c : 0u);
            if ((isc & reads) != reads) {{ isc &= ~(1u << d); continue; }}  // not constant
            const float ra = cv[a], rb = cv[b], rc = cv[c];
            float v = 0.0f;
            switch (o) {{
{cases}
                default: break;
            }}
            cv[d] = v;
            isc |= 1u << d;
            s_prog[i] = make_int4(__float_as_int(v), 0, s_prog[i].z,
                                  {base[CONST]} + (plan[g] & {STORE}));
        }}
    }}
    __syncthreads();
"""


def parts(ops: list[int], E: int, threads: int, fold_constants: bool,
          cuda_ops: dict[str, str]) -> tuple[str, ...]:
    """The "acc" mode's parts of ``evolve.cuda.source``'s kernel template, in its order:
    step, decl, final, tables, pack, prog_bytes, prog, prog_comment, stop_pack, loop, at,
    fill, errors, plan_params, plan_args, plan_binds, fold_code."""
    base, nop, stop = layout(ops)
    decl = """    float* s_reg = (float*)(s_prog + (L + 1));  // [R][E / 4][THREADS][4]
    unsigned char* const s_thread = (unsigned char*)(s_reg + threadIdx.x * 4);
    const unsigned s_base = (unsigned)__cvta_generic_to_shared(s_thread);  // for PTX
    const unsigned need = (unsigned)init[p0 + blockIdx.y];  // registers to set, OUT_FROM_ACC
    float acc[E];  // the last result
    #pragma unroll
    for (int e = 0; e < E; ++e) acc[e] = 0.0f;"""
    if not all(in_ptx(o) for o in ops):
        decl += ("\n    float ta[E], tb[E];  // arguments of an op computed in C++"
                 "\n    unsigned pend;  // its op and store bit")
    final = f"""        done:
        float out[E];
        if (need & {OUT_FROM_ACC}u) {{
            #pragma unroll
            for (int e = 0; e < E; ++e) out[e] = acc[e];
        }} else {{
            LD(out, outreg * STRIDE);
        }}"""
    # byte offsets (c's above b's), the case of op and variant
    tables = f"__constant__ int BASE[{len(OPS)}] = {{{', '.join(map(str, base))}}};\n"
    pack = f"""        const int first = o == {CONST} ? __float_as_int(cst[g]) : a * STRIDE;
        s_prog[i] = make_int4(first, b * STRIDE | (c * STRIDE) << 16, dst[g] * STRIDE,
                              BASE[o] < 0 ? {nop} : BASE[o] + plan[g]);"""
    # an int4 an instruction and a stop after them, by pointer
    prog_bytes, prog = "(L + 1) * 16", "[L + 1]: a, b | c << 16, d, case"
    prog_comment = "The program, an int4 an instruction (packed below), then a stop."
    stop_pack = f"""    if (threadIdx.x == 0) s_prog[n] = make_int4(0, 0, 0, {stop});  // the stop
"""
    # two instructions a turn, each loading the next (step)
    loop = """int4 w = s_prog[0], v;
        for (unsigned q = (unsigned)__cvta_generic_to_shared(s_prog + 1);; q += 32) {"""
    # E / 4 float4 a register and thread, THREADS * 16 bytes apart
    at = """#define STRIDE (THREADS * E * 4)  // bytes a register
#define LD(v, off) do { const float4* p_ = (const float4*)(s_thread + (off)); \\
    _Pragma("unroll") for (int q_ = 0; q_ < E / 4; ++q_) { const float4 t_ = p_[q_ * THREADS]; \\
        v[4 * q_] = t_.x; v[4 * q_ + 1] = t_.y; v[4 * q_ + 2] = t_.z; v[4 * q_ + 3] = t_.w; } \\
    } while (0)
#define ST(off, v) do { float4* p_ = (float4*)(s_thread + (off)); \\
    _Pragma("unroll") for (int q_ = 0; q_ < E / 4; ++q_) \\
        p_[q_ * THREADS] = make_float4(v[4 * q_], v[4 * q_ + 1], v[4 * q_ + 2], v[4 * q_ + 3]); \\
    } while (0)
"""
    fill = """        const bool full = base + THREADS * E <= n_points;  // every point of the tile is real
        #pragma unroll
        for (int r = 0; r < R; ++r)
            if ((need >> r) & 1u) {  // read before written: the input, or zero
                float v_[E];
                #pragma unroll
                for (int e = 0; e < E; ++e) {
                    const bool real = full || j0 + e * PSTEP < n_points;
                    v_[e] = (r < n_inputs && real) ? x[r * n_points + j0 + e * PSTEP] : 0.0f;
                }
                ST(r * STRIDE, v_);
            }"""
    # a tile's errors: the pointers taken once, bounds checked only in the last tile, and
    # points masked out counted as zero (max and sum start at zero) by selects
    errors = """        const double* const yb = y + j0;
        const double* const sb = scale + j0;
        const int32_t* const mb = mask + j0;
        auto point = [&](int e) {
            const double d = fabs((double)out[e] - yb[e * PSTEP]);
            const double err = isnan(d) ? (double)INFINITY : d;  // never NaN from here on
            const bool in = mb[e * PSTEP] != 0;
            const double em = in ? err : 0.0;
            mxs = nan_max(mxs, in ? err * sb[e * PSTEP] : 0.0);
            mx = em > mx ? em : mx;
            sq += em * em;
        };
        if (full) {
            #pragma unroll
            for (int e = 0; e < E; ++e) point(e);
        } else {
            #pragma unroll
            for (int e = 0; e < E; ++e)
                if (j0 + e * PSTEP < n_points) point(e);
        }"""
    plan_params = "const int32_t* __restrict__ plan, const int32_t* __restrict__ init,\n        "
    plan_args = "plan.typed_data(), init.typed_data(), "
    plan_binds = "ffi::Buffer<ffi::S32> plan, ffi::Buffer<ffi::S32> init,\n        "
    return (step(ops, E, threads, cuda_ops), decl, final, tables, pack, prog_bytes, prog,
            prog_comment, stop_pack, loop, at, fill, errors, plan_params, plan_args, plan_binds,
            fold(ops, cuda_ops) if fold_constants else "")
