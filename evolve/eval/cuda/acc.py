"""The "acc" register file of the CUDA kernel (``evolve.eval.cuda.kernel``, ``registers="acc"``, the
default): registers in shared memory, as in "smem", but the last instruction's result
stays in the chip's registers (the accumulator) and goes to shared memory only when a
later instruction other than the next reads it.

Shared-memory bandwidth is what bounds the "smem" kernel: two loads and a store a point
and instruction. In ``scripts/check_gpu.py``'s benchmark 12 % of the arguments are the
previous result, 33 % are registers no instruction has written yet (constants: one value
for every point), and only 45 % of the results need storing.

The kernel follows words that ``evolve.eval.cuda.plan.plan`` writes before it runs: where each
argument is, whether the result is stored, and with folding (``CudaShape.fold`` of ``evolve.eval.cuda.kernel``, the
default) only the instructions that depend on an input and reach the output. This
module writes the code: ``step`` the instruction loop (a PTX jump table with code for
each op and variant, a thread's four points of a register one 16-byte shared-memory
access), ``fold`` the kernel that computes a program's constants once with the ops' own
code, and ``parts`` the mode's other pieces of ``evolve.eval.cuda.kernel.source``'s template.
"""

from __future__ import annotations

from evolve.eval.cuda.plan import ACC, KONST, OUT_FROM_ACC, OUT_KONST, STORE, layout, sources
from evolve.ops import CONST, OPS


def expression(o: int) -> str:
    """Op ``o``'s CUDA C++ spelling (``Op.cuda``) over the floats a, b and c."""
    return OPS[o].cuda.format("a", "b", "c")


def in_ptx(o: int) -> bool:
    """Whether the case of op ``o`` computes it (else it copies the arguments out for C++)."""
    return o == CONST or OPS[o].ptx is not None


