"""The C++ source of the CPU evaluator kernel (``evolve.eval.cpu.kernel``), generated from the ops
table for one op set and register count: the tile loop of a program, constant folding
and literal slots, the error reduction, the transcendental ops by libmvec or our own
vector code (``evolve.eval.cpu.vecmath``), the thread pool, and the two XLA FFI handlers
(``EvolveErrors``, ``EvolveOutputs``). ``evolve.eval.cpu.kernel`` builds and calls it; its
docstring says how the kernel works.

One concept, the C++ text of the kernel: its templates are long, the Python around them
short; the vector math it inlines is in ``evolve.eval.cpu.vecmath``.
"""

from __future__ import annotations

from evolve.eval.cpu.vecmath import OWN32_MATH, OWN_MATH
from evolve.ops import C_HELPERS, CONST, OPS

# The transcendental ops' implementations (``check_math``): glibc's libmvec, our own
# float64-evaluated code or our own float32 code (the default; ``evolve.eval.cpu.vecmath``).
MATHS = ("libmvec", "own", "own32")
# The instruction sets the kernel is generated for (``check_isa``), widest first: 16-float
# AVX-512 vectors, 8-float AVX2 + FMA vectors, or no vector code of ours (the compiler's
# choice for the target, the scalar libm functions).
ISAS = ("avx512", "avx2", "generic")
TILE = 256  # points a program runs on at a time: R x TILE floats stay in L1
FOLD_LANES = 16  # lanes of the constant-folding step: one AVX-512 vector, two AVX2 ones
GROUP = 2  # programs a thread runs side by side, tile by tile (at most 4; 2 measured best)
SLOTS = 16  # registers of their own for a program's literals (filled once a program)

# glibc's libmvec: AVX2 variants (8 floats), the glibc version that first has them, and
# the inputs it handles fast (lo < x < hi), which are also our own code's fast range.
# Outside (NaN, Inf, huge arguments), libmvec takes a slow path for the whole vector
# (three times slower with 10 % such lanes), so those lanes go to the scalar libm
# function instead.
_MVEC = {"sin": ("_ZGVdN8v_sinf", 22, -8192.0, 8192.0),
         "cos": ("_ZGVdN8v_cosf", 22, -8192.0, 8192.0),
         "exp": ("_ZGVdN8v_expf", 22, -87.0, 88.0),
         "log": ("_ZGVdN8v_logf", 22, 1.1754944e-38, 3.4e38),
         "exp2": ("_ZGVdN8v_exp2f", 35, -126.0, 127.0),
         "tanh": ("_ZGVdN8v_tanhf", 35, -9.0, 9.0)}
# libmvec's AVX-512 variants (16 floats) that the AVX-512 kernel calls: those equal to the
# AVX2 variant bit for bit at every float32 (checked over all 2^32 inputs, glibc 2.36), so
# that a program's outputs do not depend on the host's vector width. glibc's 16-float
# exp2f and tanhf differ from its 8-float ones in the last bit (at 10 % and 6 % of the
# inputs): the AVX-512 kernel calls the 8-float variant twice for those.
# the ops "own32" computes: every transcendental op the kernel has (those of _MVEC)
OWN32_OPS = tuple(_MVEC)
_MVEC16 = {"sin": "_ZGVeN16v_sinf", "cos": "_ZGVeN16v_cosf", "exp": "_ZGVeN16v_expf",
           "log": "_ZGVeN16v_logf"}
# Out-of-range inputs whose result is known, set in the vector: (the value compared, "a"
# or "|a|", the comparison (a _CMP_ predicate), the bound, the result); NaN inputs give
# NaN for every function. The rest of the out-of-range lanes (huge finite arguments of
# sin, subnormal results of exp, ...) call the scalar function.
_INF, _NAN = float("inf"), float("nan")
_RULES = {
    "sin": [("|a|", "EQ_OQ", _INF, _NAN)],
    "cos": [("|a|", "EQ_OQ", _INF, _NAN)],
    "exp": [("a", "GE_OQ", 89.0, _INF), ("a", "LE_OQ", -104.0, 0.0)],
    "exp2": [("a", "GE_OQ", 128.0, _INF), ("a", "LE_OQ", -151.0, 0.0)],
    "log": [("a", "LT_OQ", 0.0, _NAN), ("a", "EQ_OQ", 0.0, -_INF), ("a", "EQ_OQ", _INF, _INF)],
    "tanh": [("a", "GE_OQ", 10.0, 1.0), ("a", "LE_OQ", -10.0, -1.0)],
}


def _c_float(v: float) -> str:
    """A float32 literal in C."""
    if v != v:
        return "NAN"
    if v in (_INF, -_INF):
        return "INFINITY" if v > 0 else "-INFINITY"
    return f"{v!r}f"


def _rules_disjoint(name: str) -> bool:
    """Whether no float32 meets two of: the fast range of op ``name`` (``_MVEC``), NaN,
    its rules' conditions (``_RULES``): the special lanes' code sets them independently.
    Each is an interval of a or |a|, so its bounds, their neighbours and the values
    between them (zeros, infinities, NaN) decide it."""
    import numpy as np

    _, _, lo, hi = _MVEC[name]
    rules = _RULES.get(name, [])
    edges = {0.0, _INF, lo, hi, *(b for _, _, b, _ in rules)}
    xs = {_NAN}
    for e in edges:
        for v in (e, -e):
            f = np.float32(v)
            xs |= {f, np.nextafter(f, np.float32(_INF)), np.nextafter(f, np.float32(-_INF))}
    xs = np.sort(np.array([x for x in xs if x == x], np.float32))
    xs = np.concatenate([xs, (xs[:-1] / 2 + xs[1:] / 2)[np.isfinite(xs[:-1] / 2 + xs[1:] / 2)],
                         np.float32([_NAN])]).astype(np.float32)
    tests = {"LT_OQ": np.less, "LE_OQ": np.less_equal, "GT_OQ": np.greater,
             "GE_OQ": np.greater_equal, "EQ_OQ": np.equal}
    with np.errstate(all="ignore"):
        sets = [(xs > np.float32(lo)) & (xs < np.float32(hi)), np.isnan(xs)]
        sets += [tests[pred](np.abs(xs) if which == "|a|" else xs, np.float32(bound))
                 for which, pred, bound, _ in rules]
    return bool((np.sum(sets, axis=0) <= 1).all())


