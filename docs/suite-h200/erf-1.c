/* Exported by evolve from problem 'erf': erf(x) on [0,1], float32, max error in ULPs, FMA allowed.
 * Front row 198: cost 11, training error 1587.57 ULP (max_ulp); certified max error 1588.91 ULP over every float32 of the domain (worst x = 0.22530876100063324).
 *
 * The program:
 *
 *     r3 = fma(r0, r0, r0)
 *     r2 = mul(r3, r3)
 *     r7 = 6.335294
 *     r3 = 0.043995727
 *     r3 = add(r0, r7)
 *     r1 = 0.009636478
 *     r7 = fma(r0, r0, r0)
 *     r6 = 0.040890086
 *     r6 = fma(r1, r3, r1)
 *     r5 = fma(r1, r7, r6)
 *     r2 = sub(r0, r6)
 *     r1 = div(r2, r5)
 *     r1 = 1.0156887
 *     r1 = -1.6686991
 *     r7 = sub(r2, r4)
 *     r3 = add(r0, r0)
 *     r6 = fma(r3, r7, r1)
 *     r4 = 0.16674076
 *     r6 = fma(r6, r3, r3)
 *     r1 = div(r4, r4)
 *     r1 = sub(r5, r4)
 *     r1 = fma(r1, r6, r0)
 *     r2 = fma(r0, r3, r1)
 *     return r1
 *
 * C99. Compile with -ffp-contract=off and without -ffast-math; link with -lm.
 */

#include <math.h>

float f(float x)
{
    float r0 = x;
    float r4 = 0.0f;
    float r1, r2, r3, r5, r6, r7;
    r7 = 0x1.957574p2f;  /* 6.335294 */
    r3 = (r0 + r7);
    r1 = 0x1.3bc4a2p-7f;  /* 0.009636478 */
    r7 = fmaf(r0, r0, r0);
    r6 = fmaf(r1, r3, r1);
    r5 = fmaf(r1, r7, r6);
    r2 = (r0 - r6);
    r1 = -0x1.ab2fdep0f;  /* -1.6686991 */
    r7 = (r2 - r4);
    r3 = (r0 + r0);
    r6 = fmaf(r3, r7, r1);
    r4 = 0x1.557c2ep-3f;  /* 0.16674076 */
    r6 = fmaf(r6, r3, r3);
    r1 = (r5 - r4);
    r1 = fmaf(r1, r6, r0);
    return r1;
}
