/* Exported by evolve from problem 'exp': e^x on [-ln2/2, ln2/2], float32, max error in ULPs, FMA allowed.
 * Front row 19: cost 9, training error 0.784979 ULP (max_ulp); certified max error 0.797889 ULP over every float32 of the domain (worst x = 0.2943122386932373).
 *
 * The program:
 *
 *     r6 = fma(r0, r0, r0)
 *     r2 = -0.97410357
 *     r6 = fma(r6, r2, r6)
 *     r7 = div(r2, r2)
 *     r7 = add(r0, r7)
 *     r2 = 0.14550534
 *     r3 = add(r2, r6)
 *     r7 = add(r3, r1)
 *     r1 = mul(r3, r3)
 *     r4 = 0.034138307
 *     r1 = fma(r0, r4, r1)
 *     r6 = 0.99999976
 *     r3 = sub(r5, r1)
 *     r1 = add(r2, r1)
 *     r2 = 0.4999998
 *     r7 = fma(r1, r0, r2)
 *     r2 = fma(r0, r7, r6)
 *     r3 = div(r2, r6)
 *     r7 = add(r7, r0)
 *     r5 = mul(r3, r2)
 *     r7 = 1.0
 *     r5 = 2.2849672
 *     r1 = fma(r0, r2, r7)
 *     return r1
 *
 * C99. Compile with -ffp-contract=off and without -ffast-math; link with -lm.
 */

#include <math.h>

float f(float x)
{
    float r0 = x;
    float r1, r2, r3, r4, r6, r7;
    r6 = fmaf(r0, r0, r0);
    r2 = -0x1.f2bdb4p-1f;  /* -0.97410357 */
    r6 = fmaf(r6, r2, r6);
    r2 = 0x1.29feb4p-3f;  /* 0.14550534 */
    r3 = (r2 + r6);
    r1 = (r3 * r3);
    r4 = 0x1.17a938p-5f;  /* 0.034138307 */
    r1 = fmaf(r0, r4, r1);
    r6 = 0x1.fffff8p-1f;  /* 0.99999976 */
    r1 = (r2 + r1);
    r2 = 0x1.fffff2p-2f;  /* 0.4999998 */
    r7 = fmaf(r1, r0, r2);
    r2 = fmaf(r0, r7, r6);
    r7 = 0x1p0f;  /* 1.0 */
    r1 = fmaf(r0, r2, r7);
    return r1;
}