class _Lanes:
    """The C++ spellings of one vector width's operations on floats and lane masks: AVX2
    (8 lanes, a mask is a vector) or AVX-512 (16 lanes, a mask is a __mmask16)."""

    def __init__(self, width: int):
        self.width = width
        self.wide = width == 16
        self.vec = "__m512" if self.wide else "__m256"
        self.mask = "__mmask16" if self.wide else "__m256"
        self.pre = "_mm512" if self.wide else "_mm256"
        self.full = "0xFFFF" if self.wide else "0xFF"
        self.align = 64 if self.wide else 32

    def set1(self, v: float) -> str:
        return f"{self.pre}_set1_ps({_c_float(v)})"

    def load(self, p: str) -> str:
        return f"{self.pre}_load_ps({p})"

    def store(self, p: str, v: str) -> str:
        return f"{self.pre}_store_ps({p}, {v})"

    def cmp(self, a: str, b: str, pred: str) -> str:
        return (f"_mm512_cmp_ps_mask({a}, {b}, _CMP_{pred})" if self.wide
                else f"_mm256_cmp_ps({a}, {b}, _CMP_{pred})")

    def both(self, m: str, k: str) -> str:
        return f"(__mmask16)({m} & {k})" if self.wide else f"_mm256_and_ps({m}, {k})"

    def either(self, m: str, k: str) -> str:
        return f"(__mmask16)({m} | {k})" if self.wide else f"_mm256_or_ps({m}, {k})"

    def but_not(self, m: str, k: str) -> str:  # k and not m
        return f"(__mmask16)(~{m} & {k})" if self.wide else f"_mm256_andnot_ps({m}, {k})"

    def blend(self, a: str, b: str, m: str) -> str:  # b where m, else a
        return (f"_mm512_mask_blend_ps({m}, {a}, {b})" if self.wide
                else f"_mm256_blendv_ps({a}, {b}, {m})")

    def bits(self, m: str) -> str:
        return f"(int){m}" if self.wide else f"_mm256_movemask_ps({m})"

    def abs(self, a: str) -> str:
        return (f"_mm512_abs_ps({a})" if self.wide
                else f"_mm256_andnot_ps(_mm256_set1_ps(-0.0f), {a})")


_AVX2, _AVX512 = _Lanes(8), _Lanes(16)

_PRELUDE = r"""
#include <cstdint>
#include <cmath>
#include <cstring>
#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>
#include "xla/ffi/api/ffi.h"
#if defined(__AVX2__) && defined(__GLIBC__) && !defined(EVOLVE_NO_MVEC)
#include <immintrin.h>
#define EVOLVE_MVEC 1
#else
#define EVOLVE_MVEC 0
#endif
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define EVOLVE_OWN_MATH 1
#else
#define EVOLVE_OWN_MATH 0
#endif

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace ffi = xla::ffi;
using std::isnan;
using std::signbit;

// XLA's CPU threads flush subnormal floats to zero (MXCSR FTZ and DAZ); numpy and C do
// not, so the kernel clears both bits while it runs and puts them back after.
struct KeepSubnormals {
#if defined(__SSE__)
    unsigned int saved;
    KeepSubnormals() : saved(_mm_getcsr()) { _mm_setcsr(saved & ~0x8040u); }
    ~KeepSubnormals() { _mm_setcsr(saved); }
#endif
};
"""



# The compiler must target what the source was generated for.
_ISA_CHECK = {
    "avx512": "#if !defined(__AVX512F__) || !defined(__AVX2__) || !defined(__FMA__)\n"
              "#error \"this kernel is generated for AVX-512: build it for AVX-512\"\n#endif\n",
    "avx2": "#if defined(__AVX512F__) || !defined(__AVX2__) || !defined(__FMA__)\n"
            "#error \"this kernel is generated for AVX2 and FMA: build it for them alone\"\n"
            "#endif\n",
    "generic": "#if defined(__AVX2__)\n"
               "#error \"this kernel is generated without vector code: build it so\"\n#endif\n",
}


def _c_expr(o: int, a: str, b: str, c: str) -> str:
    return OPS[o].c.format(a, b, c)


def check_math(math: str) -> str:
    """``math`` if it names one of the transcendental ops' implementations (``MATHS``):
    "own32" (the default: ours in float32 with FMA, inlined, 8 or 16 lanes with the same
    bits: sin, cos, exp, exp2, log and tanh within 1.5 ULP, 1-2.3x libmvec's speed),
    "libmvec" (glibc's: float32 arithmetic, up to 2-4 ULP off) or "own" (ours
    in float64, correctly rounded but for a few in 1e5; 0.55-0.7 times libmvec's speed).
    Ours need a compiler that targets AVX2 and FMA; without, libmvec or libm."""
    if math not in MATHS:
        raise ValueError(f"the CPU kernel's math must be one of {', '.join(MATHS)}, "
                         f"got {math!r}")
    return math


