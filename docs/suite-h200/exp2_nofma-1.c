/* Exported by evolve from problem 'exp2_nofma': 2^x on [0,1], float32, max error in ULPs, no FMA.
 * Front row 18: cost 11, training error 1.45103 ULP (max_ulp); certified max error 1.71047 ULP over every float32 of the domain (worst x = 0.9955980777740479).
 *
 * The program:
 *
 *     r1 = mul(r0, r0)
 *     r2 = 4.1951947
 *     r1 = 0.0007515184
 *     r3 = mul(r1, r0)
 *     r2 = mul(r2, r2)
 *     r1 = -0.006368621
 *     r2 = 0.16433895
 *     r3 = sub(r3, r1)
 *     r1 = 0.056713805
 *     r2 = add(r2, r3)
 *     r2 = mul(r0, r3)
 *     r3 = add(r2, r1)
 *     r1 = 0.4901074
 *     r2 = mul(r0, r3)
 *     r3 = add(r1, r2)
 *     r3 = mul(r3, r3)
 *     r1 = 0.693149
 *     r2 = mul(r0, r3)
 *     r3 = add(r1, r2)
 *     r1 = mul(r0, r3)
 *     r2 = sub(r2, r2)
 *     r2 = 1.0
 *     r1 = add(r1, r2)
 *     r2 = 0.3003373
 *     return r1
 *
 * C99. Compile with -ffp-contract=off and without -ffast-math; link with -lm.
 */

#include <math.h>

float f(float x)
{
    float r0 = x;
    float r1, r2, r3;
    r1 = 0x1.8a0318p-11f;  /* 0.0007515184 */
    r3 = (r1 * r0);
    r1 = -0x1.a15fbap-8f;  /* -0.006368621 */
    r3 = (r3 - r1);
    r1 = 0x1.d09978p-5f;  /* 0.056713805 */
    r2 = (r0 * r3);
    r3 = (r2 + r1);
    r1 = 0x1.f5deb6p-2f;  /* 0.4901074 */
    r2 = (r0 * r3);
    r3 = (r1 + r2);
    r3 = (r3 * r3);
    r1 = 0x1.62e46cp-1f;  /* 0.693149 */
    r2 = (r0 * r3);
    r3 = (r1 + r2);
    r1 = (r0 * r3);
    r2 = 0x1p0f;  /* 1.0 */
    r1 = (r1 + r2);
    return r1;
}
