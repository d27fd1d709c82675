/* Exported by evolve from problem 'log2': log2(x) on [sqrt2/2, sqrt2], float32, max error in ULPs, FMA allowed.
 * Front row 15: cost 13, training error 33.214 ULP (max_ulp); certified max error 35.4366 ULP over every float32 of the domain (worst x = 0.7071796655654907).
 *
 * The program:
 *
 *     r1 = mul(r4, r2)
 *     r4 = 0.6579809
 *     r2 = fma(r0, r4, r0)
 *     r1 = fma(r2, r0, r0)
 *     r3 = add(r2, r2)
 *     r5 = div(r4, r1)
 *     r3 = mul(r5, r4)
 *     r3 = sub(r0, r2)
 *     r2 = div(r5, r3)
 *     r7 = -0.0058790557
 *     r5 = mul(r4, r5)
 *     r2 = 6.162395
 *     r3 = add(r5, r7)
 *     r1 = add(r2, r5)
 *     r4 = mul(r4, r0)
 *     r5 = mul(r3, r0)
 *     r2 = fma(r1, r4, r0)
 *     r3 = 0.44960544
 *     r2 = div(r7, r7)
 *     r7 = fma(r1, r5, r3)
 *     r3 = sub(r0, r2)
 *     r4 = 0.0018596612
 *     r4 = add(r0, r5)
 *     r1 = mul(r7, r3)
 *     return r1
 *
 * C99. Compile with -ffp-contract=off and without -ffast-math; link with -lm.
 */

#include <math.h>

float f(float x)
{
    float r0 = x;
    float r1, r2, r3, r4, r5, r7;
    r4 = 0x1.50e2ep-1f;  /* 0.6579809 */
    r2 = fmaf(r0, r4, r0);
    r1 = fmaf(r2, r0, r0);
    r5 = (r4 / r1);
    r7 = -0x1.814a3p-8f;  /* -0.0058790557 */
    r5 = (r4 * r5);
    r2 = 0x1.8a64aep2f;  /* 6.162395 */
    r3 = (r5 + r7);
    r1 = (r2 + r5);
    r5 = (r3 * r0);
    r3 = 0x1.cc655ep-2f;  /* 0.44960544 */
    r2 = (r7 / r7);
    r7 = fmaf(r1, r5, r3);
    r3 = (r0 - r2);
    r1 = (r7 * r3);
    return r1;
}