def check_isa(isa: str) -> str:
    """``isa`` if it names one of the instruction sets the kernel is generated for
    (``ISAS``): "avx512", "avx2" or "generic"."""
    if isa not in ISAS:
        raise ValueError(f"the CPU kernel's instruction set must be one of {', '.join(ISAS)}, "
                         f"got {isa!r}")
    return isa


def _mvec_decl(name: str, minor: int, isa: str) -> str:
    """The declarations of libmvec's function for op ``name`` and ``ev_mvec_NAME``, the
    vector function the kernel's loop calls: libmvec's own, or (AVX-512 without a 16-float
    variant equal to the 8-float one) the 8-float variant on each half."""
    fn = _MVEC[name][0]
    text = f"extern \"C\" __m256 {fn}(__m256);\n"
    if isa != "avx512":
        text += f"#define ev_mvec_{name} {fn}\n"
    elif name in _MVEC16:
        text += (f"extern \"C\" __m512 {_MVEC16[name]}(__m512);\n"
                 f"#define ev_mvec_{name} {_MVEC16[name]}\n")
    else:
        text += (f"static inline __m512 ev_mvec_{name}(__m512 a) {{\n"
                 f"    const __m256 lo = {fn}(_mm512_castps512_ps256(a));\n"
                 f"    const __m256 hi = {fn}(_mm256_castpd_ps(_mm512_extractf64x4_pd("
                 f"_mm512_castps_pd(a), 1)));\n"
                 f"    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512("
                 f"_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));\n}}\n")
    return f"#if EVOLVE_MVEC && __GLIBC_MINOR__ >= {minor}\n{text}#endif"


def _transcendental(o: int, math: str, isa: str, decls: list[str]) -> str:
    """The loop of a transcendental op over the tile, by ``math``: ours in float32
    ("own32"; as wide as the kernel's vectors), ours in float64 ("own"; AVX2 and FMA, 8
    lanes a vector on AVX-512 too) or libmvec (glibc; 16 lanes a vector on AVX-512, 8 on
    AVX2); without the vector code (no AVX2 and FMA, or no libmvec), the scalar libm
    loop. In the vector paths, lanes outside the fast range (lo, hi) get NaN for NaN, the
    value of a rule of _RULES, or the scalar libm function. (Every kernel built for
    "avx2" or "avx512" has AVX2 and FMA, ``_ISA_CHECK``: ours never fall back to libmvec.)"""
    op = OPS[o]
    _, minor, lo, hi = _MVEC[op.name]
    assert _rules_disjoint(op.name), op.name
    scalar = _c_expr(o, "A[j]", "B[j]", "C[j]")
    safe = (lo + hi) / 2 if hi < 1e30 else 1.0

    def in_range(v: _Lanes) -> str:
        return v.both(v.cmp("a", v.set1(lo), "GT_OQ"), v.cmp("a", v.set1(hi), "LT_OQ"))

    def special(v: _Lanes, kept: bool) -> str:
        # r holds the fast lanes (ok); fills in the others. The NaN lanes, the rules' lanes
        # and the fast ones are disjoint sets (``_rules_disjoint``), so each set's mask
        # comes from the argument alone and the masks are independent of each other (no
        # chain of "not done yet" through the mask registers); the lanes in none of
        # them, rare, take the scalar function
        conds = [("c0", v.cmp("a", "a", "UNORD_Q"), "a")]
        for q, (which, pred, bound, value) in enumerate(_RULES.get(op.name, []), 1):
            conds.append((f"c{q}", v.cmp(v.abs("a") if which == "|a|" else "a",
                                         v.set1(bound), pred), v.set1(value)))
        text = "".join(f"    const {v.mask} {c} = {cond};\n" for c, cond, _ in conds)
        text += "".join(f"    r = {v.blend('r', val, c)};\n" for c, _, val in conds)
        done = "ok"
        for c, _, _ in conds:
            done = v.either(done, c)
        lane = _c_expr(o, "keep[l]", "keep[l]", "keep[l]")
        # the scalar lanes read the argument as kept (``keep``; kept here before D + j is
        # written where not kept already: D may be A)
        save = "" if kept else (f"        alignas({v.align}) float keep[{v.width}];\n"
                                f"        {v.store('keep', 'a')};\n")
        return (text +
                f"    const int left = ~{v.bits(done)} & {v.full};\n"
                f"    if (__builtin_expect(left != 0, 0)) {{\n"
                f"{save}"
                f"        {v.store('D + j', 'r')};\n"
                f"        for (int l = 0; l < {v.width}; ++l)\n"
                f"            if ((left >> l) & 1) D[j + l] = {lane};\n"
                f"    }} else {{\n"
                f"        {v.store('D + j', 'r')};\n"
                f"    }}\n")

    def vector(v: _Lanes, fn: str) -> str:  # fn(a) on the fast lanes of each vector
        return (
            f"for (int j = 0; j < T; j += {v.width}) {{\n"
            f"    const {v.vec} a = {v.load('A + j')};\n"
            f"    const {v.mask} ok = {in_range(v)};\n"
            f"    const int fast = {v.bits('ok')};\n"
            f"    if (fast == {v.full}) {{ {v.store('D + j', f'{fn}(a)')}; continue; }}\n"
            f"    {v.vec} r = fast ? {fn}({v.blend(v.set1(safe), 'a', 'ok')}) : a;\n"
            f"{special(v, False)}"
            f"}}\n")

    lanes = _AVX512 if isa == "avx512" else _AVX2
    if math == "libmvec":
        decls.append(_mvec_decl(op.name, minor, isa))
        body = (f"\n#if EVOLVE_MVEC && __GLIBC_MINOR__ >= {minor}\n"
                f"{vector(lanes, f'ev_mvec_{op.name}')}#else\n")
    elif math == "own32":  # inlined, as wide as the kernel's vectors
        body = f"\n#if EVOLVE_OWN_MATH\n{vector(lanes, f'ev32_{op.name}')}#else\n"
    else:
        # pass 1: the reduction of every lane (a safe argument in the special ones, whose
        # vectors are kept); pass 2: the polynomials into D; then the special lanes
        f, v = op.name, _AVX2
        own = (f"int any = 0;\n"
               f"for (int j = 0; j < T; j += 8) {{\n"
               f"    __m256 a = _mm256_load_ps(A + j);\n"
               f"    const __m256 ok = {in_range(v)};\n"
               f"    const int fast = _mm256_movemask_ps(ok);\n"
               f"    ev_bad[j >> 3] = fast != 0xFF;\n"
               f"    if (fast != 0xFF) {{\n"
               f"        any = 1;\n"
               f"        _mm256_store_ps(ev_keep + j, a);\n"
               f"        a = _mm256_blendv_ps(_mm256_set1_ps({safe!r}f), a, ok);\n"
               f"    }}\n"
               f"    ev_{f}_reduce8(a, ev_r + j, ev_x + j);\n"
               f"}}\n"
               f"for (int j = 0; j < T; j += 8)\n"
               f"    _mm256_store_ps(D + j, ev_{f}_finish8(ev_r + j, ev_x + j));\n"
               f"for (int j = 0; any && j < T; j += 8) {{\n"
               f"    if (!ev_bad[j >> 3]) continue;\n"
               f"    const float* keep = ev_keep + j;\n"
               f"    const __m256 a = _mm256_load_ps(keep);\n"
               f"    const __m256 ok = {in_range(v)};\n"
               f"    __m256 r = _mm256_load_ps(D + j);\n"
               f"{special(v, True)}"
               f"}}\n")
        body = f"\n#if EVOLVE_OWN_MATH\n{own}#else\n"
    return body + f"for (int j = 0; j < T; ++j) D[j] = {scalar};\n#endif\n"


