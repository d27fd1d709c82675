"""C++ source of our own AVX2 + FMA vector float32 transcendental functions, inlined into
the CPU kernel (``evolve.eval.cpu.kernel``) when its math choice is "own" (the run
configuration's ``search.evaluator.native_math``): float64-evaluated, within 1 ULP and
correctly rounded but for a few in 1e5. Guarded by ``EVOLVE_OWN_MATH`` (the compiler
targets AVX2 and FMA), which the kernel's prelude sets. (Our float32 "fast" variant, no
faster than libmvec, was removed; the tag ``comparison-tables`` has it.)
"""

# Our float32 exp, exp2, log, sin, cos and tanh for AVX2 and FMA: each computed in float64
# (4 lanes a vector, two halves per 8 floats) from the exact float64 value of the argument,
# then rounded once to float32. The polynomials and the rational function of exp are
# minimax fits of the relative error (Remez exchange in mpmath); the bound of each is in
# its comment. With a float64 result off by at most ~4e-11 relatively, the float32
# rounding is the correct one unless the exact value lies within that distance of a
# midpoint between two floats (a few in 10^5 for sin and cos, fewer for the others).
# The FMA units bound the speed (float64 lanes are half as many as float32 lanes), so
# exp, exp2, tanh and log give part of the work to the divider (one float64 division a
# lane). Each op runs as two passes over the tile: `reduce8` (the argument reduction, 8
# floats to 8 doubles R and 8 doubles X of side data) and `finish8` (the polynomial, back
# to float32): two short dependency chains keep more independent work in the CPU's
# window than one long one (a third faster).
OWN_MATH = r"""
#if EVOLVE_OWN_MATH
#define EV_D(c) _mm256_set1_pd(c)
#define EV_FMA _mm256_fmadd_pd
#define EV_MAGIC EV_D(0x1.8p52)  // t = x + 1.5 * 2^52 rounds x to an integer k, in t's low bits

static inline __m256d ev_lo(__m256 a) { return _mm256_cvtps_pd(_mm256_castps256_ps128(a)); }
static inline __m256d ev_hi(__m256 a) { return _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)); }
static inline __m256 ev_pack(__m256d lo, __m256d hi) {
    return _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
}
// e^r = (E + O)/(E - O) for |r| <= ln2/2, E = 1 + e1 r^2 + e2 r^4, O = r (1/2 + o1 r^2)
// (r O/E approximates tanh(r/2)): relative error below 7.6e-14. One division, which the
// divider does while the FMA units work on other lanes.
static inline void ev_exp_rational(__m256d r, __m256d* E, __m256d* O) {
    const __m256d z = _mm256_mul_pd(r, r);
    *E = EV_FMA(EV_FMA(EV_D(0x1.37d5a8f527ea4p-11), z, EV_D(0x1.b6d5a03b83133p-4)), z, EV_D(1.0));
    *O = _mm256_mul_pd(r, EV_FMA(EV_D(0x1.86012b995fa28p-7), z, EV_D(0.5)));
}
// 2^k (E + O)/(E - O), with K = k << 52 added to the exponent bits of E + O (no
// overflow or underflow in the fast ranges)
static inline __m256d ev_exp_finish(__m256d r, __m256d K) {
    __m256d E, O;
    ev_exp_rational(r, &E, &O);
    const __m256d N = _mm256_castsi256_pd(_mm256_add_epi64(
        _mm256_castpd_si256(_mm256_add_pd(E, O)), _mm256_castpd_si256(K)));
    return _mm256_div_pd(N, _mm256_sub_pd(E, O));
}
// sin r = r S(r^2) for |r| <= pi/2; relative error below 4.3e-11
static inline __m256d ev_sin_poly(__m256d r) {
    const __m256d z = _mm256_mul_pd(r, r);
    __m256d p = EV_FMA(EV_D(-0x1.9a6b1ffd86d00p-26), z, EV_D(0x1.71722e692a0b8p-19));
    p = EV_FMA(p, z, EV_D(-0x1.a017f843ef9ffp-13));
    p = EV_FMA(p, z, EV_D(0x1.11110cf77ccd4p-7));
    p = EV_FMA(p, z, EV_D(-0x1.5555554bd1a28p-3));
    return _mm256_mul_pd(r, EV_FMA(p, z, EV_D(1.0)));
}
// 2 atanh(s) = s (2 + z Q(z)), z = s^2, for |s| <= 0.1716; relative error below 7.9e-12
static inline __m256d ev_atanh2_poly(__m256d s) {
    const __m256d z = _mm256_mul_pd(s, s);
    __m256d q = EV_FMA(EV_D(0x1.e3ae88881f4e3p-3), z, EV_D(0x1.24359131dde5ep-2));
    q = EV_FMA(q, z, EV_D(0x1.999a7cf9b8c06p-2));
    q = EV_FMA(q, z, EV_D(0x1.5555550745368p-1));
    return _mm256_mul_pd(s, EV_FMA(q, z, EV_D(2.0)));
}

// Argument reductions of 4 doubles: the reduced argument, and side data in *aux.
// exp: x = k ln2 + r, |r| <= ln2/2 (|k| <= 150: the error of the one-double ln2 times k
// stays below 4e-15); aux = k << 52 (from t = k + 1.5 * 2^52)
static inline __m256d ev_exp_reduce(__m256d x, __m256d* aux) {
    const __m256d t = EV_FMA(x, EV_D(0x1.71547652b82fep+0), EV_MAGIC);
    *aux = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 52));
    return _mm256_fnmadd_pd(_mm256_sub_pd(t, EV_MAGIC), EV_D(0x1.62e42fefa39efp-1), x);
}
// exp2: x = k + f, |f| <= 1/2 (exact), r = f ln2
static inline __m256d ev_exp2_reduce(__m256d x, __m256d* aux) {
    const __m256d t = _mm256_add_pd(x, EV_MAGIC);
    *aux = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 52));
    return _mm256_mul_pd(_mm256_sub_pd(x, _mm256_sub_pd(t, EV_MAGIC)), EV_D(0x1.62e42fefa39efp-1));
}
#define ev_exp2_finish ev_exp_finish
// tanh: 2x = k ln2 + r, e^(2x) = s (E + O)/(E - O), s = 2^k (aux), and
// tanh x = (s (E + O) - (E - O))/(s (E + O) + (E - O))
//        = ((s + 1) O - (1 - s) E)/((s + 1) E - (1 - s) O): for k = 0, O/E, no cancellation
static inline __m256d ev_tanh_reduce(__m256d x, __m256d* aux) {
    const __m256d y = _mm256_add_pd(x, x);
    const __m256d t = EV_FMA(y, EV_D(0x1.71547652b82fep+0), EV_MAGIC);
    *aux = _mm256_castsi256_pd(_mm256_slli_epi64(
        _mm256_add_epi64(_mm256_castpd_si256(t), _mm256_set1_epi64x(1023)), 52));
    return _mm256_fnmadd_pd(_mm256_sub_pd(t, EV_MAGIC), EV_D(0x1.62e42fefa39efp-1), y);
}
static inline __m256d ev_tanh_finish(__m256d r, __m256d s) {
    __m256d E, O;
    ev_exp_rational(r, &E, &O);
    const __m256d p = _mm256_add_pd(s, EV_D(1.0)), m = _mm256_sub_pd(EV_D(1.0), s);
    // p O - m E: -0 for x = -0
    const __m256d num = _mm256_fmsub_pd(p, O, _mm256_mul_pd(m, E));
    return _mm256_div_pd(num, _mm256_fnmadd_pd(m, O, _mm256_mul_pd(p, E)));
}
// sin: x = k pi + r, |r| <= pi/2, with pi as two doubles (k pi exact to 1e-28 for
// |x| < 8192, so r keeps its relative accuracy near the zeros); sin x = (-1)^k sin r =
// sin((-1)^k r): the reduction flips the sign of r for odd k
static inline __m256d ev_sin_reduce(__m256d x, __m256d* aux) {
    const __m256d t = EV_FMA(x, EV_D(0x1.45f306dc9c883p-2), EV_MAGIC);
    const __m256d k = _mm256_sub_pd(t, EV_MAGIC);
    const __m256d r = _mm256_fnmadd_pd(k, EV_D(0x1.1a62633145c07p-53),
                                       _mm256_fnmadd_pd(k, EV_D(0x1.921fb54442d18p+1), x));
    (void)aux;
    return _mm256_xor_pd(r, _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 63)));
}
// cos: x = (k + 1/2) pi - r, |r| <= pi/2; cos x = (-1)^k sin r
static inline __m256d ev_cos_reduce(__m256d x, __m256d* aux) {
    const __m256d t = _mm256_add_pd(EV_FMA(x, EV_D(0x1.45f306dc9c883p-2), EV_D(-0.5)), EV_MAGIC);
    const __m256d m = _mm256_add_pd(_mm256_sub_pd(t, EV_MAGIC), EV_D(0.5));
    const __m256d r = EV_FMA(m, EV_D(0x1.1a62633145c07p-53),
                             _mm256_fmsub_pd(m, EV_D(0x1.921fb54442d18p+1), x));
    (void)aux;
    return _mm256_xor_pd(r, _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 63)));
}
#define EV_TWO_PASS(F) \
static inline void ev_##F##_reduce8(__m256 a, double* R, double* X) { \
    __m256d aux; \
    _mm256_store_pd(R, ev_##F##_reduce(ev_lo(a), &aux)); _mm256_store_pd(X, aux); \
    _mm256_store_pd(R + 4, ev_##F##_reduce(ev_hi(a), &aux)); _mm256_store_pd(X + 4, aux); \
} \
static inline __m256 ev_##F##_finish8(const double* R, const double* X) { \
    return ev_pack(ev_##F##_finish(_mm256_load_pd(R), _mm256_load_pd(X)), \
                   ev_##F##_finish(_mm256_load_pd(R + 4), _mm256_load_pd(X + 4))); \
}
#define EV_ONE_ARRAY(F) \
static inline void ev_##F##_reduce8(__m256 a, double* R, double*) { \
    __m256d aux; \
    _mm256_store_pd(R, ev_##F##_reduce(ev_lo(a), &aux)); \
    _mm256_store_pd(R + 4, ev_##F##_reduce(ev_hi(a), &aux)); \
} \
static inline __m256 ev_##F##_finish8(const double* R, const double*) { \
    return ev_pack(ev_sin_poly(_mm256_load_pd(R)), ev_sin_poly(_mm256_load_pd(R + 4))); \
}
EV_TWO_PASS(exp) EV_TWO_PASS(exp2) EV_TWO_PASS(tanh) EV_ONE_ARRAY(sin) EV_ONE_ARRAY(cos)
// log of normal positive floats: a = 2^e m, m in [sqrt(1/2), sqrt(2)), log a = e ln2 +
// 2 atanh(s), s = (m - 1)/(m + 1) (a float64 division: faster than a reciprocal refined
// by FMAs); X holds e
static inline void ev_log_reduce8(__m256 a, double* R, double* X) {
    const __m256i bits = _mm256_castps_si256(a);
    const __m256i e = _mm256_srai_epi32(_mm256_sub_epi32(bits, _mm256_set1_epi32(0x3f3504f3)), 23);
    const __m256 m = _mm256_castsi256_ps(_mm256_sub_epi32(bits, _mm256_slli_epi32(e, 23)));
    const __m256d lo = ev_lo(m), hi = ev_hi(m);
    _mm256_store_pd(R, _mm256_div_pd(_mm256_sub_pd(lo, EV_D(1.0)), _mm256_add_pd(lo, EV_D(1.0))));
    _mm256_store_pd(R + 4, _mm256_div_pd(_mm256_sub_pd(hi, EV_D(1.0)), _mm256_add_pd(hi, EV_D(1.0))));
    _mm256_store_pd(X, _mm256_cvtepi32_pd(_mm256_castsi256_si128(e)));
    _mm256_store_pd(X + 4, _mm256_cvtepi32_pd(_mm256_extracti128_si256(e, 1)));
}
// e ln2 + 2 atanh(s): ln2 as one double (|e| <= 128: off by at most 3e-15)
static inline __m256d ev_log_finish(__m256d s, __m256d e) {
    return EV_FMA(e, EV_D(0x1.62e42fefa39efp-1), ev_atanh2_poly(s));
}
static inline __m256 ev_log_finish8(const double* R, const double* X) {
    return ev_pack(ev_log_finish(_mm256_load_pd(R), _mm256_load_pd(X)),
                   ev_log_finish(_mm256_load_pd(R + 4), _mm256_load_pd(X + 4)));
}
#endif
"""