def step(ops: list[int], E: int, threads: int) -> str:
    """The body of the instruction loop (CUDA C++ around PTX jump tables), two
    instructions a turn (words ``w`` and ``v``): a ``brx.idx`` on the instruction's case
    to code for that op and variant, which takes each argument from ``acc``, shared memory
    (a 16-byte load for four points) or the table of constants (one value for the four),
    leaves the result in ``acc`` and stores it when the variant says so. A word (``plan``):
    byte offsets of a (the literal's bits for CONST), b (c's in the high half), d; the
    case. Ops without a PTX spelling here (min, max, the
    transcendental ones) copy their arguments out and run in C++.

    nvcc lowers a ``switch`` to a tree of compares (six levels for 50 cases), which is
    why the jump is written in PTX."""
    base, stop = layout(ops)
    cpp = [o for o in sorted(set(ops)) if not in_ptx(o)]
    out = [f"acc[{e}]" for e in range(E)]
    if cpp:
        out += [f"t{n}[{e}]" for n in "ab" for e in range(E)] + ["pend"]
    A0, TA, TB, PEND = 0, E, 2 * E, 3 * E  # operand numbers of acc, ta, tb, pend
    W = len(out)  # then the word's x, y, z, w, the thread's shared-memory address, the table's
    WX, WY, WZ, WW, BASE_, KBASE = (f"%{W + i}" for i in range(6))
    chunk = threads * 16  # bytes between a thread's groups of four points

    def load(name, offset, regs):
        lines = [f"add.u32 x_{name}, {BASE_}, {offset};"]
        for q in range(E // 4):
            imm = f"+{q * chunk}" if q else ""
            lines.append(f"ld.shared.v4.f32 {{{', '.join(regs[4 * q:4 * q + 4])}}}, "
                         f"[x_{name}{imm}];")
        return lines

    acc = [f"%{A0 + e}" for e in range(E)]
    # a case for the stop too, empty (the loop leaves before its jump): without it, at 4
    # points a thread under the 40-register cap, ptxas (nvcc 13.0) spilled 220 bytes
    # against 80 (at 8 points, 48 registers and no spills either way)
    targets: list[list[str]] = [[] for _ in range(stop + 1)]
    for o in sorted(set(ops) | {CONST}):
        k = OPS[o].arity
        for v in range(2 * 3 ** k):
            body = []
            if o == CONST:
                body += [f"mov.b32 {acc[e]}, {WX};" for e in range(E)]
            else:
                regs = []
                for (j, n), src in zip(enumerate("abc"[:k]), sources(v, k)):
                    if src == ACC:
                        regs.append(acc)
                        continue
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
                    if src == KONST:  # one value for every point
                        body += [f"add.u32 x_k, {KBASE}, {off};",
                                 f"ld.shared.f32 x_{n}k, [x_k];"]
                        regs.append([f"x_{n}k"] * E)
                        continue
                    r = [f"x_{n}{e}" for e in range(E)]
                    body += load(n, off, r)
                    regs.append(r)
                if in_ptx(o):
                    for e in range(E):
                        names = dict(zip("abc", (r[e] for r in regs)), d=acc[e])
                        body += [line.format(**names) for line in OPS[o].ptx]
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
    regs_decl = [".reg .pred x_pa, x_pb, x_ps;",
                 ".reg .b32 x_a, x_b, x_c, x_d, x_k, x_m;",
                 ".reg .f32 x_n, x_q, x_r, x_ak, x_bk, x_ck;",
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
        f"b = tb[e]; (void)a; (void)b; acc[e] = {expression(o)}; }} break; }}"
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
                  '"r"(s_base), "r"(k_base)')
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


def fold(ops: list[int]) -> str:
    """The fold kernel, run before the evaluation kernel, a thread a program: row p of
    ``konst`` ([P, 3 L + 1] floats) gets, at 3 i + j, the value of argument j of
    instruction i where that argument is a constant (``plan``'s KONST), and at 3 L the
    output's value where it is one. Constants are computed once a program here, by the
    ops' own CUDA code, so the kernel sees the bits it would have computed at every point.
    Registers past the inputs start at zero; an op outside the set does nothing."""
    cases = "\n".join(
        f"            case {o}: {{ const float a = ra, b = rb, c = rc; (void)a; (void)b; "
        f"(void)c; v = {expression(o)}; break; }}"
        for o in sorted(set(ops)) if o != CONST)
    return f"""__global__ void evolve_fold(
        const int32_t* __restrict__ op, const int32_t* __restrict__ args,
        const int32_t* __restrict__ dst, const float* __restrict__ cst,
        const int32_t* __restrict__ length, const int32_t* __restrict__ output, int n_inputs,
        int64_t P, int L, float* __restrict__ konst) {{
    const int64_t p = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= P) return;
    float* const t = konst + p * (3 * L + 1);
    for (int i = 0; i <= 3 * L; ++i) t[i] = 0.0f;
    float cv[R];  // the registers' values, where they are constants
    #pragma unroll
    for (int r = 0; r < R; ++r) cv[r] = 0.0f;
    unsigned isc = ~((1u << n_inputs) - 1u);  // registers holding constants
    const int n = length[p];
    for (int i = 0; i < n; ++i) {{
        const int64_t g = p * L + i;
        const int o = op[g], d = dst[g], k = ARITY[o];
        if (o == {CONST}) {{ cv[d] = cst[g]; isc |= 1u << d; continue; }}
        if (BASE[o] < 0) continue;  // an op outside the set does nothing
        float ra = 0.0f, rb = 0.0f, rc = 0.0f;
        bool constant = true;
        for (int j = 0; j < k; ++j) {{
            const int r = args[3 * g + j];
            if ((isc >> r) & 1u) {{
                t[3 * i + j] = cv[r];
                if (j == 0) ra = cv[r]; else if (j == 1) rb = cv[r]; else rc = cv[r];
            }} else {{
                constant = false;
            }}
        }}
        if (!constant) {{ isc &= ~(1u << d); continue; }}
        float v = 0.0f;
        switch (o) {{
{cases}
            default: break;
        }}
        cv[d] = v;
        isc |= 1u << d;
    }}
    const int out = output[p];
    if (n >= 0 && ((isc >> out) & 1u)) t[3 * L] = cv[out];
}}
"""


def parts(ops: list[int], E: int, threads: int) -> dict[str, str]:
    """The "acc" mode's parts of ``evolve.eval.cuda.kernel.source``'s kernel template, by name."""
    base, _ = layout(ops)
    p = {}
    p["decl"] = """    float* const s_konst = (float*)(s_prog + (L + 1));  // [3 L + 1] the constants
    float* s_reg = s_konst + ((3 * L + 4) & ~3);  // [R][E / 4][THREADS][4]
    unsigned char* const s_thread = (unsigned char*)(s_reg + threadIdx.x * 4);
    const unsigned s_base = (unsigned)__cvta_generic_to_shared(s_thread);  // for PTX
    const unsigned k_base = (unsigned)__cvta_generic_to_shared(s_konst);
    const unsigned need = (unsigned)init[p0 + blockIdx.y];  // registers to set, OUT_ bits
    // cuda.point_facts: tiles ending by dense_end need no mask, by unit_end no scale
    const int64_t dense_end = facts[0], unit_end = facts[1];
    float acc[E];  // the last result
    #pragma unroll
    for (int e = 0; e < E; ++e) acc[e] = 0.0f;"""
    if not all(in_ptx(o) for o in ops):
        p["decl"] += ("\n    float ta[E], tb[E];  // arguments of an op computed in C++"
                      "\n    unsigned pend;  // its op and store bit")
    p["final"] = f"""        done:
        float out[E];
        if (need & {OUT_FROM_ACC}u) {{
            #pragma unroll
            for (int e = 0; e < E; ++e) out[e] = acc[e];
        }} else if (need & {OUT_KONST}u) {{
            #pragma unroll
            for (int e = 0; e < E; ++e) out[e] = s_konst[3 * L];
        }} else {{
            LD(out, outreg * STRIDE);
        }}"""
    p["tables"] = f"__constant__ int BASE[{len(OPS)}] = {{{', '.join(map(str, base))}}};\n"
    p["kernels"] = fold(ops)
    # the words (cuda_plan.plan) and the constants (the fold kernel), copied in
    p["pack"] = """    {
        const int4* const wp = (const int4*)words + p * (L + 1);
        for (int i = threadIdx.x; i <= L; i += THREADS) s_prog[i] = wp[i];
        const float* const kp = konst + p * (3 * L + 1);
        for (int i = threadIdx.x; i <= 3 * L; i += THREADS) s_konst[i] = kp[i];
    }
    __syncthreads();"""
    p["prog_bytes"] = "((L + 1) * 16 + ((3 * L + 4) & ~3) * 4)"
    p["prog"] = "[L + 1]: a, b | c << 16, d, case (cuda_plan.plan); then the constants"
    p["prog_comment"] = "The program's words, an int4 an instruction, then a stop."
    # two instructions a turn, each loading the next (step)
    p["loop"] = """int4 w = s_prog[0], v;
        #pragma unroll 1  // one copy of the jump tables
        for (unsigned q = (unsigned)__cvta_generic_to_shared(s_prog + 1);; q += 32) {"""
    # E / 4 float4 a register and thread, THREADS * 16 bytes apart
    p["at"] = """#define STRIDE (THREADS * E * 4)  // bytes a register
#define LD(v, off) do { const float4* p_ = (const float4*)(s_thread + (off)); \\
    _Pragma("unroll") for (int q_ = 0; q_ < E / 4; ++q_) { const float4 t_ = p_[q_ * THREADS]; \\
        v[4 * q_] = t_.x; v[4 * q_ + 1] = t_.y; v[4 * q_ + 2] = t_.z; v[4 * q_ + 3] = t_.w; } \\
    } while (0)
#define ST(off, v) do { float4* p_ = (float4*)(s_thread + (off)); \\
    _Pragma("unroll") for (int q_ = 0; q_ < E / 4; ++q_) \\
        p_[q_ * THREADS] = make_float4(v[4 * q_], v[4 * q_ + 1], v[4 * q_ + 2], v[4 * q_ + 3]); \\
    } while (0)
"""
    p["fill"] = """        const bool full = base + THREADS * E <= n_points;  // every point of the tile is real
        // the registers read before they are written (inputs), by their bits: a loop
        // over the set bits, not a test of every register
        for (unsigned m_ = need & ((1u << R) - 1u); m_; m_ &= m_ - 1u) {
            const int r = __ffs(m_) - 1;
            float v_[E];
            #pragma unroll
            for (int e = 0; e < E; ++e) {
                const bool real = full || j0 + e * PSTEP < n_points;
                v_[e] = (r < n_inputs && real) ? x[r * n_points + j0 + e * PSTEP] : 0.0f;
            }
            ST(r * STRIDE, v_);
        }"""
    # a tile's errors: the pointers taken once; where the mask is known to hold every
    # point of the tile (facts[0]: the mask is ones up to there, then zeros), no mask and
    # a NaN flag for the scaled max, or no scale at all where it is 1 at every point
    # (facts[1]: the scaled max is the max, so mxs = mx); else bounds checked only in the
    # last tile, and points masked out counted as zero (max and sum start at zero) by
    # selects
    p["errors"] = """        const double* const yb = y + j0;
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
        if (base + THREADS * E <= unit_end) {  // every point real, in, scale 1
            #pragma unroll
            for (int e = 0; e < E; ++e) {  // a NaN error: the max skips it, the sum keeps it
                const double d = fabs((double)out[e] - yb[e * PSTEP]);
                mx = d > mx ? d : mx;
                sq += d * d;  // NaN only from a NaN error (no inf - inf): tail makes both inf
            }
        } else if (base + THREADS * E <= dense_end) {  // every point real and in the mask
            bool scaled_nan = false;  // an infinite error at a zero scale: the max is NaN
            #pragma unroll
            for (int e = 0; e < E; ++e) {
                const double err = fmin(fabs((double)out[e] - yb[e * PSTEP]), (double)INFINITY);
                const double es = err * sb[e * PSTEP];
                scaled_nan |= isnan(es);
                mxs = es > mxs ? es : mxs;
                mx = err > mx ? err : mx;
                sq += err * err;
            }
            if (scaled_nan) mxs = __longlong_as_double(0x7ff8000000000000LL);  // it stays NaN
        } else if (full) {
            #pragma unroll
            for (int e = 0; e < E; ++e) point(e);
        } else {
            #pragma unroll
            for (int e = 0; e < E; ++e)
                if (j0 + e * PSTEP < n_points) point(e);
        }"""
    # after the tiles: with scale 1 the scaled max is the max, and a NaN error (the sum is
    # NaN then, as nothing else makes it so) is infinite, as the errors code makes it
    p["tail"] = """    if (unit_end > 0) {
        if (isnan(sq)) { mx = (double)INFINITY; sq = (double)INFINITY; }
        mxs = mx;
    }
"""
    p["params"] = ("const int32_t* __restrict__ words, const int32_t* __restrict__ init,\n"
                   "        const int64_t* __restrict__ facts, const float* __restrict__ konst, ")
    p["launch_args"] = ("words.typed_data(), init.typed_data(), facts.typed_data(), "
                        "konst->typed_data(), ")
    p["handler_params"] = ("ffi::Buffer<ffi::S32> words, ffi::Buffer<ffi::S32> init,\n"
                           "        ffi::Buffer<ffi::S64> facts, ")
    p["results"] = ", ffi::ResultBuffer<ffi::F32> konst"
    p["pre_launch"] = """    if (konst->element_count() != P * (3 * L + 1) || words.element_count() != P * (L + 1) * 4
        || facts.element_count() != 2)
        return ffi::Error::InvalidArgument("words, facts or konst have the wrong shape");
    if (P > 0)  // the constants, a thread a program
        evolve_fold<<<(unsigned)((P + 127) / 128), 128, 0, stream>>>(
            op.typed_data(), args.typed_data(), dst.typed_data(), cst.typed_data(),
            length.typed_data(), output.typed_data(), n_inputs, P, (int)L,
            konst->typed_data());
"""
    p["binds"] = (".Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>()"
                  ".Arg<ffi::Buffer<ffi::S64>>()")
    p["rets"] = ".Ret<ffi::Buffer<ffi::F32>>()"
    p["step"] = step(ops, E, threads)
    # 4 points a thread, every op in PTX: at most 40 registers (6 blocks of 256 threads an
    # SM, as shared memory allows for 8 registers); ptxas took 42 for the error code's
    # loads, which cost a block an SM. Ops in C++ (libm calls) would spill under the cap.
    capped = E == 4 and all(in_ptx(o) for o in ops)
    p["min_blocks"] = f", {max(1, 1536 // threads)}" if capped else ""
    return p
