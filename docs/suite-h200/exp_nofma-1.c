/* Exported by evolve from problem 'exp_nofma': e^x on [-ln2/2, ln2/2], float32, max error in ULPs, no FMA.
 * Front row 20: cost 12, training error 1.80793 ULP (max_ulp); certified max error 2.14453 ULP over every float32 of the domain (worst x = -8.614732927014757e-09).
 *
 * The program:
 *
 *     r5 = 1.3398921
 *     r5 = 0.7847113
 *     r1 = div(r7, r1)
 *     r7 = div(r5, r1)
 *     r7 = -15.529697
 *     r1 = -1.1681719
 *     r1 = sub(r1, r0)
 *     r3 = mul(r0, r1)
 *     r4 = 0.20255564
 *     r2 = add(r7, r4)
 *     r6 = mul(r0, r4)
 *     r1 = add(r5, r6)
 *     r5 = -0.006033787
 *     r3 = add(r7, r3)
 *     r7 = mul(r3, r1)
 *     r2 = mul(r4, r0)
 *     r1 = mul(r2, r2)
 *     r6 = mul(r7, r1)
 *     r7 = sub(r6, r0)
 *     r3 = mul(r4, r5)
 *     r3 = 1.3894408
 *     r6 = add(r7, r5)
 *     r2 = 0.9939663
 *     r1 = sub(r2, r6)
 *     return r1
 *
 * C99. Compile with -ffp-contract=off and without -ffast-math; link with -lm.
 */

#include <math.h>

float f(float x)
{
    float r0 = x;
    float r1, r2, r3, r4, r5, r6, r7;
    r5 = 0x1.91c5aep-1f;  /* 0.7847113 */
    r7 = -0x1.f0f348p3f;  /* -15.529697 */
    r1 = -0x1.2b0d5p0f;  /* -1.1681719 */
    r1 = (r1 - r0);
    r3 = (r0 * r1);
    r4 = 0x1.9ed57ep-3f;  /* 0.20255564 */
    r6 = (r0 * r4);
    r1 = (r5 + r6);
    r5 = -0x1.8b6e26p-8f;  /* -0.006033787 */
    r3 = (r7 + r3);
    r7 = (r3 * r1);
    r2 = (r4 * r0);
    r1 = (r2 * r2);
    r6 = (r7 * r1);
    r7 = (r6 - r0);
    r6 = (r7 + r5);
    r2 = 0x1.fce926p-1f;  /* 0.9939663 */
    r1 = (r2 - r6);
    return r1;
}