def source(opset: tuple[int, ...], n_registers: int, tile: int = TILE,
           math: str = "own32", isa: str = "avx2") -> str:
    """The C++ source of the kernel and its FFI handler for one op set and size; ``math``
    (one of ``MATHS``, ``check_math``) picks the transcendental ops' code, ``isa`` (one of
    ``ISAS``, ``check_isa``) the vector code's instruction set, which the compiler must
    target (``kernel.FLAGS``; the source stops the build where it does not). The exactly
    rounded ops give the same bits with every ``isa``; so do the transcendental ones on
    glibc's libmvec (``_MVEC16``) and ours."""
    R, T = n_registers, tile
    math, isa = check_math(math), check_isa(isa)
    if T % FOLD_LANES:
        raise ValueError(f"the tile ({T}) must be a multiple of {FOLD_LANES} points")
    ops = sorted(set(opset) | {CONST})
    helpers = [body for name, body in C_HELPERS.items()
               if any(name in OPS[o].c for o in ops if o != CONST)]
    own = math == "own" and any(not OPS[o].exact and OPS[o].name in _MVEC for o in ops)
    if own:
        helpers.append(OWN_MATH)
    if math == "own32" and any(OPS[o].name in OWN32_OPS for o in ops):
        helpers.append(OWN32_MATH)
    decls, cases = [], []
    for o in ops:
        op = OPS[o]
        if o == CONST:
            body = "const float k = cst[i]; for (int j = 0; j < T; ++j) D[j] = k;"
        elif not op.exact and op.name in _MVEC:
            body = _transcendental(o, math, isa, decls)
        else:
            body = ("\n#pragma GCC ivdep\n"
                    f"for (int j = 0; j < T; ++j) D[j] = {_c_expr(o, 'A[j]', 'B[j]', 'C[j]')};\n")
        cases.append(f"            case {o}: {{ {body} break; }}")
    # the own transcendental ops' scratch: reduced arguments, side data, the vectors with
    # lanes outside the fast range (and which)
    scratch = ("#if EVOLVE_OWN_MATH\n    alignas(32) double ev_r[T], ev_x[T];\n"
               "    alignas(32) float ev_keep[T];\n    unsigned char ev_bad[T / 8];\n#endif\n"
               if own else "")
    return _PRELUDE + _ISA_CHECK[isa] + "\n".join(helpers) + "\n" + "\n".join(decls) + f"""
#define R {R}
#define T {FOLD_LANES}
// One instruction on FOLD_LANES copies of constant operands: the op's own code, so a
// folded constant has the bits the tile loop would give every point.
static void fold_step(int o, int i, const float* cst, const float* A, const float* B,
                      const float* C, float* D) {{
{scratch}    (void)A; (void)B; (void)C;
    switch (o) {{
{chr(10).join(cases)}
        default: break;
    }}
}}
#undef T
#define T {T}
#define SLOTS {SLOTS}
#define GROUP {GROUP}
static const int ARITY[{len(OPS)}] = {{{", ".join(str(o.arity) for o in OPS)}}};

// The program as the tile loop runs it. Constant folding: an instruction whose arguments
// are all constant (literals, registers never written but zero, and what is computed
// from them alone) computes the same value at every point; it is computed once here (a
// third of a random tree's transcendental instructions are such: sin(0.3), exp(log(0.5))
// and the like). Constant slots: a literal, given or folded, is written once into a
// register of its own past the program's R (up to SLOTS of them), filled once for all
// tiles, and the instructions that read it read that slot; it leaves the loop. Writes
// the loop's instructions into op, args, dst, cst and the slots' values into
// slot_value; returns their count, the output register and the slots' count.
struct Prepared {{ int n, outreg, slots; }};
static Prepared prepare(const int32_t* op_in, const int32_t* args_in, const int32_t* dst_in,
                        const float* cst_in, int n, int outreg, int n_inputs, int32_t* op,
                        int32_t* args, int32_t* dst, float* cst, float* slot_value) {{
    alignas(64) float value[R][{FOLD_LANES}];
    alignas(64) float out[{FOLD_LANES}];
    bool known[R];
    int alias[R];  // where register r's value is read from: r, or its literal's slot
    for (int r = 0; r < R; ++r) {{
        known[r] = r >= n_inputs;
        alias[r] = r;
        for (int j = 0; j < {FOLD_LANES}; ++j) value[r][j] = 0.0f;
    }}
    int m = 0, slots = 0;
    for (int i = 0; i < n; ++i) {{
        const int o = op_in[i], d = dst_in[i], k = ARITY[o];
        const int32_t* a = args_in + 3 * i;
        bool all = true;
        for (int q = 0; q < k; ++q) all = all && known[a[q]];
        float c = cst_in[i];
        if (all) {{
            fold_step(o, i, cst_in, value[a[0]], value[a[1]], value[a[2]], out);
            for (int j = 0; j < {FOLD_LANES}; ++j) value[d][j] = out[j];
            c = out[0];
        }}
        known[d] = all;
        if (all && slots < SLOTS) {{
            slot_value[slots] = c;
            alias[d] = R + slots++;
            continue;
        }}
        op[m] = all ? {CONST} : o;
        cst[m] = c;
        dst[m] = d;
        for (int q = 0; q < 3; ++q) args[3 * m + q] = q < k && !all ? alias[a[q]] : 0;
        alias[d] = d;
        ++m;
    }}
    return Prepared{{m, alias[outreg], slots}};
}}

// The error statistics' running state: max |out-y|*scale, max |out-y|, sum (out-y)^2
// (and, with AVX2, four lanes of each and whether a scaled error was NaN).
struct Stats {{
    double mxs = 0.0, mx = 0.0, sq = 0.0;
#if defined(__AVX2__)
    __m256d vmxs = _mm256_setzero_pd(), vmx = _mm256_setzero_pd();
    __m256d vsq = _mm256_setzero_pd(), vnan = _mm256_setzero_pd();
#endif
}};

// One tile's outputs into the statistics. A function of its own, so that the
// accumulators stay in registers for the loop (inside run_program's big switch they
// were spilled, a store and a load an iteration).
__attribute__((noinline)) static void reduce_tile(const float* out, const double* y,
                                                  const double* scale, const int32_t* mask,
                                                  int m, Stats& st) {{
    int j = 0;
#if defined(__AVX2__)
    __m256d vmxs = st.vmxs, vmx = st.vmx, vsq = st.vsq, vnan = st.vnan;
    for (; j + 4 <= m; j += 4) {{  // four points at a time, in float64
        const __m256d o = _mm256_cvtps_pd(_mm_loadu_ps(out + j));
        __m256d e = _mm256_andnot_pd(_mm256_set1_pd(-0.0),
                                     _mm256_sub_pd(o, _mm256_loadu_pd(y + j)));
        e = _mm256_blendv_pd(e, _mm256_set1_pd(INFINITY), _mm256_cmp_pd(e, e, _CMP_UNORD_Q));
        const __m256i mk = _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i*)(mask + j)));
        e = _mm256_and_pd(e, _mm256_castsi256_pd(
            _mm256_xor_si256(_mm256_cmpeq_epi64(mk, _mm256_setzero_si256()),
                             _mm256_set1_epi64x(-1))));
        const __m256d sc = _mm256_mul_pd(e, _mm256_loadu_pd(scale + j));
        vnan = _mm256_or_pd(vnan, _mm256_cmp_pd(sc, sc, _CMP_UNORD_Q));
        vmxs = _mm256_max_pd(sc, vmxs);
        vmx = _mm256_max_pd(e, vmx);
        vsq = _mm256_add_pd(vsq, _mm256_mul_pd(e, e));
    }}
    st.vmxs = vmxs; st.vmx = vmx; st.vsq = vsq; st.vnan = vnan;
#endif
    for (; j < m; ++j) {{
        if (!mask[j]) continue;
        double err = std::fabs((double)out[j] - y[j]);
        if (isnan(err)) err = INFINITY;
        const double s = err * scale[j];
        if (s > st.mxs || isnan(s)) st.mxs = s;
        if (err > st.mx) st.mx = err;
        st.sq += err * err;
    }}
}}

// reduce_tile where the mask and the scales are plain (``plain_points``), for the outputs
// of G programs on the same points at once: the tile's first v points count, with scale 1
// (so |out-y|*scale = |out-y|), the rest are masked. Reads neither mask nor scale, and
// gives each program reduce_tile's statistics bit for bit: every point goes to the same
// accumulator lane in the same order (a masked one adds zeros). The sum of squares is a
// chain of dependent additions (four lanes, a point after the other): its latency, not
// the width of the vectors, sets a program's time here, so G programs' chains run side
// by side in one loop (and read y once). With AVX-512, eight points a step, the sums
// still four lanes wide.
template <int G>
__attribute__((noinline)) static void reduce_plain_tiles(const float* const* outs,
                                                         const double* y, int m, int v,
                                                         Stats* const* st) {{
    int j = 0;
#if defined(__AVX2__)
    const int m4 = m & ~3, end = std::min(m4, (v + 3) & ~3);
    __m256d vmx[G], vsq[G];
    for (int g = 0; g < G; ++g) {{ vmx[g] = st[g]->vmx; vsq[g] = st[g]->vsq; }}
#if defined(__AVX512F__)
    __m512d vmx8[G];
    for (int g = 0; g < G; ++g) vmx8[g] = _mm512_setzero_pd();
    // A NaN error is not made infinite here (as in the loops below): the maximum passes
    // over it (vmaxpd gives its second operand where the first is NaN) and its square
    // makes its lane of the sum NaN, which the final statistics read as a NaN seen: that lane
    // infinite (as the infinite error would have made it), max |out-y| infinite.
    for (; j + 8 <= end; j += 8) {{
        const __m512d yv = _mm512_loadu_pd(y + j);
        for (int g = 0; g < G; ++g) {{
            __m512d e = _mm512_abs_pd(_mm512_sub_pd(
                _mm512_cvtps_pd(_mm256_loadu_ps(outs[g] + j)), yv));
            if (j + 8 > v) e = _mm512_maskz_mov_pd((__mmask8)((1u << (v - j)) - 1u), e);
            vmx8[g] = _mm512_max_pd(e, vmx8[g]);
            const __m512d sq = _mm512_mul_pd(e, e);
            vsq[g] = _mm256_add_pd(vsq[g], _mm512_castpd512_pd256(sq));
            vsq[g] = _mm256_add_pd(vsq[g], _mm512_extractf64x4_pd(sq, 1));
        }}
    }}
    for (int g = 0; g < G; ++g) {{
        vmx[g] = _mm256_max_pd(_mm512_castpd512_pd256(vmx8[g]), vmx[g]);
        vmx[g] = _mm256_max_pd(_mm512_extractf64x4_pd(vmx8[g], 1), vmx[g]);
    }}
#endif
    for (; j + 4 <= end; j += 4) {{
        const __m256d yv = _mm256_loadu_pd(y + j);
        const __m256d lane = _mm256_set_pd(3.0, 2.0, 1.0, 0.0);
        const __m256d live = _mm256_cmp_pd(lane, _mm256_set1_pd((double)(v - j)), _CMP_LT_OQ);
        for (int g = 0; g < G; ++g) {{
            const __m256d o = _mm256_cvtps_pd(_mm_loadu_ps(outs[g] + j));
            __m256d e = _mm256_andnot_pd(_mm256_set1_pd(-0.0), _mm256_sub_pd(o, yv));
            e = _mm256_blendv_pd(e, _mm256_set1_pd(INFINITY), _mm256_cmp_pd(e, e, _CMP_UNORD_Q));
            e = _mm256_and_pd(e, live);
            vmx[g] = _mm256_max_pd(e, vmx[g]);
            vsq[g] = _mm256_add_pd(vsq[g], _mm256_mul_pd(e, e));
        }}
    }}
    for (int g = 0; g < G; ++g) {{
        st[g]->vmx = vmx[g]; st[g]->vsq = vsq[g];
        st[g]->vmxs = _mm256_max_pd(vmx[g], st[g]->vmxs);
    }}
    j = m4;
#endif
    for (int g = 0; g < G; ++g) {{
        const float* out = outs[g];
        for (int i = j; i < v; ++i) {{
            double err = std::fabs((double)out[i] - y[i]);
            if (isnan(err)) err = INFINITY;
            if (err > st[g]->mxs) st[g]->mxs = err;
            if (err > st[g]->mx) st[g]->mx = err;
            st[g]->sq += err * err;
        }}
    }}
}}

static void reduce_plain_tiles(const float* const* outs, int g, const double* y, int m,
                               int v, Stats* const* st) {{
    switch (g) {{
        case 1: reduce_plain_tiles<1>(outs, y, m, v, st); break;
        case 2: reduce_plain_tiles<2>(outs, y, m, v, st); break;
        case 3: reduce_plain_tiles<3>(outs, y, m, v, st); break;
        default: reduce_plain_tiles<4>(outs, y, m, v, st); break;  // g <= GROUP <= 4
    }}
}}

// The count V of points if the mask is 1 on the first V points and 0 after, the scales 1
// on those and finite after (0 * scale is 0 there, as if unscaled): the statistics need
// neither; else -1.
static int64_t plain_points(const double* scale, const int32_t* mask, int64_t N) {{
    int64_t v = 0;
    while (v < N && mask[v]) ++v;
    for (int64_t j = 0; j < N; ++j)
        if (j < v ? scale[j] != 1.0 : (mask[j] || !std::isfinite(scale[j]))) return -1;
    return v;
}}

// A program of a group in the tile loop: as ``prepare`` gave it, which registers need
// zeroing each tile (``reread``), its statistics and where its results go.
struct Job {{
    int n, outreg;
    uint64_t reread, unwritten;  // unwritten: the input registers no instruction writes
    const int32_t *op, *args, *dst;
    const float* cst;
    Stats st;
    double* stats;
    float* outputs;
}};

// Programs p0 .. p0 + g - 1 (g <= GROUP) on all points, tile by tile: each program's
// instructions on the tile, then the group's outputs reduced together (``reduce_plain_tiles``)
// into each one's max |out-y|*scale, max |out-y|, sum (out-y)^2 (or written out). Each
// program's results are what it gives alone: its registers and statistics are its own.
static void run_programs(int64_t p0, int g, const int32_t* op_all, const int32_t* args_all,
                         const int32_t* dst_all, const float* cst_all, const int32_t* length,
                         const int32_t* output, int64_t L, const float* x, int n_inputs,
                         const double* y, const double* scale, const int32_t* mask,
                         int64_t plain, int64_t N, double* stats, float* outputs) {{
    // the prepared programs (op, args 3 a row, dst; cst): buffers of the thread, kept from
    // group to group
    static thread_local std::vector<int32_t> words[GROUP];
    static thread_local std::vector<float> literals[GROUP];
    alignas(64) float regs[GROUP][R + SLOTS][T];
    // where each program's registers are read and written: its own rows, but an input
    // register that no instruction writes is read in place from x on a full tile (x's
    // rows 64-byte aligned there, as the aligned loads need), not copied
    float* where[GROUP][R + SLOTS];
    const bool in_place = ((uintptr_t)x & 63u) == 0 && N % 16 == 0;
    Job job[GROUP];
    int G = 0;
    for (int k = 0; k < g; ++k) {{
        const int64_t p = p0 + k;
        int n = length[p];
        double* st_p = stats ? stats + 3 * p : nullptr;
        float* out_p = outputs ? outputs + p * N : nullptr;
        if (n < 0) {{  // a row padding the batch: nothing to run
            if (st_p) {{ st_p[0] = st_p[1] = st_p[2] = 0.0; }}
            if (out_p) std::memset(out_p, 0, sizeof(float) * N);
            continue;
        }}
        words[G].resize(5 * (size_t)(n > 0 ? n : 1));
        literals[G].resize(n > 0 ? n : 1);
        int32_t* op = words[G].data();
        int32_t* args = op + n;
        int32_t* dst = args + 3 * n;
        float slot_value[SLOTS];
        const Prepared prep = prepare(op_all + p * L, args_all + p * L * 3, dst_all + p * L,
                                      cst_all + p * L, n, output[p], n_inputs, op, args, dst,
                                      literals[G].data(), slot_value);
        n = prep.n;
        const int outreg = prep.outreg;
        float (*rg)[T] = regs[G];
        for (int s = 0; s < prep.slots; ++s)
            for (int j = 0; j < T; ++j) rg[R + s][j] = slot_value[s];
        // Registers other than the inputs start at zero; only those read before they are
        // written (the output included) need zeroing again for each tile.
        // (A bit a register; past 64 registers, all of them.)
        uint64_t written = n_inputs >= 64 ? ~0ull : (1ull << n_inputs) - 1ull, reread = 0ull;
        uint64_t unwritten = written;
        for (int i = 0; i < n; ++i) {{
            for (int q = 0; q < ARITY[op[i]]; ++q) {{
                const int a = args[3 * i + q];
                if (a >= 64 || !((written >> a) & 1ull)) reread |= a >= 64 ? ~0ull : 1ull << a;
            }}
            if (dst[i] < 64) {{ written |= 1ull << dst[i]; unwritten &= ~(1ull << dst[i]); }}
            else unwritten = 0ull;
        }}
        if (outreg >= 64 || !((written >> outreg) & 1ull)) reread |= outreg >= 64 ? ~0ull : 1ull << outreg;
        for (int r = n_inputs; r < R; ++r)
            for (int j = 0; j < T; ++j) rg[r][j] = 0.0f;
        job[G] = Job{{n, outreg, reread, unwritten, op, args, dst, literals[G].data(), Stats(),
                     st_p, out_p}};
        for (int r = 0; r < R + SLOTS; ++r) where[G][r] = rg[r];
        ++G;
    }}
    // errors with a plain mask (``plain_points``): the points past the last one counted
    // add nothing (zeros to every sum, nothing to a maximum), so the tiles wholly past it
    // (the padding of N to whole tiles) are not run
    const int64_t n_run = (!outputs && plain >= 0) ? std::min<int64_t>(N, plain) : N;
{scratch}    for (int64_t t0 = 0; t0 < n_run && G > 0; t0 += T) {{
        const int m = (int)std::min<int64_t>(T, N - t0);
        const float* outs[GROUP];
        Stats* sts[GROUP];
        for (int k = 0; k < G; ++k) {{
            const Job& J = job[k];
            float (*rg)[T] = regs[k];
            float** P = where[k];
            for (int r = 0; r < R; ++r) {{
                if (r < n_inputs && r < 64 && in_place && m == T && ((J.unwritten >> r) & 1ull)) {{
                    P[r] = const_cast<float*>(x + r * N + t0);  // read only: no instruction writes r
                }} else if (r < n_inputs) {{
                    P[r] = rg[r];
                    std::memcpy(rg[r], x + r * N + t0, sizeof(float) * m);
                    for (int j = m; j < T; ++j) rg[r][j] = 0.0f;
                }} else if (t0 > 0 && (r >= 64 || ((J.reread >> r) & 1ull))) {{
                    for (int j = 0; j < T; ++j) rg[r][j] = 0.0f;
                }}
            }}
            const int32_t* op = J.op;
            const int32_t* args = J.args;
            const int32_t* dst = J.dst;
            const float* cst = J.cst;
            for (int i = 0; i < J.n; ++i) {{
                float* D = P[dst[i]];
                const float* A = P[args[3 * i]];
                const float* B = P[args[3 * i + 1]];
                const float* C = P[args[3 * i + 2]];
                (void)A; (void)B; (void)C;
                switch (op[i]) {{
{chr(10).join(cases)}
                    default: break;
                }}
            }}
            outs[k] = P[J.outreg];
            sts[k] = &job[k].st;
            if (J.outputs)
                std::memcpy(J.outputs + t0, outs[k], sizeof(float) * m);
            else if (plain < 0)
                reduce_tile(outs[k], y + t0, scale + t0, mask + t0, m, job[k].st);
        }}
        if (!outputs && plain >= 0)
            reduce_plain_tiles(outs, G, y + t0, m,
                               (int)std::max<int64_t>(0, std::min<int64_t>(m, plain - t0)), sts);
    }}
    for (int k = 0; k < G && stats; ++k) {{
        const Stats& st = job[k].st;
        double mxs = st.mxs, mx = st.mx, sq = st.sq;
#if defined(__AVX2__)
        alignas(32) double a[4], b[4], c[4];
        _mm256_store_pd(a, st.vmxs); _mm256_store_pd(b, st.vmx); _mm256_store_pd(c, st.vsq);
        for (int l = 0; l < 4; ++l) {{
            if (a[l] > mxs) mxs = a[l];
            if (b[l] > mx) mx = b[l];
            sq += c[l];
        }}
        bool nan_seen = false;  // a NaN error in reduce_plain_tiles: its lane's sum is NaN
        for (int l = 0; l < 4; ++l) nan_seen = nan_seen || isnan(c[l]);
        if (nan_seen) {{
            sq = st.sq;
            for (int l = 0; l < 4; ++l) sq += isnan(c[l]) ? INFINITY : c[l];
            mx = mxs = INFINITY;
        }}
        if (_mm256_movemask_pd(st.vnan)) mxs = NAN;
#endif
        job[k].stats[0] = mxs; job[k].stats[1] = mx; job[k].stats[2] = sq;
    }}
}}

// fn(p0, g) for every group of programs p0 .. p0 + g - 1 (g <= GROUP) of P on `threads`
// threads (this one among them), groups handed out one at a time so that a slow thread
// or a slow program holds no one up.
template <class Fn>
static void for_programs(int64_t P, int threads, Fn fn) {{
    std::atomic<int64_t> next{{0}};
    auto work = [&]() {{
        KeepSubnormals keep;
        for (int64_t p = next.fetch_add(GROUP); p < P; p = next.fetch_add(GROUP))
            fn(p, (int)std::min<int64_t>(GROUP, P - p));
    }};
    std::vector<std::thread> pool;
    for (int t = 1; t < threads && (int64_t)t * GROUP < P; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
}}

// Every program p of a batch: its statistics into stats[3 p..] (errors) or its outputs
// into outputs[N p..] (outputs), on ``threads`` threads.
static void run_batch(ffi::Buffer<ffi::S32>& op, ffi::Buffer<ffi::S32>& args,
                      ffi::Buffer<ffi::S32>& dst, ffi::Buffer<ffi::F32>& cst,
                      ffi::Buffer<ffi::S32>& length, ffi::Buffer<ffi::S32>& output,
                      ffi::Buffer<ffi::F32>& x, int n_inputs, const double* y,
                      const double* scale, const int32_t* mask, int64_t N, int threads,
                      double* stats, float* outputs) {{
    const int64_t P = op.dimensions()[0], L = op.dimensions()[1];
    const int64_t plain = y ? plain_points(scale, mask, N) : -1;
    for_programs(P, threads, [&](int64_t p0, int g) {{
        run_programs(p0, g, op.typed_data(), args.typed_data(), dst.typed_data(),
                     cst.typed_data(), length.typed_data(), output.typed_data(), L,
                     x.typed_data(), n_inputs, y, scale, mask, plain, N, stats, outputs);
    }});
}}

static ffi::Error evolve_errors_impl(
        ffi::Buffer<ffi::S32> op, ffi::Buffer<ffi::S32> args, ffi::Buffer<ffi::S32> dst,
        ffi::Buffer<ffi::F32> cst, ffi::Buffer<ffi::S32> length, ffi::Buffer<ffi::S32> output,
        ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F64> y, ffi::Buffer<ffi::F64> scale,
        ffi::Buffer<ffi::S32> mask, int32_t threads, ffi::ResultBuffer<ffi::F64> stats) {{
    const int64_t N = y.element_count();
    const int n_inputs = (int)(x.element_count() / (N > 0 ? N : 1));
    if (n_inputs > R) return ffi::Error::InvalidArgument("more inputs than registers");
    run_batch(op, args, dst, cst, length, output, x, n_inputs, y.typed_data(),
              scale.typed_data(), mask.typed_data(), N, threads, stats->typed_data(), nullptr);
    return ffi::Error::Success();
}}

static ffi::Error evolve_outputs_impl(
        ffi::Buffer<ffi::S32> op, ffi::Buffer<ffi::S32> args, ffi::Buffer<ffi::S32> dst,
        ffi::Buffer<ffi::F32> cst, ffi::Buffer<ffi::S32> length, ffi::Buffer<ffi::S32> output,
        ffi::Buffer<ffi::F32> x, int32_t threads, ffi::ResultBuffer<ffi::F32> out) {{
    const int64_t P = op.dimensions()[0];
    const int64_t N = P > 0 ? out->element_count() / P : 0;
    const int n_inputs = (int)(x.element_count() / (N > 0 ? N : 1));
    if (n_inputs > R) return ffi::Error::InvalidArgument("more inputs than registers");
    run_batch(op, args, dst, cst, length, output, x, n_inputs, nullptr, nullptr, nullptr, N,
              threads, nullptr, out->typed_data());
    return ffi::Error::Success();
}}

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    EvolveOutputs, evolve_outputs_impl,
    ffi::Ffi::Bind()
        .Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>()
        .Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>()
        .Arg<ffi::Buffer<ffi::F32>>()
        .Attr<int32_t>("threads")
        .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    EvolveErrors, evolve_errors_impl,
    ffi::Ffi::Bind()
        .Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>()
        .Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>()
        .Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F64>>().Arg<ffi::Buffer<ffi::F64>>()
        .Arg<ffi::Buffer<ffi::S32>>()
        .Attr<int32_t>("threads")
        .Ret<ffi::Buffer<ffi::F64>>());
"""