# Our float32 sin, cos, exp, exp2, log and tanh ("own32"): float32 arithmetic with FMA,
# one C++ template for 8-float AVX2 and 16-float AVX-512 vectors (``Ev32<W>``: the same
# operations in the same order, so the same bits at either width), inlined into the
# kernel's loop (no call, no spilled registers). Correct on the kernel's fast ranges
# (``source._MVEC``: |x| < 8192 for sin and cos, -87 < x < 88 for exp, -126 < x < 127 for
# exp2, normal positive floats for log, |x| < 9 for tanh); the other lanes go to the
# kernel's special-lane code as with libmvec. Argument reductions in the Cody-Waite
# manner with constants split into float32 parts (the first step exact: x - k*C1 is a
# multiple of C1's last bit and smaller than 1); polynomials from Sollya's fpminimax with
# float32 coefficients (relative error of each in its comment); the measured error of
# each op is in docs/results.md (tests/test_cpu_kernel.py bounds it).
OWN32_MATH = r"""
#if EVOLVE_OWN_MATH
template <int W> struct Ev32;
template <> struct Ev32<8> {
    typedef __m256 F; typedef __m256i I;
    static F c(float v) { return _mm256_set1_ps(v); }
    static I ci(int v) { return _mm256_set1_epi32(v); }
    static F add(F a, F b) { return _mm256_add_ps(a, b); }
    static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
    static F fma(F a, F b, F d) { return _mm256_fmadd_ps(a, b, d); }    // a b + d
    static F fnma(F a, F b, F d) { return _mm256_fnmadd_ps(a, b, d); }  // d - a b
    static I bits(F a) { return _mm256_castps_si256(a); }
    static F from(I a) { return _mm256_castsi256_ps(a); }
    static I iadd(I a, I b) { return _mm256_add_epi32(a, b); }
    static I isub(I a, I b) { return _mm256_sub_epi32(a, b); }
    static I iand(I a, I b) { return _mm256_and_si256(a, b); }
    template <int n> static I shl(I a) { return _mm256_slli_epi32(a, n); }
    template <int n> static I sar(I a) { return _mm256_srai_epi32(a, n); }
    static F tofloat(I a) { return _mm256_cvtepi32_ps(a); }
    static F flip(F a, I sign) { return _mm256_xor_ps(a, from(sign)); }
    // b where the lowest bit of k is set, else a
    static F odd(I k, F a, F b) {
        return _mm256_blendv_ps(a, b, from(_mm256_slli_epi32(k, 31)));
    }
    static F div(F a, F b) { return _mm256_div_ps(a, b); }
    static I ior(I a, I b) { return _mm256_or_si256(a, b); }
    // a where x < t, else b
    static F below(F x, float t, F a, F b) {
        return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, c(t), _CMP_LT_OQ));
    }
};
#if defined(__AVX512F__)
template <> struct Ev32<16> {
    typedef __m512 F; typedef __m512i I;
    static F c(float v) { return _mm512_set1_ps(v); }
    static I ci(int v) { return _mm512_set1_epi32(v); }
    static F add(F a, F b) { return _mm512_add_ps(a, b); }
    static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F fma(F a, F b, F d) { return _mm512_fmadd_ps(a, b, d); }
    static F fnma(F a, F b, F d) { return _mm512_fnmadd_ps(a, b, d); }
    static I bits(F a) { return _mm512_castps_si512(a); }
    static F from(I a) { return _mm512_castsi512_ps(a); }
    static I iadd(I a, I b) { return _mm512_add_epi32(a, b); }
    static I isub(I a, I b) { return _mm512_sub_epi32(a, b); }
    static I iand(I a, I b) { return _mm512_and_si512(a, b); }
    template <int n> static I shl(I a) { return _mm512_slli_epi32(a, n); }
    template <int n> static I sar(I a) { return _mm512_srai_epi32(a, n); }
    static F tofloat(I a) { return _mm512_cvtepi32_ps(a); }
    static F flip(F a, I sign) { return from(_mm512_xor_si512(bits(a), sign)); }
    static F odd(I k, F a, F b) {
        return _mm512_mask_blend_ps(_mm512_test_epi32_mask(k, ci(1)), a, b);
    }
    static F div(F a, F b) { return _mm512_div_ps(a, b); }
    static I ior(I a, I b) { return _mm512_or_si512(a, b); }
    static F below(F x, float t, F a, F b) {
        return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, c(t), _CMP_LT_OQ), b, a);
    }
};
#endif
#define EV32_MAGIC 0x1.8p23f  // t = y + 1.5 * 2^23 rounds y (|y| < 2^22) to an integer k
// sin x or cos x (cosine = 1): x = k pi/2 + r, |r| <= pi/4 (and a hair), pi/2 in three
// floats; sin r = r + r^3 S(r^2) (relative error 2^-32.9 on [0, pi/4]), cos r = 1 - r^2/2
// + r^4 C(r^2) (2^-33.0); the quadrant k (+1 for cos) picks sin r or cos r and the sign
template <class V> static inline typename V::F ev32_sincos(typename V::F x, int cosine) {
    typedef typename V::F F;
    const F t = V::fma(x, V::c(0x1.45f306p-1f), V::c(EV32_MAGIC));
    const F k = V::sub(t, V::c(EV32_MAGIC));
    F r = V::fnma(k, V::c(0x1.921fb6p+0f), x);
    r = V::fnma(k, V::c(-0x1.777a5cp-25f), r);
    r = V::fnma(k, V::c(-0x1.ee59dap-50f), r);
    const F z = V::mul(r, r);
    F s = V::fma(V::c(0x1.77e21p-19f), z, V::c(-0x1.a04866p-13f));
    s = V::fma(s, z, V::c(0x1.111164p-7f));
    s = V::fma(s, z, V::c(-0x1.555556p-3f));
    s = V::fma(V::mul(s, z), r, r);
    F c = V::fma(V::c(0x1.99e914p-16f), z, V::c(-0x1.6c0c2ap-10f));
    c = V::fma(c, z, V::c(0x1.55554ap-5f));
    c = V::fma(c, z, V::c(-0.5f));
    c = V::fma(c, z, V::c(1.0f));
    const typename V::I q = V::iadd(V::bits(t), V::ci(cosine));  // k (+1) in the low bits
    return V::flip(V::odd(q, s, c), V::template shl<30>(V::iand(q, V::ci(2))));
}
// e^r - 1 - r = r^2 E(r) for |r| <= ln2/2 (and a hair): relative error of 1 + r + r^2 E
// 2^-28.8; the result is (1 + r + r^2 E) 2^k, k added to the exponent bits (no overflow
// or subnormal result on the fast ranges: 2^k p with p >= 1 where k = -126)
template <class V> static inline typename V::F ev32_expm(typename V::F r, typename V::F k) {
    typedef typename V::F F;
    F p = V::fma(V::c(0x1.694c86p-10f), r, V::c(0x1.12397cp-7f));
    p = V::fma(p, r, V::c(0x1.555a26p-5f));
    p = V::fma(p, r, V::c(0x1.555492p-3f));
    p = V::fma(p, r, V::c(0x1.fffffap-2f));
    p = V::add(V::fma(V::mul(r, r), p, r), V::c(1.0f));
    return V::from(V::iadd(V::bits(p), V::template shl<23>(V::isub(V::bits(k), V::bits(V::c(EV32_MAGIC))))));
}
// e^x: x = k ln2 + r, ln2 in two floats
template <class V> static inline typename V::F ev32_exp_(typename V::F x) {
    typedef typename V::F F;
    const F t = V::fma(x, V::c(0x1.715476p+0f), V::c(EV32_MAGIC));
    const F k = V::sub(t, V::c(EV32_MAGIC));
    F r = V::fnma(k, V::c(0x1.62e43p-1f), x);
    r = V::fnma(k, V::c(-0x1.05c61p-29f), r);
    return ev32_expm<V>(r, t);
}
// 2^x: x = k + f, |f| <= 1/2 (exact), r = f ln2 (ln2 in two floats)
template <class V> static inline typename V::F ev32_exp2_(typename V::F x) {
    typedef typename V::F F;
    const F t = V::add(x, V::c(EV32_MAGIC));
    const F f = V::sub(x, V::sub(t, V::c(EV32_MAGIC)));
    const F r = V::fma(f, V::c(0x1.62e43p-1f), V::mul(f, V::c(-0x1.05c61p-29f)));
    return ev32_expm<V>(r, t);
}
// log of normal positive floats: x = 2^e m, m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact),
// log(1 + f) = f + f^2 L(f) (relative error 2^-28.2), plus e ln2 (ln2 in two floats)
template <class V> static inline typename V::F ev32_log_(typename V::F x) {
    typedef typename V::F F;
    typedef typename V::I I;
    const I d = V::isub(V::bits(x), V::ci(0x3f3504f3));
    const I e = V::template sar<23>(d);
    const F f = V::sub(V::from(V::isub(V::bits(x), V::template shl<23>(e))), V::c(1.0f));
    F p = V::fma(V::c(-0x1.38472ap-4f), f, V::c(0x1.0860cep-3f));
    p = V::fma(p, f, V::c(-0x1.0f3fa6p-3f));
    p = V::fma(p, f, V::c(0x1.226dfcp-3f));
    p = V::fma(p, f, V::c(-0x1.5425c4p-3f));
    p = V::fma(p, f, V::c(0x1.99a41ap-3f));
    p = V::fma(p, f, V::c(-0x1.000432p-2f));
    p = V::fma(p, f, V::c(0x1.55555p-2f));
    p = V::fma(p, f, V::c(-0x1.fffff8p-2f));
    const F y = V::fma(V::mul(f, f), p, f);
    const F ef = V::tofloat(e);
    return V::fma(ef, V::c(0x1.62e43p-1f), V::fma(ef, V::c(-0x1.05c61p-29f), y));
}
// tanh x = sign(x) tanh|x|: for |x| < 0.625, a + a^3 T(a^2) (relative error 2^-27.7);
// above, 1 - 2/(e^(2a) + 1) (no cancellation: tanh a > 0.55 there), e^(2a) as ev32_exp_
template <class V> static inline typename V::F ev32_tanh_(typename V::F x) {
    typedef typename V::F F;
    typedef typename V::I I;
    const I sign = V::iand(V::bits(x), V::ci((int)0x80000000));
    const F a = V::from(V::iand(V::bits(x), V::ci(0x7fffffff)));
    const F z = V::mul(a, a);
    F p = V::fma(V::c(-0x1.758facp-8f), z, V::c(0x1.5211c4p-6f));
    p = V::fma(p, z, V::c(-0x1.b838ap-5f));
    p = V::fma(p, z, V::c(0x1.110704p-3f));
    p = V::fma(p, z, V::c(-0x1.555532p-2f));
    const F small = V::fma(V::mul(p, z), a, a);
    const F e = ev32_exp_<V>(V::add(a, a));
    const F large = V::sub(V::c(1.0f), V::div(V::c(2.0f), V::add(e, V::c(1.0f))));
    return V::from(V::ior(V::bits(V::below(a, 0.625f, small, large)), sign));
}
// the kernel's calls, one per vector width
#define EV32_WIDTH(W, T) \
static inline T ev32_sin(T x) { return ev32_sincos<Ev32<W> >(x, 0); } \
static inline T ev32_cos(T x) { return ev32_sincos<Ev32<W> >(x, 1); } \
static inline T ev32_exp(T x) { return ev32_exp_<Ev32<W> >(x); } \
static inline T ev32_exp2(T x) { return ev32_exp2_<Ev32<W> >(x); } \
static inline T ev32_log(T x) { return ev32_log_<Ev32<W> >(x); } \
static inline T ev32_tanh(T x) { return ev32_tanh_<Ev32<W> >(x); }
EV32_WIDTH(8, __m256)
#if defined(__AVX512F__)
EV32_WIDTH(16, __m512)
#endif
#endif
"""
